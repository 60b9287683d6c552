//! Row-level reading of CSV and NDJSON files, shared by both passes of a load so that the
//! crawler and the writer agree on which rows are bad, and conversion of rows into Arrow batches.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value};

use crate::infer::ColumnType;
use crate::reader::{binary_preview, looks_binary};
use crate::value::{Class, classify, parse_bool, parse_date, parse_timestamp};

/// Longest field (CSV) or line (NDJSON) accepted; longer ones are rejected, not truncated.
pub(crate) const MAX_FIELD_BYTES: usize = 1 << 20;
pub(crate) const MAX_LINE_BYTES: usize = 16 << 20;
/// Longest raw text kept for a rejected row.
const MAX_REJECT_TEXT: usize = 64 * 1024;

/// A row that could not be loaded.
#[derive(Debug, Clone)]
pub(crate) struct Reject {
    pub(crate) line: u64,
    pub(crate) reason: String,
    pub(crate) raw: String,
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
pub(crate) trait RowSink {
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
pub(crate) fn normalize_header(raw: &[String]) -> Vec<String> {
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
pub(crate) fn read_csv(reader: &mut dyn Read, sink: &mut dyn RowSink) -> std::io::Result<()> {
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
pub(crate) fn read_ndjson(reader: &mut dyn Read, sink: &mut dyn RowSink) -> std::io::Result<()> {
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
pub(crate) fn classify_json(value: &Value) -> Class {
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
pub(crate) fn json_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
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

/// Whether a value of `class` can be stored in a column of `column_type`.
pub(crate) fn fits(class: Class, column_type: ColumnType) -> bool {
    match (class, column_type) {
        (Class::Null, _) | (_, ColumnType::Text) => true,
        (Class::Bool, ColumnType::Boolean) => true,
        (Class::Int32, ColumnType::Int | ColumnType::BigInt | ColumnType::Double) => true,
        (Class::Int64, ColumnType::BigInt | ColumnType::Double) => true,
        (Class::Float, ColumnType::Double) => true,
        (Class::Date(form), ColumnType::Date(order) | ColumnType::Timestamp(order)) => {
            form.fits(order)
        }
        (Class::Timestamp(form), ColumnType::Timestamp(order)) => form.fits(order),
        _ => false,
    }
}

/// One parsed cell, ready to append.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i32),
    BigInt(i64),
    Double(f64),
    Date(i32),
    Timestamp(i64),
    Text(&'a str),
}

/// Parses `text` (of class `class`) into a cell of `column_type`, or `None` when it does not fit.
pub(crate) fn parse_cell(text: &str, class: Class, column_type: ColumnType) -> Option<Cell<'_>> {
    if matches!(class, Class::Null) {
        return Some(Cell::Null);
    }
    if !fits(class, column_type) {
        return None;
    }
    let t = text.trim();
    Some(match column_type {
        ColumnType::Null | ColumnType::Text => Cell::Text(text),
        ColumnType::Boolean => Cell::Bool(parse_bool(t)?),
        ColumnType::Int => Cell::Int(t.parse().ok()?),
        ColumnType::BigInt => Cell::BigInt(t.parse().ok()?),
        ColumnType::Double => Cell::Double(t.parse().ok()?),
        ColumnType::Date(order) => Cell::Date(parse_date(t, order)?),
        ColumnType::Timestamp(order) => Cell::Timestamp(parse_timestamp(t, order)?),
    })
}

enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

impl ColumnBuilder {
    fn new(column_type: ColumnType, capacity: usize) -> Self {
        match column_type {
            ColumnType::Null | ColumnType::Text => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            ColumnType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Int => ColumnBuilder::Int(Int32Builder::with_capacity(capacity)),
            ColumnType::BigInt => ColumnBuilder::BigInt(Int64Builder::with_capacity(capacity)),
            ColumnType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(capacity)),
            ColumnType::Date(_) => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Timestamp(_) => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
        }
    }

    fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Int(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::BigInt(b), Cell::BigInt(v)) => b.append_value(v),
            (ColumnBuilder::Double(b), Cell::Double(v)) => b.append_value(v),
            (ColumnBuilder::Date(b), Cell::Date(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(v),
            (ColumnBuilder::Text(b), Cell::Text(v)) => b.append_value(v),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::BigInt(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::BigInt(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            ColumnBuilder::Text(b) => b.values_slice().len(),
            ColumnBuilder::Bool(b) => b.len() / 8,
            other => other.len() * 8,
        }
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::Bool(b) => b.len(),
            ColumnBuilder::Int(b) => b.len(),
            ColumnBuilder::BigInt(b) => b.len(),
            ColumnBuilder::Double(b) => b.len(),
            ColumnBuilder::Date(b) => b.len(),
            ColumnBuilder::Timestamp(b) => b.len(),
            ColumnBuilder::Text(b) => b.len(),
        }
    }
}

/// Rows per batch, and the text bytes after which a batch is cut early (huge fields).
pub(crate) const BATCH_ROWS: usize = 16 * 1024;
const BATCH_BYTES: usize = 64 << 20;

/// Builds record batches in the target schema: data columns then the lineage columns.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    column_types: Vec<ColumnType>,
    columns: Vec<ColumnBuilder>,
    source_file: StringBuilder,
    source_line: Int64Builder,
    load_id: String,
    loaded_at: i64,
    rows: usize,
    /// The file name stored in `_source_file`.
    pub(crate) file_label: String,
}

impl BatchBuilder {
    /// `column_types` are the crawler types of the schema's data columns (the schema then has
    /// the four lineage columns).
    pub(crate) fn new(
        schema: SchemaRef,
        column_types: Vec<ColumnType>,
        load_id: String,
        loaded_at: i64,
    ) -> Self {
        let columns = column_types
            .iter()
            .map(|t| ColumnBuilder::new(*t, BATCH_ROWS))
            .collect();
        Self {
            schema,
            column_types,
            columns,
            source_file: StringBuilder::new(),
            source_line: Int64Builder::with_capacity(BATCH_ROWS),
            load_id,
            loaded_at,
            rows: 0,
            file_label: String::new(),
        }
    }

    pub(crate) fn column_types(&self) -> &[ColumnType] {
        &self.column_types
    }

    /// Appends a row; `cells[i]` is the cell for data column `i`.
    pub(crate) fn append_row(&mut self, line: u64, cells: &[Cell<'_>]) {
        for (builder, cell) in self.columns.iter_mut().zip(cells) {
            builder.append(*cell);
        }
        self.source_file.append_value(&self.file_label);
        self.source_line.append_value(line as i64);
        self.rows += 1;
    }

    /// Whether the batch should be cut now.
    pub(crate) fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS
            || (self.rows.is_multiple_of(256)
                && self.columns.iter().map(ColumnBuilder::bytes).sum::<usize>() > BATCH_BYTES)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows so far as a batch, casting to the target schema's exact types.
    pub(crate) fn finish(&mut self) -> arrow::error::Result<RecordBatch> {
        let rows = self.rows;
        self.rows = 0;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (builder, field) in self.columns.iter_mut().zip(self.schema.fields()) {
            let array = builder.finish();
            arrays.push(if array.data_type() == field.data_type() {
                array
            } else {
                arrow::compute::cast(&array, field.data_type())?
            });
        }
        arrays.push(Arc::new(self.source_file.finish()));
        arrays.push(Arc::new(self.source_line.finish()));
        arrays.push(Arc::new(arrow::array::StringArray::from(vec![
            self.load_id
                .as_str();
            rows
        ])));
        arrays.push(Arc::new(
            arrow::array::TimestampMicrosecondArray::from(vec![self.loaded_at; rows])
                .with_timezone("UTC"),
        ));
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
    }
}
