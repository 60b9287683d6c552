//! Governance on the real binary: a closed SQL surface, roles and column grants, row policies
//! and masks, the same on the command line (`--as`), HTTP (JSON and CSV) and the Postgres
//! protocol (psql, psycopg with parameters), and the audit log's hash chain. Row policies and
//! masks in every shape of query are tested through sessions in `crates/sql/tests/it`.
//!
//! Roles of the matrix: `carelake` admin, `analyst1` (column grant, masked identifiers),
//! `clin1` (a clinician whose row policy reads their `facility` attribute), `nurse1` (a row
//! policy with a subquery on a mapping table) and `nobody` (no role at all).

use std::process::Output;

use crate::http::{Server as HttpServer, basic, request};
use carelake_testkit::{GOVERNANCE_SCRIPT, GOVERNED_PATIENTS, GOVERNED_TEAMS};

use crate::support::{Workspace, python_with, spawn_serve};

const PASSWORD: &str = "a long governance test password";

fn fixture() -> Workspace {
    let ws = Workspace::new();
    let patients = ws.write("patients.csv", GOVERNED_PATIENTS);
    ws.ok(&["load", &patients, "--into", "raw.patients"]);
    let teams = ws.write("teams.csv", GOVERNED_TEAMS);
    ws.ok(&["load", &teams, "--into", "raw.facility_teams"]);
    ws.ok(&["sql", GOVERNANCE_SCRIPT]);
    for (user, roles) in [
        ("analyst1", "analyst"),
        ("clin1", "clinician"),
        ("nurse1", "nurse"),
        ("nobody", ""),
    ] {
        ws.add_user(user, PASSWORD, roles);
    }
    ws.ok(&["user", "attr", "clin1", "facility=F01"]);
    ws
}

/// Runs SQL as `user` (the command line's `--as`).
fn as_user(ws: &Workspace, user: &str, sql: &str) -> Output {
    ws.run(&["sql", sql, "--format", "csv", "--as", user])
}

/// The CSV rows (without header) of SQL run as `user`, which must succeed.
fn rows(ws: &Workspace, user: &str, sql: &str) -> Vec<String> {
    let out = as_user(ws, user, sql);
    assert!(
        out.status.success(),
        "{user}: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// SQL run as `user` must be refused for a missing privilege: exit code 3, a message that
/// names no value.
fn denied(ws: &Workspace, user: &str, sql: &str) -> String {
    let out = as_user(ws, user, sql);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{user}: {sql} should be denied: {stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("permission denied"), "{stderr}");
    for secret in ["Alice", "Bob", "123-45", "M1"] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
    stderr
}

#[test]
fn the_sql_surface_is_closed_to_files_and_the_lakes_own_tables() {
    let ws = fixture();
    let lake = ws.lake();
    let outside = ws.path("stolen.csv");
    let outside = outside.to_string_lossy();
    for user in ["nobody", "clin1", "analyst1"] {
        denied(
            &ws,
            user,
            &format!("COPY (SELECT 'x' AS x) TO '{outside}' STORED AS CSV"),
        );
        denied(
            &ws,
            user,
            &format!(
                "CREATE EXTERNAL TABLE raw.u STORED AS PARQUET LOCATION '{lake}/_carelake/users/'"
            ),
        );
        denied(
            &ws,
            user,
            &format!("COPY raw.x FROM '{lake}/_carelake/users' (FORMAT parquet)"),
        );
        denied(&ws, user, "SET datafusion.execution.batch_size = 7");
        denied(&ws, user, "DROP TABLE raw.facility_teams");
        denied(&ws, user, "VACUUM raw.patients RETAIN 0 HOURS");
        denied(&ws, user, "OPTIMIZE raw.patients");
        denied(&ws, user, "CREATE TABLE raw.mine AS SELECT 1 AS x");
        denied(&ws, user, "GRANT SELECT ON raw.* TO analyst");
        denied(
            &ws,
            user,
            "CREATE ROW POLICY p ON raw.patients FOR analyst USING (true)",
        );
        denied(
            &ws,
            user,
            "EXPLAIN ANALYZE INSERT INTO raw.facility_teams VALUES ('a', 'b')",
        );
        denied(
            &ws,
            user,
            "INSERT INTO system.tables SELECT * FROM system.tables",
        );
    }
    assert!(!ws.path("stolen.csv").exists());
    // Deny by default: a user with no grant reads and writes nothing.
    denied(&ws, "nobody", "SELECT * FROM raw.patients");
    denied(&ws, "nobody", "SELECT count(*) FROM curated.patient_view");
    denied(&ws, "nobody", "DELETE FROM raw.patients WHERE 1 = 1");
    denied(&ws, "nobody", "UPDATE raw.patients SET age = 0");
    denied(
        &ws,
        "nobody",
        "INSERT INTO raw.patients SELECT * FROM raw.patients",
    );
    denied(&ws, "nobody", "SELECT * FROM system.loads");
    denied(&ws, "nobody", "SELECT * FROM system.audit");
    assert_eq!(
        rows(
            &ws,
            "nobody",
            "SELECT count(*) FROM information_schema.tables WHERE table_schema IN ('raw', 'curated', 'analytics')"
        ),
        ["0"]
    );
    assert_eq!(
        rows(&ws, "nobody", "SELECT count(*) FROM system.tables"),
        ["0"]
    );
    assert_eq!(rows(&ws, "nobody", "SELECT current_user()"), ["nobody"]);
    // The rows are all still there.
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.patients"), "4");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.facility_teams"), "2");
    // The owner of the lake may export, outside the lake only.
    let export = ws.path("export.csv");
    ws.ok(&[
        "sql",
        &format!(
            "COPY (SELECT mrn FROM raw.patients ORDER BY mrn) TO '{}' STORED AS CSV",
            export.display()
        ),
    ]);
    assert_eq!(
        std::fs::read_to_string(&export).unwrap(),
        "mrn\nM1\nM2\nM3\nM4\n"
    );
    let into_lake = ws.fails(&[
        "sql",
        &format!("COPY (SELECT 1 AS x) TO '{lake}/raw/x.csv' STORED AS CSV"),
    ]);
    assert!(into_lake.contains("inside the lake"), "{into_lake}");
}

#[test]
fn writes_stay_inside_the_row_policies() {
    let ws = fixture();
    ws.ok(&[
        "sql",
        "CREATE TABLE raw.notes AS SELECT mrn, facility, age FROM raw.patients;
         GRANT SELECT, INSERT, UPDATE, DELETE ON raw.notes TO clinician;
         CREATE ROW POLICY notes_by_facility ON raw.notes FOR clinician
             USING (facility = current_user_attr('facility'))",
    ]);
    // UPDATE and DELETE touch only the rows the clinician sees.
    rows(&ws, "clin1", "UPDATE raw.notes SET age = 0 WHERE 1 = 1");
    assert_eq!(
        ws.query("SELECT mrn, age FROM raw.notes ORDER BY mrn"),
        ["M1,0", "M2,49", "M3,0", "M4,76"]
    );
    // Changing the column the policy reads would move a row out of sight.
    denied(&ws, "clin1", "UPDATE raw.notes SET facility = 'F02'");
    // An INSERT of a row the clinician could not see is refused; their own facility's is not.
    denied(
        &ws,
        "clin1",
        "INSERT INTO raw.notes VALUES ('M9', 'F02', 26)",
    );
    rows(
        &ws,
        "clin1",
        "INSERT INTO raw.notes VALUES ('M8', 'F01', 26)",
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.notes"), "5");
    rows(&ws, "clin1", "DELETE FROM raw.notes WHERE age = 0");
    assert_eq!(
        ws.query("SELECT mrn FROM raw.notes ORDER BY mrn"),
        ["M2", "M4", "M8"]
    );
    // A user's failing cast in a DELETE never runs on hidden rows.
    rows(
        &ws,
        "clin1",
        "DELETE FROM raw.notes WHERE CAST(CASE WHEN facility = 'F01' THEN '1' ELSE mrn END AS INT) = 2",
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.notes"), "3");
    // The analyst holds no write privilege; masked columns never decide what is written.
    denied(
        &ws,
        "analyst1",
        "DELETE FROM raw.patients WHERE ssn = '987-65-4321'",
    );
    denied(
        &ws,
        "clin1",
        "MERGE INTO raw.notes t USING raw.notes s ON t.mrn = s.mrn WHEN MATCHED THEN DELETE",
    );
}

#[test]
fn http_and_postgres_clients_see_what_the_command_line_sees() {
    let ws = fixture();
    let server = HttpServer::start(&ws);
    let port = server.port;
    let query = |user: &str, accept: &str, sql: &str| {
        let auth = basic(user, PASSWORD);
        request(
            port,
            "POST",
            "/api/v1/query",
            &[("Authorization", &auth), ("Accept", accept)],
            sql.as_bytes(),
        )
    };
    let json = query(
        "clin1",
        "application/json",
        "SELECT mrn, name FROM raw.patients ORDER BY mrn",
    );
    assert_eq!(json.status, 200, "{}", json.text());
    let body = json.json();
    let mrns: Vec<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mrn"].as_str().unwrap())
        .collect();
    assert_eq!(mrns, ["M1", "M3"]);
    let csv = query(
        "analyst1",
        "text/csv",
        "SELECT ssn FROM raw.patients ORDER BY age",
    );
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert_eq!(
        csv.text(),
        "ssn\n***-**-3456\n***-**-6789\n***-**-4321\n***-**-4444\n"
    );
    let refused = query("nobody", "application/json", "SELECT * FROM raw.patients");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("permission denied"));
    let tables = request(
        port,
        "GET",
        "/api/v1/tables",
        &[("Authorization", &basic("nobody", PASSWORD))],
        b"",
    );
    assert_eq!(tables.status, 200);
    assert_eq!(tables.json()["tables"].as_array().map(Vec::len), Some(0));
    let ingest = request(
        port,
        "POST",
        "/api/v1/ingest/vitals",
        &[("Authorization", &basic("nobody", PASSWORD))],
        br#"{"event_id": "e1", "hr": 80}"#,
    );
    assert_eq!(ingest.status, 403, "{}", ingest.text());
    drop(server);

    // The Postgres protocol, with psql and psycopg (parameters, prepared statements).
    let Some(psql) = crate::support::program("psql", "governance over postgres") else {
        return;
    };
    let (mut child, lines) =
        spawn_serve(&ws, &["--http-listen", "off", "--pg-listen", "127.0.0.1:0"]);
    let pg_port: u16 = lines
        .lines()
        .find(|l| l.starts_with("Postgres"))
        .and_then(|l| l.split("port=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no Postgres port in {lines:?}"));
    let run_psql = |user: &str, sql: &str| {
        std::process::Command::new(&psql)
            .args([
                &format!(
                    "host=127.0.0.1 port={pg_port} user={user} dbname=carelake sslmode=disable"
                ),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql")
    };
    let out = run_psql("clin1", "SELECT mrn FROM raw.patients ORDER BY mrn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "M1\nM3\n");
    let out = run_psql("nobody", "SELECT * FROM raw.patients");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("permission denied"),
        "{stderr}"
    );
    let out = run_psql("nobody", "\\dt raw.*");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("patients"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run_psql(
        "clin1",
        &format!("COPY (SELECT 1) TO '{}'", ws.path("pg.csv").display()),
    );
    assert!(!out.status.success());
    assert!(!ws.path("pg.csv").exists());
    let out = run_psql("clin1", "SET datafusion.execution.batch_size = 7");
    assert!(!out.status.success());
    if let Some(python) = python_with("psycopg", "governance over psycopg") {
        let script = format!(
            "import psycopg\n\
             c = psycopg.connect(host='127.0.0.1', port={pg_port}, user='clin1', password='{PASSWORD}', dbname='carelake', sslmode='disable')\n\
             rows = [r[0] for r in c.execute('SELECT mrn FROM raw.patients WHERE age > %s ORDER BY mrn', (0,), prepare=True).fetchall()]\n\
             print(','.join(rows))\n"
        );
        let out = std::process::Command::new(python)
            .args(["-c", &script])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "M1,M3");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_audit_log_records_everything_and_detects_tampering() {
    let ws = fixture();
    rows(&ws, "clin1", "SELECT mrn FROM raw.patients");
    denied(&ws, "nobody", "SELECT * FROM raw.patients");
    let log = ws.ok(&["audit", "--user", "clin1"]);
    assert!(log.contains("SELECT mrn FROM raw.patients"), "{log}");
    assert!(log.contains("by_facility"), "{log}");
    let log = ws.ok(&["audit", "--user", "nobody"]);
    assert!(log.contains("denied"), "{log}");
    // An auditor reads system.audit; others may not.
    ws.add_user("auditor1", PASSWORD, "auditor");
    let audit = rows(
        &ws,
        "auditor1",
        "SELECT count(*) FROM system.audit WHERE principal = 'clin1' AND action = 'statement'",
    );
    assert_ne!(audit, ["0"]);
    denied(&ws, "clin1", "SELECT * FROM system.audit");
    // Literals are blanked in the statements kept.
    rows(
        &ws,
        "clin1",
        "SELECT count(*) FROM raw.patients WHERE name = 'Alice Smith'",
    );
    let kept = ws.ok(&["audit", "--user", "clin1"]);
    assert!(!kept.contains("Alice"), "{kept}");
    assert!(ws.ok(&["audit", "verify"]).contains("intact"));

    // Tampering, done with an independent Delta writer.
    let Some(python) = python_with("deltalake, pyarrow", "audit tampering") else {
        return;
    };
    let table = format!("{}/_carelake/audit", ws.lake());
    let tamper = |how: &str| {
        let script = format!(
            "import deltalake, pyarrow as pa, pyarrow.compute as pc\n\
             t = deltalake.DeltaTable('{table}').to_pyarrow_table().sort_by('seq')\n\
             rows = t.to_pylist()\n\
             {how}\n\
             deltalake.write_deltalake('{table}', pa.Table.from_pylist(rows, schema=t.schema), mode='overwrite')\n"
        );
        let out = std::process::Command::new(&python)
            .args(["-c", &script])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let verify = || {
        let out = ws.run(&["audit", "verify"]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Two records swap places (and sequence numbers); swapping back restores the chain.
    let swap = "rows[1]['seq'], rows[2]['seq'] = rows[2]['seq'], rows[1]['seq']";
    tamper(swap);
    let (code, message) = verify();
    assert_eq!(code, Some(4), "{message}");
    assert!(
        message.contains("record 2") && message.contains("out of order"),
        "{message}"
    );
    tamper(swap);
    assert_eq!(verify().0, Some(0));
    tamper("rows[2]['statement'] = 'SELECT 1'");
    let (code, message) = verify();
    assert_eq!(code, Some(4), "{message}");
    assert!(
        message.contains("record 3") && message.contains("edited"),
        "{message}"
    );
    tamper("rows = [r for r in rows if r['seq'] != 3]");
    let (code, message) = verify();
    assert_eq!(code, Some(4), "{message}");
    assert!(message.contains("missing"), "{message}");
}

#[test]
fn external_tables_read_files_in_place_under_the_same_rules() {
    let ws = fixture();
    let visits = ws.write("imports/visits.csv", GOVERNED_PATIENTS);
    ws.write(
        "imports/events/a.json",
        "{\"facility\":\"F01\",\"kind\":\"admit\"}\n",
    );
    let events = ws.path("imports/events");
    ws.ok(&[
        "sql",
        &format!(
            "CREATE EXTERNAL TABLE raw.visits STORED AS CSV LOCATION '{visits}';
             CREATE EXTERNAL TABLE raw.events STORED AS JSON LOCATION '{}';
             GRANT SELECT ON raw.visits TO clinician;
             CREATE ROW POLICY visits_by_facility ON raw.visits FOR clinician
                 USING (facility = current_user_attr('facility'));
             GRANT SELECT (mrn, ssn, facility) ON raw.visits TO analyst;
             CREATE MASKING POLICY visits_ssn ON raw.visits (ssn) FOR analyst USING (mask_last4(ssn));
             CREATE ROW POLICY visits_analyst ON raw.visits FOR analyst USING (true);",
            events.display()
        ),
    ]);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.visits"), "4");
    assert_eq!(
        ws.query("SELECT table_name, kind, owner IS NOT NULL FROM system.tables WHERE kind = 'external' ORDER BY 1"),
        ["raw.events,external,true", "raw.visits,external,true"]
    );
    // Files that arrive in a folder table are read by the next query.
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.events"), "1");
    ws.write(
        "imports/events/b.json",
        "{\"facility\":\"F02\",\"kind\":\"discharge\"}\n",
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.events"), "2");

    // Grants, row policies and masks apply as to any table.
    assert_eq!(
        rows(&ws, "clin1", "SELECT mrn FROM raw.visits ORDER BY mrn"),
        ["M1", "M3"]
    );
    assert_eq!(rows(&ws, "clin1", "SELECT count(*) FROM raw.visits"), ["2"]);
    assert_eq!(
        rows(&ws, "analyst1", "SELECT ssn FROM raw.visits ORDER BY mrn"),
        ["***-**-6789", "***-**-4321", "***-**-3456", "***-**-4444"]
    );
    denied(&ws, "analyst1", "SELECT name FROM raw.visits");
    denied(&ws, "nobody", "SELECT * FROM raw.visits");
    denied(&ws, "clin1", "SELECT * FROM raw.events");
    let unseen =
        String::from_utf8_lossy(&as_user(&ws, "nobody", "SELECT * FROM raw.visits").stderr)
            .into_owned();
    assert!(!unseen.contains("imports"), "{unseen}");

    // Read in place: never written, no versions.
    for write in [
        "INSERT INTO raw.visits SELECT * FROM raw.visits",
        "DELETE FROM raw.visits WHERE 1 = 1",
        "UPDATE raw.visits SET age = 0",
        "CREATE TABLE raw.visits AS SELECT 1 AS x",
        "OPTIMIZE raw.visits",
    ] {
        let refused = ws.fails(&["sql", write]);
        assert!(
            refused.contains("external table") || refused.contains("exists"),
            "{write}: {refused}"
        );
    }
    let load = ws.fails(&["load", &visits, "--into", "raw.visits"]);
    assert!(load.contains("external table"), "{load}");
    let versions = ws.fails(&["sql", "SELECT * FROM raw.visits@v0"]);
    assert!(versions.contains("no versions"), "{versions}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.visits"), "4");

    // Admins only; a signed-in admin only under the import folders; nobody inside the lake.
    ws.add_user("admin2", PASSWORD, "admin");
    let elsewhere = format!("CREATE EXTERNAL TABLE raw.v2 STORED AS CSV LOCATION '{visits}'");
    denied(&ws, "clin1", &elsewhere);
    let outside = denied(&ws, "admin2", &elsewhere);
    assert!(outside.contains("import"), "{outside}");
    let inside = ws
        .command(&["sql", &elsewhere, "--as", "admin2"])
        .env("CARELAKE_IMPORT_ROOTS", ws.path("imports"))
        .output()
        .unwrap();
    assert!(
        inside.status.success(),
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    let lake = ws.lake();
    for location in [
        format!("{lake}/_carelake/users/"),
        format!("{lake}/raw/patients/"),
        "s3://bucket/prefix/".to_string(),
    ] {
        let refused = ws.fails(&[
            "sql",
            &format!("CREATE EXTERNAL TABLE raw.u STORED AS PARQUET LOCATION '{location}'"),
        ]);
        assert!(
            refused.contains("inside the lake") || refused.contains("local files"),
            "{location}: {refused}"
        );
    }

    // DROP forgets the definition and leaves the files.
    ws.ok(&["sql", "DROP TABLE raw.visits"]);
    assert!(std::path::Path::new(&visits).exists());
    assert!(
        ws.fails(&["sql", "SELECT * FROM raw.visits"])
            .contains("not found")
    );
    assert!(ws.ok(&["audit", "verify"]).contains("intact"));
}
