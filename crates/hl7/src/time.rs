//! HL7 date/time values: DT (`YYYY[MM[DD]]`) and DTM/TS (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`).

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

fn digits(text: &str, from: usize, len: usize) -> Option<u32> {
    let part = text.get(from..from + len)?;
    if part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// Parses an HL7 DT; a value with only year or year and month takes the first day.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let date_part = text.get(..8.min(text.len()))?;
    let year = digits(date_part, 0, 4)? as i32;
    let month = if date_part.len() >= 6 {
        digits(date_part, 4, 2)?
    } else {
        1
    };
    let day = if date_part.len() >= 8 {
        digits(date_part, 6, 2)?
    } else {
        1
    };
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Parses an HL7 DTM/TS to UTC: a time with an offset is converted, one without is taken as
/// UTC. Missing parts default to their start (a date alone is midnight).
pub fn parse_dtm(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    // The degree-of-precision component of old TS values (`^S`) is ignored.
    let text = text.split('^').next().unwrap_or("");
    let (value, offset) = match text.find(['+', '-']) {
        Some(i) if i >= 4 => (&text[..i], Some(&text[i..])),
        _ => (text, None),
    };
    let (main, fraction) = match value.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (value, None),
    };
    if main.len() < 4
        || main.len() > 14
        || !main.len().is_multiple_of(2)
        || !main.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let date = parse_date(main)?;
    let hour = digits(main, 8, 2).unwrap_or(0);
    let minute = digits(main, 10, 2).unwrap_or(0);
    let second = digits(main, 12, 2).unwrap_or(0);
    let micros = match fraction {
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(6 - f.len() as u32)
        }
        Some(_) => return None,
        None => 0,
    };
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second.min(59), micros)?;
    let mut at = NaiveDateTime::new(date, time);
    if let Some(offset) = offset {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let hh = digits(offset, 1, 2)? as i64;
        let mm = digits(offset, 3, 2).unwrap_or(0) as i64;
        if hh > 14 || mm > 59 {
            return None;
        }
        at -= Duration::minutes(sign * (hh * 60 + mm));
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dtm_precisions_and_offsets() {
        let t = |s| parse_dtm(s).map(|d| d.to_string());
        assert_eq!(t("2024").as_deref(), Some("2024-01-01 00:00:00"));
        assert_eq!(t("20240315").as_deref(), Some("2024-03-15 00:00:00"));
        assert_eq!(t("202403151230").as_deref(), Some("2024-03-15 12:30:00"));
        assert_eq!(
            t("20240315123045.12").as_deref(),
            Some("2024-03-15 12:30:45.120")
        );
        assert_eq!(
            t("20240315123045-0500").as_deref(),
            Some("2024-03-15 17:30:45")
        );
        assert_eq!(
            t("20240315123045+0100").as_deref(),
            Some("2024-03-15 11:30:45")
        );
        assert_eq!(
            t("20240315123045^S").as_deref(),
            Some("2024-03-15 12:30:45")
        );
        assert_eq!(t("2024031"), None);
        assert_eq!(t("20241315"), None);
        assert_eq!(t("garbage"), None);
        assert_eq!(t(""), None);
        assert_eq!(
            parse_date("19800101").map(|d| d.to_string()).as_deref(),
            Some("1980-01-01")
        );
        assert_eq!(
            parse_date("198001").map(|d| d.to_string()).as_deref(),
            Some("1980-01-01")
        );
    }
}
