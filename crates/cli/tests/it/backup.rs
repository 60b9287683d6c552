//! `carelake backup`, `restore` and `check` on the real binary: a backup taken while events
//! stream in restores into a lake that has every event acknowledged before the backup began
//! (once each), with its users; a second backup stores only what is new; `check` finds a
//! missing data file and exits 4.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{Server, basic, request};
use crate::support::Workspace;

const USER: &str = "backup-tester";
const PASSWORD: &str = "a long backup password";

/// Sends batches of events to `stream` until `stop`; records the ids of acknowledged batches.
fn send_until(
    port: u16,
    client: usize,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<HashSet<String>>>,
) {
    let auth = basic(USER, PASSWORD);
    let mut batch = 0;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<String> = (0..20).map(|i| format!("c{client}-b{batch}-{i}")).collect();
        let body: String = ids
            .iter()
            .map(|id| {
                format!(
                    "{{\"event_id\":\"{id}\",\"device_id\":\"MON-{client}\",\"value\":{batch}}}\n"
                )
            })
            .collect();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let head = format!(
            "POST /api/v1/ingest/backup_test HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
        acknowledged.lock().unwrap().extend(ids);
        batch += 1;
    }
}

/// The number after `stored ` in a backup's summary, in bytes (`12.3 MB`, `0 B`).
/// The files a backup's summary says the lake had, and the files it read (the new ones):
/// "…, 191 files (755.0 kB); read 122 files (570.2 kB), …".
fn files_in(summary: &str) -> (usize, usize) {
    let number_before = |text: &str, marker: &str| -> usize {
        let rest = text
            .split(marker)
            .nth(1)
            .unwrap_or_else(|| panic!("no {marker:?} in {summary}"));
        rest.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count after {marker:?} in {summary}"))
    };
    let taken = summary.split("; read").next().unwrap_or_default();
    let total = taken
        .rsplit(", ")
        .next()
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no file count in {summary}"));
    (total, number_before(summary, "; read "))
}

#[test]
fn a_backup_taken_under_load_restores_every_acknowledged_event() {
    let ws = Workspace::new();
    ws.add_user(USER, PASSWORD, "admin");
    let wards = ws.write("wards.csv", "ward,beds\nNorth,20\nSouth,14\nEast,31\n");
    ws.ok(&["load", &wards, "--into", "raw.wards"]);
    let server = Server::start(&ws);
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let clients: Vec<_> = (0..2)
        .map(|client| {
            let (stop, acknowledged) = (Arc::clone(&stop), Arc::clone(&acknowledged));
            let port = server.port;
            std::thread::spawn(move || send_until(port, client, stop, acknowledged))
        })
        .collect();
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 400 {
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Everything acknowledged before the backup begins must be in it.
    let before = acknowledged.lock().unwrap().clone();
    let backups = ws.path("backups").to_string_lossy().into_owned();
    let first = ws.ok(&["backup", "--to", &backups]);
    assert!(first.contains("Backup "), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    let second = ws.ok(&["backup", "--to", &backups]);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    drop(server);
    // The first backup reads every file; the second only those written since (the events
    // streamed meanwhile and the logs), not the tables again.
    let (first_total, first_read) = files_in(&first);
    let (second_total, second_read) = files_in(&second);
    assert_eq!(first_read, first_total, "{first}");
    assert!(
        second_read <= second_total - first_total + 8 && second_read < second_total,
        "first: {first}\nsecond: {second}"
    );
    let list = ws.ok(&["backup", "--to", &backups, "--list"]);
    let ids: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    let verified = ws.ok(&["check", "--backup", &backups]);
    assert!(verified.contains("all sound"), "{verified}");

    // The first backup restored into a new lake: the server there replays the log it holds.
    let restored = Workspace {
        dir: tempfile::tempdir().unwrap(),
    };
    let out = restored.ok(&["restore", "--from", &backups, "--as-of", ids[0]]);
    assert!(out.contains("Checked:"), "{out}");
    assert_eq!(
        restored.query("SELECT ward, beds FROM raw.wards ORDER BY ward"),
        ["East,31", "North,20", "South,14"]
    );
    let server = Server::start(&restored);
    let rows = restored.wait_for_ids("SELECT event_id FROM raw.backup_test", &before);
    let distinct: HashSet<&String> = rows.iter().collect();
    assert_eq!(distinct.len(), rows.len(), "an event is restored twice");
    // The lake's users came with it.
    let reply = request(
        server.port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &basic(USER, PASSWORD)),
            ("Content-Type", "application/json"),
        ],
        br#"{"sql": "SELECT count(*) AS n FROM raw.wards"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    drop(server);
    println!(
        "backup under load: {} events acknowledged before the backup, {} in the restored lake",
        before.len(),
        rows.len()
    );
    // A restore refuses a lake that is not empty.
    let again = restored.fails(&["restore", "--from", &backups]);
    assert!(again.contains("empty"), "{again}");
}

#[test]
fn check_finds_a_missing_data_file() {
    let ws = Workspace::new();
    let csv = ws.write("beds.csv", "ward,beds\nNorth,20\nSouth,14\n");
    ws.ok(&["load", &csv, "--into", "raw.beds"]);
    let sound = ws.ok(&["check", "--full"]);
    assert!(sound.contains("sound"), "{sound}");
    let table = ws.path("lake").join("raw").join("beds");
    let parquet = std::fs::read_dir(&table)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a data file");
    std::fs::remove_file(&parquet).unwrap();
    let out = ws.run(&["check"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("problem: raw/beds"), "{text}");
    // A backup inside the lake is refused.
    let inside = ws
        .path("lake")
        .join("backups")
        .to_string_lossy()
        .into_owned();
    let err = ws.fails(&["backup", "--to", &inside]);
    assert!(err.contains("lake"), "{err}");
}
