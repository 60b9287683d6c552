//! Bulk loads through the real binary: rejects, exactly-once, bad files, compression, schema
//! evolution, formats.

use std::io::Write;

use crate::support::Workspace;

/// A 1,000-row CSV with three bad rows: a wrong field count (data row 100), invalid UTF-8
/// (row 500) and an unparsable amount (row 900).
fn thousand_rows_three_bad() -> Vec<u8> {
    let mut out = b"patient_id,amount,visit_date,note\n".to_vec();
    for i in 1..=1000u32 {
        match i {
            100 => out.extend_from_slice(format!("P{i:05},12.50,2024-03-01\n").as_bytes()),
            500 => {
                out.extend_from_slice(format!("P{i:05},12.50,2024-03-01,caf").as_bytes());
                out.extend_from_slice(&[0xE9, 0xFF]);
                out.push(b'\n');
            }
            900 => out.extend_from_slice(format!("P{i:05},abc,2024-03-01,ok\n").as_bytes()),
            _ => out.extend_from_slice(
                format!(
                    "P{i:05},{}.{:02},2024-03-{:02},\"note, {i}\"\n",
                    i % 300,
                    i % 100,
                    1 + i % 28
                )
                .as_bytes(),
            ),
        }
    }
    out
}

#[test]
fn a_thousand_rows_with_three_bad_rows_load_997_and_reject_3() {
    let ws = Workspace::new();
    let file = ws.write("visits.csv", thousand_rows_three_bad());
    let out = ws.ok(&["load", &file, "--into", "raw.visits"]);
    assert!(out.contains("Loaded 997 rows"), "{out}");
    assert!(out.contains("3 rejected"), "{out}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.visits"), "997");
    assert_eq!(
        ws.scalar("SELECT arrow_typeof(amount) FROM raw.visits LIMIT 1"),
        "Float64"
    );
    assert_eq!(
        ws.scalar("SELECT arrow_typeof(visit_date) FROM raw.visits LIMIT 1"),
        "Date32"
    );
    let rejects = ws.query("SELECT line, reason FROM raw._rejects ORDER BY line");
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    assert!(
        rejects[0].starts_with("101,\"expected 4 fields, found 3\""),
        "{rejects:?}"
    );
    assert!(
        rejects[1].starts_with("501,invalid UTF-8 in field note"),
        "{rejects:?}"
    );
    assert!(
        rejects[2].starts_with("901,column amount: value is not a valid double"),
        "{rejects:?}"
    );
    // The raw text is kept for the person who fixes the file.
    assert_eq!(
        ws.scalar("SELECT raw_text FROM raw._rejects WHERE line = 901"),
        "\"P00900,abc,2024-03-01,ok\""
    );
    // Lineage columns on every row.
    assert_eq!(
        ws.scalar("SELECT count(DISTINCT _load_id) || '|' || min(_source_line) || '|' || max(_source_line) FROM raw.visits"),
        "1|2|1001"
    );
    assert!(
        ws.scalar("SELECT DISTINCT _source_file FROM raw.visits")
            .ends_with("visits.csv")
    );
}

#[test]
fn loading_the_same_content_twice_adds_nothing() {
    let ws = Workspace::new();
    let file = ws.write("a.csv", "id,name\n1,x\n2,y\n");
    ws.ok(&["load", &file, "--into", "raw.t"]);
    let again = ws.ok(&["load", &file, "--into", "raw.t"]);
    assert!(again.contains("already loaded"), "{again}");
    // Same content under another name is the same file.
    let copy = ws.write("copy-of-a.csv", "id,name\n1,x\n2,y\n");
    let out = ws.ok(&["load", &copy, "--into", "raw.t"]);
    assert!(out.contains("already loaded"), "{out}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.t"), "2");
    let history =
        ws.query("SELECT status, count(*) FROM system.loads GROUP BY status ORDER BY status");
    assert_eq!(history, vec!["loaded,1", "skipped,2"]);
    // A different table may load the same file.
    ws.ok(&["load", &file, "--into", "raw.t2"]);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.t2"), "2");
}

#[test]
fn bad_files_are_quarantined_and_good_ones_load() {
    let ws = Workspace::new();
    ws.write("in/1-empty.csv", "");
    ws.write("in/2-header-only.csv", "id,name\n");
    let mut garbage = vec![0u8, 159, 146, 150, 0, 0, 1, 2, 3, 255];
    garbage.extend(std::iter::repeat_n(7u8, 4000));
    ws.write("in/3-garbage.csv", garbage);
    let huge = "x".repeat(2 << 20);
    ws.write(
        "in/4-huge-field.csv",
        format!("id,name\n1,ok\n2,{huge}\n3,fine\n"),
    );
    let out = ws.ok(&[
        "load",
        &ws.path("in").to_string_lossy(),
        "--into",
        "raw.people",
    ]);
    assert!(out.contains("Loaded 2 rows from 4 file(s)"), "{out}");
    assert_eq!(
        ws.query("SELECT id FROM raw.people ORDER BY id"),
        vec!["1", "3"]
    );
    let rejects = ws.query("SELECT reason FROM raw._rejects ORDER BY source_file");
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert!(rejects[0].contains("binary content"), "{rejects:?}");
    assert!(
        rejects[1].contains("over the 1048576 byte limit"),
        "{rejects:?}"
    );
}

#[test]
fn too_many_rejects_commit_nothing() {
    let ws = Workspace::new();
    let good = ws.write("good.csv", "id,name\n1,a\n2,b\n");
    ws.ok(&["load", &good, "--into", "raw.t"]);
    let bad = ws.write("bad.csv", "id,name\n3,c\n4\n5\n6,f\n");
    let err = ws.fails(&["load", &bad, "--into", "raw.t", "--max-reject-ratio", "0.1"]);
    assert!(err.contains("nothing was committed"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.t"), "2");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM system.tables WHERE table_name = 'raw._rejects'"),
        "0"
    );
    // A new table is not created either.
    let err = ws.fails(&[
        "load",
        &bad,
        "--into",
        "raw.fresh",
        "--max-reject-ratio",
        "0.1",
    ]);
    assert!(err.contains("nothing was committed"), "{err}");
    let tables = ws.query("SELECT table_name FROM system.tables");
    assert!(!tables.iter().any(|t| t == "raw.fresh"), "{tables:?}");
    // Within the ratio, the load goes through.
    ws.ok(&["load", &bad, "--into", "raw.t", "--max-reject-ratio", "0.6"]);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.t"), "4");
}

#[test]
fn compressed_inputs_load() {
    let ws = Workspace::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"id,city\n1,Peoria\n2,Normal\n").unwrap();
    ws.write("a.csv.gz", gz.finish().unwrap());
    ws.write(
        "b.csv.zst",
        zstd::encode_all(&b"id,city\n3,Quincy\n"[..], 3).unwrap(),
    );
    let out = ws.ok(&[
        "load",
        &ws.path("*.csv.*").to_string_lossy(),
        "--into",
        "raw.cities",
    ]);
    assert!(out.contains("Loaded 3 rows from 2 file(s)"), "{out}");
    assert_eq!(
        ws.query("SELECT city FROM raw.cities ORDER BY id"),
        vec!["Peoria", "Normal", "Quincy"]
    );
}

#[test]
fn later_loads_add_columns_and_widen_types() {
    let ws = Workspace::new();
    let first = ws.write("1.csv", "id,score\n1,10\n2,20\n");
    ws.ok(&["load", &first, "--into", "raw.scores"]);
    assert_eq!(
        ws.scalar("SELECT arrow_typeof(score) FROM raw.scores LIMIT 1"),
        "Int32"
    );
    let second = ws.write("2.csv", "id,score,ward\n3,7.5,ICU\n");
    let out = ws.ok(&["load", &second, "--into", "raw.scores"]);
    assert!(out.contains("widened score from Int32 to Float64"), "{out}");
    assert!(out.contains("added column ward"), "{out}");
    assert_eq!(
        ws.query("SELECT id, score, ward FROM raw.scores ORDER BY id"),
        vec!["1,10.0,", "2,20.0,", "3,7.5,ICU"]
    );
    let third = ws.write("3.csv", "id,score\n4,9999999999\n5,not recorded\n");
    ws.ok(&["load", &third, "--into", "raw.scores"]);
    assert!(
        ws.scalar("SELECT arrow_typeof(score) FROM raw.scores LIMIT 1")
            .starts_with("Utf8")
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.scores"), "5");
}

#[test]
fn dates_in_us_and_european_forms() {
    let ws = Workspace::new();
    let file = ws.write("d.csv", "us,eu,dot,ambiguous,ts\n01/31/2024,31/01/2024,31.01.2024,01/02/2024,2024-01-31 08:15:00\n02/01/2024,01/02/2024,01.02.2024,03/04/2024,2024-02-01T09:00:00Z\n");
    ws.ok(&["load", &file, "--into", "raw.dates"]);
    assert_eq!(
        ws.query("SELECT us, eu, dot, ambiguous, ts FROM raw.dates ORDER BY us"),
        vec![
            "2024-01-31,2024-01-31,2024-01-31,01/02/2024,2024-01-31T08:15:00Z",
            "2024-02-01,2024-02-01,2024-02-01,03/04/2024,2024-02-01T09:00:00Z"
        ]
    );
    // Dashes day first (as public datasets write them), month names, two-digit years, times
    // with AM/PM; a column whose values need both readings stays text.
    let file = ws.write(
        "more.csv",
        "dash_eu,dash_us,named,oracle,short_us,ampm,mixed\n\
         17-11-2022,11-17-2022,\"Nov 17, 2022\",17-NOV-22,11/17/22,17/11/2022 10:15 PM,17/11/2022\n\
         01-12-2022,12-01-2022,December 1 2022,01-DEC-22,12/01/22,01/12/2022 08:00 AM,11/17/2022\n",
    );
    ws.ok(&["load", &file, "--into", "raw.more_dates"]);
    assert_eq!(
        ws.query(
            "SELECT dash_eu, dash_us, named, oracle, short_us, ampm, mixed FROM raw.more_dates ORDER BY dash_eu"
        ),
        vec![
            "2022-11-17,2022-11-17,2022-11-17,2022-11-17,2022-11-17,2022-11-17T22:15:00Z,17/11/2022",
            "2022-12-01,2022-12-01,2022-12-01,2022-12-01,2022-12-01,2022-12-01T08:00:00Z,11/17/2022"
        ]
    );
}

#[test]
fn ndjson_and_parquet_load() {
    let ws = Workspace::new();
    let file = ws.write(
        "v.ndjson",
        "{\"event_id\":\"e1\",\"value\":81,\"meta\":{\"unit\":\"/min\"}}\n{\"event_id\":\"e2\",\"value\":79.5,\"extra\":true}\nnot json\n[1,2]\n",
    );
    let out = ws.ok(&["load", &file, "--into", "raw.vitals"]);
    assert!(
        out.contains("Loaded 2 rows") && out.contains("2 rejected"),
        "{out}"
    );
    assert_eq!(
        ws.query("SELECT event_id, value, meta, extra FROM raw.vitals ORDER BY event_id"),
        vec!["e1,81.0,\"{\"\"unit\"\":\"\"/min\"\"}\",", "e2,79.5,,true"]
    );
    // Parquet written by carelake's own export loads back.
    let parquet = ws.path("out.parquet").to_string_lossy().into_owned();
    ws.ok(&[
        "sql",
        "SELECT event_id, value FROM raw.vitals",
        "--format",
        "parquet",
        "--output",
        &parquet,
    ]);
    ws.ok(&["load", &parquet, "--into", "raw.vitals_copy"]);
    assert_eq!(ws.scalar("SELECT sum(value) FROM raw.vitals_copy"), "160.5");
}

#[test]
fn copy_from_in_sql() {
    let ws = Workspace::new();
    let file = ws.write("c.csv", "id,name\n1,a\n2,b\n");
    let out = ws.ok(&[
        "sql",
        &format!("COPY raw.c FROM '{file}' (FORMAT csv, HEADER true)"),
    ]);
    assert!(out.contains("COPY 2"), "{out}");
    let out = ws.ok(&[
        "sql",
        &format!("COPY raw.c FROM '{file}' (FORMAT csv, HEADER true)"),
    ]);
    assert!(
        out.contains("COPY 0") && out.contains("1 file(s) already loaded"),
        "{out}"
    );
}

#[test]
fn loads_write_only_to_the_raw_zone() {
    let ws = Workspace::new();
    let file = ws.write("c.csv", "id\n1\n");
    let err = ws.fails(&["load", &file, "--into", "curated.c"]);
    assert!(err.contains("raw zone"), "{err}");
}
