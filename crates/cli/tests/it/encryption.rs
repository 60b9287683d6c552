//! An encrypted lake on the real binary: no plaintext of a known patient anywhere in its files
//! (tables, Delta logs, the write-ahead log), readable after a restart with the key, refused
//! without it or with another, still readable after `key rotate` with the new key only; the
//! lake's files owner-only.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::http::{basic, request};
use crate::support::{KillOnDrop, Workspace, all_bytes_under, spawn_serve};

fn run_with_key(ws: &Workspace, key: &Path, args: &[&str]) -> Output {
    ws.command(args)
        .env("CARELAKE_KEY_FILE", key)
        .output()
        .expect("run carelake")
}

fn ok_with_key(ws: &Workspace, key: &Path, args: &[&str]) -> String {
    crate::support::succeeded(args, run_with_key(ws, key, args))
}

fn scalar_with_key(ws: &Workspace, key: &Path, sql: &str) -> String {
    let out = ok_with_key(ws, key, &["sql", sql, "--format", "csv"]);
    out.lines().nth(1).unwrap_or_default().to_string()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Patients of the generated data: (last name, MRN, SSN, phone).
fn known_patients(data: &Path, n: usize) -> Vec<[String; 4]> {
    let mut reader = csv::Reader::from_path(data.join("patients.csv")).expect("patients.csv");
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (last, mrn, ssn, phone) = (col("last_name"), col("mrn"), col("ssn"), col("phone"));
    reader
        .records()
        .map(Result::unwrap)
        .filter(|r| r[last].len() >= 6)
        .take(n)
        .map(|r| {
            [
                r[last].to_string(),
                r[mrn].to_string(),
                r[ssn].to_string(),
                r[phone].to_string(),
            ]
        })
        .collect()
}

#[cfg(unix)]
fn assert_owner_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "folder {} is {mode:o}", d.display());
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "file {} is {mode:o}", path.display());
                files += 1;
            }
        }
    }
    assert!(files > 20, "only {files} files under {}", dir.display());
}

#[test]
fn an_encrypted_lake_holds_no_plaintext_and_opens_only_with_its_key() {
    let ws = Workspace {
        dir: tempfile::tempdir().unwrap(),
    };
    let key = ws.path("lake.key");
    let out = ws.ok(&["--key-file", key.to_str().unwrap(), "init", "--encrypt"]);
    assert!(out.contains("encrypted"), "{out}");
    assert!(key.is_file(), "init --encrypt makes the key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The demo's data, loaded and curated into the encrypted lake.
    let data = ws.path("data");
    let out = run_with_key(
        &ws,
        &key,
        &[
            "demo",
            "--no-serve",
            "--patients",
            "150",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patients = known_patients(&data, 25);
    assert!(patients.len() >= 10);
    let [name, mrn, _, _] = &patients[0];
    let found = scalar_with_key(
        &ws,
        &key,
        &format!("SELECT count(*) FROM raw.patients WHERE last_name = '{name}' AND mrn = '{mrn}'"),
    );
    assert_eq!(found, "1", "the patient is in the lake and reads back");

    // No name, MRN, SSN or phone of a known patient in any byte of the lake's files.
    let lake = PathBuf::from(ws.lake());
    let bytes = all_bytes_under(&lake);
    assert!(bytes.len() > 100_000);
    for patient in &patients {
        for value in patient {
            assert!(
                !contains(&bytes, value),
                "plaintext of a known patient in the lake's files"
            );
        }
    }
    #[cfg(unix)]
    assert_owner_only(&lake);
    assert!(
        lake.join("_carelake/keys/pseudonym.key").is_file(),
        "the lake's own files are inside it"
    );

    // Without the key, or with another key, the lake does not open.
    let err = ws.fails(&["sql", "SELECT count(*) FROM raw.patients"]);
    assert!(err.contains("encrypted"), "{err}");
    let other = ws.path("other.key");
    ws.ok(&["key", "new", other.to_str().unwrap()]);
    let out = run_with_key(&ws, &other, &["sql", "SELECT 1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not open this lake"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Rotation: the new key opens everything (old files and new), the old key nothing.
    let rows = scalar_with_key(&ws, &key, "SELECT count(*) FROM raw.encounters");
    let key2 = ws.path("lake2.key");
    let out = ok_with_key(
        &ws,
        &key,
        &["key", "rotate", "--new-key-file", key2.to_str().unwrap()],
    );
    assert!(out.contains("re-wrapped"), "{out}");
    assert_eq!(
        scalar_with_key(&ws, &key2, "SELECT count(*) FROM raw.encounters"),
        rows
    );
    let out = run_with_key(&ws, &key, &["sql", "SELECT 1"]);
    assert!(
        !out.status.success(),
        "the old key no longer opens the lake"
    );
    let file = ws.write("more.csv", "mrn,note\nZ1,Quuxwellington\n");
    ok_with_key(&ws, &key2, &["load", &file, "--into", "raw.more"]);
    assert_eq!(
        scalar_with_key(&ws, &key2, "SELECT note FROM raw.more"),
        "Quuxwellington"
    );
    assert!(!contains(&all_bytes_under(&lake), "Quuxwellington"));
    let audit = ok_with_key(
        &ws,
        &key2,
        &[
            "sql",
            "SELECT count(*) FROM system.audit WHERE action = 'key_rotate'",
            "--format",
            "csv",
        ],
    );
    assert_eq!(audit.lines().nth(1), Some("1"), "{audit}");
}

#[test]
fn streamed_events_wait_encrypted_in_the_write_ahead_log() {
    let ws = Workspace {
        dir: tempfile::tempdir().unwrap(),
    };
    let key = ws.path("lake.key");
    ws.ok(&["--key-file", key.to_str().unwrap(), "init", "--encrypt"]);
    let out = ws
        .command(&["user", "add", "tester", "--roles", "admin"])
        .env("CARELAKE_KEY_FILE", &key)
        .env("CARELAKE_PASSWORD", "a long test password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wal = ws.path("wal");
    let serve = |flush_seconds: &str| {
        let args = [
            "--http-listen",
            "127.0.0.1:0",
            "--key-file",
            key.to_str().unwrap(),
            "--wal-dir",
            wal.to_str().unwrap(),
            "--flush-seconds",
            flush_seconds,
        ];
        spawn_serve(&ws, &args)
    };
    // A long flush interval: the events stay in the write-ahead log.
    let (child, lines) = serve("3600");
    let server = KillOnDrop(child);
    let port: u16 = crate::support::served_at(&lines, "http")
        .and_then(|url| url.rsplit(':').next().and_then(|p| p.parse().ok()))
        .unwrap_or_else(|| panic!("no port in {lines}"));
    let auth = basic("tester", "a long test password");
    let body = b"{\"event_id\":\"e1\",\"note\":\"Zebulonquist visited\"}\n";
    let reply = request(
        port,
        "POST",
        "/api/v1/ingest/notes",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
        ],
        body,
    );
    assert_eq!(reply.status, 202, "{}", reply.text());
    let logged = all_bytes_under(&wal);
    assert!(logged.len() > body.len(), "the event is in the log");
    assert!(
        !contains(&logged, "Zebulonquist"),
        "the log holds plaintext"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    // A crash, then a restart with the key: the event reaches the lake from the log.
    drop(server);
    let (child, _) = serve("0.2");
    let _server = KillOnDrop(child);
    let started = std::time::Instant::now();
    loop {
        let out = run_with_key(
            &ws,
            &key,
            &["sql", "SELECT count(*) FROM raw.notes", "--format", "csv"],
        );
        if String::from_utf8_lossy(&out.stdout).lines().nth(1) == Some("1") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the logged event did not reach the lake"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(!contains(
        &all_bytes_under(&PathBuf::from(ws.lake())),
        "Zebulonquist"
    ));
}
