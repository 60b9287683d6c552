//! Field paths: `PID-5`, `PID-5.1`, `PID-5.1.2`, `PID-3(2).1`, `OBX[2]-5`.

use crate::{Error, Result};

/// A parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    pub(crate) segment: String,
    /// 1-based occurrence of the segment.
    pub(crate) occurrence: usize,
    pub(crate) field: usize,
    /// 1-based repetition.
    pub(crate) repetition: usize,
    /// 0 for the whole field.
    pub(crate) component: usize,
    /// 0 for the whole component.
    pub(crate) subcomponent: usize,
}

fn number(text: &str, path: &str) -> Result<usize> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0 && *n < 10_000)
        .ok_or_else(|| Error::Path(path.to_string()))
}

impl FieldPath {
    pub(crate) fn parse(path: &str) -> Result<Self> {
        let bad = || Error::Path(path.chars().take(40).collect());
        let text = path.trim();
        let (head, rest) = text.split_once('-').ok_or_else(bad)?;
        let (segment, occurrence) = match head.split_once('[') {
            Some((name, occ)) => (name, number(occ.strip_suffix(']').ok_or_else(bad)?, path)?),
            None => (head, 1),
        };
        let name = segment.as_bytes();
        if name.len() != 3
            || !name
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(bad());
        }
        let mut parts = rest.split('.');
        let field_part = parts.next().ok_or_else(bad)?;
        let (field, repetition) = match field_part.split_once('(') {
            Some((f, r)) => (
                number(f, path)?,
                number(r.strip_suffix(')').ok_or_else(bad)?, path)?,
            ),
            None => (number(field_part, path)?, 1),
        };
        let component = parts
            .next()
            .map(|c| number(c, path))
            .transpose()?
            .unwrap_or(0);
        let subcomponent = parts
            .next()
            .map(|c| number(c, path))
            .transpose()?
            .unwrap_or(0);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            segment: segment.to_string(),
            occurrence,
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

/// Whether `path` is a well-formed field path.
pub fn is_valid_path(path: &str) -> bool {
    FieldPath::parse(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let p = FieldPath::parse("OBX[2]-5(3).1.2").unwrap();
        assert_eq!(
            (
                p.segment.as_str(),
                p.occurrence,
                p.field,
                p.repetition,
                p.component,
                p.subcomponent
            ),
            ("OBX", 2, 5, 3, 1, 2)
        );
        assert!(FieldPath::parse("PID-5").is_ok());
        for bad in [
            "PID",
            "pid-5",
            "PID-0",
            "PID-x",
            "PID-5.1.2.3",
            "PID[0]-1",
            "PID-3(1",
        ] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }
}
