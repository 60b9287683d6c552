//! The loader: exactly-once, all-or-nothing loads of files into a raw Delta table.
//!
//! ```text
//! mod.rs        the request, the summary and the load's steps (Loader::load)
//! scan.rs       pass 1, the crawler: hashes, structural rejects, value classes per column
//! schema.rs     the target schema from the statistics and the table (new columns, widening)
//! convert.rs    pass 2: rows parsed into the target types, cut into Arrow batches
//! partition.rs  the batches handed to DataFusion and deltalake's writer as a stream
//! rejects.rs    the quarantine table raw._rejects
//! ```

mod convert;
mod partition;
mod rejects;
mod scan;
mod schema;

use convert::{ProduceJob, produce};
use partition::ChannelPartition;
pub use rejects::quarantine;
use scan::scan_file;
use schema::{cast_to, infer_incoming, plan_schema, with_lineage};

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use carelake_common::{Principal, TableName, Zone};
use carelake_lake::{
    Lake, LoadRecord, LoadStatus, Provenance, TableWrite, TimeTravel, WriteInput, WriteMode,
};
use chrono::Utc;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlanBuilder;
use deltalake::kernel::Transaction;
use tokio::sync::mpsc;

use crate::format::Format;
use crate::infer::{ColumnStats, ColumnType};
use crate::rows::Reject;
use crate::{Error, Result};

pub use crate::reader::expand_inputs;

/// The quarantine table in the raw zone.
pub const REJECTS_TABLE: &str = "_rejects";

pub use crate::rows::LINEAGE_COLUMNS;

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
                Err(e) if e.is_commit_conflict() && attempt < MAX_CONFLICT_RETRIES => {
                    tracing::warn!(table = %request.table, error = %e, "Commit conflict; checking again which files are already loaded.");
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
                    record_load(format.as_str(), summary.elapsed, summary.rows_loaded);
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
                Some(table) => carelake_lake::app_version(table, &app_id(&scan.sha256))
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
                let provenance = Provenance::new(
                    format!(
                        "{} load, its catalog entry completed by a rerun",
                        format.as_str()
                    ),
                    self.principal.name.clone(),
                );
                TableWrite::new(request.table.clone(), WriteMode::Append, provenance)
                    .record(&self.lake, table, entry.is_none())
                    .await?;
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

        let mut provenance = Provenance::new(
            format!(
                "{} load of {} file(s), last {}",
                format.as_str(),
                to_load.len(),
                to_load.last().map(|s| s.label.as_str()).unwrap_or("")
            ),
            self.principal.name.clone(),
        );
        if let Some(description) = &request.description {
            provenance = provenance.described(description.clone());
            provenance.describes_every_write = true;
        }
        let mode = if plan.rewrite {
            WriteMode::Replace
        } else {
            WriteMode::Append
        };
        let write = TableWrite::new(request.table.clone(), mode, provenance)
            .transactions(
                to_load
                    .iter()
                    .map(|s| Transaction::new(app_id(&s.sha256), 1)),
            )
            .metadata("operation", "load")
            .metadata("load_id", load_id)
            .metadata("principal", self.principal.name.clone());
        if let Some(table) = existing.as_ref().filter(|_| plan.rewrite) {
            // A column type widened: rewrite the table in the wider schema, old rows and new,
            // in one commit.
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
        }
        let written = write
            .write(
                &self.lake,
                existing.clone(),
                WriteInput::Plan(input.build()?, None),
            )
            .await;
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
        Ok(summary)
    }
}

/// A finished load's time and rows, for `/metrics`.
pub(crate) fn record_load(format: &str, elapsed: Duration, rows: u64) {
    use carelake_common::metrics::{LOAD_ROWS, LOAD_SECONDS, count, record_seconds};
    record_seconds(LOAD_SECONDS, "format", format, elapsed);
    count(LOAD_ROWS, "format", format, rows);
}

/// The Delta application transaction of a file's load: the same id whichever loader (rows or a
/// clinical format) commits it, so a file's rows are in a table once however it is loaded.
pub(crate) fn app_id(sha256: &str) -> String {
    format!("carelake-load:{sha256}")
}

/// Whether `table` holds the load transaction of the file with this content hash.
pub(crate) async fn has_transaction(table: &deltalake::DeltaTable, sha256: &str) -> Result<bool> {
    Ok(carelake_lake::app_version(table, &app_id(sha256))
        .await?
        .is_some())
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
