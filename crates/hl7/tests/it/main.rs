//! Public behaviour of the HL7 v2 parser on the shared sample messages and on arbitrary input.

mod properties;
mod samples;

use std::path::PathBuf;

/// `../shared/data` beside the project, or `None` (tests then skip, saying so).
pub(crate) fn shared_data(sub: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent (shared test data)", dir.display());
        None
    }
}
