//! carelake-fhir integration tests: the SQL-on-FHIR v2 conformance suite, the shared Synthea
//! Bundles through the default views, and arbitrary input.

mod conformance;
mod properties;
mod synthea;

use std::path::PathBuf;

/// A folder of `../shared/data`, or `None` (with a message) when it is absent.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(sub);
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} is absent (no ../shared/data beside the project)",
            path.display()
        );
        None
    }
}
