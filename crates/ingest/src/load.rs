//! The loader: exactly-once, all-or-nothing loads of files into a raw Delta table.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use carelake_common::{Principal, TableName, Zone};
use carelake_lake::{CatalogEvent, Lake, LoadRecord, LoadStatus, TimeTravel};
use chrono::Utc;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, col, lit};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::scalar::ScalarValue;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::{SchemaMode, WriteBuilder};
use deltalake::protocol::SaveMode;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::format::Format;
use crate::infer::{ColumnStats, ColumnType, timestamp_type};
use crate::reader::{HashingReader, open_decompressed};
use crate::rows::{
    BatchBuilder, Cell, Reject, RowSink, classify_json, json_text, parse_cell, read_csv,
    read_ndjson,
};
use crate::value::classify;
use crate::{Error, Result};

pub use crate::reader::expand_inputs;

/// The quarantine table in the raw zone.
pub const REJECTS_TABLE: &str = "_rejects";

/// Lineage columns added to every raw row.
pub const LINEAGE_COLUMNS: [&str; 4] = ["_source_file", "_source_line", "_load_id", "_loaded_at"];

/// How many times a load is retried when another writer commits the same files concurrently.
const MAX_CONFLICT_RETRIES: usize = 3;

/// Progress of a load, for a progress bar.
pub trait Progress: Send + Sync + fmt::Debug {
    /// A phase begins; `total_bytes` is the on-disk size of the files it reads.
    fn event(&self, event: ProgressEvent);
    /// Bytes read from disk since the last call.
    fn bytes_read(&self, bytes: u64);
}

/// A change of phase in a load.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// A phase started.
    Phase {
        /// "crawl" or "write".
        name: &'static str,
        /// Bytes to read in this phase.
        total_bytes: u64,
    },
    /// The load ended.
    Done,
}

/// What to load, and where.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// Files, folders or glob patterns.
    pub inputs: Vec<String>,
    /// The target table, in the raw zone.
    pub table: TableName,
    /// The format, or `None` to tell it from file names.
    pub format: Option<Format>,
    /// Fail the whole load (nothing committed) when more than this share of rows is rejected.
    pub max_reject_ratio: Option<f64>,
    /// Description for the catalog.
    pub description: Option<String>,
    /// Progress reporting.
    pub progress: Option<Arc<dyn Progress>>,
    /// Names recorded in `_source_file` and the load history instead of a file's local path
    /// (a watched object's URL, for a copy of it on local disk).
    pub labels: HashMap<PathBuf, String>,
}

impl LoadRequest {
    /// A request with default options.
    pub fn new(inputs: Vec<String>, table: TableName) -> Self {
        Self {
            inputs,
            table,
            format: None,
            max_reject_ratio: None,
            description: None,
            progress: None,
            labels: HashMap::new(),
        }
    }
}

/// The outcome for one file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    /// The file as named.
    pub path: String,
    /// Loaded, skipped (already loaded) or failed.
    pub status: LoadStatus,
    /// Rows committed from this file.
    pub rows_loaded: u64,
    /// Rows of this file sent to `raw._rejects`.
    pub rows_rejected: u64,
    /// Bytes of content.
    pub bytes: u64,
    /// SHA-256 of the content.
    pub sha256: String,
}

/// What a load did.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Identifier in `_load_id` and the load history.
    pub load_id: String,
    /// The target table.
    pub table: TableName,
    /// Per-file outcomes.
    pub files: Vec<FileOutcome>,
    /// Rows committed.
    pub rows_loaded: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// Bytes read (decompressed content of the loaded files).
    pub bytes: u64,
    /// The Delta version committed, when anything was.
    pub table_version: Option<u64>,
    /// Columns added or widened.
    pub schema_changes: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Loads files into raw tables on behalf of a principal.
#[derive(Debug, Clone)]
pub struct Loader {
    pub(crate) lake: Lake,
    pub(crate) principal: Principal,
}

/// The crawler's findings for one file.
#[derive(Debug, Clone)]
struct FileScan {
    path: PathBuf,
    label: String,
    sha256: String,
    bytes: u64,
    disk_bytes: u64,
    /// Rows that passed the structural checks.
    good_rows: u64,
    /// Rows rejected by the structural checks (column count, UTF-8, JSON syntax).
    structural_rejects: u64,
    /// CSV/NDJSON: columns in first-seen order with their statistics.
    columns: Vec<(String, ColumnStats)>,
    /// Parquet: the file's schema, or why it cannot be read.
    parquet: Option<std::result::Result<SchemaRef, String>>,
}

/// A data column of the target table.
#[derive(Debug, Clone)]
struct TargetColumn {
    name: String,
    data_type: DataType,
    /// How to parse text into it (carrying the slash-date order found by the crawler).
    parse_as: ColumnType,
}

#[derive(Debug, Default)]
struct Tally {
    loaded: HashMap<String, u64>,
    rejected: HashMap<String, u64>,
    rejects: Vec<(String, Reject)>,
    too_many: Option<Error>,
}

impl Loader {
    /// A loader writing to `lake` as `principal`.
    pub fn new(lake: Lake, principal: Principal) -> Self {
        Self { lake, principal }
    }

    /// Runs a load: crawl, infer, skip files already loaded, write one commit, quarantine bad
    /// rows, record the load.
    pub async fn load(&self, request: LoadRequest) -> Result<LoadSummary> {
        let started = Instant::now();
        let started_at = Utc::now();
        if request.table.zone != Zone::Raw {
            return Err(Error::NotRawZone(request.table.to_string()));
        }
        let files = expand_inputs(&request.inputs)?;
        let format = match request.format {
            Some(f) => f,
            None => {
                let first = Format::from_path(&files[0])?;
                for file in &files[1..] {
                    let other = Format::from_path(file)?;
                    if other != first {
                        return Err(Error::MixedFormats(first.as_str(), other.as_str()));
                    }
                }
                first
            }
        };
        let load_id = uuid::Uuid::new_v4().to_string();
        tracing::info!(table = %request.table, files = files.len(), format = format.as_str(), %load_id, "Load started.");

        // Pass 1: crawl.
        let progress = request.progress.clone();
        let total_disk: u64 = files
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        if let Some(p) = &progress {
            p.event(ProgressEvent::Phase {
                name: "crawl",
                total_bytes: total_disk,
            });
        }
        let mut scans = {
            let files = files.clone();
            let progress = progress.clone();
            tokio::task::spawn_blocking(move || {
                files
                    .iter()
                    .map(|f| scan_file(f, format, progress.clone()))
                    .collect::<Result<Vec<_>>>()
            })
            .await
            .map_err(|e| Error::Worker(e.to_string()))??
        };
        for (scan, file) in scans.iter_mut().zip(&files) {
            if let Some(label) = request.labels.get(file) {
                scan.label.clone_from(label);
            }
        }

        let mut attempt = 0;
        let mut created = false;
        loop {
            attempt += 1;
            match self
                .write_pass(&request, format, &scans, &load_id, started_at)
                .await
            {
                // The table now exists (made by this load or a concurrent one): plan again.
                Err(Error::TableCreated) if !created => {
                    created = true;
                    attempt -= 1;
                }
                Err(Error::Delta(deltalake::DeltaTableError::Transaction { source }))
                    if attempt < MAX_CONFLICT_RETRIES =>
                {
                    tracing::warn!(table = %request.table, error = %source, "Commit conflict; checking again which files are already loaded.");
                }
                Err(e) => {
                    let records: Vec<LoadRecord> = scans
                        .iter()
                        .map(|s| {
                            self.history_record(
                                &load_id,
                                &request,
                                format,
                                s,
                                LoadStatus::Failed,
                                0,
                                0,
                                started_at,
                            )
                        })
                        .collect();
                    if let Err(history_err) = self.lake.load_history().record(&records).await {
                        tracing::warn!(error = %history_err, "Could not record the failed load.");
                    }
                    if let Some(p) = &progress {
                        p.event(ProgressEvent::Done);
                    }
                    return Err(e);
                }
                Ok(mut summary) => {
                    if let Some(p) = &progress {
                        p.event(ProgressEvent::Done);
                    }
                    summary.elapsed = started.elapsed();
                    tracing::info!(table = %request.table, rows = summary.rows_loaded, rejected = summary.rows_rejected, "Load finished.");
                    return Ok(summary);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn history_record(
        &self,
        load_id: &str,
        request: &LoadRequest,
        format: Format,
        scan: &FileScan,
        status: LoadStatus,
        rows_loaded: u64,
        rows_rejected: u64,
        started_at: chrono::DateTime<Utc>,
    ) -> LoadRecord {
        LoadRecord {
            load_id: load_id.to_string(),
            table: request.table.to_string(),
            source_file: scan.label.clone(),
            content_sha256: scan.sha256.clone(),
            format: format.as_str().to_string(),
            rows_loaded: rows_loaded as i64,
            rows_rejected: rows_rejected as i64,
            bytes: scan.bytes as i64,
            status,
            principal: self.principal.name.clone(),
            started_at,
            finished_at: Utc::now(),
        }
    }

    async fn write_pass(
        &self,
        request: &LoadRequest,
        format: Format,
        scans: &[FileScan],
        load_id: &str,
        started_at: chrono::DateTime<Utc>,
    ) -> Result<LoadSummary> {
        let entry = self.lake.catalog().get(&request.table).await?;
        if entry
            .as_ref()
            .is_some_and(|e| e.kind == carelake_lake::EntryKind::External)
        {
            return Err(crate::Error::ExternalTable(request.table.to_string()));
        }
        let table_url = self.lake.table_url(&request.table)?;
        let existing = self.lake.load_delta(&table_url, TimeTravel::Latest).await?;

        // Exactly once: a file whose content hash is recorded as a Delta application
        // transaction in the table has been loaded before.
        let mut to_load: Vec<&FileScan> = Vec::new();
        let mut skipped: Vec<&FileScan> = Vec::new();
        for scan in scans {
            let already = match &existing {
                Some(table) => table
                    .snapshot()?
                    .transaction_version(table.log_store().as_ref(), app_id(&scan.sha256))
                    .await?
                    .is_some(),
                None => false,
            };
            if already || to_load.iter().any(|s| s.sha256 == scan.sha256) {
                tracing::info!(file = %scan.label, "Skipped: this content was loaded before.");
                skipped.push(scan);
            } else {
                to_load.push(scan);
            }
        }

        let mut summary = LoadSummary {
            load_id: load_id.to_string(),
            table: request.table.clone(),
            files: Vec::new(),
            rows_loaded: 0,
            rows_rejected: 0,
            bytes: 0,
            table_version: existing.as_ref().and_then(|t| t.version()),
            schema_changes: Vec::new(),
            elapsed: Duration::ZERO,
        };
        let mut history = Vec::new();
        for scan in &skipped {
            summary.files.push(FileOutcome {
                path: scan.label.clone(),
                status: LoadStatus::Skipped,
                rows_loaded: 0,
                rows_rejected: 0,
                bytes: scan.bytes,
                sha256: scan.sha256.clone(),
            });
            history.push(self.history_record(
                load_id,
                request,
                format,
                scan,
                LoadStatus::Skipped,
                0,
                0,
                started_at,
            ));
        }
        if to_load.is_empty() {
            self.lake.load_history().record(&history).await?;
            // A load stopped between its commit and its catalog event (a crash) leaves the
            // table ahead of the catalog; run again, it finds every file loaded and completes
            // the catalog.
            if let Some(table) = &existing
                && entry
                    .as_ref()
                    .is_none_or(|e| e.table_version < table.version().map(|v| v as i64))
            {
                let mut event = CatalogEvent::written(request.table.clone(), table);
                if entry.is_none() {
                    event.owner = Some(self.principal.name.clone());
                    event.upstream = Some(Vec::new());
                    event.source = Some(format!(
                        "{} load, its catalog entry completed by a rerun",
                        format.as_str()
                    ));
                }
                self.lake.catalog().record(&[event]).await?;
            }
            return Ok(summary);
        }

        // Early check of the reject ratio from the crawl's structural rejects.
        let structural: u64 = to_load.iter().map(|s| s.structural_rejects).sum();
        let total: u64 = structural + to_load.iter().map(|s| s.good_rows).sum::<u64>();
        if let Some(err) = check_ratio(structural, total, request.max_reject_ratio) {
            return Err(err);
        }

        // One schema across the files, evolved against the table's.
        let incoming = infer_incoming(format, &to_load)?;
        let existing_schema = existing
            .as_ref()
            .map(|t| t.snapshot().map(|s| s.snapshot().arrow_schema()))
            .transpose()?;
        let plan = plan_schema(existing_schema.as_deref(), &incoming)?;
        summary.schema_changes = plan.changes.clone();
        let full_schema = Arc::new(with_lineage(&plan.columns));
        if existing.is_none() {
            // A new table is created empty first, in its own commit, so that two loads racing
            // to create it race on appends instead, where the file hashes are checked (a
            // creation that lost its race could otherwise be committed on top of the winner's
            // with the same files).
            self.create_empty(request, &full_schema).await?;
            return Err(Error::TableCreated);
        }

        // Pass 2: stream converted batches from a worker thread into the Delta writer.
        let (tx, rx) = mpsc::channel::<std::result::Result<RecordBatch, DataFusionError>>(4);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let disk_total: u64 = to_load.iter().map(|s| s.disk_bytes).sum();
        if let Some(p) = &request.progress {
            p.event(ProgressEvent::Phase {
                name: "write",
                total_bytes: disk_total,
            });
        }
        let worker = {
            let scans: Vec<FileScan> = to_load.iter().map(|s| (*s).clone()).collect();
            let columns = plan.columns.clone();
            let schema = Arc::clone(&full_schema);
            let tally = Arc::clone(&tally);
            let load_id = load_id.to_string();
            let loaded_at = started_at.timestamp_micros();
            let max_ratio = request.max_reject_ratio;
            let progress = request.progress.clone();
            std::thread::spawn(move || {
                produce(
                    ProduceJob {
                        scans,
                        format,
                        columns,
                        schema,
                        load_id,
                        loaded_at,
                        max_ratio,
                        progress,
                    },
                    &tx,
                    &tally,
                );
            })
        };
        let source = StreamingTable::try_new(
            Arc::clone(&full_schema),
            vec![Arc::new(ChannelPartition::new(
                Arc::clone(&full_schema),
                rx,
            ))],
        )?;
        let mut input =
            LogicalPlanBuilder::scan("incoming", provider_as_source(Arc::new(source)), None)?;

        let mut commit = CommitProperties::default()
            .with_application_transactions(
                to_load
                    .iter()
                    .map(|s| Transaction::new(app_id(&s.sha256), 1))
                    .collect(),
            )
            .with_metadata([
                ("carelake.operation".to_string(), Value::from("load")),
                ("carelake.load_id".to_string(), Value::from(load_id)),
                (
                    "carelake.principal".to_string(),
                    Value::from(self.principal.name.clone()),
                ),
            ]);
        commit = commit.with_max_retries(15);

        let written = match &existing {
            Some(table) if plan.rewrite => {
                // A column type widened: rewrite the table in the wider schema, old rows and
                // new, in one commit.
                let old = LogicalPlanBuilder::scan(
                    "existing",
                    provider_as_source(table.table_provider().await?),
                    None,
                )?
                .project(cast_to(
                    &full_schema,
                    table.snapshot()?.snapshot().arrow_schema().as_ref(),
                ))?
                .build()?;
                input = LogicalPlanBuilder::from(old).union(input.build()?)?;
                write_builder(table)?
                    .with_input_plan(input.build()?)
                    .with_save_mode(SaveMode::Overwrite)
                    .with_schema_mode(SchemaMode::Overwrite)
                    .with_commit_properties(commit)
                    .await
            }
            Some(table) => {
                write_builder(table)?
                    .with_input_plan(input.build()?)
                    .with_save_mode(SaveMode::Append)
                    .with_schema_mode(SchemaMode::Merge)
                    .with_commit_properties(commit)
                    .await
            }
            None => {
                self.lake
                    .delta_handle(&table_url)?
                    .write(Vec::new())
                    .with_input_plan(input.build()?)
                    .with_table_name(request.table.name.clone())
                    .with_description(request.description.clone().unwrap_or_default())
                    .with_save_mode(SaveMode::Append)
                    .with_commit_properties(commit)
                    .await
            }
        };
        let worker_result = worker.join();
        let mut tally = std::mem::take(
            &mut *tally
                .lock()
                .map_err(|_| Error::Worker("tally lock poisoned".into()))?,
        );
        if worker_result.is_err() {
            return Err(Error::Worker("the conversion thread panicked".into()));
        }
        if let Some(err) = tally.too_many.take() {
            return Err(err);
        }
        let table = written?;
        summary.table_version = table.version();

        for scan in &to_load {
            let loaded = tally.loaded.get(&scan.label).copied().unwrap_or(0);
            let rejected = tally.rejected.get(&scan.label).copied().unwrap_or(0);
            summary.rows_loaded += loaded;
            summary.rows_rejected += rejected;
            summary.bytes += scan.bytes;
            summary.files.push(FileOutcome {
                path: scan.label.clone(),
                status: LoadStatus::Loaded,
                rows_loaded: loaded,
                rows_rejected: rejected,
                bytes: scan.bytes,
                sha256: scan.sha256.clone(),
            });
            history.push(self.history_record(
                load_id,
                request,
                format,
                scan,
                LoadStatus::Loaded,
                loaded,
                rejected,
                started_at,
            ));
        }

        if !tally.rejects.is_empty() {
            quarantine(
                &self.lake,
                &self.principal,
                &request.table.to_string(),
                load_id,
                std::mem::take(&mut tally.rejects),
                Vec::new(),
            )
            .await?;
        }
        self.lake.load_history().record(&history).await?;
        let mut event = CatalogEvent::written(request.table.clone(), &table);
        event.source = Some(format!(
            "{} load of {} file(s), last {}",
            format.as_str(),
            to_load.len(),
            to_load.last().map(|s| s.label.as_str()).unwrap_or("")
        ));
        if existing.is_none() {
            event.owner = Some(self.principal.name.clone());
            event.upstream = Some(Vec::new());
        }
        if request.description.is_some() {
            event.description = request.description.clone();
        }
        self.lake.catalog().record(&[event]).await?;
        Ok(summary)
    }
}

/// Appends rejected rows to `raw._rejects`; `transactions` (application ids) are recorded in the
/// same commit.
pub(crate) async fn quarantine(
    lake: &Lake,
    principal: &Principal,
    target: &str,
    load_id: &str,
    rejects: Vec<(String, Reject)>,
    transactions: Vec<String>,
) -> Result<()> {
    let name = TableName::new(Zone::Raw, REJECTS_TABLE)?;
    let url = lake.table_url(&name)?;
    let n = rejects.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("load_id", DataType::Utf8, true),
        Field::new("target_table", DataType::Utf8, true),
        Field::new("source_file", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("raw_text", DataType::Utf8, true),
        Field::new("rejected_at", timestamp_type(), true),
    ]));
    let now = Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![load_id; n])),
        Arc::new(StringArray::from(vec![target; n])),
        Arc::new(
            rejects
                .iter()
                .map(|(f, _)| Some(f.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|(_, r)| r.line as i64)
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Int64Array>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|(_, r)| Some(r.reason.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|(_, r)| Some(r.raw.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    let existing = lake.load_delta(&url, TimeTravel::Latest).await?;
    let created = existing.is_none();
    let table = match existing {
        Some(t) => t,
        None => lake.delta_handle(&url)?,
    };
    let table = table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transactions(
                    transactions
                        .into_iter()
                        .map(|id| Transaction::new(id, 1))
                        .collect(),
                )
                .with_max_retries(15),
        )
        .await?;
    let mut event = CatalogEvent::written(name, &table);
    if created {
        event.description =
            Some("Rows rejected by loads, with file, line, reason and raw text".into());
        event.owner = Some(principal.name.clone());
        event.source = Some("carelake loader".into());
    }
    lake.catalog().record(&[event]).await?;
    Ok(())
}

fn app_id(sha256: &str) -> String {
    format!("carelake-load:{sha256}")
}

impl Loader {
    /// Creates the load's target table with no rows; another process creating it first is
    /// not an error.
    async fn create_empty(&self, request: &LoadRequest, schema: &Schema) -> Result<()> {
        use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
        let url = self.lake.table_url(&request.table)?;
        let columns: deltalake::kernel::StructType = schema.try_into_kernel()?;
        let created = self
            .lake
            .delta_handle(&url)?
            .create()
            .with_table_name(request.table.name.clone())
            .with_comment(request.description.clone().unwrap_or_default())
            .with_columns(columns.fields().cloned())
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(_)
                if self
                    .lake
                    .load_delta(&url, TimeTravel::Latest)
                    .await?
                    .is_some() =>
            {
                tracing::debug!(table = %request.table, "Table created concurrently.");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn write_builder(table: &DeltaTable) -> Result<WriteBuilder> {
    Ok(WriteBuilder::new(
        table.log_store(),
        Some(table.snapshot()?.snapshot().clone()),
    ))
}

fn check_ratio(rejected: u64, total: u64, max: Option<f64>) -> Option<Error> {
    let max = max?;
    if total == 0 {
        return None;
    }
    let ratio = rejected as f64 / total as f64;
    (ratio > max).then_some(Error::TooManyRejects {
        rejected,
        total,
        ratio: ratio * 100.0,
        max: max * 100.0,
    })
}

/// Projection of the existing table's columns into the new schema.
fn cast_to(target: &Schema, existing: &Schema) -> Vec<Expr> {
    target
        .fields()
        .iter()
        .map(|field| {
            let expr = if existing.field_with_name(field.name()).is_ok() {
                col(datafusion::common::Column::new_unqualified(field.name()))
            } else {
                lit(ScalarValue::Null)
            };
            cast(expr, field.data_type().clone()).alias(field.name())
        })
        .collect()
}

fn with_lineage(columns: &[TargetColumn]) -> Schema {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.clone(), true))
        .collect();
    fields.push(Field::new(LINEAGE_COLUMNS[0], DataType::Utf8, true));
    fields.push(Field::new(LINEAGE_COLUMNS[1], DataType::Int64, true));
    fields.push(Field::new(LINEAGE_COLUMNS[2], DataType::Utf8, true));
    fields.push(Field::new(LINEAGE_COLUMNS[3], timestamp_type(), true));
    Schema::new(fields)
}

/// Incoming columns of the files to load, with one inferred type each.
fn infer_incoming(
    format: Format,
    scans: &[&FileScan],
) -> Result<Vec<(String, DataType, ColumnType)>> {
    let mut order: Vec<String> = Vec::new();
    if format == Format::Parquet {
        let mut types: HashMap<String, DataType> = HashMap::new();
        for scan in scans {
            let Some(Ok(schema)) = &scan.parquet else {
                continue;
            };
            for field in schema.fields() {
                let name = field.name().clone();
                let data_type = field.data_type().clone();
                match types.get(&name) {
                    None => {
                        order.push(name.clone());
                        types.insert(name, data_type);
                    }
                    Some(prev) => {
                        let merged = merge_types(&name, prev, &data_type)?;
                        types.insert(name, merged);
                    }
                }
            }
        }
        return Ok(order
            .into_iter()
            .map(|name| {
                let dt = types.remove(&name).unwrap_or(DataType::Utf8);
                let parse_as = ColumnType::from_arrow(&dt).unwrap_or(ColumnType::Text);
                (name, dt, parse_as)
            })
            .collect());
    }
    let mut stats: HashMap<String, ColumnStats> = HashMap::new();
    for scan in scans {
        for (name, s) in &scan.columns {
            match stats.get_mut(name) {
                Some(total) => total.merge(s),
                None => {
                    order.push(name.clone());
                    stats.insert(name.clone(), s.clone());
                }
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let column_type = stats[&name].infer();
            (name, column_type.arrow_type(), column_type)
        })
        .collect())
}

/// Types Delta stores directly; others are mapped (unsigned to wider signed, any timestamp to
/// microseconds UTC, large/view strings to strings).
fn delta_friendly(data_type: &DataType) -> DataType {
    match data_type {
        DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Timestamp(_, _) => timestamp_type(),
        DataType::Date64 => DataType::Date32,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => delta_friendly(value),
        DataType::Null => DataType::Utf8,
        other => other.clone(),
    }
}

/// The type that holds values of both, or an error when none does.
fn merge_types(column: &str, table: &DataType, incoming: &DataType) -> Result<DataType> {
    if table == incoming || incoming == &DataType::Null {
        return Ok(table.clone());
    }
    let (Some(a), Some(b)) = (
        ColumnType::from_arrow(table),
        ColumnType::from_arrow(incoming),
    ) else {
        return Err(Error::IncompatibleColumn {
            column: column.to_string(),
            table_type: table.to_string(),
            file_type: incoming.to_string(),
        });
    };
    let widened = a.widen(b);
    // Keep the table's exact type when it already holds the incoming values.
    if std::mem::discriminant(&widened) == std::mem::discriminant(&a) {
        Ok(table.clone())
    } else {
        Ok(widened.arrow_type())
    }
}

struct SchemaPlan {
    columns: Vec<TargetColumn>,
    rewrite: bool,
    changes: Vec<String>,
}

fn plan_schema(
    existing: Option<&Schema>,
    incoming: &[(String, DataType, ColumnType)],
) -> Result<SchemaPlan> {
    let incoming_types: HashMap<&str, (&DataType, ColumnType)> = incoming
        .iter()
        .map(|(n, dt, ct)| (n.as_str(), (dt, *ct)))
        .collect();
    let mut columns = Vec::new();
    let mut rewrite = false;
    let mut changes = Vec::new();
    if let Some(schema) = existing {
        for field in schema.fields() {
            if LINEAGE_COLUMNS.contains(&field.name().as_str()) {
                continue;
            }
            let (data_type, parse_as) = match incoming_types.get(field.name().as_str()) {
                None => (field.data_type().clone(), ColumnType::Null),
                Some((dt, ct)) => {
                    let merged = merge_types(field.name(), field.data_type(), &delta_friendly(dt))?;
                    if &merged != field.data_type() {
                        rewrite = true;
                        changes.push(format!(
                            "widened {} from {} to {}",
                            field.name(),
                            field.data_type(),
                            merged
                        ));
                    }
                    (merged.clone(), parse_type_for(&merged, *ct))
                }
            };
            columns.push(TargetColumn {
                name: field.name().clone(),
                data_type,
                parse_as,
            });
        }
    }
    for (name, data_type, parse_as) in incoming {
        if columns.iter().any(|c| &c.name == name) {
            continue;
        }
        let data_type = delta_friendly(data_type);
        if existing.is_some() {
            changes.push(format!("added column {name} ({data_type})"));
        }
        columns.push(TargetColumn {
            name: name.clone(),
            parse_as: parse_type_for(&data_type, *parse_as),
            data_type,
        });
    }
    Ok(SchemaPlan {
        columns,
        rewrite,
        changes,
    })
}

/// How to parse text for a column stored as `data_type`, keeping the crawler's date order.
fn parse_type_for(data_type: &DataType, inferred: ColumnType) -> ColumnType {
    let order = match inferred {
        ColumnType::Date(o) | ColumnType::Timestamp(o) => o,
        _ => None,
    };
    match ColumnType::from_arrow(data_type) {
        Some(ColumnType::Date(_)) => ColumnType::Date(order),
        Some(ColumnType::Timestamp(_)) => ColumnType::Timestamp(order),
        Some(other) => other,
        None => ColumnType::Text,
    }
}

/// The label stored in `_source_file` and the history: the path as given.
fn label_of(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Pass 1 for one file.
fn scan_file(path: &Path, format: Format, progress: Option<Arc<dyn Progress>>) -> Result<FileScan> {
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

fn parquet_schema(path: &Path) -> std::result::Result<(SchemaRef, u64), String> {
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
struct ScanSink {
    columns: Vec<String>,
    stats: Vec<ColumnStats>,
    json_keys: HashMap<String, usize>,
    rows: u64,
    rejects: u64,
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

struct ProduceJob {
    scans: Vec<FileScan>,
    format: Format,
    columns: Vec<TargetColumn>,
    schema: SchemaRef,
    load_id: String,
    loaded_at: i64,
    max_ratio: Option<f64>,
    progress: Option<Arc<dyn Progress>>,
}

type BatchSender = mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>;

/// Pass 2, on a worker thread: converts every file and sends batches to the writer. Ends with
/// an error item when the reject ratio is exceeded, so that nothing is committed.
fn produce(job: ProduceJob, tx: &BatchSender, tally: &Mutex<Tally>) {
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

fn produce_parquet(
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
struct BuildSink<'a> {
    builder: &'a mut BatchBuilder,
    index: &'a HashMap<String, usize>,
    /// CSV field position → target column.
    csv_map: Vec<Option<usize>>,
    /// JSON key → target column.
    json_keys: HashMap<String, Option<usize>>,
    tx: &'a BatchSender,
    label: &'a str,
    tally: &'a mut Tally,
    closed: bool,
    loaded: u64,
    rejected: u64,
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

/// A one-shot partition fed by the conversion thread.
struct ChannelPartition {
    schema: SchemaRef,
    receiver: Mutex<Option<mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>>>,
}

impl ChannelPartition {
    fn new(
        schema: SchemaRef,
        receiver: mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>,
    ) -> Self {
        Self {
            schema,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl fmt::Debug for ChannelPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelPartition").finish_non_exhaustive()
    }
}

impl PartitionStream for ChannelPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let receiver = self.receiver.lock().ok().and_then(|mut r| r.take());
        // The rows of a load can be read once; a second read would silently see nothing.
        let first: Option<std::result::Result<RecordBatch, DataFusionError>> =
            receiver.is_none().then(|| {
                Err(DataFusionError::Internal(
                    "the load's input stream was already consumed".into(),
                ))
            });
        let failed = futures::stream::iter(first);
        let rows = futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let item = receiver.recv().await?;
            Some((item, Some(receiver)))
        });
        let stream = futures::StreamExt::chain(failed, rows);
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}
