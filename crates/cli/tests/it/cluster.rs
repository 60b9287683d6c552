//! A Ballista cluster as separate processes: `carelake cluster scheduler` and two
//! `carelake cluster executor`s on loopback; `carelake sql --cluster` gives the same answers
//! as one machine to the KPI queries, as the owner and as a user behind a row policy and a mask.

use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::support::{KillOnDrop, Workspace};

/// A port free now (the executors announce their ports, so they cannot take port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn carelake(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("carelake"));
    cmd.args(args)
        .env("CARELAKE_LAKE", ws.lake())
        .env_remove("CARELAKE_LOG")
        .env_remove("CARELAKE_CLUSTER")
        .envs(env.iter().copied())
        .stderr(Stdio::null());
    cmd
}

/// A scheduler and two executors, separate processes, stopped when dropped.
pub(crate) struct Cluster {
    /// The scheduler's URL.
    pub(crate) url: String,
    _processes: Vec<KillOnDrop>,
}

/// Starts a cluster on the workspace's lake, each process with `env` (a lake on S3 and its
/// credentials, say).
pub(crate) fn start(ws: &Workspace, env: &[(&str, &str)]) -> Cluster {
    let mut scheduler = carelake(ws, &["cluster", "scheduler", "--bind", "127.0.0.1:0"], env)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(scheduler.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut processes = vec![KillOnDrop(scheduler)];
    let url = line
        .trim()
        .strip_prefix("scheduler listening on ")
        .unwrap_or_else(|| panic!("scheduler said {line:?}"))
        .to_string();
    for _ in 0..2 {
        let (port, grpc) = (free_port().to_string(), free_port().to_string());
        let args = [
            "cluster",
            "executor",
            "--scheduler",
            &url,
            "--port",
            &port,
            "--grpc-port",
            &grpc,
            "--vcores",
            "2",
        ];
        processes.push(KillOnDrop(
            carelake(ws, &args, env)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    Cluster {
        url,
        _processes: processes,
    }
}

const KPI: &[&str] = &[
    "SELECT date_trunc('month', admit_time) AS month, count(DISTINCT encounter_id) AS admissions
     FROM raw.encounters WHERE encounter_class = 'inpatient' GROUP BY 1",
    "SELECT f.name, count(*) AS stays,
            avg(date_part('epoch', e.discharge_time) - date_part('epoch', e.admit_time)) / 86400.0 AS alos
     FROM raw.encounters e JOIN raw.facilities f ON f.facility_id = e.facility_id
     WHERE e.encounter_class = 'inpatient' AND e.discharge_time IS NOT NULL GROUP BY f.name",
    "SELECT e.attending_npi, pr.last_name, count(*) AS n FROM raw.encounters e
     JOIN raw.providers pr ON pr.npi = e.attending_npi GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 10",
    "SELECT encounter_class, count(DISTINCT mrn) FROM raw.encounters GROUP BY 1",
    "SELECT mrn, encounter_id, lag(admit_time) OVER (PARTITION BY mrn ORDER BY admit_time, encounter_id)
     FROM raw.encounters",
];

/// The CSV rows of `sql`, sorted, on one machine or with `--cluster url`.
fn rows(ws: &Workspace, sql: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["sql", sql, "--format", "csv"];
    args.extend_from_slice(extra);
    let mut lines: Vec<String> = ws.ok(&args).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn separate_processes_give_the_same_answers() {
    let ws = Workspace::new();
    let data = ws.path("gen").to_string_lossy().into_owned();
    ws.ok(&[
        "generate",
        "--patients",
        "400",
        "--seed",
        "3",
        "--out",
        &data,
    ]);
    for table in ["facilities", "providers", "encounters"] {
        ws.ok(&[
            "load",
            &format!("{data}/{table}.csv"),
            "--into",
            &format!("raw.{table}"),
        ]);
    }
    ws.ok(&[
        "sql",
        "CREATE ROLE coder;
         GRANT SELECT ON raw.encounters TO coder;
         GRANT SELECT ON raw.facilities TO coder;
         GRANT SELECT ON raw.providers TO coder;
         CREATE ROW POLICY inpatient_only ON raw.encounters FOR coder USING (encounter_class = 'inpatient');
         CREATE MASKING POLICY mrn_p ON raw.encounters (mrn) FOR coder USING (pseudonym(mrn))",
    ]);
    ws.add_user("coder1", "a long enough password", "coder");

    let cluster = start(&ws, &[]);
    let url = cluster.url.clone();

    for sql in KPI {
        let here = rows(&ws, sql, &[]);
        assert!(here.len() > 1, "{sql}: {here:?}");
        assert_eq!(here, rows(&ws, sql, &["--cluster", &url]), "{sql}");
        let governed = rows(&ws, sql, &["--as", "coder1"]);
        assert_eq!(
            governed,
            rows(&ws, sql, &["--as", "coder1", "--cluster", &url]),
            "coder1: {sql}"
        );
    }
    // The governed answers are the policy's: inpatients only, no real MRN.
    let classes = rows(
        &ws,
        "SELECT DISTINCT encounter_class FROM raw.encounters",
        &["--as", "coder1", "--cluster", &url],
    );
    assert_eq!(classes, ["encounter_class", "inpatient"]);
    let real = ws.scalar("SELECT min(mrn) FROM raw.encounters");
    let seen = rows(
        &ws,
        "SELECT mrn FROM raw.encounters",
        &["--as", "coder1", "--cluster", &url],
    );
    assert!(!seen.contains(&real), "a real MRN reached the coder");
    // `serve --cluster`: Postgres and HTTP sessions read on the cluster, under the same
    // policies.
    let (child, lines) = crate::support::spawn_serve(
        &ws,
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--pg-listen",
            "127.0.0.1:0",
            "--cluster",
            &url,
        ],
    );
    let server = KillOnDrop(child);
    assert!(lines.contains("Read queries run on the cluster"), "{lines}");
    let http = lines
        .lines()
        .find(|l| l.starts_with("Web UI"))
        .and_then(|l| crate::support::served_at(l, "http"))
        .and_then(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
        .unwrap_or_else(|| panic!("no HTTP port in {lines}"));
    let pg = lines
        .split("port=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no Postgres port in {lines}"));
    let persons =
        "SELECT encounter_class, count(DISTINCT mrn) AS persons FROM raw.encounters GROUP BY 1";
    let auth = crate::http::basic("coder1", "a long enough password");
    let over_http = |sql: &str| {
        crate::http::request(
            http,
            "POST",
            "/api/v1/query",
            &[("Authorization", &auth), ("Accept", "text/csv")],
            sql.as_bytes(),
        )
    };
    let reply = over_http(persons);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut http_rows: Vec<String> = reply.text().lines().map(str::to_string).collect();
    http_rows.sort();
    let governed = rows(&ws, persons, &["--as", "coder1"]);
    assert_eq!(http_rows, governed);
    if let Some(psql) = crate::support::program("psql", "serve_cluster_over_postgres") {
        let out = Command::new(psql)
            .args([
                &format!("host=127.0.0.1 port={pg} user=coder1 dbname=carelake sslmode=disable"),
                "-X",
                "-A",
                "-t",
                "-F",
                ",",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                persons,
            ])
            .env("PGPASSWORD", "a long enough password")
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg_rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        pg_rows.push("encounter_class,persons".into());
        pg_rows.sort();
        assert_eq!(pg_rows, governed);
    }

    // The reads went to the scheduler: without it they fail as a service unavailable, to be
    // retried (an answer already computed could still come from the result cache), while
    // writes stay local.
    drop(cluster);
    let reply = over_http("SELECT count(*) FROM raw.encounters WHERE discharge_time IS NULL");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(
        reply.text().contains("scheduler") && reply.text().contains("cannot be reached"),
        "{}",
        reply.text()
    );
    assert_eq!(reply.header("retry-after"), Some("5"));
    drop(server);
    ws.fails(&["sql", KPI[0], "--cluster", &url]);
    ws.ok(&[
        "sql",
        "CREATE TABLE raw.local_only AS SELECT 1 AS x",
        "--cluster",
        &url,
    ]);
}
