//! The SQL-on-FHIR v2 conformance suite: prints the pass count and fails below the recorded
//! floor (`crates/fhir/conformance-floor`).

use crate::shared_data;

#[test]
fn sql_on_fhir_v2_suite() {
    let Some(dir) = shared_data("sql-on-fhir-v2/tests") else {
        return;
    };
    let report = carelake_fhir::conformance::run_suite(&dir).unwrap();
    print!("{report}");
    println!(
        "SQL-on-FHIR v2 conformance: {}/{} passed",
        report.passed(),
        report.total()
    );
    let floor: usize = include_str!("../../conformance-floor")
        .trim()
        .parse()
        .unwrap();
    assert!(
        report.passed() >= floor,
        "conformance regressed: {} passed, the recorded floor is {floor}\n{report}",
        report.passed()
    );
}
