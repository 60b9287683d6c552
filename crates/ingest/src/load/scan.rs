//! The first pass (the crawler): each file hashed, its structurally bad rows counted and its
//! columns' value classes gathered.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use serde_json::{Map, Value};

use crate::format::Format;
use crate::infer::ColumnStats;
use crate::reader::{HashingReader, open_decompressed};
use crate::rows::{Reject, RowSink, classify_json, read_csv, read_ndjson};
use crate::value::classify;
use crate::{Error, Result};

use super::schema::delta_friendly;
use super::{FileScan, Progress};

/// The label stored in `_source_file` and the history: the path as given.
pub(super) fn label_of(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Pass 1 for one file.
pub(super) fn scan_file(
    path: &Path,
    format: Format,
    progress: Option<Arc<dyn Progress>>,
) -> Result<FileScan> {
    let disk_bytes = path.metadata().map(|m| m.len()).unwrap_or(0);
    let read_err = |source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut scan = FileScan {
        path: path.to_path_buf(),
        label: label_of(path),
        sha256: String::new(),
        bytes: 0,
        disk_bytes,
        good_rows: 0,
        structural_rejects: 0,
        columns: Vec::new(),
        parquet: None,
    };
    let mut hashing = HashingReader::new(open_decompressed(path, progress)?);
    match format {
        Format::Parquet => {
            let (sha, bytes) = hashing.finish().map_err(read_err)?;
            scan.sha256 = sha;
            scan.bytes = bytes;
            match parquet_schema(path) {
                Ok((schema, rows)) => {
                    scan.good_rows = rows;
                    scan.parquet = Some(Ok(schema));
                }
                Err(reason) => {
                    scan.structural_rejects = 1;
                    scan.parquet = Some(Err(reason));
                }
            }
            return Ok(scan);
        }
        Format::Csv | Format::Ndjson => {
            let mut sink = ScanSink::default();
            let result = match format {
                Format::Csv => read_csv(&mut hashing, &mut sink),
                _ => read_ndjson(&mut hashing, &mut sink),
            };
            result.map_err(read_err)?;
            let (sha, bytes) = hashing.finish().map_err(read_err)?;
            scan.sha256 = sha;
            scan.bytes = bytes;
            scan.good_rows = sink.rows;
            scan.structural_rejects = sink.rejects;
            scan.columns = sink.columns.into_iter().zip(sink.stats).collect();
        }
    }
    Ok(scan)
}

pub(super) fn parquet_schema(path: &Path) -> std::result::Result<(SchemaRef, u64), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("not a readable Parquet file ({e})"))?;
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let fields: Vec<Field> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut name = carelake_common::normalize_identifier(f.name());
            if name.is_empty() {
                name = format!("column_{}", i + 1);
            }
            Field::new(name, delta_friendly(f.data_type()), true)
        })
        .collect();
    Ok((Arc::new(Schema::new(fields)), rows))
}

/// Pass-1 sink: statistics per column.
#[derive(Default)]
pub(super) struct ScanSink {
    pub(super) columns: Vec<String>,
    pub(super) stats: Vec<ColumnStats>,
    pub(super) json_keys: HashMap<String, usize>,
    pub(super) rows: u64,
    pub(super) rejects: u64,
}

impl ScanSink {
    fn json_column(&mut self, key: &str) -> usize {
        if let Some(i) = self.json_keys.get(key) {
            return *i;
        }
        let mut name = carelake_common::normalize_identifier(key);
        if name.is_empty() {
            name = "field".into();
        }
        let index = match self.columns.iter().position(|c| *c == name) {
            Some(i) => i,
            None => {
                self.columns.push(name);
                self.stats.push(ColumnStats::default());
                self.columns.len() - 1
            }
        };
        self.json_keys.insert(key.to_string(), index);
        index
    }
}

impl RowSink for ScanSink {
    fn header(&mut self, columns: &[String]) {
        self.columns = columns.to_vec();
        self.stats = vec![ColumnStats::default(); columns.len()];
    }

    fn csv_row(&mut self, _line: u64, cells: &[&str], _raw: &dyn Fn() -> String) {
        self.rows += 1;
        for (stats, cell) in self.stats.iter_mut().zip(cells) {
            stats.observe(classify(cell));
        }
    }

    fn json_row(&mut self, _line: u64, object: &Map<String, Value>, _raw: &str) {
        self.rows += 1;
        for (key, value) in object {
            let i = self.json_column(key);
            self.stats[i].observe(classify_json(value));
        }
    }

    fn reject(&mut self, _reject: Reject) {
        self.rejects += 1;
    }
}
