//! Phone numbers, ZIP codes and administrative sex in one form each.

/// A North American phone number as `+1NXXNXXXXXX` (E.164), or why not.
pub fn phone(raw: &str) -> Result<String, &'static str> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.len() {
        10 => digits.as_str(),
        11 if digits.starts_with('1') => &digits[1..],
        0 => return Err("empty"),
        _ => return Err("10 digits (or 11 starting with 1)"),
    };
    let b = national.as_bytes();
    if b[0] < b'2' || b[3] < b'2' {
        return Err("area code and exchange cannot start with 0 or 1");
    }
    Ok(format!("+1{national}"))
}

/// A US ZIP code as five digits (ZIP+4 kept as `NNNNN-NNNN`), or why not.
pub fn zip(raw: &str) -> Result<String, &'static str> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let other = raw
        .chars()
        .any(|c| !(c.is_ascii_digit() || c == '-' || c.is_whitespace()));
    if other {
        return Err("digits only");
    }
    match digits.len() {
        5 => Ok(digits),
        9 => Ok(format!("{}-{}", &digits[..5], &digits[5..])),
        // Spreadsheets drop the leading zero of New England ZIPs.
        4 => Ok(format!("0{digits}")),
        0 => Err("empty"),
        _ => Err("5 or 9 digits"),
    }
}

/// Administrative sex as FHIR codes it: `male`, `female`, `other` or `unknown`, from the ways
/// HL7 v2, X12 and forms write it.
pub fn sex(raw: &str) -> &'static str {
    match raw.trim().to_ascii_lowercase().as_str() {
        "m" | "male" | "man" | "1" => "male",
        "f" | "female" | "woman" | "2" => "female",
        "o" | "other" | "a" | "x" | "n" | "nonbinary" | "non-binary" => "other",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts() {
        assert_eq!(phone("(503) 555-0101").unwrap(), "+15035550101");
        assert_eq!(phone("1-503-555-0101").unwrap(), "+15035550101");
        assert!(phone("555-0101").is_err());
        assert!(phone("(103) 555-0101").is_err());
        assert_eq!(zip("97201").unwrap(), "97201");
        assert_eq!(zip("97201-1234").unwrap(), "97201-1234");
        assert_eq!(zip("2134").unwrap(), "02134");
        assert!(zip("ABCDE").is_err());
        assert_eq!(sex("F"), "female");
        assert_eq!(sex("U"), "unknown");
        assert_eq!(sex("X"), "other");
    }
}
