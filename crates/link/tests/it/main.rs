//! Integration tests of carelake-link: FEBRL 4 accuracy, generated data against its truth,
//! properties of normalisation, comparison and clustering.

mod febrl;
mod generated;
mod properties;

use std::path::PathBuf;

/// A folder of `../shared/data`, or `None` (with a message) when this checkout has none.
pub(crate) fn shared_data(folder: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(folder);
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is absent (the shared test data sits beside the project root)",
            path.display()
        );
        None
    }
}
