//! HL7 escape sequences: `\F\ \S\ \T\ \R\ \E\` for the delimiters, `\Xhh…\` for bytes,
//! `\.br\` for a line break, `\H\`/`\N\` (highlighting) dropped; anything unknown kept as is.

use std::borrow::Cow;

use crate::Delimiters;

/// Decodes the escape sequences in `raw`. Borrows when there is nothing to decode.
pub fn decode_escapes<'t>(raw: &'t str, delimiters: &Delimiters) -> Cow<'t, str> {
    let Some(escape) = delimiters.escape else {
        return Cow::Borrowed(raw);
    };
    let bytes = raw.as_bytes();
    if memchr::memchr(escape, bytes).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(start) = memchr::memchr(escape, &bytes[pos..]).map(|i| i + pos) else {
            out.push_str(&raw[pos..]);
            break;
        };
        out.push_str(&raw[pos..start]);
        let Some(end) = memchr::memchr(escape, &bytes[start + 1..]).map(|i| i + start + 1) else {
            // An unterminated escape: keep the rest verbatim.
            out.push_str(&raw[start..]);
            break;
        };
        let code = &raw[start + 1..end];
        match code {
            "F" => out.push(delimiters.field as char),
            "S" => out.push(delimiters.component as char),
            "T" => out.push(delimiters.subcomponent as char),
            "R" => out.push(delimiters.repetition as char),
            "E" => out.push(escape as char),
            "P" => out.push(delimiters.truncation.map_or('#', |t| t as char)),
            ".br" => out.push('\n'),
            "H" | "N" => {}
            _ if code.starts_with(".sp") => {
                let n: usize = code[3..].trim().parse().unwrap_or(1);
                for _ in 0..n.clamp(1, 100) {
                    out.push('\n');
                }
            }
            _ if code.starts_with(".in")
                || code.starts_with(".ti")
                || code == ".fi"
                || code == ".nf"
                || code == ".ce" => {}
            _ if code.len() > 1 && !code.len().is_multiple_of(2) && code.starts_with('X') => {
                match hex_bytes(&code[1..]) {
                    Some(decoded) => match String::from_utf8(decoded) {
                        Ok(text) => out.push_str(&text),
                        // Not UTF-8: read the bytes as Latin-1.
                        Err(e) => out.extend(e.into_bytes().iter().map(|&b| b as char)),
                    },
                    None => out.push_str(&raw[start..=end]),
                }
            }
            _ => out.push_str(&raw[start..=end]),
        }
        pos = end + 1;
    }
    Cow::Owned(out)
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Escapes the delimiters in `text` so it can be placed in a field.
pub fn encode_escapes(text: &str, delimiters: &Delimiters) -> String {
    let escape = delimiters.escape.unwrap_or(b'\\') as char;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let code = match c {
            _ if c == escape => Some("E"),
            _ if c == delimiters.field as char => Some("F"),
            _ if c == delimiters.component as char => Some("S"),
            _ if c == delimiters.subcomponent as char => Some("T"),
            _ if c == delimiters.repetition as char => Some("R"),
            '\r' => None,
            '\n' => Some(".br"),
            _ => {
                out.push(c);
                continue;
            }
        };
        if let Some(code) = code {
            out.push(escape);
            out.push_str(code);
            out.push(escape);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_standard_escapes() {
        let d = Delimiters::default();
        assert_eq!(
            decode_escapes("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", &d),
            "a|b^c&d~e\\f"
        );
        assert_eq!(decode_escapes("line\\.br\\next", &d), "line\nnext");
        assert_eq!(decode_escapes("\\H\\bold\\N\\", &d), "bold");
        assert_eq!(decode_escapes("caf\\XC3A9\\", &d), "café");
        assert_eq!(decode_escapes("caf\\XE9\\", &d), "café");
        assert_eq!(
            decode_escapes("odd \\Zcustom\\ kept", &d),
            "odd \\Zcustom\\ kept"
        );
        assert_eq!(decode_escapes("unterminated \\F", &d), "unterminated \\F");
        assert!(matches!(decode_escapes("plain", &d), Cow::Borrowed(_)));
    }

    #[test]
    fn encode_round_trips() {
        let d = Delimiters::default();
        let text = "O'Brien | A^B & C ~ D \\ E\nnext";
        assert_eq!(decode_escapes(&encode_escapes(text, &d), &d), text);
    }
}
