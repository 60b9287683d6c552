//! Classifying and parsing text values: numbers, booleans, dates and timestamps.
//!
//! Dates are read in every common form: ISO and other year-first forms (`2024-01-31`,
//! `2024/1/31`, `2024.01.31`), day and month numbers separated by slashes or dashes
//! (`01/31/2024`, `31-01-2024`: which comes first is decided per column, by the values that only
//! one reading accepts), dotted day-first dates (`31.01.2024`), and month names (`Jan 31 2024`,
//! `January 31, 2024`, `31 Jan 2024`, `31-JAN-24`). A two-digit year `yy` is 20yy for 00–49 and
//! 19yy for 50–99 (Oracle's `RR` pivot in this century). A time may follow after `T` or a space:
//! `HH:MM[:SS[.ffffff]]`, optionally with `AM`/`PM`, then an optional zone.

use chrono::NaiveDate;

/// How a date is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateForm {
    /// One reading whatever the column: year first (`2024-01-31`, `2024/1/31`) or a month
    /// name (`Jan 31 2024`, `31-JAN-24`).
    Fixed,
    /// `31.01.2024`, always day first.
    Dot,
    /// `01/31/2024`, `01-31-2024`: only month-first reads it.
    MonthFirst,
    /// `31/01/2024`, `31-01-2024`: only day-first reads it.
    DayFirst,
    /// `01/02/2024`: either reading is a valid date.
    Either,
}

/// Which reading to apply to numeric day/month dates (slashes or dashes) in a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    /// Month first (US).
    MonthFirst,
    /// Day first (Europe and most of the world).
    DayFirst,
}

impl DateForm {
    /// Whether a value of this form reads as a date under the column's order.
    pub fn fits(self, order: Option<DateOrder>) -> bool {
        match self {
            DateForm::Fixed | DateForm::Dot => true,
            DateForm::MonthFirst => order == Some(DateOrder::MonthFirst),
            DateForm::DayFirst => order == Some(DateOrder::DayFirst),
            DateForm::Either => order.is_some(),
        }
    }
}

/// The narrowest kind a text value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Empty or a null token (`NULL`, `\N`, `NA`, …).
    Null,
    /// `true`/`false`, `yes`/`no`.
    Bool,
    /// An integer that fits 32 bits.
    Int32,
    /// An integer that fits 64 bits.
    Int64,
    /// Any other number.
    Float,
    /// A date, written in the given form.
    Date(DateForm),
    /// A date and time, the date written in the given form.
    Timestamp(DateForm),
    /// Anything else.
    Text,
}

/// Values that mean "no value".
pub fn is_null_token(s: &str) -> bool {
    s.is_empty() || matches!(s, "NULL" | "null" | "\\N" | "NA" | "N/A" | "n/a")
}

pub fn classify(raw: &str) -> Class {
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
        return classify_date(s);
    }
    if first.is_ascii_alphabetic() && month_name(b).is_some() {
        return classify_date(s);
    }
    if parse_bool(s).is_some() {
        return Class::Bool;
    }
    Class::Text
}

/// A date, a date and time, or text.
fn classify_date(s: &str) -> Class {
    let Some((parts, _)) = date_parts(s) else {
        return Class::Text;
    };
    let form = parts.form();
    // Classify under the reading this value allows (either, for an ambiguous one).
    let order = match form {
        DateForm::DayFirst => DateOrder::DayFirst,
        _ => DateOrder::MonthFirst,
    };
    let Some((_, rest)) = parse_date_prefix(s, Some(order)) else {
        return Class::Text;
    };
    if rest.is_empty() {
        Class::Date(form)
    } else if parse_time_and_zone(rest).is_some() {
        Class::Timestamp(form)
    } else {
        Class::Text
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

pub fn parse_bool(s: &str) -> Option<bool> {
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

/// The fields of the date at the start of a value, before the column's order applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateParts {
    /// Year, month and day known.
    Known { year: i32, month: u32, day: u32 },
    /// Two numbers and a year; `dot` when separated by dots (read day first).
    Numeric {
        a: u32,
        b: u32,
        year: i32,
        dot: bool,
    },
}

impl DateParts {
    fn form(self) -> DateForm {
        match self {
            DateParts::Known { .. } => DateForm::Fixed,
            DateParts::Numeric { dot: true, .. } => DateForm::Dot,
            DateParts::Numeric { a, b, .. } => match (a > 12, b > 12) {
                (true, false) => DateForm::DayFirst,
                (false, true) => DateForm::MonthFirst,
                _ => DateForm::Either,
            },
        }
    }
}

/// Reads the date at the start of `s`: its fields and the rest of `s`.
fn date_parts(s: &str) -> Option<(DateParts, &str)> {
    let b = s.as_bytes();
    if b.first()?.is_ascii_alphabetic() {
        // `Jan 31 2024`, `January 31, 2024`, `Jan-31-2024`.
        let (month, len) = month_name(b)?;
        let mut i = len;
        if b.get(i) == Some(&b'.') {
            i += 1;
        }
        let sep = *b.get(i)?;
        if sep != b' ' && sep != b'-' && sep != b'/' {
            return None;
        }
        let (day, day_len) = digits(&b[i + 1..], 1, 2)?;
        i += 1 + day_len;
        i = skip_separator(b, i, sep, true)?;
        let (year, year_len) = year(&b[i..])?;
        return Some((DateParts::Known { year, month, day }, &s[i + year_len..]));
    }
    let (first, first_len) = digits(b, 1, 4)?;
    let sep = *b.get(first_len)?;
    if !matches!(sep, b'-' | b'/' | b'.' | b' ') {
        return None;
    }
    let mut i = first_len + 1;
    if first_len == 4 {
        // Year first: `2024-01-31`, `2024/1/31`, `2024.01.31`.
        if sep == b' ' {
            return None;
        }
        let (month, len) = digits(&b[i..], 1, 2)?;
        i += len;
        if b.get(i) != Some(&sep) {
            return None;
        }
        let (day, len) = digits(&b[i + 1..], 1, 2)?;
        let known = DateParts::Known {
            year: first as i32,
            month,
            day,
        };
        return Some((known, &s[i + 1 + len..]));
    }
    if first_len > 2 {
        return None;
    }
    if let Some((month, len)) = month_name(&b[i..]) {
        // `31-Jan-2024`, `31 Jan 2024`, `31-JAN-24`.
        i += len;
        if b.get(i) == Some(&b'.') && sep != b'.' {
            i += 1;
        }
        i = skip_separator(b, i, sep, false)?;
        let (year, year_len) = year(&b[i..])?;
        let known = DateParts::Known {
            year,
            month,
            day: first,
        };
        return Some((known, &s[i + year_len..]));
    }
    if sep == b' ' {
        return None;
    }
    let (second, len) = digits(&b[i..], 1, 2)?;
    i += len;
    if b.get(i) != Some(&sep) {
        return None;
    }
    let (year, year_len) = year(&b[i + 1..])?;
    let numeric = DateParts::Numeric {
        a: first,
        b: second,
        year,
        dot: sep == b'.',
    };
    Some((numeric, &s[i + 1 + year_len..]))
}

/// Skips the separator `sep` at `i` (a comma before a space too, when `comma` allows it).
fn skip_separator(b: &[u8], mut i: usize, sep: u8, comma: bool) -> Option<usize> {
    if comma && sep == b' ' && b.get(i) == Some(&b',') {
        i += 1;
    }
    if b.get(i) != Some(&sep) {
        return None;
    }
    Some(i + 1)
}

/// Between `min` and `max` ASCII digits at the start of `b`, not followed by another digit:
/// their value and count.
fn digits(b: &[u8], min: usize, max: usize) -> Option<(u32, usize)> {
    let len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if len < min || len > max {
        return None;
    }
    let value = b[..len]
        .iter()
        .fold(0u32, |v, c| v * 10 + u32::from(c - b'0'));
    Some((value, len))
}

/// A four-digit year, or a two-digit one (00–49 → 2000s, 50–99 → 1900s).
fn year(b: &[u8]) -> Option<(i32, usize)> {
    let (value, len) = digits(b, 2, 4)?;
    match len {
        4 => Some((value as i32, 4)),
        2 if value < 50 => Some((2000 + value as i32, 2)),
        2 => Some((1900 + value as i32, 2)),
        _ => None,
    }
}

/// An English month name or its three-letter abbreviation (any case) at the start of `b`: the
/// month and the letters read.
fn month_name(b: &[u8]) -> Option<(u32, usize)> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let len = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    if !(3..=9).contains(&len) {
        return None;
    }
    let word = &b[..len];
    let month = MONTHS.iter().position(|name| {
        let name = name.as_bytes();
        (len == 3 || len == name.len() || (name == b"september" && len == 4))
            && len <= name.len()
            && word.eq_ignore_ascii_case(&name[..len])
    })?;
    Some((month as u32 + 1, len))
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Parses the date part; returns the date and the rest of the string.
fn parse_date_prefix(s: &str, order: Option<DateOrder>) -> Option<(NaiveDate, &str)> {
    let (parts, rest) = date_parts(s)?;
    let (year, month, day) = match parts {
        DateParts::Known { year, month, day } => (year, month, day),
        DateParts::Numeric {
            a,
            b,
            year,
            dot: true,
        } => (year, b, a),
        DateParts::Numeric { a, b, year, .. } => match order? {
            DateOrder::DayFirst => (year, b, a),
            DateOrder::MonthFirst => (year, a, b),
        },
    };
    Some((NaiveDate::from_ymd_opt(year, month, day)?, rest))
}

/// Days since 1970-01-01 for a date in one of the known forms.
pub fn parse_date(s: &str, order: Option<DateOrder>) -> Option<i32> {
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
pub fn parse_timestamp(s: &str, order: Option<DateOrder>) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = parse_date_prefix(s, order)?;
    let days = i64::from(date_to_days(date));
    if rest.is_empty() {
        return Some(days * 86_400_000_000);
    }
    Some(days * 86_400_000_000 + parse_time_and_zone(rest)?)
}

/// What follows a date in a timestamp (`T10:00:00Z`, ` 10:15 PM`): microseconds to add to the
/// date's midnight in UTC.
fn parse_time_and_zone(rest: &str) -> Option<i64> {
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let (micros_of_day, rest) = parse_time(rest)?;
    let offset_seconds = parse_zone(rest.trim_start())?;
    Some(micros_of_day - offset_seconds * 1_000_000)
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
        assert_eq!(classify("2024-01-31"), Class::Date(DateForm::Fixed));
        assert_eq!(classify("01/31/2024"), Class::Date(DateForm::MonthFirst));
        assert_eq!(classify("31/01/2024"), Class::Date(DateForm::DayFirst));
        assert_eq!(classify("01/02/2024"), Class::Date(DateForm::Either));
        assert_eq!(classify("31.01.2024"), Class::Date(DateForm::Dot));
        assert_eq!(classify("2024-02-30"), Class::Text);
        assert_eq!(
            classify("2024-01-31T10:00:00Z"),
            Class::Timestamp(DateForm::Fixed)
        );
        assert_eq!(
            classify("2024-01-31 10:00:00.123"),
            Class::Timestamp(DateForm::Fixed)
        );
        assert_eq!(
            classify("01/31/2024 10:15 PM"),
            Class::Timestamp(DateForm::MonthFirst)
        );
        assert_eq!(classify("2024-01-31T25:00:00"), Class::Text);
        assert_eq!(classify("17-11-2022"), Class::Date(DateForm::DayFirst));
        assert_eq!(classify("11-17-2022"), Class::Date(DateForm::MonthFirst));
        assert_eq!(classify("2024/01/31"), Class::Date(DateForm::Fixed));
        assert_eq!(classify("2024.1.31"), Class::Date(DateForm::Fixed));
        assert_eq!(classify("31.01.24"), Class::Date(DateForm::Dot));
        assert_eq!(classify("1/31/24"), Class::Date(DateForm::MonthFirst));
        for named in [
            "Nov 17 2022",
            "Nov 17, 2022",
            "nov. 17, 2022",
            "November 17, 2022",
            "Sept 17 2022",
            "17 Nov 2022",
            "17-Nov-2022",
            "17-NOV-22",
        ] {
            assert_eq!(classify(named), Class::Date(DateForm::Fixed), "{named}");
        }
        assert_eq!(
            classify("Nov 17, 2022 10:15 AM"),
            Class::Timestamp(DateForm::Fixed)
        );
        assert_eq!(
            classify("17-11-2022 23:59:59"),
            Class::Timestamp(DateForm::DayFirst)
        );
        // Not dates: identifiers, versions, words, impossible days.
        for text in [
            "123-45-6789",
            "078-05-1120",
            "1.2.3",
            "10-2024",
            "2024-13-01",
            "31-02-2024",
            "May",
            "Marchetti",
            "Dec 3 lesions",
            "17-11-2022x",
            "17-11/2022",
            "17-11-20221",
            "2024-01-31 noon",
        ] {
            assert_eq!(classify(text), Class::Text, "{text}");
        }
    }

    #[test]
    fn parses_dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-02", None), Some(1));
        assert_eq!(parse_date("02-01-1970", Some(DateOrder::DayFirst)), Some(1));
        assert_eq!(
            parse_date("01-02-1970", Some(DateOrder::MonthFirst)),
            Some(1)
        );
        assert_eq!(parse_date("Jan 2, 1970", None), Some(1));
        assert_eq!(parse_date("2-JAN-70", None), Some(1));
        // The two-digit year pivot: 00–49 → 2000s, 50–99 → 1900s.
        assert_eq!(
            parse_date("01/01/49", Some(DateOrder::MonthFirst)),
            parse_date("2049-01-01", None)
        );
        assert_eq!(
            parse_date("01/01/50", Some(DateOrder::MonthFirst)),
            parse_date("1950-01-01", None)
        );
        assert_eq!(parse_date("02/01/1970", Some(DateOrder::DayFirst)), Some(1));
        assert_eq!(
            parse_date("01/02/1970", Some(DateOrder::MonthFirst)),
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
            parse_timestamp("01/01/1970 12:00 AM", Some(DateOrder::MonthFirst)),
            Some(0)
        );
        assert_eq!(
            parse_timestamp("01/01/1970 1:30 PM", Some(DateOrder::MonthFirst)),
            Some((13 * 3600 + 30 * 60) * 1_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-02", None), Some(86_400_000_000));
    }
}
