//! The shared test material beside the project (`../shared/data`: SQL-on-FHIR conformance
//! tests, HL7 v2 samples, FHIR bundles, X12 837s, record-linkage data), for the tests of every
//! crate. A test that needs a folder that is absent skips, saying so.

use std::path::PathBuf;

/// `../shared/data/<sub>` beside the project root, or `None` with a message on standard error
/// when this checkout has none (the calling test then skips).
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    // Every crate sits at `crates/<name>`, so this crate's folder gives the project root.
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (the shared test data sits beside the project root)",
            dir.display()
        );
        None
    }
}
