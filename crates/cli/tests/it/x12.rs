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

/// Parquet data files under a table's folder (committed or not).
fn data_files(table: &std::path::Path) -> usize {
    std::fs::read_dir(table)
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_large_file_is_loaded_in_chunks_all_or_nothing() {
    let ws = Workspace::new();
    let out = ws.path("gen").to_string_lossy().into_owned();
    ws.ok(&["generate", "--patients", "300", "--out", &out]);
    let good = ws.path("gen/x12/claims_837p.x12");
    let text = std::fs::read_to_string(&good).unwrap();
    let claims = text
        .split('~')
        .filter(|s| s.trim_start().starts_with("CLM*"))
        .count();
    assert!(claims > 2_000, "{claims} claims");
    // The same claims with the interchange trailer cut off: refused, after many chunks.
    let cut = text.rfind("IEA*").unwrap();
    let broken = ws.write("broken/claims.x12", &text[..cut]);
    let load = |path: &str| {
        let out = ws
            .command(&["load", path])
            .env("CARELAKE_CHUNK_ROWS", "500")
            .output()
            .unwrap();
        crate::support::succeeded(&["load", path], out)
    };
    let out = load(&broken);
    assert!(out.contains("1 rejected"), "{out}");
    let lake = ws.path("lake/raw");
    // Its staged files were deleted, never committed.
    assert_eq!(data_files(&lake.join("x12_claims")), 0);
    assert_eq!(data_files(&lake.join("x12_claim_lines")), 0);
    assert!(
        ws.scalar("SELECT reason FROM raw._rejects WHERE source_file LIKE '%broken%'")
            .contains("no IEA trailer")
    );
    let good = good.to_string_lossy().into_owned();
    let out = load(&good);
    assert!(out.contains(&format!("Loaded {claims} claims")), "{out}");
    assert!(data_files(&lake.join("x12_claims")) >= 1);
    assert_eq!(
        ws.scalar("SELECT count(*), count(DISTINCT claim_id) FROM raw.x12_claims"),
        format!("{claims},{claims}")
    );
    let lines = ws.scalar("SELECT count(*) FROM raw.x12_claim_lines");
    // Once only: neither file again adds a row or a reject.
    for path in [&good, &broken] {
        let out = load(path);
        assert!(out.contains("Loaded 0 claims"), "{out}");
    }
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.x12_claims"),
        claims.to_string()
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.x12_claim_lines"), lines);
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw._rejects WHERE source_file LIKE '%broken%'"),
        "1"
    );
}
