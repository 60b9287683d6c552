//! The command line: output formats, errors, the demo, the catalog.

use crate::support::Workspace;

#[test]
fn output_formats() {
    let ws = Workspace::new();
    let csv = ws.ok(&["sql", "SELECT 1 AS a, 'x' AS b", "--format", "csv"]);
    assert_eq!(csv, "a,b\n1,x\n");
    let json = ws.ok(&["sql", "SELECT 1 AS a, 'x' AS b", "--format", "json"]);
    assert_eq!(json.trim(), r#"[{"a":1,"b":"x"}]"#);
    let table = ws.ok(&["sql", "SELECT 1 AS a"]);
    assert!(
        table.contains("| a |") && table.contains("(1 row)"),
        "{table}"
    );
    let out = ws.path("r.parquet").to_string_lossy().into_owned();
    ws.ok(&[
        "sql",
        "SELECT 42 AS answer",
        "--format",
        "parquet",
        "--output",
        &out,
    ]);
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
    let err = ws.fails(&["sql", "SELECT 1", "--format", "parquet"]);
    assert!(err.contains("--output"), "{err}");
}

#[test]
fn errors_are_one_line_without_backtraces() {
    let ws = Workspace::new();
    for sql in [
        "SELECT * FROM raw.missing",
        "SELEC 1",
        "SELECT nope FROM (SELECT 1 AS a)",
    ] {
        let err = ws.fails(&["sql", sql]);
        assert_eq!(err.trim().lines().count(), 1, "{sql}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    }
}

#[test]
fn commands_on_a_missing_lake_say_how_to_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("carelake")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("CARELAKE_LAKE")
        .args(["sql", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("carelake init"), "{err}");
}

#[test]
fn scripts_run_statement_by_statement() {
    let ws = Workspace::new();
    let out = ws.ok(&["sql", "CREATE TABLE curated.s AS SELECT 1 AS x; INSERT INTO curated.s VALUES (2); SELECT sum(x) AS total FROM curated.s"]);
    assert!(
        out.contains("CREATE TABLE 1 rows")
            && out.contains("INSERT 1")
            && out.contains("| 3     |"),
        "{out}"
    );
}

#[test]
fn demo_prints_kpis_and_fills_the_catalog() {
    let ws = Workspace::new();
    let out = ws.ok(&[
        "demo",
        "--no-serve",
        "--patients",
        "400",
        "--data",
        &ws.path("demo-data").to_string_lossy(),
    ]);
    for expected in [
        "Inpatient admissions per month",
        "30-day readmission rate",
        "Average length of stay by facility",
        "St. Mary's Hospital",
        "LACE index",
        "HOSPITAL score",
        "logistic (CREATE MODEL)",
        "gbdt (CREATE MODEL)",
        "run +1 hour:  0 sent",
        "Go on with",
    ] {
        assert!(out.contains(expected), "missing {expected}:\n{out}");
    }
    let tables = ws.ok(&["tables"]);
    for table in ["raw.encounters", "raw.patients", "raw.vitals", "raw.claims"] {
        assert!(tables.contains(table), "{tables}");
    }
    // Row counts in the catalog match the tables.
    for row in ws.query("SELECT table_name, row_count FROM system.tables WHERE kind = 'table'") {
        let (name, count) = row.split_once(',').unwrap();
        assert_eq!(
            ws.scalar(&format!("SELECT count(*) FROM {name}")),
            count,
            "{name}"
        );
    }
    // The clinical feeds carry the same truth as the flat files, and none of them is refused.
    if !ws
        .query("SELECT table_name FROM system.tables WHERE table_name = 'raw._rejects'")
        .is_empty()
    {
        assert_eq!(
            ws.scalar(
                "SELECT count(*) FROM raw._rejects WHERE source_file LIKE '%/hl7/%' \
                 OR source_file LIKE '%/fhir/%' OR source_file LIKE '%/x12/%'"
            ),
            "0"
        );
    }
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.hl7_messages WHERE trigger_event = 'A03'"),
        ws.scalar("SELECT count(DISTINCT encounter_id) FROM raw.encounters WHERE source_system = 'MERIDIAN'")
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.fhir_encounter"),
        ws.scalar("SELECT count(DISTINCT encounter_id) FROM raw.encounters WHERE source_system = 'CASCADE'")
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.fhir_patient"),
        ws.scalar("SELECT count(DISTINCT mrn) FROM raw.patients WHERE source_system = 'CASCADE'")
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.x12_claims"),
        ws.scalar("SELECT count(*) FROM raw.claims")
    );
    assert_eq!(
        ws.scalar("SELECT CAST(round(sum(total_charge), 0) AS BIGINT) FROM raw.x12_claims"),
        ws.scalar("SELECT CAST(round(sum(total_charge), 0) AS BIGINT) FROM raw.claims")
    );
    // A second run adds nothing: the same files are skipped.
    let encounters = ws.scalar("SELECT count(*) FROM raw.encounters");
    let again = ws.ok(&[
        "demo",
        "--no-serve",
        "--patients",
        "400",
        "--data",
        &ws.path("demo-data").to_string_lossy(),
    ]);
    assert!(again.contains("already loaded"), "{again}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.encounters"), encounters);
    assert!(again.contains("(already loaded)"), "{again}");
}

#[test]
fn generator_is_deterministic_and_keeps_ground_truth() {
    let ws = Workspace::new();
    ws.ok(&[
        "generate",
        "--patients",
        "500",
        "--seed",
        "9",
        "--out",
        &ws.path("a").to_string_lossy(),
    ]);
    ws.ok(&[
        "generate",
        "--patients",
        "500",
        "--seed",
        "9",
        "--out",
        &ws.path("b").to_string_lossy(),
    ]);
    for file in [
        "patients.csv",
        "encounters.csv",
        "labs.csv",
        "vitals.ndjson",
        "_truth/person_records.csv",
        "_truth/readmissions.csv",
    ] {
        assert_eq!(
            std::fs::read(ws.path("a").join(file)).unwrap(),
            std::fs::read(ws.path("b").join(file)).unwrap(),
            "{file}"
        );
    }
    // About 5% of people are registered in both systems.
    ws.ok(&[
        "load",
        &ws.path("a/_truth/person_records.csv").to_string_lossy(),
        "--into",
        "raw.truth",
    ]);
    let both: f64 = ws
        .scalar("SELECT count(*) FROM (SELECT person_id FROM raw.truth GROUP BY person_id HAVING count(*) > 1)")
        .parse()
        .unwrap();
    assert!(
        (5.0..=50.0).contains(&both),
        "{both} of 500 people in two systems"
    );
}

#[test]
fn the_shell_reads_multi_line_statements() {
    let ws = Workspace::new();
    let out = ws
        .command(&["sql"])
        .write_stdin("SELECT 40 + 2\n  AS answer;\nSELECT 'second' AS s;\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| 42     |") && stdout.contains("| second |"),
        "{stdout}"
    );
}

#[test]
fn cert_makes_a_pair_that_serve_uses_and_a_client_trusts() {
    let Some(python) = crate::support::python_with("ssl", "cert_makes_a_pair") else {
        return;
    };
    let ws = Workspace::new();
    let dir = ws.path("tls");
    let out = ws.ok(&["cert", "--out-dir", dir.to_str().unwrap()]);
    assert!(out.contains("self-signed"), "{out}");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is its owner's only");
    }
    let (child, lines) = crate::support::spawn_serve(
        &ws,
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let _server = crate::support::KillOnDrop(child);
    let url = crate::support::served_at(&lines, "https").expect("an https listener");
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    // A client that trusts only this certificate, checking the host name.
    let script = format!(
        r#"
import ssl, urllib.request
ctx = ssl.create_default_context(cafile="{cert}")
for host in ["localhost", "127.0.0.1"]:
    with urllib.request.urlopen(f"https://{{host}}:{port}/api/v1/openapi.json", context=ctx) as r:
        assert r.status == 200, r.status
try:
    urllib.request.urlopen("https://localhost:{port}/api/v1/openapi.json", context=ssl.create_default_context())
    print("trusted without the certificate")
except Exception as e:
    print("untrusted without it")
print("tls ok")
"#,
        cert = cert.display()
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tls ok") && text.contains("untrusted without it"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
