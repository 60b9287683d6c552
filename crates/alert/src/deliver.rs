//! Sending one alert to a channel: what is sent, how it is signed, and what counts as
//! delivered (HTTP 2xx; an SMTP reply the server accepted).

use std::time::Duration;

use carelake_lake::Channel;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ring::hmac;
use serde_json::{Map, Value};

/// The key a rule's webhooks are signed with: HMAC-SHA256 of the rule's name under the
/// lake's secret, so that it needs no storage and `carelake alert secret NAME` can show it.
pub fn webhook_secret(lake_secret: &[u8], alert: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, lake_secret);
    hmac::sign(&key, format!("carelake alert webhook {alert}").as_bytes())
        .as_ref()
        .to_vec()
}

/// The `X-Carelake-Signature` header: `sha256=` and the hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` under the rule's secret.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("sha256={}", hex::encode(hmac::sign(&key, &signed).as_ref()))
}

/// The outcome of one attempt: delivered or not, the response code, and why not (never a
/// row's data).
pub(crate) struct Attempt {
    pub(crate) delivered: bool,
    pub(crate) code: Option<i64>,
    pub(crate) detail: Option<String>,
}

/// The alert as its channel receives it.
pub(crate) struct Alert<'a> {
    pub(crate) name: &'a str,
    pub(crate) run_id: &'a str,
    pub(crate) fired_at: chrono::DateTime<chrono::Utc>,
    pub(crate) key: &'a Value,
    pub(crate) row: &'a Map<String, Value>,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

impl Alert<'_> {
    fn json(&self) -> Value {
        serde_json::json!({
            "alert": self.name,
            "run_id": self.run_id,
            "fired_at": self.fired_at.to_rfc3339(),
            "key": self.key,
            "row": self.row,
        })
    }

    fn lines(&self) -> String {
        self.row
            .iter()
            .map(|(k, v)| format!("{k}: {}", text_of(v)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Sends alerts; one per run, reusing its HTTP connections.
pub(crate) struct Sender {
    http: reqwest::Client,
    secret: Vec<u8>,
}

impl Sender {
    pub(crate) fn new(secret: Vec<u8>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { http, secret }
    }

    pub(crate) async fn send(&self, channel: &Channel, alert: &Alert<'_>) -> Attempt {
        match channel {
            Channel::Webhook { url } => {
                let body = alert.json().to_string();
                self.post(url, body, alert).await
            }
            Channel::Slack { url } => {
                let body = serde_json::json!({
                    "text": format!("carelake alert {}\n{}", alert.name, alert.lines())
                })
                .to_string();
                self.post(url, body, alert).await
            }
            Channel::Email { to, via } => self.email(to, via, alert).await,
        }
    }

    async fn post(&self, url: &str, body: String, alert: &Alert<'_>) -> Attempt {
        let timestamp = alert.fired_at.timestamp();
        let signed = signature(&self.secret, timestamp, body.as_bytes());
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-carelake-alert", alert.name)
            .header("x-carelake-timestamp", timestamp.to_string())
            .header("x-carelake-signature", signed)
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) => {
                let status = r.status();
                Attempt {
                    delivered: status.is_success(),
                    code: Some(i64::from(status.as_u16())),
                    detail: (!status.is_success()).then(|| format!("HTTP {}", status.as_u16())),
                }
            }
            Err(e) => Attempt {
                delivered: false,
                code: None,
                detail: Some(
                    if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "could not connect"
                    } else {
                        "request failed"
                    }
                    .into(),
                ),
            },
        }
    }

    async fn email(&self, to: &[String], via: &str, alert: &Alert<'_>) -> Attempt {
        let failed = |detail: &str| Attempt {
            delivered: false,
            code: None,
            detail: Some(detail.into()),
        };
        let from =
            std::env::var("CARELAKE_ALERT_FROM").unwrap_or_else(|_| "carelake@localhost".into());
        let Ok(from) = from.parse::<Mailbox>() else {
            return failed("CARELAKE_ALERT_FROM is not an email address");
        };
        let mut builder = Message::builder()
            .from(from)
            .subject(format!("carelake alert {}", alert.name))
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            match address.parse::<Mailbox>() {
                Ok(m) => builder = builder.to(m),
                Err(_) => return failed("a recipient is not an email address"),
            }
        }
        let Ok(message) = builder.body(format!(
            "{}\n\nalert: {}\nrun: {}\nfired at: {}\n",
            alert.lines(),
            alert.name,
            alert.run_id,
            alert.fired_at.to_rfc3339()
        )) else {
            return failed("the message could not be built");
        };
        let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(via) {
            Ok(t) => t.timeout(Some(Duration::from_secs(10))).build(),
            Err(_) => return failed("the SMTP URL is not usable"),
        };
        match tokio::time::timeout(Duration::from_secs(30), transport.send(message)).await {
            Ok(Ok(response)) => Attempt {
                delivered: response.is_positive(),
                code: Some(i64::from(u16::from(response.code()))),
                detail: None,
            },
            Ok(Err(e)) => Attempt {
                delivered: false,
                code: e.status().map(|c| i64::from(u16::from(c))),
                detail: Some(
                    if e.is_timeout() {
                        "SMTP timed out"
                    } else if e.is_permanent() {
                        "SMTP refused the message"
                    } else if e.is_transient() {
                        "SMTP deferred the message"
                    } else {
                        "SMTP failed"
                    }
                    .into(),
                ),
            },
            Err(_) => failed("SMTP timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let s = signature(b"Jefe", 0, b"");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let expected = hmac::sign(&key, b"1700000000.{\"a\":1}");
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, b"{\"a\":1}"),
            format!("sha256={}", hex::encode(expected.as_ref()))
        );
        assert_ne!(webhook_secret(b"k", "a"), webhook_secret(b"k", "b"));
    }
}
