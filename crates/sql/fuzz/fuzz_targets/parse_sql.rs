#![no_main]
//! Any text as a SQL script through the parsers a session runs before planning: the script
//! splitter, identity-call normalisation, carelake's own statements (roles, grants, row and
//! masking policies, alerts, materialized views, models, COPY/VACUUM/OPTIMIZE) and DataFusion's
//! parser. Syntax errors are fine; panics are not.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let script = String::from_utf8_lossy(data);
    let _ = carelake_sql::check_script(&script);
});
