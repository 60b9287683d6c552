use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::util::create_system_table;
use crate::util::{int_column, text_column, time_column};
use crate::{Lake, Result};

/// What happened to one file in a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStatus {
    /// Its rows were committed.
    Loaded,
    /// It had been loaded before (same content hash) and was skipped.
    Skipped,
    /// The load failed and nothing was committed.
    Failed,
}

impl LoadStatus {
    /// The status as stored in the history table.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStatus::Loaded => "loaded",
            LoadStatus::Skipped => "skipped",
            LoadStatus::Failed => "failed",
        }
    }
}

/// One file of one load.
#[derive(Debug, Clone)]
pub struct LoadRecord {
    /// The load this file was part of.
    pub load_id: String,
    /// Target table, `zone.name`.
    pub table: String,
    /// The file as named by the user.
    pub source_file: String,
    /// SHA-256 of the file's (decompressed) content.
    pub content_sha256: String,
    /// csv, ndjson or parquet.
    pub format: String,
    /// Rows committed.
    pub rows_loaded: i64,
    /// Rows sent to `raw._rejects`.
    pub rows_rejected: i64,
    /// Bytes read.
    pub bytes: i64,
    /// Outcome.
    pub status: LoadStatus,
    /// Who ran the load.
    pub principal: String,
    /// When the load started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

static HISTORY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("load_id", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("content_sha256", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("rows_loaded", DataType::Int64, false),
        Field::new("rows_rejected", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("principal", DataType::Utf8, false),
        Field::new("started_at", ts.clone(), false),
        Field::new("finished_at", ts, false),
    ]))
});

/// The load history: an append-only Delta table at `<lake>/_carelake/loads`, one row per file
/// per load, queryable as `system.loads`.
#[derive(Debug, Clone)]
pub struct LoadHistory {
    lake: Lake,
}

impl LoadHistory {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    pub(crate) async fn ensure_created(&self) -> Result<()> {
        create_system_table(
            &self.lake,
            "loads",
            &HISTORY_SCHEMA,
            "carelake load history",
        )
        .await
    }

    /// The Delta table's URL, for SQL access.
    pub fn url(&self) -> Result<url::Url> {
        self.lake.system_table_url("loads")
    }

    /// Appends records in one commit.
    pub async fn record(&self, records: &[LoadRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let strings = |f: &dyn Fn(&LoadRecord) -> String| text_column(records, |r| Some(f(r)));
        let ints = |f: &dyn Fn(&LoadRecord) -> i64| int_column(records, f);
        let times = |f: &dyn Fn(&LoadRecord) -> DateTime<Utc>| time_column(records, f);
        let batch = RecordBatch::try_new(
            Arc::clone(&HISTORY_SCHEMA),
            vec![
                strings(&|r| r.load_id.clone()),
                strings(&|r| r.table.clone()),
                strings(&|r| r.source_file.clone()),
                strings(&|r| r.content_sha256.clone()),
                strings(&|r| r.format.clone()),
                ints(&|r| r.rows_loaded),
                ints(&|r| r.rows_rejected),
                ints(&|r| r.bytes),
                strings(&|r| r.status.as_str().to_string()),
                strings(&|r| r.principal.clone()),
                times(&|r| r.started_at),
                times(&|r| r.finished_at),
            ],
        )?;
        crate::util::append_to_system_table(&self.lake, "loads", batch).await
    }
}
