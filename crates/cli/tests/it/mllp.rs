//! The MLLP listener on the real binary: concurrent clients get ACKs only for stored messages,
//! resends are stored once, and everything ACKed is in the lake exactly once after a crash and
//! restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

use crate::support::{Workspace, program, python_with, self_signed, spawn_serve_with};

/// A running `carelake serve --mllp` process.
struct Listener {
    child: Child,
    port: u16,
}

impl Listener {
    fn start(ws: &Workspace) -> Self {
        Self::start_with(ws, &[])
    }

    fn start_with(ws: &Workspace, extra: &[&str]) -> Self {
        Self::start_with_env(ws, extra, &[])
    }

    fn start_with_env(ws: &Workspace, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["--http-listen", "off", "--mllp", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (child, line) = spawn_serve_with(ws, &args, env);
        let port = line
            .lines()
            .find(|l| l.starts_with("MLLP"))
            .unwrap_or_default()
            .split_whitespace()
            .find_map(|w| w.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Self { child, port }
    }

    /// Kills the process without letting it shut down (a crash).
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn message(sender: &str, id: u32) -> String {
    format!(
        "MSH|^~\\&|{sender}|HOSP|LAKE|HOSP|20240101120000||ORU^R01^ORU_R01|{sender}-{id}|P|2.5.1\rPID|1||{id}^^^HOSP^MR||Doe^Jane\rOBR|1|||2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||{}|mg/dL|70-99|N|||F\r",
        90 + id % 50
    )
}

/// Sends framed messages one at a time on one connection; returns each ACK's MSA-1 and MSA-2.
pub(crate) fn send_all(port: u16, messages: &[String]) -> Vec<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut acks = Vec::new();
    for m in messages {
        let mut frame = vec![0x0b];
        frame.extend_from_slice(m.as_bytes());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&frame).expect("send");
        let mut ack = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            stream.read_exact(&mut byte).expect("read ack");
            if byte[0] == 0x1c {
                stream.read_exact(&mut byte).expect("read ack end");
                break;
            }
            if byte[0] != 0x0b {
                ack.push(byte[0]);
            }
        }
        let text = String::from_utf8(ack).expect("utf-8 ack");
        let msa = text
            .split('\r')
            .find(|s| s.starts_with("MSA"))
            .unwrap_or_else(|| panic!("no MSA in {text:?}"))
            .to_string();
        let fields: Vec<&str> = msa.split('|').collect();
        acks.push((
            fields.get(1).unwrap_or(&"").to_string(),
            fields.get(2).unwrap_or(&"").to_string(),
        ));
    }
    acks
}

#[test]
fn concurrent_clients_resends_and_a_crash() {
    let ws = Workspace::new();
    let listener = Listener::start(&ws);
    let port = listener.port;
    // Four senders at once, 25 messages each, each resending its 5th message.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let sender = format!("S{t}");
                let mut messages: Vec<String> = (1..=25).map(|i| message(&sender, i)).collect();
                messages.insert(10, message(&sender, 5));
                let acks = send_all(port, &messages);
                for (code, _) in &acks {
                    assert_eq!(code, "AA");
                }
                assert_eq!(acks[10].1, format!("{sender}-5"));
                acks.len()
            })
        })
        .collect();
    let sent: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sent, 104);
    // Garbage is refused with AR and a reason.
    let acks = send_all(port, &["PID|1||x".to_string()]);
    assert_eq!(acks[0].0, "AR");

    // A crash, then a restart: everything ACKed is there once; resending it all adds nothing.
    listener.kill();
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "100");
    assert_eq!(
        ws.scalar("SELECT count(DISTINCT sending_application || control_id) FROM raw.hl7_messages"),
        "100"
    );
    let listener = Listener::start(&ws);
    let again: Vec<String> = (1..=25).map(|i| message("S0", i)).collect();
    let acks = send_all(listener.port, &again);
    assert!(acks.iter().all(|(code, _)| code == "AA"));
    let acks = send_all(listener.port, &[message("S9", 1)]);
    assert_eq!(acks[0].0, "AA");
    drop(listener);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "101");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.hl7_observations"),
        "101"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.hl7_messages WHERE transport = 'mllp' AND _source_file LIKE 'mllp://127.0.0.1:%'"),
        "101"
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw._rejects"), "1");
    // Every group is in the audit log, by sending peer: 101 messages stored, the resends as
    // duplicates.
    assert_eq!(
        ws.scalar("SELECT sum(rows) FROM system.audit WHERE interface = 'mllp' AND action = 'ingest' AND tables = 'raw.hl7_messages' AND peer LIKE '127.0.0.1:%'"),
        "101"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) > 0 FROM system.audit WHERE interface = 'mllp' AND rows = 0 AND detail LIKE '0 stored, % duplicates, 0 rejected'"),
        "true"
    );
    assert!(ws.ok(&["audit", "verify"]).contains("intact"));
}

#[test]
fn a_python_client_gets_acks() {
    let Some(python) = python_with("socket", "a_python_client_gets_acks") else {
        return;
    };
    let ws = Workspace::new();
    let listener = Listener::start(&ws);
    let script = r#"
import socket, sys
port = int(sys.argv[1])
msg = "MSH|^~\\&|PY|HOSP|LAKE|HOSP|20240101120000||ADT^A04|PY-1|P|2.5\rPID|1||42^^^HOSP^MR||Roe^Ann\r"
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.sendall(b"\x0b" + msg.encode() + b"\x1c\x0d")
ack = b""
while not ack.endswith(b"\x1c\x0d"):
    chunk = s.recv(4096)
    if not chunk:
        break
    ack += chunk
print(ack.decode().split("\r")[1])
"#;
    let out = Command::new(python)
        .args(["-c", script, &listener.port.to_string()])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("MSA|AA|PY-1"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(listener);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "1");
}

#[test]
fn a_forged_message_reusing_a_control_id_is_a_conflict_not_a_duplicate() {
    let ws = Workspace::new();
    let listener = Listener::start(&ws);
    let real = message("S7", 1);
    // Same sender and control id, different content (another result value).
    let forged = real.replace("||91|mg/dL", "||250|mg/dL");
    assert_ne!(real, forged);
    // A resend with only a new MSH-7 is the same message.
    let resent = real.replace("20240101120000", "20240101120500");
    let acks = send_all(listener.port, &[real.clone(), forged, resent]);
    assert_eq!(acks[0].0, "AA", "{acks:?}");
    assert_eq!(acks[1].0, "AE", "{acks:?}");
    assert_eq!(acks[2].0, "AA", "{acks:?}");
    drop(listener);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "1");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.hl7_observations WHERE value_numeric = 91"),
        "1"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw._rejects WHERE reason LIKE 'conflict:%'"),
        "1"
    );
    // After a restart the store still knows the identity.
    let listener = Listener::start(&ws);
    let forged_again = real.replace("||91|mg/dL", "||180|mg/dL");
    let acks = send_all(listener.port, &[forged_again]);
    assert_eq!(acks[0].0, "AE", "{acks:?}");
}

/// A typed table whose commit fails after the message store's (the message is ACKed) is caught
/// up from the message store before it takes another group, so no later group's transaction
/// version hides the one it missed; a typed table without rows from a group gets no commit, yet
/// every typed table exists once a message is stored.
#[test]
fn a_typed_table_that_missed_groups_is_caught_up_before_the_next() {
    let ws = Workspace::new();
    let plan = ws.write(
        "faults.plan",
        "put@raw/hl7_observations/_delta_log/:error\n",
    );
    let listener = Listener::start_with_env(&ws, &[], &[("CARELAKE_FAULTS", &format!("@{plan}"))]);
    let acks = send_all(listener.port, &[message("LAG", 1), message("LAG", 2)]);
    assert!(acks.iter().all(|(code, _)| code == "AA"), "{acks:?}");
    std::fs::write(&plan, "# mended\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let acks = send_all(listener.port, &[message("LAG", 3), message("LAG", 4)]);
    assert!(acks.iter().all(|(code, _)| code == "AA"), "{acks:?}");
    drop(listener);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "4");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_observations"), "4");
    assert_eq!(
        ws.scalar("SELECT count(DISTINCT _load_id) FROM raw.hl7_observations"),
        "4"
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_diagnoses"), "0");
    // A restart finds nothing to catch up twice.
    let listener = Listener::start(&ws);
    let acks = send_all(listener.port, &[message("LAG", 5)]);
    assert_eq!(acks[0].0, "AA", "{acks:?}");
    drop(listener);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_observations"), "5");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_diagnoses"), "0");
}

/// Whether a plain connection that sends a message is closed without an ACK.
fn closed_without_ack(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return true;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message("PLAIN", 1).as_bytes());
    frame.extend_from_slice(&[0x1c, 0x0d]);
    let _ = stream.write_all(&frame);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    !String::from_utf8_lossy(&answer).contains("MSA|")
}

#[test]
fn mllp_over_tls_and_an_allow_list() {
    let test = "mllp_over_tls_and_an_allow_list";
    let (Some(openssl), Some(python)) = (program("openssl", test), python_with("ssl", test)) else {
        return;
    };
    let ws = Workspace::new();
    let (cert, key) = self_signed(&openssl, &ws, "mllp");
    let listener = Listener::start_with(
        &ws,
        &[
            "--mllp-tls",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    // A Python sender over TLS, checking the server's certificate.
    let script = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=ca)
msg = "MSH|^~\\&|TLS|HOSP|LAKE|HOSP|20240101120000||ADT^A04|TLS-1|P|2.5\rPID|1||42^^^HOSP^MR||Roe^Ann\r"
with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"\x0b" + msg.encode() + b"\x1c\x0d")
        ack = b""
        while not ack.endswith(b"\x1c\x0d"):
            chunk = s.recv(4096)
            if not chunk:
                break
            ack += chunk
print(ack.decode().split("\r")[1])
"#;
    let out = Command::new(&python)
        .args([
            "-c",
            script,
            &listener.port.to_string(),
            cert.to_str().unwrap(),
        ])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("MSA|AA|TLS-1"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A sender in the clear gets nothing stored and no ACK.
    assert!(closed_without_ack(listener.port));
    drop(listener);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "1");

    // Only listed senders may connect.
    let listener = Listener::start_with(&ws, &["--mllp-allow", "10.0.0.0/8,192.168.7.7"]);
    assert!(closed_without_ack(listener.port));
    // The refusal's audit record is written in the background.
    std::thread::sleep(Duration::from_secs(2));
    drop(listener);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "1");
    assert_eq!(
        ws.scalar("SELECT count(*) > 0 FROM system.audit WHERE interface = 'mllp' AND outcome = 'denied' AND detail LIKE '%allow-list%'"),
        "true"
    );
    let listener = Listener::start_with(&ws, &["--mllp-allow", "127.0.0.0/8"]);
    let acks = send_all(listener.port, &[message("LISTED", 1)]);
    assert_eq!(acks[0].0, "AA");
}
