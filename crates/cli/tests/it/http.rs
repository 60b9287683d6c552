//! The HTTP API on the real binary: sign-in, queries in three formats, the catalog, bearer
//! tokens, and streamed events that are durable when acknowledged, stored once per event id,
//! and all in the lake exactly once after the server is killed and restarted.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::{Workspace, spawn_serve_with};

const USER: &str = "tester";
const PASSWORD: &str = "a long test password";

/// A running `carelake serve` with the HTTP API on a free port.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
}

impl Server {
    pub(crate) fn start(ws: &Workspace) -> Self {
        Self::start_with_env(ws, &[])
    }

    /// [`Server::start`] with extra environment.
    pub(crate) fn start_with_env(ws: &Workspace, env: &[(&str, &str)]) -> Self {
        let (child, line) = spawn_serve_with(
            ws,
            &["--http-listen", "127.0.0.1:0", "--flush-seconds", "0.2"],
            env,
        );
        let port = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Self { child, port }
    }

    /// A crash: no shutdown, no flush.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response: status, headers (lower-case names) and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One HTTP/1.1 request on its own connection.
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

fn workspace_with_user() -> Workspace {
    let ws = Workspace::new();
    ws.add_user(USER, PASSWORD, "admin");
    ws
}

/// Polls a query until it returns `expected` (the flush runs in the background).
fn wait_for(ws: &Workspace, sql: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let out = ws.run(&["sql", sql, "--format", "csv"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().nth(1) == Some(expected) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{sql}: still {text:?}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn queries_catalog_tokens_and_ingest() {
    let ws = workspace_with_user();
    let file = ws.write(
        "patients.csv",
        "mrn,name,age\nM1,Alice Smith,34\nM2,Bob Jones,51\nM3,Carol White,28\n",
    );
    ws.ok(&["load", &file, "--into", "raw.patients"]);
    let server = Server::start(&ws);
    let port = server.port;
    let auth = basic(USER, PASSWORD);

    // Health needs no sign-in; everything else does.
    assert_eq!(request(port, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(request(port, "GET", "/readyz", &[], b"").status, 200);
    let denied = request(port, "POST", "/api/v1/query", &[], b"SELECT 1");
    assert_eq!(denied.status, 401);
    assert!(
        denied
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    let wrong = basic(USER, "not the password");
    assert_eq!(
        request(
            port,
            "POST",
            "/api/v1/query",
            &[("Authorization", &wrong)],
            b"SELECT 1"
        )
        .status,
        401
    );
    assert_eq!(
        request(
            port,
            "POST",
            "/api/v1/query",
            &[("Authorization", &basic("nobody", PASSWORD))],
            b"SELECT 1"
        )
        .status,
        401
    );

    // A query: JSON by default, CSV and Arrow IPC on request; a row limit is said.
    let sql = br#"{"sql": "SELECT mrn, age FROM raw.patients ORDER BY mrn"}"#;
    let json = request(
        port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        sql,
    );
    assert_eq!(json.status, 200, "{}", json.text());
    let value = json.json();
    assert_eq!(value["row_count"], 3);
    assert_eq!(value["rows"][1]["mrn"], "M2");
    assert_eq!(value["rows"][1]["age"], 51);
    assert_eq!(value["columns"][0]["name"], "mrn");
    let csv = request(
        port,
        "POST",
        "/api/v1/query",
        &[("Authorization", &auth), ("Accept", "text/csv")],
        b"SELECT mrn, age FROM raw.patients ORDER BY mrn",
    );
    assert_eq!(csv.text(), "mrn,age\nM1,34\nM2,51\nM3,28\n");
    let arrow = request(
        port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &auth),
            ("Accept", "application/vnd.apache.arrow.stream"),
        ],
        b"SELECT mrn FROM raw.patients",
    );
    assert_eq!(arrow.status, 200);
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body), None)
        .expect("an Arrow IPC stream");
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
    let limited = request(
        port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"sql": "SELECT * FROM raw.patients", "max_rows": 2}"#,
    );
    assert_eq!(limited.json()["row_count"], 2);
    assert_eq!(limited.header("x-carelake-truncated"), Some("true"));
    // An engine error is a 400 that does not repeat the value it could not read.
    let error = request(
        port,
        "POST",
        "/api/v1/query",
        &[("Authorization", &auth)],
        b"SELECT CAST(name AS INT) FROM raw.patients",
    );
    assert_eq!(error.status, 400);
    assert!(error.json()["error"].is_string());
    assert!(!error.text().contains("Smith"), "{}", error.text());

    // A bearer token, then the catalog with it.
    let token = request(
        port,
        "POST",
        "/api/v1/tokens",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(token.status, 201);
    let bearer = format!("Bearer {}", token.json()["token"].as_str().unwrap());
    let tables = request(
        port,
        "GET",
        "/api/v1/tables",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(tables.status, 200);
    assert!(tables.text().contains("raw.patients"), "{}", tables.text());
    let table = request(
        port,
        "GET",
        "/api/v1/tables/raw.patients",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(table.status, 200, "{}", table.text());
    let table = table.json();
    assert_eq!(table["table"]["row_count"], 3);
    assert_eq!(table["columns"][0]["column_name"], "mrn");
    assert_eq!(
        request(
            port,
            "GET",
            "/api/v1/tables/raw.nothing",
            &[("Authorization", &bearer)],
            b""
        )
        .status,
        404
    );
    assert_eq!(
        request(
            port,
            "GET",
            "/api/v1/tables",
            &[("Authorization", "Bearer clk_forged")],
            b""
        )
        .status,
        401
    );

    // Streamed events: acknowledged once logged, stored once per event id.
    let events = "{\"event_id\":\"e1\",\"device_id\":\"MON-1\",\"type\":\"heart_rate\",\"value\":72}\n\
                  {\"event_id\":\"e2\",\"device_id\":\"MON-1\",\"type\":\"spo2\",\"value\":97}\n\
                  {\"event_id\":\"e3\",\"device_id\":\"MON-2\",\"type\":\"heart_rate\",\"value\":88,\"note\":{\"lead\":\"II\"}}\n";
    let ndjson = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-ndjson"),
    ];
    let first = request(
        port,
        "POST",
        "/api/v1/ingest/monitor_events",
        &ndjson,
        events.as_bytes(),
    );
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(first.json()["accepted"], 3);
    let again = request(
        port,
        "POST",
        "/api/v1/ingest/monitor_events",
        &ndjson,
        events.as_bytes(),
    );
    assert_eq!(again.json()["accepted"], 0);
    assert_eq!(again.json()["duplicates"], 3);
    // A malformed body stores nothing and says which line.
    let bad = request(
        port,
        "POST",
        "/api/v1/ingest/monitor_events",
        &ndjson,
        b"{\"event_id\":\"e4\",\"value\":1}\nnot json\n",
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("line 2"), "{}", bad.text());
    assert_eq!(
        request(port, "POST", "/api/v1/ingest/Bad-Name", &ndjson, b"{}").status,
        400
    );
    // One object, or an array of them.
    let one = request(
        port,
        "POST",
        "/api/v1/ingest/monitor_events",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"event_id":"e5","device_id":"MON-3","type":"spo2","value":99}"#,
    );
    assert_eq!(one.json()["accepted"], 1);
    wait_for(
        &ws,
        "SELECT count(*), count(DISTINCT event_id) FROM raw.monitor_events",
        "4,4",
    );
    assert_eq!(
        ws.scalar("SELECT note FROM raw.monitor_events WHERE event_id = 'e3'"),
        "\"{\"\"lead\"\":\"\"II\"\"}\""
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.monitor_events WHERE event_id = 'e4'"),
        "0"
    );
    let metrics = request(port, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("carelake_ingest_accepted_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("carelake_ingest_duplicates_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("carelake_http_requests_total{route=\"/api/v1/query\",status=\"200\"}"),
        "{metrics}"
    );
    // Latency histograms, with their buckets, by interface and route (never a raw path).
    for family in [
        "carelake_query_duration_seconds_bucket{interface=\"http\"",
        "carelake_http_request_duration_seconds_bucket{route=\"/api/v1/query\"",
        "carelake_ingest_ack_duration_seconds_count",
        "# TYPE carelake_query_duration_seconds histogram",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    assert!(
        !metrics.contains("MON-2"),
        "a value of the data in the metrics:\n{metrics}"
    );
    // The same query as JSON and then as CSV: the second answer came from the result cache.
    let hits: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("carelake_result_cache_hits_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(hits >= 1, "{metrics}");
    drop(server);
}

#[test]
fn acknowledged_events_survive_a_kill_exactly_once() {
    let ws = workspace_with_user();
    let server = Server::start(&ws);
    let port = server.port;
    let auth = basic(USER, PASSWORD);
    // Four clients send batches of 25 events; the server is killed while they send.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut clients = Vec::new();
    for client in 0..4 {
        let acknowledged = std::sync::Arc::clone(&acknowledged);
        let auth = auth.clone();
        clients.push(std::thread::spawn(move || {
            for batch in 0..200 {
                let ids: Vec<String> = (0..25).map(|i| format!("c{client}-b{batch}-{i}")).collect();
                let body: String = ids
                    .iter()
                    .map(|id| format!("{{\"event_id\":\"{id}\",\"device_id\":\"MON-{client}\",\"value\":{batch}}}\n"))
                    .collect();
                let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let head = format!(
                    "POST /api/v1/ingest/kill_test HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body.as_bytes()).is_err() {
                    return;
                }
                let mut reply = String::new();
                if stream.read_to_string(&mut reply).is_err() || !reply.starts_with("HTTP/1.1 202") {
                    return;
                }
                acknowledged.lock().unwrap().extend(ids);
            }
        }));
    }
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 2000 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    for c in clients {
        c.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 2000,
        "only {} acknowledged",
        acknowledged.len()
    );
    // Restarted, the server puts back what the log has and the lake lacks.
    let server = Server::start(&ws);
    // The table appears with the first flush after the restart when none came before.
    let stored = ws.wait_for_ids("SELECT event_id FROM raw.kill_test", &acknowledged);
    let distinct: HashSet<&String> = stored.iter().collect();
    assert_eq!(
        distinct.len(),
        stored.len(),
        "an event is in the lake twice"
    );
    println!(
        "kill and restart: {} events acknowledged, {} in the lake ({} logged but not acknowledged when killed)",
        acknowledged.len(),
        stored.len(),
        stored.len() - acknowledged.len()
    );
    // A resend of everything after the restart adds nothing.
    let count_sql = "SELECT count(*) FROM raw.kill_test";
    let before = ws.scalar(count_sql);
    let body: String = acknowledged
        .iter()
        .take(500)
        .map(|id| format!("{{\"event_id\":\"{id}\",\"value\":0}}\n"))
        .collect();
    let reply = request(
        server.port,
        "POST",
        "/api/v1/ingest/kill_test",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
        ],
        body.as_bytes(),
    );
    assert_eq!(reply.json()["duplicates"], 500);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(ws.scalar(count_sql), before);
}

#[test]
fn fhir_resources_bundles_and_ndjson_load_once() {
    let ws = workspace_with_user();
    let server = Server::start(&ws);
    let auth = basic(USER, PASSWORD);
    let post = |body: &str, content_type: &str| {
        request(
            server.port,
            "POST",
            "/api/v1/fhir",
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body.as_bytes(),
        )
    };
    let bundle = r#"{"resourceType":"Bundle","type":"collection","entry":[
        {"resource":{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1950-02-03",
                     "name":[{"family":"Testperson","given":["Ada"]}]}},
        {"resource":{"resourceType":"Encounter","id":"e1","status":"finished",
                     "class":{"code":"IMP"},"subject":{"reference":"Patient/p1"},
                     "period":{"start":"2026-01-02T08:00:00Z","end":"2026-01-05T10:00:00Z"}}}]}"#;
    let reply = post(bundle, "application/fhir+json");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "loaded", "{body}");
    assert_eq!(body["resources"], 2, "{body}");
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.fhir_patient"), "1");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.fhir_encounter"),
        "1"
    );

    // The same body again: recognised, nothing added.
    let again = post(bundle, "application/fhir+json").json();
    assert_eq!(again["status"], "skipped", "{again}");
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.fhir_patient"), "1");

    // One resource, and NDJSON of several.
    let one = post(
        r#"{"resourceType":"Patient","id":"p2","gender":"male","birthDate":"1961-07-08"}"#,
        "application/json",
    );
    assert_eq!(one.status, 200, "{}", one.text());
    let ndjson = "{\"resourceType\":\"Patient\",\"id\":\"p3\"}\n{\"resourceType\":\"Patient\",\"id\":\"p4\"}\n";
    let many = post(ndjson, "application/x-ndjson");
    assert_eq!(many.json()["resources"], 2, "{}", many.text());
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.fhir_patient"), "4");

    // Not FHIR: a 400 that says why, and nothing stored.
    let bad = post(
        "{\"resourceType\":\"Patient\"}\n{\"name\":\"x\"}\n",
        "application/x-ndjson",
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("line 2"), "{}", bad.text());
    let bad = post("{\"hello\": 1}", "application/json");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.fhir_patient"), "4");
}
