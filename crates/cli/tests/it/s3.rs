//! A lake on S3-compatible storage: a local moto server (installed by `scripts/test.sh`) on
//! loopback stands in for S3. Skips where moto is missing, unless `CARELAKE_REQUIRE_INTEROP` is
//! set.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Workspace, python_with};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A moto S3 server on a free loopback port.
pub(crate) struct Moto {
    _server: Server,
    python: String,
    pub(crate) endpoint: String,
}

impl Moto {
    /// Starts moto, or `None` (the test skips) where it is not installed.
    pub(crate) fn start(test: &str) -> Option<Self> {
        let python = python_with("moto.server, boto3", test)?;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server(
            Command::new(&python)
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto"),
        );
        Some(Self {
            _server: server,
            python,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Runs Python with a boto3 client `s3` on this server (retried while moto starts).
    fn python(&self, code: &str) {
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1')\n{code}",
            self.endpoint
        );
        let started = Instant::now();
        loop {
            let out = Command::new(&self.python)
                .args(["-c", &script])
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(crate) fn create_bucket(&self, bucket: &str) {
        self.python(&format!("s3.create_bucket(Bucket='{bucket}')"));
    }

    /// Uploads a local file as `key`.
    fn put(&self, bucket: &str, key: &str, file: &str) {
        self.python(&format!("s3.upload_file('{file}', '{bucket}', '{key}')"));
    }

    /// The environment of a process using the lake at `lake` (an s3:// URL).
    pub(crate) fn env<'a>(&'a self, lake: &'a str) -> [(&'a str, &'a str); 5] {
        [
            ("CARELAKE_LAKE", lake),
            ("CARELAKE_S3_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
    }
}

#[test]
fn a_lake_on_s3_compatible_storage() {
    let Some(moto) = Moto::start("a_lake_on_s3_compatible_storage") else {
        return;
    };
    moto.create_bucket("hospital");
    let endpoint = moto.endpoint.clone();
    let ws = Workspace::new();
    let file = ws.write("labs.csv", "loinc,value\n2345-7,105\n718-7,13.1\n");
    let s3 = |args: &[&str]| {
        let mut cmd = ws.command(args);
        cmd.env("CARELAKE_LAKE", "s3://hospital/lake")
            .env("CARELAKE_S3_ENDPOINT", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?} logged: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    s3(&["init"]);
    assert!(s3(&["load", &file, "--into", "raw.labs"]).contains("Loaded 2 rows"));
    assert!(s3(&["load", &file, "--into", "raw.labs"]).contains("already loaded"));
    s3(&[
        "sql",
        "CREATE TABLE curated.labs AS SELECT loinc, value FROM raw.labs WHERE value > 50",
    ]);
    assert_eq!(
        s3(&[
            "sql",
            "SELECT count(*) FROM curated.labs",
            "--format",
            "csv"
        ]),
        "count(*)\n1\n"
    );
    let tables = s3(&["tables"]);
    assert!(
        tables.contains("raw.labs") && tables.contains("curated.labs"),
        "{tables}"
    );
    // A cluster on the bucket: every process opens it with its own credentials.
    let env = [
        ("CARELAKE_LAKE", "s3://hospital/lake"),
        ("CARELAKE_S3_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let cluster = crate::cluster::start(&ws, &env);
    let sql = "SELECT r.loinc, r.value, c.value AS curated FROM raw.labs r \
               LEFT JOIN curated.labs c ON c.loinc = r.loinc ORDER BY r.loinc";
    // (Ballista may log to standard error; the answer is what counts here.)
    let on_cluster = ws
        .command(&["sql", sql, "--format", "csv", "--cluster", &cluster.url])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        on_cluster.status.success(),
        "{}",
        String::from_utf8_lossy(&on_cluster.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&on_cluster.stdout),
        s3(&["sql", sql, "--format", "csv"])
    );
}

/// Every part of the product on a bucket: concurrent loads into one table, a pipeline run,
/// OPTIMIZE and VACUUM, and one server taking streamed events (WAL on local disk), HL7 over
/// MLLP and a watched bucket prefix, with a restart in the middle.
#[test]
fn the_whole_product_on_s3() {
    let Some(moto) = Moto::start("the_whole_product_on_s3") else {
        return;
    };
    moto.create_bucket("network");
    moto.create_bucket("landing");
    let lake = "s3://network/lake";
    let env = moto.env(lake);
    let ws = Workspace::new();
    let run = |args: &[&str]| {
        let out = ws.command(args).envs(env).output().unwrap();
        crate::support::succeeded(args, out)
    };
    let scalar = |sql: &str| {
        let out = run(&["sql", sql, "--format", "csv"]);
        out.lines().nth(1).unwrap_or_default().to_string()
    };
    run(&["init"]);

    // Two processes committing to one table at once (conditional puts), each file once.
    let files: Vec<String> = (0..4)
        .map(|i| {
            let rows: String = (0..50).map(|r| format!("V{i}-{r},{}\n", r % 7)).collect();
            ws.write(&format!("visits/{i}.csv"), format!("visit,ward\n{rows}"))
        })
        .collect();
    let loaders: Vec<_> = [&files[0..2], &files[1..4]]
        .into_iter()
        .map(|part| {
            let mut args = vec!["load".to_string()];
            args.extend(part.iter().cloned());
            args.extend(["--into".into(), "raw.visits".into()]);
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("carelake"));
            cmd.args(&args).envs(env).env_remove("CARELAKE_LOG");
            cmd.current_dir(ws.dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for loader in loaders {
        let out = loader.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(scalar("SELECT count(*) FROM raw.visits"), "200");
    assert_eq!(
        scalar("SELECT count(DISTINCT visit) FROM raw.visits"),
        "200"
    );

    // OPTIMIZE and VACUUM on the bucket keep every row.
    run(&["sql", "OPTIMIZE raw.visits"]);
    run(&["sql", "VACUUM raw.visits RETAIN 0 HOURS"]);
    assert_eq!(scalar("SELECT count(*) FROM raw.visits"), "200");

    // The default pipeline on generated data.
    let data = ws.path("gen").to_string_lossy().into_owned();
    run(&[
        "generate",
        "--patients",
        "150",
        "--seed",
        "3",
        "--out",
        &data,
    ]);
    for table in crate::pipeline::FLAT_FILES {
        run(&[
            "load",
            &format!("{data}/{table}.csv"),
            "--into",
            &format!("raw.{table}"),
        ]);
    }
    let out = run(&["run"]);
    assert!(out.contains("Ran 21 model(s)"), "{out}");
    assert_eq!(
        scalar(
            "SELECT count(*) > 0 AND count(*) <= (SELECT count(*) FROM raw.encounters) FROM curated.encounters"
        ),
        "true"
    );

    // One server: streamed events, MLLP and a watched prefix of another bucket.
    let password = "a long test password";
    let out = ws
        .command(&["user", "add", "tester", "--roles", "admin"])
        .envs(env)
        .env("CARELAKE_PASSWORD", password)
        .output()
        .unwrap();
    crate::support::succeeded(&["user", "add"], out);
    let wal = ws.path("wal").to_string_lossy().into_owned();
    let args = [
        "--http-listen",
        "127.0.0.1:0",
        "--mllp",
        "127.0.0.1:0",
        "--flush-seconds",
        "0.2",
        "--wal-dir",
        &wal,
        "--watch",
        "s3://landing/inbound=raw.drops",
        "--watch-seconds",
        "0.3",
    ];
    let serve = || {
        let (child, lines) = crate::support::spawn_serve_with(&ws, &args, &env);
        let port = |prefix: &str| {
            lines
                .lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| {
                    l.split_whitespace().find_map(|w| {
                        w.trim_end_matches('/')
                            .rsplit_once(':')
                            .and_then(|(_, p)| p.parse::<u16>().ok())
                    })
                })
                .unwrap_or_else(|| panic!("no {prefix} port in {lines}"))
        };
        (
            crate::support::KillOnDrop(child),
            port("Web UI"),
            port("MLLP"),
        )
    };
    let (server, http, mllp) = serve();
    let auth = crate::http::basic("tester", password);
    let ndjson = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-ndjson"),
    ];
    let events = "{\"event_id\":\"e1\",\"device\":\"MON-1\",\"value\":71}\n\
                  {\"event_id\":\"e2\",\"device\":\"MON-1\",\"value\":72}\n";
    let reply = crate::http::request(
        http,
        "POST",
        "/api/v1/ingest/vitals",
        &ndjson,
        events.as_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.text());
    let messages: Vec<String> = (1..=3).map(|i| crate::mllp::message("S3", i)).collect();
    let acks = crate::mllp::send_all(mllp, &messages);
    assert!(acks.iter().all(|(code, _)| code == "AA"), "{acks:?}");
    let drop_file = ws.write("drops/a.csv", "code,qty\nA,1\nB,2\n");
    moto.put("landing", "inbound/2026/a.csv", &drop_file);
    moto.put("landing", "elsewhere/b.csv", &drop_file);
    crate::watch::wait_for_value(&ws, &env, "SELECT count(*) FROM raw.vitals", "2");
    crate::watch::wait_for_value(&ws, &env, "SELECT count(*) FROM raw.drops", "2");
    assert_eq!(scalar("SELECT count(*) FROM raw.hl7_messages"), "3");
    assert_eq!(
        scalar("SELECT min(_source_file) FROM raw.drops"),
        "s3://landing/inbound/2026/a.csv"
    );

    // A crash: acknowledged events not yet flushed wait in the local WAL and reach the
    // bucket after the restart; nothing watched is taken twice.
    let more = "{\"event_id\":\"e3\",\"device\":\"MON-2\",\"value\":73}\n";
    let reply = crate::http::request(
        http,
        "POST",
        "/api/v1/ingest/vitals",
        &ndjson,
        more.as_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.text());
    drop(server);
    let (_server, http, mllp) = serve();
    crate::watch::wait_for_value(&ws, &env, "SELECT count(*) FROM raw.vitals", "3");
    let reply = crate::http::request(
        http,
        "POST",
        "/api/v1/ingest/vitals",
        &ndjson,
        events.as_bytes(),
    );
    assert_eq!(reply.json()["duplicates"], 2, "{}", reply.text());
    let acks = crate::mllp::send_all(mllp, &messages);
    assert!(acks.iter().all(|(code, _)| code == "AA"), "{acks:?}");
    moto.put("landing", "inbound/2026/b.csv", &drop_file);
    crate::watch::wait_for_value(
        &ws,
        &env,
        "SELECT count(*) FROM system.watch_files WHERE status = 'skipped'",
        "1",
    );
    assert_eq!(scalar("SELECT count(*) FROM raw.drops"), "2");
    assert_eq!(scalar("SELECT count(*) FROM raw.hl7_messages"), "3");
    assert_eq!(scalar("SELECT count(*) FROM raw.vitals"), "3");
    drop(_server);

    // A backup of the bucket's lake to another prefix, restored into a third: checked, and
    // every table holds what the lake held.
    run(&["backup", "--to", "s3://network/backups"]);
    let restored = moto.env("s3://network/restored");
    let in_restored = |args: &[&str]| {
        let out = ws.command(args).envs(restored).output().unwrap();
        crate::support::succeeded(args, out)
    };
    in_restored(&["restore", "--from", "s3://network/backups"]);
    in_restored(&["check"]);
    for (sql, want) in [
        ("SELECT count(*) FROM raw.visits", "200"),
        ("SELECT count(*) FROM raw.vitals", "3"),
        ("SELECT count(*) FROM raw.hl7_messages", "3"),
        ("SELECT count(*) FROM raw.drops", "2"),
    ] {
        let out = in_restored(&["sql", sql, "--format", "csv"]);
        assert_eq!(out.lines().nth(1), Some(want), "{sql}: {out}");
    }
}
