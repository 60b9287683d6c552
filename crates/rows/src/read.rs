//! Row-level reading of CSV and NDJSON streams, shared by both passes of a load so that the
//! crawler and the writer agree on which rows are bad.

use std::io::{self, BufRead, BufReader, Read};

use serde_json::{Map, Value};

use crate::value::{Class, classify};

/// Longest field (CSV) or line (NDJSON) accepted; longer ones are rejected, not truncated.
pub const MAX_FIELD_BYTES: usize = 1 << 20;
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// Longest raw text kept for a rejected row.
const MAX_REJECT_TEXT: usize = 64 * 1024;

/// A row that could not be loaded.
#[derive(Debug, Clone)]
pub struct Reject {
    /// Its line in the file (1-based; a CSV record's first line).
    pub line: u64,
    /// Why, without the row's values.
    pub reason: String,
    /// The row as read (clipped), for the quarantine table.
    pub raw: String,
}

fn clip(mut text: String) -> String {
    if text.len() > MAX_REJECT_TEXT {
        let mut cut = MAX_REJECT_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Receives the rows of a file.
pub trait RowSink {
    /// The CSV header, normalised, before any row.
    fn header(&mut self, _columns: &[String]) {}
    /// A structurally sound CSV row: one cell per header column.
    fn csv_row(&mut self, _line: u64, _cells: &[&str], _raw: &dyn Fn() -> String) {}
    /// A JSON object.
    fn json_row(&mut self, _line: u64, _object: &Map<String, Value>, _raw: &str) {}
    /// A row rejected while reading.
    fn reject(&mut self, reject: Reject);
    /// Whether to stop reading (the consumer went away).
    fn cancelled(&self) -> bool {
        false
    }
}

/// Picks the delimiter that occurs most in the first line, outside quotes.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let mut counts = [0usize; 4];
    let candidates = [b',', b'\t', b';', b'|'];
    let mut in_quotes = false;
    for b in &head[..line_end] {
        if *b == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && let Some(i) = candidates.iter().position(|c| c == b) {
            counts[i] += 1;
        }
    }
    let best = (0..4).max_by_key(|i| (counts[*i], 4 - i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// Makes header names unique and non-empty.
pub fn normalize_header(raw: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, name)| {
            let mut base = carelake_common::normalize_identifier(name);
            if base.is_empty() {
                base = format!("column_{}", i + 1);
            }
            let mut candidate = base.clone();
            let mut n = 2;
            while !seen.insert(candidate.clone()) {
                candidate = format!("{base}_{n}");
                n += 1;
            }
            candidate
        })
        .collect()
}

/// Reads a CSV stream, sending the header, good rows and rejects to `sink`.
pub fn read_csv(reader: &mut dyn Read, sink: &mut dyn RowSink) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    if looks_binary(&mut reader)? {
        sink.reject(Reject {
            line: 1,
            reason: "binary content (NUL bytes): not a delimited text file".into(),
            raw: binary_preview(&mut reader),
        });
        return Ok(());
    }
    let delimiter = sniff_delimiter(reader.fill_buf()?);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut columns: Vec<String> = Vec::new();
    let raw_of = |record: &csv::ByteRecord| -> String {
        let mut out = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(Vec::new());
        let _ = out.write_byte_record(record);
        let bytes = out.into_inner().unwrap_or_default();
        clip(String::from_utf8_lossy(&bytes).trim_end().to_string())
    };
    let mut header_seen = false;
    while !sink.cancelled() {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                if let csv::ErrorKind::Io(io) = e.kind() {
                    return Err(std::io::Error::new(io.kind(), io.to_string()));
                }
                sink.reject(Reject {
                    line,
                    reason: "unreadable CSV record".into(),
                    raw: String::new(),
                });
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if !header_seen {
            header_seen = true;
            let names: Vec<String> = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            columns = normalize_header(&names);
            sink.header(&columns);
            continue;
        }
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // a blank line
        }
        if record.len() != columns.len() {
            sink.reject(Reject {
                line,
                reason: format!("expected {} fields, found {}", columns.len(), record.len()),
                raw: raw_of(&record),
            });
            continue;
        }
        let mut cells: Vec<&str> = Vec::with_capacity(columns.len());
        let mut bad: Option<String> = None;
        for (i, field) in record.iter().enumerate() {
            if field.len() > MAX_FIELD_BYTES {
                bad = Some(format!(
                    "field {} is {} bytes, over the {} byte limit",
                    columns[i],
                    field.len(),
                    MAX_FIELD_BYTES
                ));
                break;
            }
            match std::str::from_utf8(field) {
                Ok(s) => cells.push(s),
                Err(_) => {
                    bad = Some(format!("invalid UTF-8 in field {}", columns[i]));
                    break;
                }
            }
        }
        match bad {
            Some(reason) => {
                drop(cells);
                sink.reject(Reject {
                    line,
                    reason,
                    raw: raw_of(&record),
                });
            }
            None => sink.csv_row(line, &cells, &|| raw_of(&record)),
        }
    }
    Ok(())
}

/// Reads an NDJSON stream (one JSON object per line), sending objects and rejects to `sink`.
pub fn read_ndjson(reader: &mut dyn Read, sink: &mut dyn RowSink) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    if looks_binary(&mut reader)? {
        sink.reject(Reject {
            line: 1,
            reason: "binary content (NUL bytes): not an NDJSON file".into(),
            raw: binary_preview(&mut reader),
        });
        return Ok(());
    }
    let mut buf = Vec::new();
    let mut line = 0u64;
    while !sink.cancelled() {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line += 1;
        let mut bytes = buf.as_slice();
        if line == 1 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        let bytes = bytes.trim_ascii();
        if bytes.is_empty() {
            continue;
        }
        if bytes.len() > MAX_LINE_BYTES {
            sink.reject(Reject {
                line,
                reason: format!(
                    "line is {} bytes, over the {} byte limit",
                    bytes.len(),
                    MAX_LINE_BYTES
                ),
                raw: clip(String::from_utf8_lossy(bytes).into_owned()),
            });
            continue;
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                sink.reject(Reject {
                    line,
                    reason: "invalid UTF-8".into(),
                    raw: clip(String::from_utf8_lossy(bytes).into_owned()),
                });
                continue;
            }
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => sink.json_row(line, &object, text),
            Ok(_) => sink.reject(Reject {
                line,
                reason: "not a JSON object".into(),
                raw: clip(text.to_string()),
            }),
            Err(e) => sink.reject(Reject {
                line,
                reason: format!(
                    "invalid JSON at column {}: {}",
                    e.column(),
                    json_error_kind(&e)
                ),
                raw: clip(text.to_string()),
            }),
        }
    }
    Ok(())
}

/// serde_json's message without the value it quotes (no data in reasons).
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Eof => "unexpected end of line",
        serde_json::error::Category::Data => "invalid value",
        serde_json::error::Category::Io => "read error",
    }
}

/// Classifies a JSON value. Strings are text unless they hold a date or timestamp; numbers and
/// booleans keep their JSON type; nested values are stored as JSON text.
pub fn classify_json(value: &Value) -> Class {
    match value {
        Value::Null => Class::Null,
        Value::Bool(_) => Class::Bool,
        Value::Number(n) => classify(&n.to_string()),
        Value::String(s) => match classify(s) {
            c @ (Class::Date(_) | Class::Timestamp(_) | Class::Null) => c,
            _ => Class::Text,
        },
        Value::Array(_) | Value::Object(_) => Class::Text,
    }
}

/// Text of a JSON value as stored in a string column.
pub fn json_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b {
            "true"
        } else {
            "false"
        })),
        other => Some(std::borrow::Cow::Owned(other.to_string())),
    }
}

/// Whether the start of the content looks binary (NUL bytes), i.e. is not text at all.
pub fn looks_binary<R: BufRead>(reader: &mut R) -> io::Result<bool> {
    let head = reader.fill_buf()?;
    Ok(head.iter().take(8192).any(|b| *b == 0))
}

/// A printable preview of binary content for the rejects table.
pub fn binary_preview<R: BufRead>(reader: &mut R) -> String {
    let head = reader.fill_buf().unwrap_or(&[]);
    let n = head.len().min(64);
    format!("<binary: {}…>", hex::encode(&head[..n]))
}
