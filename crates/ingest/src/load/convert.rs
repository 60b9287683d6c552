//! The second pass: rows parsed into the target types and cut into Arrow batches on a
//! thread of their own (CSV and NDJSON through the row readers, Parquet cast column by column).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::format::Format;
use crate::infer::ColumnType;
use crate::reader::open_decompressed;
use crate::rows::{
    BatchBuilder, Cell, Reject, RowSink, classify_json, json_text, parse_cell, read_csv,
    read_ndjson,
};
use crate::value::classify;
use crate::{Error, Result};

use super::{FileScan, Progress, Tally, TargetColumn, check_ratio};

pub(super) struct ProduceJob {
    pub(super) scans: Vec<FileScan>,
    pub(super) format: Format,
    pub(super) columns: Vec<TargetColumn>,
    pub(super) schema: SchemaRef,
    pub(super) load_id: String,
    pub(super) loaded_at: i64,
    pub(super) max_ratio: Option<f64>,
    pub(super) progress: Option<Arc<dyn Progress>>,
}

pub(super) type BatchSender = mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>;

/// Pass 2, on a worker thread: converts every file and sends batches to the writer. Ends with
/// an error item when the reject ratio is exceeded, so that nothing is committed.
pub(super) fn produce(job: ProduceJob, tx: &BatchSender, tally: &Mutex<Tally>) {
    let column_types: Vec<ColumnType> = job.columns.iter().map(|c| c.parse_as).collect();
    let mut builder = BatchBuilder::new(
        Arc::clone(&job.schema),
        column_types,
        job.load_id.clone(),
        job.loaded_at,
    );
    let index: HashMap<String, usize> = job
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    let mut local = Tally::default();
    let mut failed = false;
    for scan in &job.scans {
        builder.file_label = scan.label.clone();
        let outcome = match job.format {
            Format::Parquet => produce_parquet(scan, &job, &index, tx, &mut local),
            Format::Csv | Format::Ndjson => {
                let mut sink = BuildSink {
                    builder: &mut builder,
                    index: &index,
                    csv_map: Vec::new(),
                    json_keys: HashMap::new(),
                    tx,
                    label: &scan.label,
                    tally: &mut local,
                    closed: false,
                    loaded: 0,
                    rejected: 0,
                };
                let result =
                    open_decompressed(&scan.path, job.progress.clone()).and_then(|mut reader| {
                        let read = match job.format {
                            Format::Csv => read_csv(&mut reader, &mut sink),
                            _ => read_ndjson(&mut reader, &mut sink),
                        };
                        read.map_err(|source| Error::ReadFile {
                            path: scan.path.clone(),
                            source,
                        })
                    });
                let (closed, loaded, rejected) = (sink.closed, sink.loaded, sink.rejected);
                *local.loaded.entry(scan.label.clone()).or_default() += loaded;
                *local.rejected.entry(scan.label.clone()).or_default() += rejected;
                result.map(|()| !closed)
            }
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return, // the writer went away; its error is reported there
            Err(e) => {
                let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(e))));
                failed = true;
                break;
            }
        }
    }
    if !failed && !builder.is_empty() {
        match builder.finish() {
            Ok(batch) => {
                let _ = tx.blocking_send(Ok(batch));
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
            }
        }
    }
    let rejected: u64 = local.rejected.values().sum();
    let loaded: u64 = local.loaded.values().sum();
    if let Some(err) = check_ratio(rejected, rejected + loaded, job.max_ratio) {
        let message = err.to_string();
        local.too_many = Some(err);
        let _ = tx.blocking_send(Err(DataFusionError::Execution(message)));
    }
    if let Ok(mut shared) = tally.lock() {
        *shared = local;
    }
}

pub(super) fn produce_parquet(
    scan: &FileScan,
    job: &ProduceJob,
    index: &HashMap<String, usize>,
    tx: &BatchSender,
    tally: &mut Tally,
) -> Result<bool> {
    let parquet_err = |reason: String| Error::Parquet {
        path: scan.path.clone(),
        reason,
    };
    if let Some(Err(reason)) = &scan.parquet {
        *tally.rejected.entry(scan.label.clone()).or_default() += 1;
        tally.rejects.push((
            scan.label.clone(),
            Reject {
                line: 0,
                reason: reason.clone(),
                raw: String::new(),
            },
        ));
        return Ok(true);
    }
    let file = std::fs::File::open(&scan.path).map_err(|source| Error::ReadFile {
        path: scan.path.clone(),
        source,
    })?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(crate::rows::BATCH_ROWS).build())
        .map_err(|e| parquet_err(e.to_string()))?;
    let mut line = 0i64;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(e.to_string()))?;
        let rows = batch.num_rows();
        let mut arrays: Vec<Option<ArrayRef>> = vec![None; job.columns.len()];
        for (i, field) in batch.schema().fields().iter().enumerate() {
            let name = carelake_common::normalize_identifier(field.name());
            if let Some(target) = index.get(&name) {
                let array = arrow::compute::cast(batch.column(i), &job.columns[*target].data_type)?;
                arrays[*target] = Some(array);
            }
        }
        let mut columns: Vec<ArrayRef> = arrays
            .into_iter()
            .zip(&job.columns)
            .map(|(a, c)| a.unwrap_or_else(|| arrow::array::new_null_array(&c.data_type, rows)))
            .collect();
        columns.push(Arc::new(StringArray::from(vec![scan.label.as_str(); rows])));
        columns.push(Arc::new(Int64Array::from_iter_values(
            (line + 1)..=(line + rows as i64),
        )));
        columns.push(Arc::new(StringArray::from(vec![
            job.load_id.as_str();
            rows
        ])));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![job.loaded_at; rows]).with_timezone("UTC"),
        ));
        line += rows as i64;
        let out = RecordBatch::try_new(Arc::clone(&job.schema), columns)?;
        *tally.loaded.entry(scan.label.clone()).or_default() += rows as u64;
        if tx.blocking_send(Ok(out)).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Pass-2 sink: converts rows to the target schema and sends full batches.
pub(super) struct BuildSink<'a> {
    pub(super) builder: &'a mut BatchBuilder,
    pub(super) index: &'a HashMap<String, usize>,
    /// CSV field position → target column.
    pub(super) csv_map: Vec<Option<usize>>,
    /// JSON key → target column.
    pub(super) json_keys: HashMap<String, Option<usize>>,
    pub(super) tx: &'a BatchSender,
    pub(super) label: &'a str,
    pub(super) tally: &'a mut Tally,
    pub(super) closed: bool,
    pub(super) loaded: u64,
    pub(super) rejected: u64,
}

impl BuildSink<'_> {
    fn value_reject(&mut self, line: u64, column: usize, raw: String) {
        let column_type = self.builder.column_types()[column];
        let name = self
            .index
            .iter()
            .find(|(_, i)| **i == column)
            .map(|(n, _)| n.as_str())
            .unwrap_or("?");
        self.reject(Reject {
            line,
            reason: format!("column {name}: value is not a valid {column_type}"),
            raw,
        });
    }

    fn accept(&mut self, line: u64, cells: &[Cell<'_>]) {
        self.builder.append_row(line, cells);
        self.loaded += 1;
        if self.builder.is_full() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let batch = self.builder.finish().map_err(DataFusionError::from);
        if self.tx.blocking_send(batch).is_err() {
            self.closed = true;
        }
    }

    fn json_target(&mut self, key: &str) -> Option<usize> {
        if let Some(t) = self.json_keys.get(key) {
            return *t;
        }
        let mut name = carelake_common::normalize_identifier(key);
        if name.is_empty() {
            name = "field".into();
        }
        let target = self.index.get(&name).copied();
        self.json_keys.insert(key.to_string(), target);
        target
    }
}

impl RowSink for BuildSink<'_> {
    fn header(&mut self, columns: &[String]) {
        self.csv_map = columns.iter().map(|c| self.index.get(c).copied()).collect();
    }

    fn csv_row(&mut self, line: u64, cells: &[&str], raw: &dyn Fn() -> String) {
        let types = self.builder.column_types();
        let mut row = vec![Cell::Null; types.len()];
        for (position, text) in cells.iter().enumerate() {
            let Some(target) = self.csv_map.get(position).copied().flatten() else {
                continue;
            };
            match parse_cell(text, classify(text), types[target]) {
                Some(cell) => row[target] = cell,
                None => {
                    self.value_reject(line, target, raw());
                    return;
                }
            }
        }
        self.accept(line, &row);
    }

    fn json_row(&mut self, line: u64, object: &Map<String, Value>, raw: &str) {
        let targets: Vec<(Option<usize>, &Value)> = object
            .iter()
            .map(|(k, v)| (self.json_target(k), v))
            .collect();
        let texts: Vec<Option<std::borrow::Cow<'_, str>>> =
            targets.iter().map(|(_, v)| json_text(v)).collect();
        let types = self.builder.column_types().to_vec();
        let mut row = vec![Cell::Null; types.len()];
        for ((target, value), text) in targets.iter().zip(&texts) {
            let (Some(target), Some(text)) = (target, text) else {
                continue;
            };
            match parse_cell(text, classify_json(value), types[*target]) {
                Some(cell) => row[*target] = cell,
                None => {
                    self.value_reject(line, *target, raw.to_string());
                    return;
                }
            }
        }
        self.accept(line, &row);
    }

    fn reject(&mut self, reject: Reject) {
        self.rejected += 1;
        self.tally.rejects.push((self.label.to_string(), reject));
    }

    fn cancelled(&self) -> bool {
        self.closed
    }
}
