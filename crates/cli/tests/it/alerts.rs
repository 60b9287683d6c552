//! Alert rules on the real binary against sinks the test starts: a webhook receiver that checks
//! the HMAC signature, a failing one (retries with back-off, then dead letter), an SMTP sink;
//! suppression on a test clock (`carelake alert run --now`), outreach closing a key, and the
//! owner's row policy deciding what an alert may carry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ring::hmac;

use crate::support::Workspace;

const PASSWORD: &str = "a long alert test password";

#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver answering every request with `status`; what it received.
fn http_sink(status: u16) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim().split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push(Request {
                at: Instant::now(),
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (format!("http://{addr}"), seen)
}

/// A minimal SMTP server that accepts every message; the messages' DATA.
fn smtp_sink() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = write!(stream, "220 sink ESMTP\r\n");
            let mut data = String::new();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        log.lock().unwrap().push(std::mem::take(&mut data));
                        let _ = write!(stream, "250 queued\r\n");
                    } else {
                        data.push_str(&line);
                    }
                    continue;
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply = match verb.as_str() {
                    "EHLO" => "250-sink\r\n250 8BITMIME\r\n",
                    "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => "250 ok\r\n",
                    "DATA" => {
                        in_data = true;
                        "354 go on\r\n"
                    }
                    "QUIT" => {
                        let _ = write!(stream, "221 bye\r\n");
                        break;
                    }
                    _ => "502 not here\r\n",
                };
                let _ = write!(stream, "{reply}");
            }
        }
    });
    (format!("smtp://{addr}"), seen)
}

fn fixture() -> Workspace {
    let ws = Workspace::new();
    let risk = ws.write(
        "risk.csv",
        "person_key,facility_id,lace_score,first_name\n\
         P1,F01,12,Ann\nP2,F01,14,Ben\nP3,F02,15,Cy\nP4,F02,3,Di\n",
    );
    ws.ok(&["load", &risk, "--into", "raw.risk"]);
    ws
}

fn run_at(ws: &Workspace, alert: &str, now: &str) -> String {
    ws.ok(&["alert", "run", alert, "--now", now])
}

#[test]
fn webhook_alerts_are_signed_suppressed_per_key_and_closed_by_outreach() {
    let ws = fixture();
    let (base, seen) = http_sink(200);
    ws.ok(&[
        "sql",
        &format!(
            "CREATE ALERT high_risk AS SELECT person_key, lace_score FROM raw.risk WHERE lace_score >= 10 \
             EVERY '15 minutes' NOTIFY WEBHOOK '{base}/hook' SUPPRESS FOR '24 hours' PER (person_key) \
             UNTIL OUTREACH IN ('reached')"
        ),
    ]);
    let shown = ws.query("SELECT name, channel, per, suppress_for FROM system.alerts");
    assert_eq!(shown, ["high_risk,webhook,person_key,1 day"]);

    let out = run_at(&ws, "high_risk", "2026-12-01T08:00:00Z");
    assert!(out.contains("3 row(s); 3 sent, 0 suppressed"), "{out}");
    let secret = hex::decode(ws.ok(&["alert", "secret", "high_risk"]).trim()).unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for r in seen.iter() {
            assert_eq!(r.path, "/hook");
            let ts = r.header("x-carelake-timestamp").unwrap();
            let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
            let expected = hmac::sign(&key, format!("{ts}.{}", r.body).as_bytes());
            assert_eq!(
                r.header("x-carelake-signature").unwrap(),
                format!("sha256={}", hex::encode(expected.as_ref()))
            );
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["alert"], "high_risk");
            // Only what the rule selects.
            let row = body["row"].as_object().unwrap();
            assert_eq!(row.len(), 2, "{row:?}");
            assert!(!r.body.contains("first_name") && !r.body.contains("Ann"));
        }
    }
    // Within the window: nothing; after it: again.
    let out = run_at(&ws, "high_risk", "2026-12-01T20:00:00Z");
    assert!(out.contains("0 sent, 3 suppressed"), "{out}");
    assert_eq!(seen.lock().unwrap().len(), 3);
    let out = run_at(&ws, "high_risk", "2026-12-02T08:30:00Z");
    assert!(out.contains("3 sent, 0 suppressed"), "{out}");
    assert_eq!(seen.lock().unwrap().len(), 6);

    // P1 reached after its alert: closed for good; the others fire after the next window.
    let outreach = ws.write(
        "outreach.csv",
        "person_key,encounter_id,outcome,recorded_by,recorded_at\n\
         P1,E1,reached,coordinator,2026-12-02T10:00:00Z\nP2,E2,left_message,coordinator,2026-12-02T10:05:00Z\n",
    );
    ws.ok(&["load", &outreach, "--into", "raw.outreach_events"]);
    let out = run_at(&ws, "high_risk", "2026-12-03T09:00:00Z");
    assert!(
        out.contains("2 sent, 0 suppressed, 1 closed by outreach"),
        "{out}"
    );
    let keys: Vec<String> = seen.lock().unwrap()[6..]
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["key"][0].to_string())
        .collect();
    assert!(!keys.contains(&"\"P1\"".to_string()), "{keys:?}");
    let statuses = ws.query(
        "SELECT status, count(*) FROM system.alert_deliveries GROUP BY status ORDER BY status",
    );
    assert_eq!(statuses, ["completed,1", "sent,8", "suppressed,3"]);
}

#[test]
fn failing_webhooks_back_off_then_dead_letter_and_email_and_slack_deliver() {
    let ws = fixture();
    let (base, seen) = http_sink(503);
    ws.ok(&[
        "sql",
        &format!(
            "CREATE ALERT flaky AS SELECT person_key FROM raw.risk WHERE person_key = 'P1' \
             EVERY '1 hour' NOTIFY WEBHOOK '{base}/down' OPTIONS (retries = 2, backoff = '200ms')"
        ),
    ]);
    let out = run_at(&ws, "flaky", "2026-12-01T08:00:00Z");
    assert!(
        out.contains("0 sent") && out.contains("2 retried") && out.contains("1 dead-lettered"),
        "{out}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "one try and two retries");
    let first = seen[1].at - seen[0].at;
    let second = seen[2].at - seen[1].at;
    assert!(first.as_millis() >= 200, "{first:?}");
    assert!(
        second.as_millis() >= 400,
        "back-off doubles: {first:?} then {second:?}"
    );
    let attempts = ws.query(
        "SELECT attempt, status, response_code FROM system.alert_deliveries WHERE alert = 'flaky' ORDER BY attempt",
    );
    assert_eq!(
        attempts,
        ["1,failed,503", "2,failed,503", "3,dead_letter,503"]
    );

    let (smtp, mails) = smtp_sink();
    ws.ok(&[
        "sql",
        &format!(
            "CREATE ALERT mail AS SELECT person_key, lace_score FROM raw.risk WHERE lace_score >= 14 \
             EVERY '1 hour' NOTIFY EMAIL 'coordinator@hospital.example' VIA '{smtp}'"
        ),
    ]);
    let out = run_at(&ws, "mail", "2026-12-01T08:00:00Z");
    assert!(out.contains("2 sent"), "{out}");
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 2);
    assert!(
        mails
            .iter()
            .all(|m| m.contains("Subject: carelake alert mail"))
    );
    assert!(
        mails.iter().any(|m| m.contains("person_key: P2")),
        "{mails:?}"
    );
    assert_eq!(
        ws.query("SELECT DISTINCT status, response_code FROM system.alert_deliveries WHERE alert = 'mail'"),
        ["sent,250"]
    );

    let (slack, posts) = http_sink(200);
    ws.ok(&[
        "sql",
        &format!(
            "CREATE ALERT chat AS SELECT person_key FROM raw.risk WHERE person_key = 'P3' \
             EVERY '1 hour' NOTIFY SLACK '{slack}/services/T0/B0'"
        ),
    ]);
    run_at(&ws, "chat", "2026-12-01T08:00:00Z");
    let posts = posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    let text: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert!(
        text["text"].as_str().unwrap().contains("person_key: P3"),
        "{text}"
    );
}

#[test]
fn an_alert_runs_as_its_owner_under_their_row_policy() {
    let ws = fixture();
    ws.ok(&[
        "sql",
        "CREATE ROLE coordinator;
         GRANT SELECT ON raw.risk TO coordinator;
         GRANT CREATE ON analytics.* TO coordinator;
         CREATE ROW POLICY own_facility ON raw.risk FOR coordinator USING (facility_id = current_user_attr('facility'))",
    ]);
    ws.add_user("coord1", PASSWORD, "coordinator");
    ws.add_user("nobody", PASSWORD, "");
    ws.ok(&["user", "attr", "coord1", "facility=F01"]);
    let (base, seen) = http_sink(200);
    let create = format!(
        "CREATE ALERT mine AS SELECT person_key, facility_id FROM raw.risk WHERE lace_score >= 10 \
         EVERY '1 hour' NOTIFY WEBHOOK '{base}/mine'"
    );
    let refused = ws.run(&["sql", &create, "--as", "nobody"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("permission denied"));
    let made = ws.run(&["sql", &create, "--as", "coord1"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let out = run_at(&ws, "mine", "2026-12-01T08:00:00Z");
    assert!(out.contains("2 row(s); 2 sent"), "{out}");
    for r in seen.lock().unwrap().iter() {
        assert!(
            r.body.contains("\"F01\"") && !r.body.contains("F02"),
            "{}",
            r.body
        );
    }
    // Others see no rule that is not theirs; the owner sees theirs.
    let theirs = ws.run(&[
        "sql",
        "SELECT name FROM system.alerts",
        "--format",
        "csv",
        "--as",
        "nobody",
    ]);
    assert_eq!(String::from_utf8_lossy(&theirs.stdout).lines().count(), 1);
    // Disabled, the owner's alert reads nothing more.
    ws.ok(&["user", "disable", "coord1"]);
    let out = ws.run(&["alert", "run", "mine", "--now", "2026-12-01T09:30:00Z"]);
    assert!(!out.status.success(), "a disabled owner's alert ran");
}
