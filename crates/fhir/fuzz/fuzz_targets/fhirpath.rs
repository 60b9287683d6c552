#![no_main]
//! Any text as a FHIRPath expression and any text as a ViewDefinition, evaluated over a
//! small resource; a SQL-on-FHIR v2 test file (the seeds) has each of its views evaluated over
//! its resources, so that mutations of real views reach the engine.

use carelake_fhir::fhirpath::{Env, Item, evaluate, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let resource = serde_json::json!({
        "resourceType": "Patient", "id": "p1",
        "name": [{"use": "official", "family": "F", "given": ["A", "B"]}],
        "birthDate": "1970-06", "deceasedBoolean": false,
        "extension": [{"url": "u", "valueCode": "c"}],
        "link": [{"other": {"reference": "Patient/p2"}}]
    });
    if let Ok(expr) = parse(&text) {
        let env = Env { resource: Some(&resource), ..Env::default() };
        let _ = evaluate(&expr, &[Item::Node(&resource, None)], &env);
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(view) = carelake_fhir::ViewDefinition::from_json(&json) {
        let _ = view.evaluate(&resource);
    }
    let resources = json["resources"].as_array().cloned().unwrap_or_default();
    for test in json["tests"].as_array().into_iter().flatten() {
        if let Ok(view) = carelake_fhir::ViewDefinition::from_json(&test["view"]) {
            for r in &resources {
                let _ = view.evaluate(r);
            }
        }
    }
});
