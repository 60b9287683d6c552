//! Acknowledgements (ACK with MSA, and ERR for errors).

use chrono::NaiveDateTime;

use crate::escape::encode_escapes;
use crate::{Delimiters, Message};

/// An acknowledgement code (original mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Accepted.
    AA,
    /// Error: the sender should resend.
    AE,
    /// Rejected: resending the same message will not help.
    AR,
}

impl AckCode {
    /// The code as sent in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }
}

/// Builds the ACK of `message`: sending and receiving swapped, the same version and
/// delimiters, MSA with the original control id, and ERR with `text` for AE/AR.
pub fn ack(
    message: &Message<'_>,
    code: AckCode,
    text: Option<&str>,
    control_id: &str,
    now: NaiveDateTime,
) -> String {
    let d = *message.delimiters();
    let header = message.header();
    let msh = message.segment("MSH", 1);
    let raw = |n: usize| msh.as_ref().and_then(|s| s.field(n)).unwrap_or("");
    let trigger = header.trigger_event.as_deref().unwrap_or("");
    build(
        &d,
        [raw(5), raw(6), raw(3), raw(4)],
        trigger,
        raw(11),
        raw(12),
        code,
        header.control_id.as_deref().unwrap_or(""),
        text,
        control_id,
        now,
    )
}

/// An ACK for bytes that could not be parsed as a message: default delimiters, no original
/// control id.
pub fn ack_for_unparseable(
    code: AckCode,
    text: &str,
    control_id: &str,
    now: NaiveDateTime,
) -> String {
    build(
        &Delimiters::default(),
        ["CARELAKE", "", "", ""],
        "",
        "P",
        "2.5.1",
        code,
        "",
        Some(text),
        control_id,
        now,
    )
}

#[allow(clippy::too_many_arguments)]
fn build(
    d: &Delimiters,
    [send_app, send_fac, recv_app, recv_fac]: [&str; 4],
    trigger: &str,
    processing: &str,
    version: &str,
    code: AckCode,
    original_control_id: &str,
    text: Option<&str>,
    control_id: &str,
    now: NaiveDateTime,
) -> String {
    let f = d.field as char;
    let c = d.component as char;
    let mut encoding = String::new();
    for b in [
        Some(d.component),
        Some(d.repetition),
        d.escape,
        Some(d.subcomponent),
    ]
    .into_iter()
    .flatten()
    {
        encoding.push(b as char);
    }
    let send_app = if send_app.is_empty() {
        "CARELAKE"
    } else {
        send_app
    };
    let processing = if processing.is_empty() {
        "P"
    } else {
        processing
    };
    let version = if version.is_empty() { "2.5.1" } else { version };
    let escaped = text.map(|t| encode_escapes(&t.chars().take(80).collect::<String>(), d));
    let mut out = format!(
        "MSH{f}{encoding}{f}{send_app}{f}{send_fac}{f}{recv_app}{f}{recv_fac}{f}{}{f}{f}ACK{c}{trigger}{c}ACK{f}{}{f}{processing}{f}{version}\r",
        now.format("%Y%m%d%H%M%S"),
        encode_escapes(control_id, d),
    );
    out.push_str(&format!(
        "MSA{f}{}{f}{}{f}{}\r",
        code.as_str(),
        encode_escapes(original_control_id, d),
        escaped.as_deref().unwrap_or("")
    ));
    if code != AckCode::AA {
        // ERR-3 error code (HL7 table 0357: 207 application internal error, 100 segment
        // sequence error), ERR-4 severity, ERR-8 user message.
        let error_code = if code == AckCode::AR { "100" } else { "207" };
        out.push_str(&format!(
            "ERR{f}{f}{f}{error_code}{f}E{f}{f}{f}{f}{}\r",
            escaped.as_deref().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_swaps_sender_and_keeps_delimiters() {
        let m =
            Message::parse("MSH#$*@!#EHR#HOSP#CL#LAKE#20240101##ADT$A01#C42#P#2.3\rPID#1").unwrap();
        let now = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap();
        let ack_text = ack(&m, AckCode::AE, Some("disk # full"), "A1", now);
        let a = Message::parse(&ack_text).unwrap();
        assert_eq!(a.get("MSH-3").as_deref(), Some("CL"));
        assert_eq!(a.get("MSH-5").as_deref(), Some("EHR"));
        assert_eq!(a.get("MSH-9.2").as_deref(), Some("A01"));
        assert_eq!(a.get("MSA-1").as_deref(), Some("AE"));
        assert_eq!(a.get("MSA-2").as_deref(), Some("C42"));
        assert_eq!(a.get("MSA-3").as_deref(), Some("disk # full"));
        assert_eq!(a.get("ERR-8").as_deref(), Some("disk # full"));
        let ar = ack_for_unparseable(AckCode::AR, "no MSH", "A2", now);
        assert_eq!(
            Message::parse(&ar).unwrap().get("MSA-1").as_deref(),
            Some("AR")
        );
    }
}
