//! CPT and HCPCS Level II procedure codes: CPT Category I is five digits, Category II four
//! digits and F, Category III four digits and T, proprietary laboratory analyses four digits
//! and U; HCPCS Level II is a letter A–V and four digits.

/// The code upper-cased, or why it is not a CPT or HCPCS code.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let code = raw.trim().to_ascii_uppercase();
    let b = code.as_bytes();
    if b.is_empty() {
        return Err("empty");
    }
    if b.len() != 5 {
        return Err("5 characters");
    }
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let ok = digits(b)
        || (digits(&b[..4]) && matches!(b[4], b'F' | b'T' | b'U'))
        || ((b'A'..=b'V').contains(&b[0]) && digits(&b[1..]));
    if ok {
        Ok(code)
    } else {
        Err("not a CPT (5 digits, or 4 digits and F, T or U) or HCPCS (A-V and 4 digits) code")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(normalize("99213").unwrap(), "99213");
        assert_eq!(normalize("3074f").unwrap(), "3074F");
        assert_eq!(normalize("0042T").unwrap(), "0042T");
        assert_eq!(normalize("J1100").unwrap(), "J1100");
        assert!(normalize("9921").is_err());
        assert!(normalize("Z1234").is_err());
        assert!(normalize("99X13").is_err());
    }
}
