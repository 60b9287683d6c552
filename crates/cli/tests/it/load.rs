//! `carelake load` through the real binary: what it prints, formats written by carelake's own
//! export, `COPY … FROM` in SQL and the zone rule. What a load does to the lake (rejects,
//! exactly-once, quarantine, the reject ratio, compression, schema evolution, date forms,
//! racing writers) is tested without the binary in `crates/ingest/tests/it`.

use crate::support::Workspace;

#[test]
fn the_load_command_says_what_it_did() {
    let ws = Workspace::new();
    let file = ws.write("visits.csv", "id,amount\n1,2.5\n2\n3\n4,7\n");
    let out = ws.ok(&["load", &file, "--into", "raw.visits"]);
    assert!(out.contains("Loaded 2 rows"), "{out}");
    assert!(out.contains("2 rejected"), "{out}");
    let again = ws.ok(&["load", &file, "--into", "raw.visits"]);
    assert!(again.contains("already loaded"), "{again}");
    // Schema changes are named.
    let wider = ws.write("wider.csv", "id,amount,ward\n5,1.5,ICU\n");
    let out = ws.ok(&["load", &wider, "--into", "raw.visits"]);
    assert!(out.contains("added column ward"), "{out}");
    // Too many rejects: one line, exit code non-zero, nothing committed.
    let bad = ws.write("bad.csv", "id,amount\n9\n10\n11,1\n");
    let err = ws.fails(&[
        "load",
        &bad,
        "--into",
        "raw.visits",
        "--max-reject-ratio",
        "0.1",
    ]);
    assert!(err.contains("nothing was committed"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // A folder and a glob both name files.
    ws.write("in/a.csv", "id\n1\n");
    ws.write("in/b.csv", "id\n2\n");
    let out = ws.ok(&[
        "load",
        &ws.path("in").to_string_lossy(),
        "--into",
        "raw.folder",
    ]);
    assert!(out.contains("Loaded 2 rows from 2 file(s)"), "{out}");
    let out = ws.ok(&[
        "load",
        &ws.path("in/*.csv").to_string_lossy(),
        "--into",
        "raw.glob",
    ]);
    assert!(out.contains("Loaded 2 rows from 2 file(s)"), "{out}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.visits"), "3");
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
