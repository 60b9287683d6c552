//! Bounded resources on the real binary: a result far larger than the row limit is cut inside
//! the plan (never collected), a statement over its session's memory fails cleanly while other
//! sessions go on, a client that sends its headers a byte at a time is cut off, and a
//! connection over the cap is answered 503.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::http::{basic, request};
use crate::support::{KillOnDrop, Workspace, spawn_serve};

const PASSWORD: &str = "a long test password";

fn serve(ws: &Workspace, extra: &[&str]) -> (KillOnDrop, u16) {
    let mut args = vec!["--http-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (child, line) = spawn_serve(ws, &args);
    let port = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (KillOnDrop(child), port)
}

fn query(port: u16, user: &str, sql: &str) -> crate::http::Reply {
    request(
        port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &basic(user, PASSWORD)),
            ("Content-Type", "application/json"),
        ],
        serde_json::json!({ "sql": sql }).to_string().as_bytes(),
    )
}

#[test]
fn huge_results_are_cut_in_the_plan_and_memory_is_bounded_per_session() {
    let ws = Workspace::new();
    ws.add_user("ana", PASSWORD, "admin");
    ws.add_user("ben", PASSWORD, "admin");
    let (child, port) = serve(
        &ws,
        &[
            "--max-rows",
            "1000",
            "--memory-mb",
            "512",
            "--query-memory-mb",
            "64",
        ],
    );
    // Ten billion rows: answered at once with the first thousand.
    let started = Instant::now();
    let cut = query(port, "ana", "SELECT * FROM range(10000000000)");
    let took = started.elapsed();
    assert_eq!(cut.status, 200, "{}", cut.text());
    let body = cut.json();
    assert_eq!(body["row_count"], 1000);
    assert_eq!(body["truncated"], true);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // Sorted, the limit is a top-k: still bounded.
    let top = query(
        port,
        "ana",
        "SELECT value FROM range(20000000) ORDER BY value DESC",
    );
    assert_eq!(top.status, 200, "{}", top.text());
    assert_eq!(top.json()["rows"][0]["value"], 19_999_999);

    // 400 MB of values in one aggregate: over the session's 64 MiB, refused cleanly...
    let (ana, ben) = (
        std::thread::spawn(move || {
            query(
                port,
                "ana",
                "SELECT cardinality(array_agg(value)) AS n FROM range(50000000)",
            )
        }),
        std::thread::spawn(move || query(port, "ben", "SELECT 40 + 2 AS answer")),
    );
    let (ana, ben) = (ana.join().unwrap(), ben.join().unwrap());
    assert_eq!(ana.status, 400, "{}", ana.text());
    assert!(
        ana.text().contains("session memory limit of 64 MiB"),
        "{}",
        ana.text()
    );
    // ... while another session goes on, and the same session afterwards.
    assert_eq!(ben.status, 200, "{}", ben.text());
    let again = query(port, "ana", "SELECT 1 AS one");
    assert_eq!(again.status, 200, "{}", again.text());
    drop(child);
}

#[test]
fn slow_clients_are_cut_off_and_connections_are_capped() {
    let ws = Workspace::new();
    ws.add_user("ana", PASSWORD, "admin");
    let (child, port) = serve(
        &ws,
        &[
            "--header-timeout-seconds",
            "1",
            "--http-max-connections",
            "3",
        ],
    );
    // Headers a byte every 200 ms: cut off after about a second.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if slow.write_all(b"x").is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = started.elapsed();
    assert!(closed, "a slow client was still connected after {held:?}");
    assert!(held < Duration::from_secs(5), "cut off only after {held:?}");
    drop(slow);
    std::thread::sleep(Duration::from_millis(300));

    // Three connections sit idle (within their header time); a fourth is refused at once.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    drop(idle);
    // Once they are gone (or cut off), requests are served again.
    let started = Instant::now();
    loop {
        let reply = request(port, "GET", "/healthz", &[], b"");
        if reply.status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still refused");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child);
}

#[test]
fn browsers_get_protective_headers_and_cross_site_api_writes_are_refused() {
    let ws = Workspace::new();
    ws.add_user("ana", PASSWORD, "admin");
    // Beyond loopback without TLS: a warning at start-up.
    let (child, line) = spawn_serve(&ws, &["--http-listen", "0.0.0.0:0"]);
    let child = KillOnDrop(child);
    assert!(
        line.contains("WARNING: the HTTP API and web UI listens on 0.0.0.0"),
        "{line}"
    );
    let port: u16 = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let page = request(port, "GET", "/login", &[], b"");
    assert_eq!(page.status, 200);
    let header = |name: &str| {
        page.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(
        header("content-security-policy").contains("default-src 'none'"),
        "{:?}",
        page.headers
    );
    // Plain HTTP: no HSTS, and the cookie is not the __Host- one.
    assert!(header("strict-transport-security").is_empty());
    // A page of another site posting SQL with the browser's remembered credentials.
    let forged = request(
        port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &basic("ana", PASSWORD)),
            ("Origin", "https://evil.example"),
        ],
        b"SELECT 1",
    );
    assert_eq!(forged.status, 403, "{}", forged.text());
    let own = request(
        port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &basic("ana", PASSWORD)),
            // The request helper sends `Host: 127.0.0.1`.
            ("Origin", "http://127.0.0.1"),
            ("Content-Type", "application/json"),
        ],
        br#"{"sql": "SELECT 1"}"#,
    );
    assert_eq!(own.status, 200, "{}", own.text());
    let plain = query(port, "ana", "SELECT 1 AS one");
    assert_eq!(plain.status, 200, "{}", plain.text());
    drop(child);
}

#[test]
fn streamed_events_waiting_for_the_lake_are_capped() {
    let ws = Workspace::new();
    ws.add_user("ana", PASSWORD, "admin");
    // Flushes only every minute: acknowledged events pile up.
    let (child, port) = serve(&ws, &["--max-pending-mb", "1", "--flush-seconds", "60"]);
    let body: String = (0..12_000)
        .map(|i| {
            format!(
                "{{\"event_id\":\"e{i}\",\"device\":\"d1\",\"reading\":\"{}\"}}\n",
                "x".repeat(100)
            )
        })
        .collect();
    let post = || {
        request(
            port,
            "POST",
            "/api/v1/ingest/vitals",
            &[
                ("Authorization", &basic("ana", PASSWORD)),
                ("Content-Type", "application/x-ndjson"),
            ],
            body.as_bytes(),
        )
    };
    let first = post();
    assert_eq!(first.status, 202, "{}", first.text());
    let second = post();
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(
        second.text().contains("waiting for the lake"),
        "{}",
        second.text()
    );
    assert!(
        second.headers.iter().any(|(n, _)| n == "retry-after"),
        "{:?}",
        second.headers
    );
    drop(child);
}

#[test]
fn remembered_event_ids_are_a_window_of_the_newest() {
    let ws = Workspace::new();
    ws.add_user("ana", PASSWORD, "admin");
    let (_child, port) = serve(&ws, &["--stream-dedupe-window", "3"]);
    let send = |ids: &[&str]| {
        let body: String = ids
            .iter()
            .map(|id| format!("{{\"event_id\":\"{id}\",\"v\":1}}\n"))
            .collect();
        let reply = request(
            port,
            "POST",
            "/api/v1/ingest/window_test",
            &[
                ("Authorization", &basic("ana", PASSWORD)),
                ("Content-Type", "application/x-ndjson"),
            ],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 202, "{}", reply.text());
        let body = reply.json();
        (
            body["accepted"].as_u64().unwrap(),
            body["duplicates"].as_u64().unwrap(),
        )
    };
    assert_eq!(send(&["e1", "e2", "e3", "e4"]), (4, 0));
    // e2, e3 and e4 are the window: duplicates; e1 left it and is taken again.
    assert_eq!(send(&["e2", "e3", "e4"]), (0, 3));
    assert_eq!(send(&["e1"]), (1, 0));
}
