//! The Postgres wire protocol on the real binary, with real clients: `psql` (Debian's
//! postgresql-client), Python's `psycopg` and the PostgreSQL JDBC driver (Debian's
//! libpostgresql-jdbc-java) from a small Java program. Each client signs in with SCRAM-SHA-256,
//! reads with and without parameters, and reads the metadata its tools read; psql also writes
//! through the session and is refused what the session refuses. With a certificate, clients
//! must use TLS, and a certificate that cannot be loaded stops the server from starting.
//!
//! `scripts/test.sh` installs the clients; without `CARELAKE_REQUIRE_INTEROP` a missing client
//! skips its test with a message.

use std::path::Path;
use std::process::{Child, Command, Output};

use crate::support::{Workspace, program, python_with, self_signed, served_at, spawn_serve};

const USER: &str = "analyst";
const PASSWORD: &str = "a long analyst password";

/// A lake with a user and a small table of patients.
fn lake() -> Workspace {
    let ws = Workspace::new();
    ws.add_user(USER, PASSWORD, "admin");
    let csv = ws.write(
        "patients.csv",
        "patient_id,family_name,birth_date,weight_kg\n1,Lovelace,1815-12-10,54.5\n2,Turing,1912-06-23,70.25\n3,Hopper,1906-12-09,\n",
    );
    ws.ok(&["load", &csv, "--into", "raw.patients"]);
    ws.ok(&[
        "sql",
        "CREATE TABLE curated.patients AS SELECT patient_id, family_name, birth_date, weight_kg FROM raw.patients",
    ]);
    ws
}

/// A running `carelake serve` with only the Postgres listener.
struct Server {
    child: Child,
    port: u16,
    /// `https://host:port` when the HTTP API runs with TLS.
    https: Option<String>,
}

impl Server {
    fn start(ws: &Workspace, extra: &[&str]) -> Self {
        let mut args = vec!["--pg-listen", "127.0.0.1:0"];
        if !extra.contains(&"--http-listen") {
            args.extend(["--http-listen", "off"]);
        }
        args.extend_from_slice(extra);
        let (child, lines) = spawn_serve(ws, &args);
        let port = lines
            .lines()
            .find(|l| l.starts_with("Postgres"))
            .and_then(|l| l.split("port=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no Postgres port in {lines:?}"));
        let https = served_at(&lines, "https");
        Self { child, port, https }
    }

    fn conninfo(&self, password: &str, sslmode: &str) -> (String, String) {
        (
            format!(
                "host=127.0.0.1 port={} user={USER} dbname=carelake sslmode={sslmode}",
                self.port
            ),
            password.to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn psql(psql: &Path, server: &Server, password: &str, sslmode: &str, sql: &str) -> Output {
    let (conninfo, password) = server.conninfo(password, sslmode);
    Command::new(psql)
        .args([
            conninfo.as_str(),
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn psql_signs_in_reads_describes_and_writes() {
    let Some(psql_bin) = program("psql", "psql_signs_in_reads_describes_and_writes") else {
        return;
    };
    let ws = lake();
    let server = Server::start(&ws, &[]);
    let run = |sql: &str| psql(&psql_bin, &server, PASSWORD, "disable", sql);

    // Sign-in: SCRAM with the right password only; an unknown user fails the same way.
    let refused = stderr(&psql(
        &psql_bin,
        &server,
        "not the password",
        "disable",
        "SELECT 1",
    ));
    assert!(
        refused
            .to_lowercase()
            .contains("password authentication failed"),
        "{refused}"
    );

    let rows = stdout(&run(
        "SELECT patient_id, family_name, birth_date, weight_kg FROM curated.patients ORDER BY patient_id",
    ));
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "1|Lovelace|1815-12-10|54.5",
            "2|Turing|1912-06-23|70.25",
            "3|Hopper|1906-12-09|"
        ]
    );

    // psql's own catalog queries: \dt lists the zone's tables, \d describes one.
    let listed = stdout(&run("\\dt curated.*"));
    assert!(listed.contains("curated|patients|table"), "{listed}");
    let described = stdout(&run("\\d curated.patients"));
    for column in ["patient_id", "family_name", "birth_date", "weight_kg"] {
        assert!(
            described.contains(column),
            "{column} missing from: {described}"
        );
    }

    // Writes go through the session: the table is in the catalog with its lineage, and the
    // command line sees it.
    let made = stdout(&run(
        "CREATE TABLE analytics.heavy AS SELECT patient_id FROM curated.patients WHERE weight_kg > 60",
    ));
    assert!(made.is_empty() || made.contains("CREATE"), "{made}");
    stdout(&run("INSERT INTO analytics.heavy VALUES (9)"));
    assert_eq!(
        ws.query("SELECT patient_id FROM analytics.heavy ORDER BY patient_id"),
        ["2", "9"]
    );
    let lineage =
        ws.query("SELECT upstream FROM system.tables WHERE table_name = 'analytics.heavy'");
    assert!(
        lineage.iter().any(|l| l.contains("curated.patients")),
        "{lineage:?}"
    );
    // A table the command line makes appears to the open server within a second or so.
    ws.ok(&["sql", "CREATE TABLE raw.late AS SELECT 1 AS x"]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(stdout(&run("SELECT x FROM raw.late")).trim(), "1");

    // What the session refuses is refused here, with a SQLSTATE; literals are blanked in errors.
    let denied = stderr(&run(
        "INSERT INTO system.tables SELECT * FROM system.tables",
    ));
    assert!(denied.contains("read-only"), "{denied}");
    let failed = stderr(&run("SELECT CAST('Lovelace' AS INT)"));
    assert!(!failed.contains("Lovelace"), "a literal leaked: {failed}");
    let missing = stderr(&run("SELECT * FROM curated.nothing_here"));
    assert!(missing.contains("nothing_here"), "{missing}");
}

#[test]
fn psycopg_reads_with_parameters() {
    let Some(python) = python_with("psycopg", "psycopg_reads_with_parameters") else {
        return;
    };
    let ws = lake();
    let server = Server::start(&ws, &[]);
    let script = format!(
        r#"
import datetime, psycopg
with psycopg.connect(host="127.0.0.1", port={port}, user="{USER}", password="{PASSWORD}",
                     dbname="carelake", sslmode="disable") as conn:
    cur = conn.cursor()
    # Server-side parameters (the extended protocol).
    cur.execute("SELECT family_name, birth_date FROM curated.patients WHERE patient_id = %s", (2,))
    assert cur.fetchall() == [("Turing", datetime.date(1912, 6, 23))], "by id"
    cur.execute("SELECT count(*) FROM curated.patients WHERE family_name LIKE %s", ("%o%",))
    assert cur.fetchone()[0] == 2, "like"
    # The same prepared statement, run again with other values.
    for pid, name in [(1, "Lovelace"), (3, "Hopper")]:
        cur.execute("SELECT family_name FROM curated.patients WHERE patient_id = %s", (pid,), prepare=True)
        assert cur.fetchone()[0] == name, pid
    cur.execute("SELECT weight_kg FROM curated.patients ORDER BY patient_id")
    assert [r[0] for r in cur.fetchall()] == [54.5, 70.25, None], "floats and NULL"
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'curated'")
    assert ("patients",) in cur.fetchall(), "information_schema"
    try:
        cur.execute("SELECT * FROM curated.absent WHERE patient_id = %s", (1,))
        raise SystemExit("a missing table did not fail")
    except psycopg.Error as e:
        print("error:", e.sqlstate)
print("psycopg ok")
"#,
        port = server.port
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("run python");
    let text = stdout(&out);
    assert!(text.contains("psycopg ok"), "{text}");
    assert!(text.contains("error: 42P01"), "{text}");
}

const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

#[test]
fn jdbc_reads_with_prepared_statements_and_metadata() {
    let test = "jdbc_reads_with_prepared_statements_and_metadata";
    let (Some(javac), Some(java)) = (program("javac", test), program("java", test)) else {
        return;
    };
    if !Path::new(JDBC_JAR).is_file() {
        assert!(
            std::env::var_os("CARELAKE_REQUIRE_INTEROP").is_none(),
            "CARELAKE_REQUIRE_INTEROP is set but {JDBC_JAR} is absent"
        );
        eprintln!("SKIPPED {test}: {JDBC_JAR} is absent (libpostgresql-jdbc-java)");
        return;
    }
    let ws = lake();
    let server = Server::start(&ws, &[]);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jdbc/PgSmoke.java");
    let classes = ws.path("classes");
    let compiled = Command::new(javac)
        .args(["-d", &classes.to_string_lossy(), "-cp", JDBC_JAR])
        .arg(&source)
        .arg(source.with_file_name("PgGoverned.java"))
        .output()
        .expect("run javac");
    stdout(&compiled);
    let classpath = format!("{}:{JDBC_JAR}", classes.display());
    let url = format!("jdbc:postgresql://127.0.0.1:{}/carelake", server.port);
    let out = Command::new(&java)
        .args(["-cp", &classpath, "PgSmoke", &url, USER, PASSWORD])
        .output()
        .expect("run java");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"param 2 Turing 1912-06-23"), "{text}");
    assert!(lines.contains(&"param 3 Hopper 1906-12-09"), "{text}");
    assert!(lines.contains(&"count 3"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("table curated patients")),
        "{text}"
    );
    assert!(lines.contains(&"column patient_id"), "{text}");
    assert!(lines.contains(&"column family_name"), "{text}");
    assert!(lines.contains(&"jdbc ok"), "{text}");

    // The same driver as a restricted user: granted two columns, a row policy and a mask. The
    // prepared statement sees only the policy's rows with the mask applied, refusals carry
    // SQLSTATE 42501, and the metadata lists only what was granted.
    ws.ok(&[
        "sql",
        "CREATE ROLE reader;
         GRANT SELECT (patient_id, birth_date) ON curated.patients TO reader;
         CREATE ROW POLICY not_the_first ON curated.patients FOR reader USING (patient_id <> 1);
         CREATE MASKING POLICY birth_year ON curated.patients (birth_date) FOR reader USING (year_only(birth_date))",
    ]);
    ws.add_user("reader1", PASSWORD, "reader");
    let out = Command::new(&java)
        .args(["-cp", &classpath, "PgGoverned", &url, "reader1", PASSWORD])
        .output()
        .expect("run java");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    for run in 0..2 {
        let seen: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("row {run} ")))
            .collect();
        assert_eq!(
            seen,
            [
                format!("row {run} 2 1912-01-01"),
                format!("row {run} 3 1906-01-01")
            ],
            "{text}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| **l == "denied 42501").count(),
        3,
        "{text}"
    );
    let tables: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("table "))
        .collect();
    assert_eq!(tables, ["table curated patients"], "{text}");
    let columns: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("column "))
        .collect();
    assert_eq!(
        columns,
        ["column patient_id", "column birth_date"],
        "{text}"
    );
    assert!(lines.contains(&"jdbc governed ok"), "{text}");
    for hidden in ["Lovelace", "1815", "Turing"] {
        assert!(!text.contains(hidden), "{text}");
    }
}

#[test]
fn tls_is_required_when_configured_and_a_bad_certificate_stops_the_server() {
    let test = "tls_is_required_when_configured_and_a_bad_certificate_stops_the_server";
    let (Some(openssl), Some(psql_bin)) = (program("openssl", test), program("psql", test)) else {
        return;
    };
    let ws = lake();
    let (cert, key) = self_signed(&openssl, &ws, "server");
    let (cert, key) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );

    // A key that is not a key: the server does not start (and never serves in the clear).
    let bad = ws.write("bad.key", "not a key");
    let err = ws.fails(&[
        "serve",
        "--http-listen",
        "off",
        "--pg-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &bad,
    ]);
    assert!(err.contains("TLS") && err.contains("bad.key"), "{err}");

    let server = Server::start(
        &ws,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    let secure = stdout(&psql(&psql_bin, &server, PASSWORD, "require", "\\conninfo"));
    assert!(secure.contains("SSL connection"), "{secure}");
    let plain = stderr(&psql(&psql_bin, &server, PASSWORD, "disable", "SELECT 1"));
    assert!(plain.contains("requires TLS"), "{plain}");

    // The HTTP API speaks HTTPS with the same certificate, and only HTTPS.
    let https = server.https.clone().expect("an https address");
    let script = format!(
        r#"
import ssl, urllib.request
ctx = ssl.create_default_context(cafile={cert:?})
print(urllib.request.urlopen("{https}/healthz", context=ctx).read().decode().strip())
try:
    urllib.request.urlopen("{plain}/healthz", timeout=5)
    print("plain http answered")
except Exception as e:
    print("plain http refused")
"#,
        plain = https.replacen("https://", "http://", 1)
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["ok", "plain http refused"]
    );
}

#[test]
fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let Some(python) = python_with("psycopg", "an_idle_connection_is_closed") else {
        return;
    };
    let ws = lake();
    // Idle after 3 seconds without a statement.
    let server = Server::start(&ws, &["--pg-idle-minutes", "0.05"]);
    let script = format!(
        r#"
import time, psycopg
conn = psycopg.connect(host="127.0.0.1", port={port}, user="{USER}", password="{PASSWORD}",
                       dbname="carelake", sslmode="disable", autocommit=True)
cur = conn.cursor()
# Statements every second keep the connection open past the timeout.
for _ in range(5):
    cur.execute("SELECT count(*) FROM curated.patients")
    assert cur.fetchone()[0] == 3
    time.sleep(1)
print("busy ok")
time.sleep(6)
try:
    cur.execute("SELECT 1")
    cur.fetchone()
    print("still open")
except psycopg.Error as e:
    print("closed:", type(e).__name__)
"#,
        port = server.port
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("run python");
    let text = stdout(&out);
    assert!(text.contains("busy ok"), "{text} {}", stderr(&out));
    assert!(text.contains("closed:"), "{text} {}", stderr(&out));
}
