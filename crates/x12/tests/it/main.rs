//! carelake-x12 integration tests: the shared imsweb files, a generated claim checked field by
//! field, and arbitrary input.

mod properties;
mod samples;

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
