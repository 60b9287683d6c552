//! FHIR R4 into the lake: the shared Synthea Bundles with per-type counts, the default views,
//! versions and deletions, bulk NDJSON, user views and the conformance command.

use crate::support::{Workspace, shared_data};

#[test]
fn synthea_bundles_load_once_per_type_and_fill_the_views() {
    let Some(dir) = shared_data("fhir-r4-synthea") else {
        return;
    };
    let ws = Workspace::new();
    let dir = dir.to_string_lossy().into_owned();
    let out = ws.ok(&["load", &dir]);
    assert!(
        out.contains("Loaded 1000 resources from 12 file(s)"),
        "{out}"
    );
    for (table, count) in [
        ("fhir_patient", 10),
        ("fhir_encounter", 139),
        ("fhir_observation", 144),
        ("fhir_condition", 54),
        ("fhir_procedure", 9),
        ("fhir_immunization", 242),
        ("fhir_claim", 139),
        ("fhir_explanation_of_benefit", 139),
        ("fhir_organization", 36),
        ("fhir_practitioner", 36),
        ("fhir_diagnostic_report", 18),
        ("fhir_care_plan", 17),
        ("fhir_care_team", 17),
    ] {
        assert_eq!(
            ws.scalar(&format!("SELECT count(*) FROM raw.{table}")),
            count.to_string(),
            "raw.{table}"
        );
    }
    // The default views: one row per current resource, references resolved to ids.
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.fhir_patient"), "10");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.fhir_encounter"),
        "139"
    );
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM curated.fhir_encounter e JOIN curated.fhir_patient p ON e.patient_id = p.id"
        ),
        "139"
    );
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM curated.fhir_observation WHERE code IS NULL OR patient_id IS NULL"
        ),
        "0"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.fhir_claim c JOIN curated.fhir_encounter e ON c.encounter_id = e.id"),
        "139"
    );
    // Loading again adds nothing.
    let again = ws.ok(&["load", &dir]);
    assert!(again.contains("Loaded 0 resources"), "{again}");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.fhir_immunization"),
        "242"
    );
    let views = ws.ok(&["fhir", "views"]);
    assert!(views.contains("curated.fhir_document_reference"), "{views}");
}

#[test]
fn newer_versions_replace_older_and_deletions_disappear() {
    let ws = Workspace::new();
    let v1 = ws.write(
        "v1.json",
        r#"{"resourceType": "Bundle", "type": "transaction", "entry": [
          {"resource": {"resourceType": "Patient", "id": "a", "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"}, "gender": "female", "birthDate": "1980-02-03"}, "request": {"method": "PUT", "url": "Patient/a"}},
          {"resource": {"resourceType": "Patient", "id": "b", "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"}, "gender": "male"}, "request": {"method": "PUT", "url": "Patient/b"}},
          {"resource": {"id": "no-type"}},
          {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/a"},
             "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "valueQuantity": {"value": 72, "unit": "/min"}}}
        ]}"#,
    );
    let out = ws.ok(&["load", &v1]);
    assert!(
        out.contains("Loaded 4 resources") && out.contains("1 rejected"),
        "{out}"
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.fhir_patient"), "2");
    assert_eq!(
        ws.scalar("SELECT value_quantity FROM curated.fhir_observation"),
        "72.0"
    );
    // The rejected entry is quarantined with its reason.
    assert!(
        ws.scalar("SELECT reason FROM raw._rejects")
            .contains("resourceType")
    );

    let v2 = ws.write(
        "v2.ndjson",
        "{\"resourceType\": \"Patient\", \"id\": \"a\", \"meta\": {\"versionId\": \"2\", \"lastUpdated\": \"2024-03-01T00:00:00Z\"}, \"gender\": \"female\", \"birthDate\": \"1980-02-04\"}\n\
         not json at all\n",
    );
    let out = ws.ok(&["load", &v2]);
    assert!(
        out.contains("Loaded 2 resources") && out.contains("1 rejected"),
        "{out}"
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.fhir_patient"), "3");
    assert_eq!(
        ws.scalar("SELECT birth_date FROM curated.fhir_patient WHERE id = 'a'"),
        "1980-02-04"
    );

    let delete = ws.write(
        "delete.json",
        r#"{"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE", "url": "Patient/b"}}]}"#,
    );
    ws.ok(&["load", &delete]);
    assert_eq!(ws.query("SELECT id FROM curated.fhir_patient"), ["a"]);
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.fhir_patient WHERE deleted"),
        "1"
    );

    // A user's own view, kept in the lake and filled at once.
    let view = ws.write(
        "heart_rate.json",
        r#"{"resourceType": "ViewDefinition", "name": "heart_rate", "resource": "Observation",
            "where": [{"path": "code.coding.where(system = 'http://loinc.org' and code = '8867-4').exists()"}],
            "select": [{"column": [
              {"name": "patient_id", "path": "subject.getReferenceKey(Patient)"},
              {"name": "bpm", "path": "value.ofType(Quantity).value", "type": "decimal"}]}]}"#,
    );
    let out = ws.ok(&["fhir", "add-view", &view]);
    assert!(out.contains("curated.heart_rate added: 1 rows"), "{out}");
    assert_eq!(
        ws.scalar("SELECT patient_id || ':' || CAST(bpm AS VARCHAR) FROM curated.heart_rate"),
        "a:72.0"
    );
    let bad = ws.write(
        "bad_view.json",
        r#"{"resource": "Observation", "select": [{"forEach": "@@"}]}"#,
    );
    let err = ws.fails(&["fhir", "add-view", &bad]);
    assert!(
        err.contains("does not parse") || err.contains("name"),
        "{err}"
    );
}

#[test]
fn conformance_command_prints_the_count() {
    let Some(dir) = shared_data("sql-on-fhir-v2/tests") else {
        return;
    };
    let ws = Workspace::new();
    let dir = dir.to_string_lossy().into_owned();
    let out = ws.ok(&["fhir", "conformance", &dir, "--min", "134"]);
    assert!(
        out.contains("SQL-on-FHIR v2 conformance: 134/134 passed"),
        "{out}"
    );
}

/// A load whose views could not be written (here a storage fault; a crash leaves the same) is
/// completed by the next load of the same files, which takes no new resources: the views say
/// what the raw tables hold.
#[test]
fn views_left_behind_by_a_failed_load_are_brought_up_to_date_by_the_next() {
    let ws = Workspace::new();
    let bundle = |name: &str, gender: &str, updated: &str| {
        ws.write(
            name,
            format!(
                r#"{{"resourceType": "Bundle", "type": "collection", "entry": [
              {{"resource": {{"resourceType": "Patient", "id": "a", "meta": {{"lastUpdated": "{updated}"}}, "gender": "{gender}"}}}},
              {{"resource": {{"resourceType": "Patient", "id": "b", "meta": {{"lastUpdated": "{updated}"}}, "gender": "male"}}}}]}}"#
            ),
        )
    };
    ws.ok(&["load", &bundle("v1.json", "female", "2024-01-01T00:00:00Z")]);
    let v2 = bundle("v2.json", "other", "2024-02-01T00:00:00Z");
    let out = ws
        .command(&["load", &v2])
        .env("CARELAKE_FAULTS", "put@curated/fhir_patient/:error")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The raw table took the new versions; the view is behind.
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.fhir_patient"), "4");
    assert_eq!(
        ws.scalar("SELECT gender FROM curated.fhir_patient WHERE id = 'a'"),
        "female"
    );
    let again = ws.ok(&["load", &v2]);
    assert!(again.contains("Loaded 0 resources"), "{again}");
    assert_eq!(
        ws.scalar("SELECT gender FROM curated.fhir_patient WHERE id = 'a'"),
        "other"
    );
    assert!(ws.ok(&["check"]).contains("sound"));
}
