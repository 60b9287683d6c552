//! ICD-10-CM codes: a letter (not U, which WHO reserves), a digit, a digit or A/B, then up to
//! four letters or digits after the dot; 3 to 7 characters in all.

/// The code in its usual form (`E11.9`), or why it is not an ICD-10-CM code.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let code: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = code.as_bytes();
    if bytes.is_empty() {
        return Err("empty");
    }
    if !code.is_ascii() {
        return Err("letters and digits only");
    }
    if bytes.len() < 3 || bytes.len() > 7 {
        return Err("3 to 7 characters");
    }
    if !bytes[0].is_ascii_uppercase() || bytes[0] == b'U' {
        return Err("starts with a letter other than U");
    }
    if !bytes[1].is_ascii_digit() {
        return Err("second character must be a digit");
    }
    if !(bytes[2].is_ascii_digit() || bytes[2] == b'A' || bytes[2] == b'B') {
        return Err("third character must be a digit, A or B");
    }
    if !bytes[3..].iter().all(|b| b.is_ascii_alphanumeric()) {
        return Err("letters and digits only");
    }
    Ok(if code.len() > 3 {
        format!("{}.{}", &code[..3], &code[3..])
    } else {
        code
    })
}

/// The chapter (1–22) of a code by its category, following the ICD-10-CM tabular list.
pub fn chapter(code: &str) -> Option<u8> {
    let code = normalize(code).ok()?;
    let letter = code.as_bytes()[0];
    let two: u8 = code[1..3].parse().unwrap_or(0);
    Some(match letter {
        b'A' | b'B' => 1,
        b'C' => 2,
        b'D' if two <= 49 => 2,
        b'D' => 3,
        b'E' => 4,
        b'F' => 5,
        b'G' => 6,
        b'H' if two <= 59 => 7,
        b'H' => 8,
        b'I' => 9,
        b'J' => 10,
        b'K' => 11,
        b'L' => 12,
        b'M' => 13,
        b'N' => 14,
        b'O' => 15,
        b'P' => 16,
        b'Q' => 17,
        b'R' => 18,
        b'S' | b'T' => 19,
        b'V' | b'W' | b'X' | b'Y' => 20,
        b'Z' => 21,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(normalize("e119").unwrap(), "E11.9");
        assert_eq!(normalize(" I50.9 ").unwrap(), "I50.9");
        assert_eq!(normalize("J44").unwrap(), "J44");
        assert_eq!(normalize("S72.001A").unwrap(), "S72.001A");
        assert_eq!(normalize("M1A.0710").unwrap(), "M1A.0710");
        assert_eq!(normalize("").unwrap_err(), "empty");
        assert_eq!(
            normalize("U07.1").unwrap_err(),
            "starts with a letter other than U"
        );
        assert_eq!(
            normalize("1234").unwrap_err(),
            "starts with a letter other than U"
        );
        assert_eq!(
            normalize("EE1").unwrap_err(),
            "second character must be a digit"
        );
        assert_eq!(normalize("E11.99999").unwrap_err(), "3 to 7 characters");
        assert_eq!(chapter("I21.4"), Some(9));
        assert_eq!(chapter("D50.9"), Some(3));
        assert_eq!(chapter("Z51.11"), Some(21));
    }
}
