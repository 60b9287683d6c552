//! The shared Synthea Bundles: every entry reads, and every default view flattens its
//! resources without an error.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::shared_data;

#[test]
fn synthea_bundles_read_and_flatten() {
    let Some(dir) = shared_data("fhir-r4-synthea") else {
        return;
    };
    let views = carelake_fhir::default_views();
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 12);
    for path in files {
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for entry in carelake_fhir::read_bundle(&json).unwrap() {
            assert!(
                entry.problem.is_none(),
                "{}: entry {} {:?}",
                path.display(),
                entry.position,
                entry.problem
            );
            *per_type
                .entry(entry.meta.resource_type.clone())
                .or_default() += 1;
            let resource = entry.resource.unwrap();
            for view in views
                .iter()
                .filter(|v| v.resource() == entry.meta.resource_type)
            {
                let out = view.evaluate(&resource).unwrap_or_else(|e| {
                    panic!("view {} on entry {}: {e}", view.name(), entry.position)
                });
                assert_eq!(out.len(), 1, "one row per resource in {}", view.name());
                // References resolve: every clinical row names its patient, and ids are kept.
                let columns = view.columns();
                let value = |name: &str| {
                    columns
                        .iter()
                        .position(|c| c.name == name)
                        .map(|i| &out[0][i])
                };
                assert!(
                    value("id").is_some_and(|v| v.is_string()),
                    "{} id",
                    view.name()
                );
                if let Some(patient) = value("patient_id") {
                    assert!(
                        patient.is_string(),
                        "{} patient_id on entry {}",
                        view.name(),
                        entry.position
                    );
                }
                if let Some(code) = value("code") {
                    assert!(
                        code.is_string(),
                        "{} code on entry {}",
                        view.name(),
                        entry.position
                    );
                }
                *rows.entry(view.name().to_string()).or_default() += out.len();
            }
        }
    }
    println!("{per_type:?}");
    println!("{rows:?}");
    assert_eq!(per_type.values().sum::<usize>(), 1000);
    assert_eq!(per_type["Patient"], 10);
    assert_eq!(per_type["Encounter"], 139);
    assert_eq!(per_type["Immunization"], 242);
    assert_eq!(rows["fhir_patient"], 10);
}
