//! Messages, segments and fields, borrowed from the input text.

use std::borrow::Cow;

use memchr::memchr;

use crate::escape::decode_escapes;
use crate::path::FieldPath;
use crate::{Error, Result};

/// The delimiters of a message, from MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Field separator (MSH-1), usually `|`.
    pub field: u8,
    /// Component separator, usually `^`.
    pub component: u8,
    /// Repetition separator, usually `~`.
    pub repetition: u8,
    /// Escape character, usually `\`; some senders leave it out.
    pub escape: Option<u8>,
    /// Subcomponent separator, usually `&`.
    pub subcomponent: u8,
    /// Truncation character (v2.7+), usually `#`.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: b'&',
            truncation: None,
        }
    }
}

impl Delimiters {
    /// Reads the delimiters from a segment starting `MSH`, `FHS` or `BHS`.
    pub fn from_header(segment: &str) -> Result<Self> {
        let bytes = segment.as_bytes();
        if bytes.len() < 4 {
            return Err(Error::ShortHeader);
        }
        let field = bytes[3];
        let encoding_end = memchr(field, &bytes[4..]).map_or(bytes.len(), |i| i + 4);
        let encoding = &bytes[4..encoding_end];
        if encoding.len() < 2 {
            return Err(Error::ShortHeader);
        }
        let d = Delimiters {
            field,
            component: encoding[0],
            repetition: encoding[1],
            escape: encoding.get(2).copied(),
            subcomponent: encoding.get(3).copied().unwrap_or(b'&'),
            truncation: encoding.get(4).copied(),
        };
        let all = [
            Some(d.field),
            Some(d.component),
            Some(d.repetition),
            d.escape,
            Some(d.subcomponent),
        ];
        for (i, a) in all.iter().enumerate() {
            let Some(a) = a else { continue };
            if !a.is_ascii() || a.is_ascii_alphanumeric() || a.is_ascii_whitespace() {
                return Err(Error::Delimiters(
                    "delimiters must be ASCII punctuation, not letters, digits or spaces",
                ));
            }
            if all[i + 1..].contains(&Some(*a)) {
                return Err(Error::Delimiters("the same character is used twice"));
            }
        }
        Ok(d)
    }
}

/// A parsed HL7 v2 message. It borrows the text and keeps, per segment, where its fields
/// start; components and subcomponents are split when read.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    text: &'a str,
    delimiters: Delimiters,
    /// Per segment: its byte range in `text` and the index of its first entry in `fields`.
    segments: Vec<SegmentSpan>,
    /// Start offsets (into `text`) of every field of every segment, the name included, plus
    /// one past the end of each segment, so field `i` of a segment spans
    /// `fields[first + i] .. fields[first + i + 1] - 1`.
    fields: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct SegmentSpan {
    start: u32,
    end: u32,
    first_field: u32,
    field_count: u32,
}

/// Splits text into segments at CR, LF or CRLF, skipping empty lines; yields (start, end).
pub(crate) fn segment_ranges(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        loop {
            if pos >= bytes.len() {
                return None;
            }
            let start = pos;
            let end = memchr::memchr2(b'\r', b'\n', &bytes[pos..]).map_or(bytes.len(), |i| i + pos);
            pos = end + 1;
            if end > start && !bytes[start..end].iter().all(|b| *b == b' ' || *b == b'\t') {
                return Some((start, end));
            }
        }
    })
}

fn valid_segment_name(name: &[u8]) -> bool {
    name.len() == 3
        && name[0].is_ascii_uppercase()
        && name[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl<'a> Message<'a> {
    /// Parses a message: MSH first (a UTF-8 byte-order mark before it is skipped), segments
    /// separated by CR, LF or CRLF.
    pub fn parse(text: &'a str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let trimmed = text.trim_start_matches(['\r', '\n', ' ', '\t', '\u{0b}']);
        let text = &text[text.len() - trimmed.len()..];
        if text.len() > u32::MAX as usize - 1 {
            return Err(Error::Delimiters("message larger than 4 GiB"));
        }
        let mut ranges = segment_ranges(text);
        let (first_start, first_end) = ranges.next().ok_or(Error::Empty)?;
        let first = &text[first_start..first_end];
        if !first.starts_with("MSH") {
            let found: String = first
                .chars()
                .take(3)
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            return Err(Error::MissingHeader { found });
        }
        let delimiters = Delimiters::from_header(first)?;
        let mut message = Message {
            text,
            delimiters,
            segments: Vec::with_capacity(16),
            fields: Vec::with_capacity(256),
        };
        message.index_segment(first_start, first_end);
        for (index, (start, end)) in ranges.enumerate() {
            let name = &text.as_bytes()[start..end.min(start + 3)];
            let after = text.as_bytes().get(start + 3).copied();
            if !valid_segment_name(name) || !(after.is_none() || after == Some(delimiters.field)) {
                return Err(Error::SegmentName { index: index + 2 });
            }
            message.index_segment(start, end);
        }
        Ok(message)
    }

    fn index_segment(&mut self, start: usize, end: usize) {
        let bytes = &self.text.as_bytes()[start..end];
        let first_field = self.fields.len() as u32;
        self.fields.push(start as u32);
        let sep = self.delimiters.field;
        for i in memchr::memchr_iter(sep, bytes) {
            self.fields.push((start + i + 1) as u32);
        }
        self.fields.push((end + 1) as u32);
        let field_count = self.fields.len() as u32 - first_field - 1;
        self.segments.push(SegmentSpan {
            start: start as u32,
            end: end as u32,
            first_field,
            field_count,
        });
    }

    /// The message text (after any byte-order mark).
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The message's delimiters.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delimiters
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Every segment in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_, 'a>> + '_ {
        (0..self.segments.len()).map(move |i| Segment {
            message: self,
            index: i,
        })
    }

    /// The segments with this name, in order.
    pub fn segments_named<'m>(
        &'m self,
        name: &'m str,
    ) -> impl Iterator<Item = Segment<'m, 'a>> + 'm {
        self.segments().filter(move |s| s.name() == name)
    }

    /// The `n`th (1-based) segment with this name.
    pub fn segment(&self, name: &str, n: usize) -> Option<Segment<'_, 'a>> {
        let n = n.checked_sub(1)?;
        self.segments().filter(|s| s.name() == name).nth(n)
    }

    /// A value by path (`PID-5.1`, `PID-3(2).1`, `OBX[2]-5`, `PID-5.1.2`), escape-decoded.
    /// `None` when the path is malformed or the value is absent or empty.
    pub fn get(&self, path: &str) -> Option<Cow<'a, str>> {
        let path = FieldPath::parse(path).ok()?;
        let segment = self.segment(&path.segment, path.occurrence)?;
        segment.value(
            path.field,
            path.repetition,
            path.component,
            path.subcomponent,
        )
    }

    /// Every repetition of a field by path (the repetition in the path is ignored).
    pub fn get_all(&self, path: &str) -> Vec<Cow<'a, str>> {
        let Ok(path) = FieldPath::parse(path) else {
            return Vec::new();
        };
        let Some(segment) = self.segment(&path.segment, path.occurrence) else {
            return Vec::new();
        };
        let count = segment.repetition_count(path.field);
        (1..=count)
            .filter_map(|r| segment.value(path.field, r, path.component, path.subcomponent))
            .collect()
    }

    /// Decodes escape sequences with this message's delimiters.
    pub fn decode<'t>(&self, raw: &'t str) -> Cow<'t, str> {
        decode_escapes(raw, &self.delimiters)
    }
}

/// One segment of a message.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'m, 'a> {
    message: &'m Message<'a>,
    index: usize,
}

impl<'m, 'a> Segment<'m, 'a> {
    fn span(&self) -> SegmentSpan {
        self.message.segments[self.index]
    }

    /// The segment's name (`PID`, `ZPI`…).
    pub fn name(&self) -> &'a str {
        let s = self.span();
        let end = (s.start as usize + 3).min(s.end as usize);
        self.message.text.get(s.start as usize..end).unwrap_or("")
    }

    /// The segment's whole text.
    pub fn text(&self) -> &'a str {
        let s = self.span();
        &self.message.text[s.start as usize..s.end as usize]
    }

    fn is_header(&self) -> bool {
        self.index == 0 || matches!(self.name(), "MSH" | "FHS" | "BHS")
    }

    /// Number of fields after the name.
    pub fn field_count(&self) -> usize {
        let n = self.span().field_count as usize - 1;
        if self.is_header() { n + 1 } else { n }
    }

    /// A field's raw text (not decoded), 1-based as in the standard: for MSH, field 1 is the
    /// field separator and field 2 the encoding characters.
    pub fn field(&self, n: usize) -> Option<&'a str> {
        let s = self.span();
        if n == 0 {
            return Some(self.name());
        }
        let slot = if self.is_header() {
            if n == 1 {
                let at = s.start as usize + 3;
                return self.message.text.get(at..at + 1);
            }
            n - 1
        } else {
            n
        };
        if slot >= s.field_count as usize {
            return None;
        }
        let base = s.first_field as usize + slot;
        let start = self.message.fields[base] as usize;
        let end = self.message.fields[base + 1] as usize - 1;
        self.message.text.get(start..end)
    }

    /// Number of repetitions of a field (0 when empty or absent).
    pub fn repetition_count(&self, n: usize) -> usize {
        match self.field(n) {
            None | Some("") => 0,
            Some(_) if self.is_header() && n <= 2 => 1,
            Some(f) => {
                memchr::memchr_iter(self.message.delimiters.repetition, f.as_bytes()).count() + 1
            }
        }
    }

    /// The raw text of one repetition (1-based).
    pub fn repetition(&self, n: usize, repetition: usize) -> Option<&'a str> {
        let field = self.field(n)?;
        if self.is_header() && n <= 2 {
            return (repetition == 1).then_some(field);
        }
        field
            .split(self.message.delimiters.repetition as char)
            .nth(repetition.checked_sub(1)?)
    }

    /// A value, escape-decoded: field `n`, repetition, component and subcomponent (1-based;
    /// 0 for "the whole"). `None` when absent or empty.
    pub fn value(
        &self,
        n: usize,
        repetition: usize,
        component: usize,
        subcomponent: usize,
    ) -> Option<Cow<'a, str>> {
        let d = self.message.delimiters;
        let mut raw = self.repetition(n, repetition.max(1))?;
        if self.is_header() && n <= 2 {
            return (!raw.is_empty()).then_some(Cow::Borrowed(raw));
        }
        if component > 0 {
            raw = raw.split(d.component as char).nth(component - 1)?;
            if subcomponent > 0 {
                raw = raw.split(d.subcomponent as char).nth(subcomponent - 1)?;
            }
        }
        if raw.is_empty() || raw == "\"\"" {
            return None;
        }
        Some(decode_escapes(raw, &d))
    }

    /// Shorthand: component `c` of the first repetition of field `n`, decoded.
    pub fn component(&self, n: usize, c: usize) -> Option<Cow<'a, str>> {
        self.value(n, 1, c, 0)
    }

    /// Every component of every repetition, decoded (for counting and tests).
    pub fn components(&self) -> usize {
        let d = self.message.delimiters;
        (1..=self.field_count())
            .map(|n| {
                self.field(n).map_or(0, |f| {
                    f.split(d.repetition as char)
                        .map(|r| r.split(d.component as char).count())
                        .sum()
                })
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|EPIC|HOSP|CL|CL|20240101120000||ADT^A01^ADT_A01|MSG001|P|2.5.1\rEVN|A01|20240101115900\rPID|1||123^^^HOSP^MR~999-00-1111^^^SSA^SS||Doe^Jane^Q||19800101|F|||1 Main St^^Springfield^IL^62701\rPV1|1|I|ICU^101^A^HOSP\rZPI|custom|x\r";

    #[test]
    fn fields_by_path() {
        let m = Message::parse(ADT).unwrap();
        assert_eq!(m.segment_count(), 5);
        assert_eq!(m.get("MSH-1").as_deref(), Some("|"));
        assert_eq!(m.get("MSH-2").as_deref(), Some("^~\\&"));
        assert_eq!(m.get("MSH-3").as_deref(), Some("EPIC"));
        assert_eq!(m.get("MSH-9.2").as_deref(), Some("A01"));
        assert_eq!(m.get("MSH-10").as_deref(), Some("MSG001"));
        assert_eq!(m.get("PID-5.1").as_deref(), Some("Doe"));
        assert_eq!(m.get("PID-3(2).1").as_deref(), Some("999-00-1111"));
        assert_eq!(m.get("PID-3.4").as_deref(), Some("HOSP"));
        assert_eq!(m.get_all("PID-3.1"), vec!["123", "999-00-1111"]);
        assert_eq!(m.get("PV1-3.2").as_deref(), Some("101"));
        assert_eq!(m.get("ZPI-1").as_deref(), Some("custom"));
        assert_eq!(m.get("PID-99"), None);
        assert_eq!(m.get("OBX-5"), None);
        assert_eq!(m.get("nonsense"), None);
    }

    #[test]
    fn custom_delimiters_and_line_endings() {
        let text =
            "MSH#$*@!#A#B#C#D#20240101##ADT$A08#X1#P#2.3\nPID#1##77$$$H$MR##Roe$Ann*Mary\r\n";
        let m = Message::parse(text).unwrap();
        assert_eq!(m.delimiters().component, b'$');
        assert_eq!(m.get("MSH-9.2").as_deref(), Some("A08"));
        assert_eq!(m.get("PID-3.1").as_deref(), Some("77"));
        assert_eq!(m.get("PID-5(2).1").as_deref(), Some("Mary"));
    }

    #[test]
    fn rejects_what_is_not_a_message() {
        assert!(matches!(Message::parse(""), Err(Error::Empty)));
        assert!(matches!(
            Message::parse("PID|1"),
            Err(Error::MissingHeader { .. })
        ));
        assert!(matches!(Message::parse("MSH|"), Err(Error::ShortHeader)));
        assert!(matches!(
            Message::parse("MSH|^^\\&|"),
            Err(Error::Delimiters(_))
        ));
        assert!(matches!(
            Message::parse("MSH|^~\\&|A\rpid|1"),
            Err(Error::SegmentName { index: 2 })
        ));
        // A BOM and blank lines are fine.
        assert!(Message::parse("\u{feff}MSH|^~\\&|A\r\n\r\nPID|1").is_ok());
    }
}
