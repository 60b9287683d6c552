//! LOINC codes: digits, a dash and a mod-10 check digit computed as LOINC specifies (the
//! Luhn scheme over the digits before the dash).

/// The check digit of a LOINC number's digits.
pub fn check_digit(digits: &str) -> Option<u8> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut sum = 0u32;
    for (position, b) in digits.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        // Odd positions from the right are doubled; the digits of the product are summed.
        sum += if position % 2 == 0 {
            let twice = d * 2;
            twice / 10 + twice % 10
        } else {
            d
        };
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// Whether `code` is a well-formed LOINC code with the right check digit; if not, why.
pub fn check(code: &str) -> Result<(), &'static str> {
    let code = code.trim();
    let Some((digits, check)) = code.split_once('-') else {
        return Err("no dash before the check digit");
    };
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("1 to 7 digits before the dash");
    }
    if check.len() != 1 || !check.as_bytes()[0].is_ascii_digit() {
        return Err("one check digit after the dash");
    }
    if check_digit(digits) != Some(check.as_bytes()[0] - b'0') {
        return Err("wrong check digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        for code in [
            "2345-7", "718-7", "2160-0", "8867-4", "8310-5", "29463-7", "4548-4", "12345-5",
        ] {
            assert_eq!(check(code), Ok(()), "{code}");
        }
        assert_eq!(check("2345-8"), Err("wrong check digit"));
        assert_eq!(check("2345"), Err("no dash before the check digit"));
        assert_eq!(check("A345-7"), Err("1 to 7 digits before the dash"));
    }
}
