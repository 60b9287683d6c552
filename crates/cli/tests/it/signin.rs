//! Sign-in under attack and revocation, on the real binary: a flood of wrong passwords in
//! parallel is throttled without exhausting memory while a signed-in user goes on; repeated
//! failures lock an account until an admin unlocks it; tokens are issued only against a
//! password, survive a restart, and end when revoked or when their user is disabled — over
//! HTTP and on an open Postgres connection.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::{Server, basic, request};
use crate::support::{KillOnDrop, Workspace, spawn_serve};

const ADMIN: &str = "tester";
const PASSWORD: &str = "a long test password";
const VICTIM: &str = "victim";
const VICTIM_PASSWORD: &str = "the victim's password";

/// Kibibytes of a process's memory from /proc (`VmRSS`, `VmHWM`); `None` off Linux.
fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// One HTTP request from another loopback address (127.0.0.2), so that the back-off of
/// 127.0.0.1 does not apply to it.
fn request_from_other_address(port: u16, path: &str, auth: &str) -> u16 {
    use std::io::Read;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .unwrap()
            .into_std()
            .unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    let mut stream = stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    raw.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn sql_body(sql: &str) -> Vec<u8> {
    serde_json::json!({ "sql": sql }).to_string().into_bytes()
}

#[test]
fn a_flood_of_wrong_passwords_is_throttled_and_locks_the_account() {
    let ws = Workspace::new();
    ws.add_user(ADMIN, PASSWORD, "admin");
    ws.add_user(VICTIM, VICTIM_PASSWORD, "admin");
    let (child, line) = spawn_serve(
        &ws,
        &["--http-listen", "127.0.0.1:0", "--lockout-after", "3"],
    );
    let port: u16 = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let child = KillOnDrop(child);
    let pid = child.id();
    let admin = basic(ADMIN, PASSWORD);
    // A token taken before the flood: the signed-in user who must go on being served.
    let token = request(
        port,
        "POST",
        "/api/v1/tokens",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(token.status, 201, "{}", token.text());
    let bearer = format!("Bearer {}", token.json()["token"].as_str().unwrap());
    // A token cannot get another token.
    let renewed = request(
        port,
        "POST",
        "/api/v1/tokens",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(renewed.status, 401, "{}", renewed.text());
    // Three wrong passwords for the victim (from another address) lock the account: even the
    // right password is refused then.
    let wrong = basic(VICTIM, "not the password");
    for _ in 0..3 {
        assert_eq!(
            request_from_other_address(port, "/api/v1/tables", &wrong),
            401
        );
    }
    let victim = basic(VICTIM, VICTIM_PASSWORD);
    assert_eq!(
        request_from_other_address(port, "/api/v1/tables", &victim),
        401
    );
    let rss_before = memory_kib(pid, "VmRSS");

    // 400 wrong passwords at once: for the victim, and for names that do not exist.
    let started = Instant::now();
    let attempts: Vec<_> = (0..400)
        .map(|i| {
            std::thread::spawn(move || {
                let name = if i % 2 == 0 {
                    VICTIM.to_string()
                } else {
                    format!("nobody{i}")
                };
                let auth = basic(&name, &format!("guess number {i}"));
                let reply = request(
                    port,
                    "POST",
                    "/api/v1/query",
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                    &sql_body("SELECT 1"),
                );
                (reply.status, reply.text())
            })
        })
        .collect();
    // A connection reset counts as 0 (the listener's backlog must hold the burst).
    let replies: Vec<(u16, String)> = attempts
        .into_iter()
        .map(|t| t.join().unwrap_or((0, "connection reset".to_string())))
        .collect();
    let flood = started.elapsed();
    let statuses: Vec<u16> = replies.iter().map(|r| r.0).collect();
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert!(
        statuses.iter().all(|s| [0, 401, 503].contains(s)),
        "unexpected statuses: {statuses:?}"
    );
    // Only the attempts refused as a wrong password ran Argon2id: a few, not 400.
    let verified = replies
        .iter()
        .filter(|r| r.1.contains("wrong user name or password"))
        .count();
    assert!(verified <= 40, "{verified} attempts ran Argon2id");
    let throttled = replies
        .iter()
        .filter(|r| r.1.contains("try again in"))
        .count();
    assert_eq!(count(0), 0, "connections reset");
    let peak = memory_kib(pid, "VmHWM");
    eprintln!(
        "flood of 400 wrong passwords: {:.2} s, Argon2id run {verified} times, 401: {} (of which throttled: {throttled}), 503: {}, reset: {}, RSS before {:?} KiB, peak {:?} KiB",
        flood.as_secs_f64(),
        count(401),
        count(503),
        count(0),
        rss_before,
        peak
    );
    if let Some(peak) = peak {
        // Unbounded, 400 Argon2id verifications at once would need ~7.6 GiB.
        assert!(peak < 1024 * 1024, "peak memory {peak} KiB");
    }

    // The signed-in user goes on.
    let answered = request(
        port,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &sql_body("SELECT 40 + 2 AS answer"),
    );
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert!(answered.text().contains("42"), "{}", answered.text());
    // From this address, further attempts wait (Retry-After), even with the right password
    // of someone not verified before.
    let waiting = request(
        port,
        "GET",
        "/api/v1/tables",
        &[("Authorization", &basic("nobody1", "x"))],
        b"",
    );
    assert_eq!(waiting.status, 401, "{}", waiting.text());
    assert!(
        waiting.text().contains("try again in"),
        "{}",
        waiting.text()
    );
    assert!(
        waiting.headers.iter().any(|(n, _)| n == "retry-after"),
        "{:?}",
        waiting.headers
    );

    // The victim's account is still locked.
    assert_eq!(
        request_from_other_address(port, "/api/v1/tables", &victim),
        401
    );
    let users = ws.run(&["user", "list"]);
    let listing = String::from_utf8_lossy(&users.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(VICTIM) && l.contains("locked")),
        "{listing}"
    );
    // An admin unlocks it; the right password works at once (from an address not held back).
    ws.ok(&["user", "unlock", VICTIM]);
    let started = Instant::now();
    loop {
        let status = request_from_other_address(port, "/api/v1/tables", &victim);
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {status} after the unlock"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(child);

    // The audit log has the refusals and the lock-out, without any password.
    let audit = ws.run(&["audit", "--limit", "100000"]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(audit.contains("locked after 3 failed sign-ins"), "{audit}");
    assert!(audit.contains("too many failed sign-ins"), "{audit}");
    assert!(audit.contains("the account is locked"), "{audit}");
    assert!(!audit.contains("guess number"), "{audit}");
}

#[test]
fn tokens_survive_a_restart_and_end_when_revoked_or_disabled() {
    let ws = Workspace::new();
    ws.add_user(ADMIN, PASSWORD, "admin");
    ws.add_user(VICTIM, VICTIM_PASSWORD, "admin");
    let server = Server::start(&ws);
    let token_of = |port: u16, user: &str, password: &str| -> String {
        let reply = request(
            port,
            "POST",
            "/api/v1/tokens",
            &[("Authorization", &basic(user, password))],
            b"",
        );
        assert_eq!(reply.status, 201, "{}", reply.text());
        format!("Bearer {}", reply.json()["token"].as_str().unwrap())
    };
    let status = |port: u16, bearer: &str| {
        request(
            port,
            "GET",
            "/api/v1/tables",
            &[("Authorization", bearer)],
            b"",
        )
        .status
    };
    let first = token_of(server.port, VICTIM, VICTIM_PASSWORD);
    let second = token_of(server.port, VICTIM, VICTIM_PASSWORD);
    assert_eq!(status(server.port, &first), 200);
    // The lake keeps hashes only.
    let raw = String::from_utf8_lossy(&ws.run(&["token", "list"]).stdout).into_owned();
    assert_eq!(
        raw.lines().filter(|l| l.contains(VICTIM)).count(),
        2,
        "{raw}"
    );
    let secret = first.trim_start_matches("Bearer ");
    let files =
        crate::support::all_bytes_under(&std::path::Path::new(&ws.lake()).join("_carelake"));
    assert!(
        !files.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "a token is stored in the clear"
    );
    drop(server);

    // After a restart both still work.
    let server = Server::start(&ws);
    assert_eq!(status(server.port, &first), 200);
    assert_eq!(status(server.port, &second), 200);
    // Revoke the first by its id, from the command line, while the server runs.
    let id = secret
        .strip_prefix("clk_")
        .and_then(|r| r.split('_').next())
        .unwrap();
    ws.ok(&["token", "revoke", id]);
    let gone = |bearer: &str| {
        let started = Instant::now();
        while status(server.port, bearer) != 401 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "a revoked token still works"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    gone(&first);
    assert_eq!(status(server.port, &second), 200);
    // Disabling the user ends the second, and their remembered password.
    ws.ok(&["user", "disable", VICTIM]);
    gone(&second);
    assert_eq!(
        request(
            server.port,
            "GET",
            "/api/v1/tables",
            &[("Authorization", &basic(VICTIM, VICTIM_PASSWORD))],
            b"",
        )
        .status,
        401
    );
    // Enabled again, old tokens stay void; a new sign-in works.
    ws.ok(&["user", "enable", VICTIM]);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(status(server.port, &second), 401);
    let third = token_of(server.port, VICTIM, VICTIM_PASSWORD);
    assert_eq!(status(server.port, &third), 200);
    // An admin's revocation ends it too.
    ws.ok(&["user", "revoke", VICTIM]);
    gone(&third);
    let listed = String::from_utf8_lossy(&ws.run(&["token", "list", "--all"]).stdout).into_owned();
    assert!(
        listed.contains("revoked") && listed.contains("void"),
        "{listed}"
    );
}

#[test]
fn an_open_postgres_connection_ends_when_its_user_is_disabled() {
    let Some(psql) = crate::support::program("psql", "an_open_postgres_connection_ends") else {
        return;
    };
    let ws = Workspace::new();
    ws.add_user(ADMIN, PASSWORD, "admin");
    let (child, lines) = spawn_serve(&ws, &["--pg-listen", "127.0.0.1:0", "--http-listen", "off"]);
    let child = KillOnDrop(child);
    let port = lines
        .lines()
        .find(|l| l.starts_with("Postgres"))
        .and_then(|l| l.split("port=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no Postgres port in {lines:?}"))
        .to_string();
    let mut session = Command::new(psql)
        .args([
            &format!("host=127.0.0.1 port={port} user={ADMIN} dbname=carelake sslmode=disable"),
            "-X",
            "-A",
            "-t",
        ])
        .env("PGPASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let mut stdin = session.stdin.take().unwrap();
    writeln!(stdin, "SELECT 'before' AS phase;").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    ws.ok(&["user", "disable", ADMIN]);
    std::thread::sleep(Duration::from_millis(1500));
    writeln!(stdin, "SELECT 'after' AS phase;").unwrap();
    writeln!(stdin, "\\q").unwrap();
    drop(stdin);
    let out = session.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("before"), "{stdout} {stderr}");
    assert!(!stdout.contains("after"), "{stdout} {stderr}");
    assert!(stderr.contains("the session has ended"), "{stderr}");
    drop(child);
}
