//! X12 837 files into the lake: the shared imsweb files (good ones loaded, broken ones
//! quarantined whole with their reason, never half-loaded), once only.

use crate::support::{Workspace, shared_data};

#[test]
fn imsweb_files_load_or_are_quarantined_whole() {
    let Some(dir) = shared_data("x12-837/imsweb") else {
        return;
    };
    let ws = Workspace::new();
    let dir = dir.to_string_lossy().into_owned();
    let out = ws.ok(&["load", &dir]);
    // 9 files hold 27 claims; 13 broken files are refused; LICENSE is no X12.
    assert!(out.contains("Loaded 40 claims from 9 file(s)"), "{out}");
    assert!(out.contains("13 rejected"), "{out}");
    assert!(
        out.contains("Ignored 1 file(s) of no clinical format"),
        "{out}"
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.x12_claims"), "27");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.x12_claim_lines"), "31");
    // Nothing of a refused file is in the claim tables.
    for bad in [
        "x12_bad_valid_code.txt",
        "x12_segment_errors.txt",
        "x12_missing_elements.txt",
    ] {
        assert_eq!(
            ws.scalar(&format!(
                "SELECT count(*) FROM raw.x12_claims WHERE _source_file LIKE '%{bad}'"
            )),
            "0"
        );
        let reason = ws.scalar(&format!(
            "SELECT reason FROM raw._rejects WHERE source_file LIKE '%{bad}'"
        ));
        assert!(reason.starts_with("X12 file rejected:"), "{reason}");
    }
    assert!(
        ws.scalar("SELECT reason FROM raw._rejects WHERE source_file LIKE '%x12_999_accepted.txt'")
            .contains("not an 837 claim file (ST01 = 999)")
    );
    // Pointers resolve to the claim's diagnosis codes.
    assert_eq!(
        ws.scalar(
            "SELECT array_to_string(l.diagnosis_codes, '-') FROM raw.x12_claim_lines l \
             JOIN raw.x12_claims c ON l.claim_id = c.claim_id AND l._source_file = c._source_file \
             WHERE c._source_file LIKE '%x12_valid.txt' AND c.claim_id = 'A37YH667'"
        ),
        "1987-4134-5559"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.x12_claims WHERE claim_kind = '837I'"),
        "1"
    );
    // Loading again adds nothing and quarantines nothing twice.
    let again = ws.ok(&["load", &dir]);
    assert!(again.contains("Loaded 0 claims"), "{again}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.x12_claims"), "27");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw._rejects"), "13");
}
