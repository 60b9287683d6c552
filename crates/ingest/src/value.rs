//! Classifying and parsing text values: numbers, booleans, dates and timestamps in ISO and the
//! common US (`MM/DD/YYYY`) and European (`DD/MM/YYYY`, `DD.MM.YYYY`) forms.

use chrono::NaiveDate;

/// How a date is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateForm {
    /// `2024-01-31`
    Iso,
    /// `31.01.2024`, always day first.
    Dot,
    /// `01/31/2024`: only month-first reads it.
    SlashUs,
    /// `31/01/2024`: only day-first reads it.
    SlashEu,
    /// `01/02/2024`: either reading is a valid date.
    SlashEither,
}

/// Which reading to apply to slash dates in a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlashOrder {
    /// Month first (US).
    MonthFirst,
    /// Day first (Europe).
    DayFirst,
}

impl DateForm {
    /// Whether a value of this form reads as a date under the column's slash order.
    pub(crate) fn fits(self, order: Option<SlashOrder>) -> bool {
        match self {
            DateForm::Iso | DateForm::Dot => true,
            DateForm::SlashUs => order == Some(SlashOrder::MonthFirst),
            DateForm::SlashEu => order == Some(SlashOrder::DayFirst),
            DateForm::SlashEither => order.is_some(),
        }
    }
}

/// The narrowest kind a text value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Null,
    Bool,
    Int32,
    Int64,
    Float,
    Date(DateForm),
    Timestamp(DateForm),
    Text,
}

/// Values that mean "no value".
pub(crate) fn is_null_token(s: &str) -> bool {
    s.is_empty() || matches!(s, "NULL" | "null" | "\\N" | "NA" | "N/A" | "n/a")
}

pub(crate) fn classify(raw: &str) -> Class {
    let s = raw.trim();
    if is_null_token(s) {
        return Class::Null;
    }
    let b = s.as_bytes();
    let first = b[0];
    if first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.' {
        if let Some(class) = classify_number(s) {
            return class;
        }
        if let Some(form) = date_form(s) {
            return if s.len() > 10 && parse_timestamp(s, form_order(form)).is_some() {
                Class::Timestamp(form)
            } else if s.len() <= 10 && parse_date(s, form_order(form)).is_some() {
                Class::Date(form)
            } else {
                Class::Text
            };
        }
        return Class::Text;
    }
    if parse_bool(s).is_some() {
        return Class::Bool;
    }
    Class::Text
}

/// The slash order under which a value of this form parses, for classification.
fn form_order(form: DateForm) -> Option<SlashOrder> {
    match form {
        DateForm::SlashEu => Some(SlashOrder::DayFirst),
        _ => Some(SlashOrder::MonthFirst),
    }
}

fn classify_number(s: &str) -> Option<Class> {
    let b = s.as_bytes();
    let digits_start = usize::from(b[0] == b'-' || b[0] == b'+');
    let digits = &b[digits_start..];
    if digits.is_empty() {
        return None;
    }
    if digits.iter().all(u8::is_ascii_digit) {
        // Leading zeros mark identifiers (ZIP codes, MRNs): keep them as text.
        if digits.len() > 1 && digits[0] == b'0' {
            return Some(Class::Text);
        }
        return Some(match s.parse::<i64>() {
            Ok(v) if i32::try_from(v).is_ok() => Class::Int32,
            Ok(_) => Class::Int64,
            Err(_) => Class::Text,
        });
    }
    if is_decimal_literal(digits) && s.parse::<f64>().is_ok_and(f64::is_finite) {
        return Some(Class::Float);
    }
    None
}

/// `12.5`, `.5`, `1e-3`, `2.0E10`: digits with at most one point and an optional exponent.
fn is_decimal_literal(b: &[u8]) -> bool {
    let mut i = 0;
    let mut mantissa_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.len() {
        2..=5 => {}
        _ => return None,
    }
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

/// The form of the date at the start of `s`, if it starts with one.
fn date_form(s: &str) -> Option<DateForm> {
    let b = s.as_bytes();
    if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        return Some(DateForm::Iso);
    }
    let (first, rest) = split_number(b)?;
    let sep = *rest.first()?;
    if sep != b'/' && sep != b'.' {
        return None;
    }
    let (second, rest) = split_number(&rest[1..])?;
    if rest.first() != Some(&sep) {
        return None;
    }
    let (_, _) = split_number(&rest[1..])?;
    if sep == b'.' {
        return Some(DateForm::Dot);
    }
    Some(match (first > 12, second > 12) {
        (true, false) => DateForm::SlashEu,
        (false, true) => DateForm::SlashUs,
        (false, false) => DateForm::SlashEither,
        (true, true) => return None,
    })
}

fn split_number(b: &[u8]) -> Option<(u32, &[u8])> {
    let len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || len > 4 {
        return None;
    }
    let mut v = 0u32;
    for c in &b[..len] {
        v = v * 10 + u32::from(c - b'0');
    }
    Some((v, &b[len..]))
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Parses the date part; returns the date and the rest of the string.
fn parse_date_prefix(s: &str, order: Option<SlashOrder>) -> Option<(NaiveDate, &str)> {
    let b = s.as_bytes();
    if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        let year: i32 = s.get(0..4)?.parse().ok()?;
        let month: u32 = s.get(5..7)?.parse().ok()?;
        let day: u32 = s.get(8..10)?.parse().ok()?;
        return Some((NaiveDate::from_ymd_opt(year, month, day)?, &s[10..]));
    }
    let (a, rest) = split_number(b)?;
    let sep = *rest.first()?;
    let (c, rest) = split_number(&rest[1..])?;
    if rest.first() != Some(&sep) {
        return None;
    }
    let (year, rest) = split_number(&rest[1..])?;
    let year_digits = b.len() - rest.len();
    // Two-digit years are ambiguous; require four.
    if year < 1000 {
        return None;
    }
    let (day, month) = match (sep, order) {
        (b'.', _) => (a, c),
        (b'/', Some(SlashOrder::DayFirst)) => (a, c),
        (b'/', Some(SlashOrder::MonthFirst)) => (c, a),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    Some((date, &s[year_digits..]))
}

/// Days since 1970-01-01 for a date in one of the known forms.
pub(crate) fn parse_date(s: &str, order: Option<SlashOrder>) -> Option<i32> {
    let (date, rest) = parse_date_prefix(s.trim(), order)?;
    if !rest.is_empty() {
        return None;
    }
    Some(date_to_days(date))
}

fn date_to_days(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// Microseconds since the epoch (UTC) for a date-time; a value without a zone is read as UTC.
/// A plain date reads as midnight.
pub(crate) fn parse_timestamp(s: &str, order: Option<SlashOrder>) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = parse_date_prefix(s, order)?;
    let days = i64::from(date_to_days(date));
    if rest.is_empty() {
        return Some(days * 86_400_000_000);
    }
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let (micros_of_day, rest) = parse_time(rest)?;
    let offset_seconds = parse_zone(rest.trim_start())?;
    Some(days * 86_400_000_000 + micros_of_day - offset_seconds * 1_000_000)
}

/// `HH:MM[:SS[.ffffff]][ AM|PM]` → microseconds of the day and the remainder.
fn parse_time(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    let two = |i: usize| -> Option<i64> {
        let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
        (x.is_ascii_digit() && y.is_ascii_digit()).then(|| i64::from((x - b'0') * 10 + (y - b'0')))
    };
    let (mut hour, mut i) = match (b.first(), b.get(1)) {
        (Some(h), Some(b':')) if h.is_ascii_digit() => (i64::from(h - b'0'), 1),
        _ => (two(0)?, 2),
    };
    if b.get(i) != Some(&b':') {
        return None;
    }
    let minute = two(i + 1)?;
    i += 3;
    let mut second = 0;
    let mut micros = 0;
    if b.get(i) == Some(&b':') {
        second = two(i + 1)?;
        i += 3;
        if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &s[start..i];
            if frac.is_empty() {
                return None;
            }
            let mut padded: String = frac.chars().take(6).collect();
            while padded.len() < 6 {
                padded.push('0');
            }
            micros = padded.parse::<i64>().ok()?;
        }
    }
    let mut rest = &s[i..];
    let trimmed = rest.trim_start();
    for (suffix, add) in [("AM", 0), ("am", 0), ("PM", 12), ("pm", 12)] {
        if let Some(after) = trimmed.strip_prefix(suffix) {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour = hour % 12 + add;
            rest = after;
            break;
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some((
        ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros,
        rest,
    ))
}

/// `Z`, `UTC`, `+02:00`, `-0500`, `+02` or nothing → offset in seconds east of UTC.
fn parse_zone(s: &str) -> Option<i64> {
    match s {
        "" | "Z" | "z" | "UTC" | "GMT" => return Some(0),
        _ => {}
    }
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_numbers() {
        assert_eq!(classify("42"), Class::Int32);
        assert_eq!(classify("-7"), Class::Int32);
        assert_eq!(classify("3000000000"), Class::Int64);
        assert_eq!(classify("99999999999999999999"), Class::Text);
        assert_eq!(classify("12.50"), Class::Float);
        assert_eq!(classify("1e-3"), Class::Float);
        assert_eq!(classify("02134"), Class::Text);
        assert_eq!(classify("1,234"), Class::Text);
        assert_eq!(classify("inf"), Class::Text);
        assert_eq!(classify(""), Class::Null);
        assert_eq!(classify("NULL"), Class::Null);
        assert_eq!(classify("TRUE"), Class::Bool);
    }

    #[test]
    fn classifies_dates() {
        assert_eq!(classify("2024-01-31"), Class::Date(DateForm::Iso));
        assert_eq!(classify("01/31/2024"), Class::Date(DateForm::SlashUs));
        assert_eq!(classify("31/01/2024"), Class::Date(DateForm::SlashEu));
        assert_eq!(classify("01/02/2024"), Class::Date(DateForm::SlashEither));
        assert_eq!(classify("31.01.2024"), Class::Date(DateForm::Dot));
        assert_eq!(classify("2024-02-30"), Class::Text);
        assert_eq!(
            classify("2024-01-31T10:00:00Z"),
            Class::Timestamp(DateForm::Iso)
        );
        assert_eq!(
            classify("2024-01-31 10:00:00.123"),
            Class::Timestamp(DateForm::Iso)
        );
        assert_eq!(
            classify("01/31/2024 10:15 PM"),
            Class::Timestamp(DateForm::SlashUs)
        );
        assert_eq!(classify("2024-01-31T25:00:00"), Class::Text);
    }

    #[test]
    fn parses_dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-02", None), Some(1));
        assert_eq!(
            parse_date("02/01/1970", Some(SlashOrder::DayFirst)),
            Some(1)
        );
        assert_eq!(
            parse_date("01/02/1970", Some(SlashOrder::MonthFirst)),
            Some(1)
        );
        assert_eq!(parse_date("01/02/1970", None), None);
        assert_eq!(parse_date("02.01.1970", None), Some(1));
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01Z", None),
            Some(1_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-01 01:00:00+01:00", None), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00.5", None),
            Some(500_000)
        );
        assert_eq!(
            parse_timestamp("01/01/1970 12:00 AM", Some(SlashOrder::MonthFirst)),
            Some(0)
        );
        assert_eq!(
            parse_timestamp("01/01/1970 1:30 PM", Some(SlashOrder::MonthFirst)),
            Some((13 * 3600 + 30 * 60) * 1_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-02", None), Some(86_400_000_000));
    }
}
