//! The shared imsweb files: the valid ones parse with the claims and lines they hold, every
//! broken one is refused with the reason it deserves, and no reason quotes a name.

use carelake_x12::{ClaimKind, parse_837};

use crate::shared_data;

fn read(name: &str) -> Option<Vec<u8>> {
    let dir = shared_data("x12-837/imsweb")?;
    Some(std::fs::read(dir.join(name)).unwrap())
}

#[test]
fn valid_files_parse_with_their_claims() {
    // (file, claims, lines, transaction sets)
    let expected = [
        ("x12_valid.txt", 2, 2, 1),
        ("x12_no_errors.txt", 2, 2, 1),
        ("x12_ambiguous_loop.txt", 1, 1, 1),
        ("x12_complex.txt", 6, 10, 2),
        ("x12_multiple_gs.txt", 6, 6, 3),
        ("x12_multiple_isa.txt", 4, 4, 2),
        ("x12_multiple_st.txt", 4, 4, 2),
        ("x12_writer_test.txt", 1, 1, 1),
        ("x223-test.txt", 1, 1, 1),
    ];
    for (file, claims, lines, transactions) in expected {
        let Some(bytes) = read(file) else { return };
        let parsed = parse_837(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(parsed.claims.len(), claims, "{file} claims");
        assert_eq!(
            parsed.claims.iter().map(|c| c.lines.len()).sum::<usize>(),
            lines,
            "{file} lines"
        );
        assert_eq!(
            parsed.transaction_count, transactions,
            "{file} transactions"
        );
    }
}

#[test]
fn first_claim_of_the_valid_file_field_by_field() {
    let Some(bytes) = read("x12_valid.txt") else {
        return;
    };
    let parsed = parse_837(&bytes).unwrap();
    assert_eq!(parsed.control_number, "000000905");
    assert_eq!(parsed.sender_id, "SUBMITTERS.ID");
    let claim = &parsed.claims[0];
    assert_eq!(claim.kind, Some(ClaimKind::Professional));
    assert_eq!(claim.implementation, "005010X222A1");
    assert_eq!(claim.claim_id, "A37YH556");
    assert_eq!(claim.total_charge, Some(500.0));
    assert_eq!(claim.place_of_service.as_deref(), Some("11"));
    assert_eq!(claim.frequency_code.as_deref(), Some("1"));
    assert_eq!(claim.billing_provider_npi.as_deref(), Some("1234567890"));
    assert_eq!(claim.payer_id.as_deref(), Some("11122333"));
    assert_eq!(claim.subscriber_id.as_deref(), Some("123456"));
    assert_eq!(claim.payer_responsibility.as_deref(), Some("P"));
    assert!(claim.patient_is_subscriber);
    assert_eq!(claim.principal_diagnosis.as_deref(), Some("8901"));
    assert_eq!(claim.diagnosis_codes, ["8901", "87200", "5559"]);
    let line = &claim.lines[0];
    assert_eq!(line.procedure_code.as_deref(), Some("99211"));
    assert_eq!(line.modifiers, ["25"]);
    assert_eq!(line.charge, Some(12.25));
    assert_eq!(line.units, Some(1.0));
    assert_eq!(line.diagnosis_pointers, [1]);
    assert_eq!(parsed.claims[1].lines[0].diagnosis_pointers, [1, 2, 3]);
    assert_eq!(
        line.service_from.map(|d| d.to_string()).as_deref(),
        Some("2005-03-14")
    );
    assert_eq!(
        line.service_to.map(|d| d.to_string()).as_deref(),
        Some("2005-03-25")
    );
    assert_eq!(claim.statement_from, line.service_from);
    // The imsweb samples carry SE01 = 25 whatever their length: a warning, not a refusal.
    assert!(
        parsed.warnings.iter().any(|w| w.contains("SE01")),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn institutional_claim() {
    let Some(bytes) = read("x223-test.txt") else {
        return;
    };
    let parsed = parse_837(&bytes).unwrap();
    let claim = &parsed.claims[0];
    assert_eq!(claim.kind, Some(ClaimKind::Institutional));
    assert_eq!(
        claim.admission_date.map(|d| d.to_string()).as_deref(),
        Some("2015-03-30")
    );
    let line = &claim.lines[0];
    assert_eq!(line.revenue_code.as_deref(), Some("0300"));
    assert_eq!(line.procedure_code.as_deref(), Some("81099"));
    assert_eq!(line.charge, Some(73.42));
}

#[test]
fn broken_files_are_refused_with_their_reason() {
    let expected = [
        ("x12_999_accepted.txt", "not an 837 claim file (ST01 = 999)"),
        ("x12_999_rejected.txt", "not an 837 claim file (ST01 = 999)"),
        (
            "x12_bad_first_line.txt",
            "ISA02 must be exactly 10 characters wide",
        ),
        (
            "x12_bad_segment_identifier.txt",
            "invalid segment identifier",
        ),
        (
            "x12_bad_valid_code.txt",
            "the 2010AA billing provider must be NM1*85",
        ),
        (
            "x12_loop_errors1_exceeds_max_1_parent.txt",
            "2010AA billing provider name loop repeats",
        ),
        (
            "x12_loop_errors2_exceeds_max_repeats_multiple_parents.txt",
            "2010AA billing provider name loop repeats",
        ),
        (
            "x12_loop_errors3_missing_loops.txt",
            "has no 2010AA billing provider name (NM1*85)",
        ),
        (
            "x12_missing_elements.txt",
            "NM102 entity type qualifier is missing",
        ),
        (
            "x12_missing_required_loop_in_one_repeat.txt",
            "has no 2010BA subscriber name (NM1*IL)",
        ),
        (
            "x12_missing_required_loops_mult_repeats.txt",
            "the 2400 loop's LX is missing",
        ),
        ("x12_no_isa_line.txt", "the first segment is not ISA"),
        ("x12_segment_errors.txt", "tax id (REF*EI/SY) repeats"),
    ];
    for (file, reason) in expected {
        let Some(bytes) = read(file) else { return };
        let err = parse_837(&bytes).expect_err(file).to_string();
        assert!(err.contains(reason), "{file}: {err}");
        // Reasons never quote names from the file.
        for name in ["DOE", "JOHN", "DAVID", "ANGELASZEK", "CALVERTON"] {
            assert!(!err.contains(name), "{file}: {err}");
        }
    }
}
