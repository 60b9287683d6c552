//! `carelake serve --watch`: landing folders loaded as files arrive, each file once (also
//! across a crash and restart and under a new name), clinical formats told from the content,
//! partial and hidden files left alone, failures quarantined and not retried.

use std::time::{Duration, Instant};

use crate::support::{KillOnDrop, Workspace, spawn_serve};

/// Polls a query until it returns `expected` as its one value.
pub(crate) fn wait_for_value(ws: &Workspace, env: &[(&str, &str)], sql: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let out = ws
            .command(&["sql", sql, "--format", "csv"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().nth(1) == Some(expected) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{sql}: still {text:?} ({}), expected {expected}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn adt(id: &str) -> String {
    format!(
        "MSH|^~\\&|EHR|HOSP|LAKE|HOSP|20240101120000||ADT^A01|{id}|P|2.5.1\rEVN|A01|20240101120000\rPID|1||100{id}^^^HOSP^MR||Doe^Jane||19800101|F\r"
    )
}

#[test]
fn watched_folders_load_each_new_file_once() {
    let ws = Workspace::new();
    let labs = ws.path("landing/labs");
    let hl7 = ws.path("landing/hl7");
    std::fs::create_dir_all(&labs).unwrap();
    std::fs::create_dir_all(&hl7).unwrap();
    let first = "loinc,value\n2345-7,105\n718-7,13.1\n";
    ws.write("landing/labs/2026-12-01.csv", first);
    let watch_labs = format!("{}=raw.labs", labs.display());
    let watch_hl7 = format!("{}=auto", hl7.display());
    let args = [
        "--http-listen",
        "off",
        "--watch",
        &watch_labs,
        "--watch",
        &watch_hl7,
        "--watch-seconds",
        "0.2",
    ];
    let (child, lines) = spawn_serve(&ws, &args);
    let server = KillOnDrop(child);
    assert!(lines.contains("Watching file://"), "{lines}");
    wait_for_value(&ws, &[], "SELECT count(*) FROM raw.labs", "2");

    // New files, one of each kind, and ones the watch must leave alone.
    ws.write(
        "landing/hl7/2026/12/adt.hl7",
        format!("{}{}", adt("1"), adt("2")),
    );
    ws.write("landing/hl7/readme.txt", "these are ADT feeds");
    ws.write("landing/labs/2026-12-02.csv.part", "loinc,value\n1-8,1\n");
    ws.write("landing/labs/.2026-12-02.csv", "loinc,value\n1-8,1\n");
    ws.write("landing/labs/_tmp/2026-12-02.csv", "loinc,value\n1-8,1\n");
    ws.write("landing/labs/2026-12-02.csv", "loinc,value\n2951-2,140\n");
    wait_for_value(&ws, &[], "SELECT count(*) FROM raw.hl7_messages", "2");
    wait_for_value(&ws, &[], "SELECT count(*) FROM raw.labs", "3");
    wait_for_value(
        &ws,
        &[],
        "SELECT count(*) FROM system.watch_files WHERE status = 'failed'",
        "1",
    );
    // The failed file is quarantined with its reason; rows name the watched file.
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM raw._rejects WHERE reason LIKE 'not HL7 v2, FHIR or X12%' \
             AND source_file LIKE 'file://%/landing/hl7/readme.txt'"
        ),
        "1"
    );
    assert_eq!(
        ws.scalar(
            "SELECT count(DISTINCT _source_file) FROM raw.labs WHERE _source_file LIKE '%/landing/labs/2026-12-0_.csv'"
        ),
        "2"
    );
    // The same content under another name is recognised.
    ws.write("landing/labs/copy-of-first.csv", first);
    wait_for_value(
        &ws,
        &[],
        "SELECT status FROM system.watch_files WHERE path = 'copy-of-first.csv'",
        "skipped",
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.labs"), "3");

    // A crash and a restart: nothing is taken again, the failure is not retried, and the
    // watch goes on with new files.
    drop(server);
    let seen = ws.scalar("SELECT count(*) FROM system.watch_files");
    assert_eq!(
        seen,
        "5",
        "{:?}",
        ws.query("SELECT path, status FROM system.watch_files")
    );
    let (child, _) = spawn_serve(&ws, &args);
    let _server = KillOnDrop(child);
    ws.write("landing/hl7/2026/12/adt-2.hl7", adt("3"));
    wait_for_value(&ws, &[], "SELECT count(*) FROM raw.hl7_messages", "3");
    assert_eq!(ws.scalar("SELECT count(*) FROM system.watch_files"), "6");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.labs"), "3");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw._rejects WHERE reason LIKE 'not HL7 v2%'"),
        "1"
    );
    // A file that changes is taken again.
    ws.write("landing/hl7/readme.txt", adt("4"));
    wait_for_value(&ws, &[], "SELECT count(*) FROM raw.hl7_messages", "4");
}

#[test]
fn a_watch_needs_a_raw_table_or_auto_and_an_existing_folder() {
    let ws = Workspace::new();
    let missing = format!("{}=raw.labs", ws.path("nowhere").display());
    let err = ws.fails(&[
        "serve",
        "--http-listen",
        "off",
        "--pg-listen",
        "off",
        "--watch",
        &missing,
    ]);
    assert!(err.contains("no such folder"), "{err}");
    std::fs::create_dir_all(ws.path("landing")).unwrap();
    let curated = format!("{}=curated.labs", ws.path("landing").display());
    let err = ws.fails(&[
        "serve",
        "--http-listen",
        "off",
        "--pg-listen",
        "off",
        "--watch",
        &curated,
    ]);
    assert!(err.contains("raw zone"), "{err}");
    let err = ws.fails(&[
        "serve",
        "--http-listen",
        "off",
        "--pg-listen",
        "off",
        "--watch",
        "landing",
    ]);
    assert!(err.contains("=<raw.table or auto>"), "{err}");
}

#[test]
fn materialized_views_refresh_on_load_and_on_schedule() {
    let ws = Workspace::new();
    let first = ws.write("labs/a.csv", "loinc,value\n2345-7,105\n718-7,13.1\n");
    ws.ok(&["load", &first, "--into", "raw.labs"]);
    ws.ok(&[
        "sql",
        "CREATE MATERIALIZED VIEW analytics.lab_count AS SELECT count(*) AS n FROM raw.labs REFRESH ON LOAD;
         CREATE MATERIALIZED VIEW analytics.lab_sum AS SELECT sum(value) AS total FROM raw.labs REFRESH EVERY '1 second';
         CREATE MATERIALIZED VIEW analytics.lab_manual AS SELECT count(*) AS n FROM raw.labs",
    ]);
    let second = ws.write("labs/b.csv", "loinc,value\n2951-2,140\n");
    let out = ws.ok(&["load", &second, "--into", "raw.labs"]);
    assert!(
        out.contains("Refreshed the materialized view analytics.lab_count (1 rows)"),
        "{out}"
    );
    assert!(!out.contains("lab_manual"), "{out}");
    assert_eq!(ws.scalar("SELECT n FROM analytics.lab_count"), "3");
    assert_eq!(ws.scalar("SELECT n FROM analytics.lab_manual"), "2");
    // A server refreshes EVERY views when their interval has passed.
    let (child, _) = spawn_serve(&ws, &["--http-listen", "127.0.0.1:0"]);
    let _server = KillOnDrop(child);
    ws.ok(&[
        "sql",
        "INSERT INTO raw.labs VALUES ('1-8', 1000.0, NULL, NULL, NULL, NULL)",
    ]);
    wait_for_value(
        &ws,
        &[],
        "SELECT CAST(total AS BIGINT) FROM analytics.lab_sum",
        "1258",
    );
    assert_eq!(ws.scalar("SELECT n FROM analytics.lab_manual"), "2");
}
