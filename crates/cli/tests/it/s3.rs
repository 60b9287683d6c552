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

#[test]
fn a_lake_on_s3_compatible_storage() {
    let Some(python) = python_with("moto.server, boto3", "a_lake_on_s3_compatible_storage") else {
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
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
    let endpoint = format!("http://127.0.0.1:{port}");
    let create_bucket = format!(
        "import boto3; boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='hospital')"
    );
    let started = Instant::now();
    loop {
        let out = Command::new(&python)
            .args(["-c", &create_bucket])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

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
