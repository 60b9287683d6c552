//! Splitting an interchange into segments with the separators its ISA header declares.

use crate::error::{Error, Result};

/// The separators of one interchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    /// Between elements (ISA byte 4).
    pub element: u8,
    /// Between components of a composite element (ISA16).
    pub component: u8,
    /// Between repetitions (ISA11 in 5010), if any.
    pub repetition: Option<u8>,
    /// After each segment (the byte after ISA16).
    pub segment: u8,
}

/// One segment: its position in the file and its elements (element 0 is the id).
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// 1-based position in the file.
    pub position: usize,
    elements: Vec<&'a str>,
    component: u8,
}

/// Whether a segment id is two or three upper-case letters or digits, starting with a letter.
pub(crate) fn valid_id(id: &str) -> bool {
    (2..=3).contains(&id.len())
        && id.as_bytes()[0].is_ascii_uppercase()
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl<'a> Segment<'a> {
    /// The segment id.
    pub fn id(&self) -> &'a str {
        self.elements[0]
    }

    /// Element `n` (1-based, as X12 numbers them), empty when absent.
    pub fn element(&self, n: usize) -> &'a str {
        self.elements.get(n).copied().unwrap_or("")
    }

    /// Element `n`, or `None` when absent or empty.
    pub fn get(&self, n: usize) -> Option<&'a str> {
        Some(self.element(n)).filter(|e| !e.is_empty())
    }

    /// Components of element `n`.
    pub fn components(&self, n: usize) -> Vec<&'a str> {
        self.element(n).split(self.component as char).collect()
    }

    /// Component `c` (1-based) of element `n`, or `None` when absent or empty.
    pub fn component(&self, n: usize, c: usize) -> Option<&'a str> {
        self.element(n)
            .split(self.component as char)
            .nth(c - 1)
            .filter(|v| !v.is_empty())
    }

    /// Number of elements after the id.
    pub fn len(&self) -> usize {
        self.elements.len() - 1
    }

    /// Whether the segment has no elements after its id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A required element: present and not empty.
    pub(crate) fn required(&self, n: usize, what: &str) -> Result<&'a str> {
        self.get(n).ok_or_else(|| {
            Error::segment(
                self.position,
                self.id(),
                format!("{}{n:02} {what} is missing", self.id()),
            )
        })
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::segment(self.position, self.id(), reason)
    }
}

/// Length of the fixed-width ISA segment, its terminator included.
const ISA_LEN: usize = 106;
/// Fixed widths of ISA01..ISA16.
const ISA_WIDTHS: [usize; 16] = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

/// Reads the separators from an ISA header at the start of `input`.
pub fn separators(input: &[u8]) -> Result<Separators> {
    if !input.starts_with(b"ISA") {
        return Err(Error::Isa("the first segment is not ISA".into()));
    }
    if input.len() < ISA_LEN {
        return Err(Error::Isa(
            "the ISA segment is shorter than its fixed 106 characters".into(),
        ));
    }
    let element = input[3];
    if element.is_ascii_alphanumeric() || element.is_ascii_whitespace() {
        return Err(Error::Isa(
            "the element separator (ISA byte 4) must be a punctuation character".into(),
        ));
    }
    // Walk the fixed widths: each element must end at its separator.
    let mut at = 4;
    for (i, width) in ISA_WIDTHS.iter().enumerate() {
        at += width;
        if i < 15 {
            if input.get(at) != Some(&element) {
                return Err(Error::Isa(format!(
                    "ISA{:02} must be exactly {width} characters wide",
                    i + 1
                )));
            }
            at += 1;
        }
    }
    let component = input[ISA_LEN - 2];
    let segment = input[ISA_LEN - 1];
    let repetition = input[82];
    if segment.is_ascii_alphanumeric() || segment == element || segment == component {
        return Err(Error::Isa(
            "the segment terminator after ISA16 is not a distinct punctuation character".into(),
        ));
    }
    let repetition =
        (!repetition.is_ascii_alphanumeric() && repetition != b' ' && repetition != element)
            .then_some(repetition);
    Ok(Separators {
        element,
        component,
        repetition,
        segment,
    })
}

/// Splits `input` (starting with ISA) into segments. Line breaks and blanks around segments are
/// ignored.
pub fn segments(input: &[u8]) -> Result<(Separators, Vec<Segment<'_>>)> {
    let iter = SegmentIter::new(input)?;
    let separators = iter.separators();
    Ok((separators, iter.collect::<Result<Vec<_>>>()?))
}

/// The segments of `input` (starting with ISA) one at a time, so that a parser holds only the
/// segments it is working on rather than the whole file's.
#[derive(Debug)]
pub struct SegmentIter<'a> {
    separators: Separators,
    raw: std::str::Split<'a, char>,
    /// Segments yielded so far.
    count: usize,
    failed: bool,
}

impl<'a> SegmentIter<'a> {
    /// Reads the separators from the ISA header and checks that the input is text.
    pub fn new(input: &'a [u8]) -> Result<Self> {
        let separators = separators(input)?;
        let text = std::str::from_utf8(input).map_err(|e| {
            Error::Isa(format!(
                "the file is not text (invalid UTF-8 at byte {})",
                e.valid_up_to()
            ))
        })?;
        Ok(Self {
            separators,
            raw: text.split(separators.segment as char),
            count: 0,
            failed: false,
        })
    }

    /// The separators the ISA header declares.
    pub fn separators(&self) -> Separators {
        self.separators
    }

    /// Segments yielded so far.
    pub fn yielded(&self) -> usize {
        self.count
    }
}

impl<'a> Iterator for SegmentIter<'a> {
    type Item = Result<Segment<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let raw = self.raw.next()?;
            let raw = raw.trim_matches(|c: char| c.is_ascii_whitespace());
            if raw.is_empty() {
                continue;
            }
            let position = self.count + 1;
            let elements: Vec<&str> = raw.split(self.separators.element as char).collect();
            let id = elements[0];
            if !valid_id(id) {
                self.failed = true;
                return Some(Err(Error::segment(
                    position,
                    id,
                    "invalid segment identifier (two or three upper-case letters or digits)",
                )));
            }
            self.count = position;
            return Some(Ok(Segment {
                position,
                elements,
                component: self.separators.component,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISA: &str = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*P*:~";

    #[test]
    fn separators_from_isa() {
        assert_eq!(ISA.len(), 106);
        let s = separators(ISA.as_bytes()).unwrap();
        assert_eq!(
            (s.element, s.component, s.segment, s.repetition),
            (b'*', b':', b'~', Some(b'^'))
        );
        let custom = ISA
            .replace('*', "|")
            .replace(":~", "^!")
            .replace("*^*", "|~|");
        let custom = custom.replace("|^|00501", "|~|00501");
        let s = separators(custom.as_bytes()).unwrap();
        assert_eq!((s.element, s.component, s.segment), (b'|', b'^', b'!'));
    }

    #[test]
    fn bad_isa() {
        assert!(separators(b"GS*HC").is_err());
        let short = ISA.replacen("*          *", "*         *", 1) + "\nGS*HC*SENDER*RECEIVER~";
        assert!(
            separators(short.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("ISA02")
        );
    }

    #[test]
    fn splits_with_line_breaks() {
        let text = format!("{ISA}\r\nGS*HC*A*B~\nCLM*1*10***11:B:1~\n");
        let (_, segs) = segments(text.as_bytes()).unwrap();
        assert_eq!(
            segs.iter().map(Segment::id).collect::<Vec<_>>(),
            ["ISA", "GS", "CLM"]
        );
        assert_eq!(segs[2].component(5, 3), Some("1"));
        assert_eq!(segs[2].get(3), None);
        let bad = format!("{ISA}\nNd4*X~");
        assert!(
            segments(bad.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("segment 2 (?)")
        );
    }
}
