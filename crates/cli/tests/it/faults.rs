//! Storage faults on the real binary (`CARELAKE_FAULTS`, `crates/lake/src/faults.rs`): each
//! fault gives a clear error and the exit code for a failure worth retrying (75), and leaves
//! the lake consistent (the table as before, `carelake check` sound), so that the same load
//! run again succeeds; a server answers 503 with Retry-After while its storage is down, keeps
//! acknowledging streamed events into its write-ahead log, and stores them when storage is back.

use std::time::{Duration, Instant};

use crate::http::{Server, basic, request};
use crate::support::Workspace;

const USER: &str = "fault-tester";
const PASSWORD: &str = "a long fault password";

fn rows(ws: &Workspace, n: usize, from: usize) -> String {
    let mut csv = String::from("ward,bed,patients\n");
    for i in from..from + n {
        csv.push_str(&format!("W{},{i},{}\n", i % 7, i % 3));
    }
    ws.write(&format!("beds_{from}.csv"), csv)
}

#[test]
fn each_storage_fault_fails_a_load_cleanly_and_a_rerun_succeeds() {
    let ws = Workspace::new();
    let first = rows(&ws, 500, 0);
    ws.ok(&["load", &first, "--into", "raw.beds"]);
    // (plan, what the error says)
    let matrix = [
        ("put@raw/beds/:disk-full", "no space left on device"),
        ("put@raw/beds/:read-only", "read-only file system"),
        (
            "put@raw/beds/_delta_log/:error",
            "500 Internal Server Error",
        ),
        ("put@raw/beds/:torn", "cut off"),
        ("get@raw/beds/:unavailable", "connection refused"),
        ("list@raw/beds/:unavailable", "connection refused"),
        ("get@raw/beds/:timeout=200ms", "did not answer in time"),
        ("put@raw/beds/:error:after=1", "500 Internal Server Error"),
    ];
    let mut expected = 500;
    for (i, (plan, says)) in matrix.iter().enumerate() {
        let file = rows(&ws, 100, 1000 * (i + 1));
        let out = ws
            .command(&["load", &file, "--into", "raw.beds"])
            .env("CARELAKE_FAULTS", plan)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{plan}: {stderr}");
        assert!(stderr.contains(says), "{plan}: {stderr}");
        assert!(
            !stderr.contains("W3,"),
            "{plan}: data in the error: {stderr}"
        );
        // Nothing of the failed load is in the table, and the lake is sound.
        assert_eq!(
            ws.scalar("SELECT count(*) FROM raw.beds"),
            expected.to_string(),
            "{plan}"
        );
        let check = ws.ok(&["check"]);
        assert!(check.contains("sound"), "{plan}: {check}");
        // The same load again, the storage mended: loaded once.
        ws.ok(&["load", &file, "--into", "raw.beds"]);
        expected += 100;
        assert_eq!(
            ws.scalar("SELECT count(*) FROM raw.beds"),
            expected.to_string(),
            "{plan}"
        );
        println!("fault {plan}: exit 75, '{says}', lake sound, rerun loaded");
    }
    // Latency slows a load down and changes nothing else.
    let file = rows(&ws, 100, 99_000);
    let started = Instant::now();
    let out = ws
        .command(&["load", &file, "--into", "raw.beds"])
        .env("CARELAKE_FAULTS", "read@raw/beds/:latency=20ms")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.beds"),
        (expected + 100).to_string()
    );
    // A query on storage that does not answer fails as unavailable.
    let out = ws
        .command(&["sql", "SELECT count(*) FROM raw.beds WHERE patients > 0"])
        .env("CARELAKE_FAULTS", "get@raw/beds/:unavailable")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    // A plan that cannot be read stops the command before it touches the lake.
    let out = ws
        .command(&["tables"])
        .env("CARELAKE_FAULTS", "put:explode")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown fault"),
        "{out:?}"
    );
}

#[test]
fn a_server_rides_out_storage_that_goes_away_and_comes_back() {
    let ws = Workspace::new();
    ws.add_user(USER, PASSWORD, "admin");
    let first = rows(&ws, 50, 0);
    ws.ok(&["load", &first, "--into", "raw.beds"]);
    let plan = ws.write("faults.plan", "");
    let server = Server::start_with_env(&ws, &[("CARELAKE_FAULTS", &format!("@{plan}"))]);
    let auth = basic(USER, PASSWORD);
    let query = |sql: &str| {
        request(
            server.port,
            "POST",
            "/api/v1/query",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            format!("{{\"sql\": \"{sql}\"}}").as_bytes(),
        )
    };
    let ingest = |ids: std::ops::Range<usize>| {
        let body: String = ids
            .map(|i| format!("{{\"event_id\":\"e{i}\",\"device_id\":\"MON-1\",\"value\":{i}}}\n"))
            .collect();
        request(
            server.port,
            "POST",
            "/api/v1/ingest/fault_events",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-ndjson"),
            ],
            body.as_bytes(),
        )
    };
    assert_eq!(query("SELECT count(*) AS n FROM raw.beds").status, 200);
    assert_eq!(ingest(0..10).status, 202);
    wait_for_count(&ws, "raw.fault_events", 10);

    // The storage goes away: queries of the lake are unavailable, ingest still acknowledges.
    std::fs::write(&plan, "read@raw/:unavailable\nwrite@raw/:unavailable\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let reply = query("SELECT sum(patients) AS n FROM raw.beds");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
    for batch in 1..5 {
        let reply = ingest(batch * 10..batch * 10 + 10);
        assert_eq!(reply.status, 202, "{}", reply.text());
    }
    std::thread::sleep(Duration::from_secs(1));

    // Back: the pending events are flushed, each once.
    std::fs::write(&plan, "# storage is back\n").unwrap();
    wait_for_count(&ws, "raw.fault_events", 50);
    assert_eq!(
        ws.scalar("SELECT count(DISTINCT event_id) FROM raw.fault_events"),
        "50"
    );
    let reply = query("SELECT sum(patients) AS n FROM raw.beds");
    assert_eq!(reply.status, 200, "{}", reply.text());
    drop(server);
    let check = ws.ok(&["check"]);
    assert!(check.contains("sound"), "{check}");
}

fn wait_for_count(ws: &Workspace, table: &str, n: usize) {
    let started = Instant::now();
    loop {
        let out = ws.run(&[
            "sql",
            &format!("SELECT count(*) FROM {table}"),
            "--format",
            "csv",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().nth(1) == Some(n.to_string().as_str()) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{table}: {text:?}, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
