#![no_main]
//! Any bytes as a FHIR document or NDJSON line, then through every default view.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = carelake_fhir::read_ndjson_line(&text);
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let resources: Vec<serde_json::Value> = match carelake_fhir::read_bundle(&json) {
        Ok(entries) => entries.into_iter().filter_map(|e| e.resource).collect(),
        Err(_) => vec![json],
    };
    for view in carelake_fhir::default_views() {
        for resource in &resources {
            let _ = view.evaluate(resource);
        }
    }
});
