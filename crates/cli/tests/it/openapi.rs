//! The HTTP API against its own OpenAPI document (`/api/v1/openapi.json`), fuzzed by
//! schemathesis (PyPI): generated requests for every operation, valid and invalid, with and
//! without credentials; every response must be one the document allows (status, media type,
//! body schema), and none may be a server error. `scripts/test.sh` installs schemathesis.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Workspace, python_with, served_at, spawn_serve};

const USER: &str = "fuzzer";
const PASSWORD: &str = "a long fuzzer password";

#[test]
fn the_http_api_keeps_to_its_openapi_document_under_schemathesis() {
    let test = "the_http_api_keeps_to_its_openapi_document_under_schemathesis";
    let Some(python) = python_with("schemathesis", test) else {
        return;
    };
    let ws = Workspace::new();
    ws.add_user(USER, PASSWORD, "admin");
    let csv = ws.write(
        "encounters.csv",
        "encounter_id,facility_id,los\nE1,FAC-A,3\nE2,FAC-B,5\n",
    );
    ws.ok(&["load", &csv, "--into", "raw.encounters"]);
    let (mut child, lines) = spawn_serve(
        &ws,
        &["--http-listen", "127.0.0.1:0", "--flush-seconds", "0.2"],
    );
    let base = served_at(&lines, "http").unwrap_or_else(|| panic!("no address in {lines:?}"));

    let schemathesis = PathBuf::from(&python).with_file_name("schemathesis");
    let reports = ws.path("schemathesis");
    let result = Command::new(&schemathesis)
        .args([
            "run",
            &format!("{base}/api/v1/openapi.json"),
            "--auth",
            &format!("{USER}:{PASSWORD}"),
            "--checks",
            "all",
            // A string the schema allows is not always SQL that runs (or a table that exists):
            // 400 and 404 for those are the documented answers, not failures.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "40",
            "--seed",
            "20261126",
            "--workers",
            "1",
            "--report",
            "junit",
            "--report-dir",
            &reports.to_string_lossy(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let _ = child.kill();
    let _ = child.wait();
    let report = String::from_utf8_lossy(&result.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&result.stderr));
    assert!(
        result.status.success(),
        "schemathesis found failures:\n{report}"
    );
    assert!(!report.contains("No operations"), "{report}");
}
