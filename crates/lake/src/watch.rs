//! What the landing-area watches of `carelake serve --watch` have seen: `_carelake/watch`, an
//! append-only Delta table with one row per decision about a file (loaded, already loaded,
//! failed), so that a restarted server knows which files it has dealt with; SQL reads it as
//! `system.watch_files`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::util::create_system_table;
use crate::util::{SystemBatch, int_column, read_table, text_at, text_column, time_column};
use crate::{Error, Lake, Result, TimeTravel};

const TABLE: &str = "watch";

/// A file of a watched landing area and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedFile {
    /// The watched folder or bucket prefix, as a URL ending in `/`.
    pub source: String,
    /// The file's path below the source.
    pub path: String,
    /// Its size in bytes when it was taken.
    pub size: u64,
    /// Its modification time when it was taken.
    pub modified: DateTime<Utc>,
    /// The table it was loaded into (`zone.name`), or `auto` for clinical formats told from
    /// the content.
    pub target: String,
    /// `loaded`, `skipped` (its content was in the lake already) or `failed`.
    pub status: String,
    /// The load that took it.
    pub load_id: Option<String>,
    /// Rows (or messages, resources, claims) committed from it.
    pub rows: u64,
    /// Rows (or records) of it sent to `raw._rejects`.
    pub rejected: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// When the watch dealt with it.
    pub seen_at: DateTime<Utc>,
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new("modified", ts.clone(), false),
        Field::new("target", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("load_id", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, false),
        Field::new("rejected", DataType::Int64, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("seen_at", ts, false),
    ]))
});

/// The watches' record of files: `_carelake/watch`.
#[derive(Debug, Clone)]
pub struct WatchStore {
    lake: Lake,
}

impl WatchStore {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// The Delta table's URL, for SQL access.
    pub fn url(&self) -> Result<url::Url> {
        self.lake.system_table_url(TABLE)
    }

    /// Appends what happened to these files, in one commit (the table is made on first use).
    pub async fn record(&self, files: &[WatchedFile]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        create_system_table(&self.lake, TABLE, &SCHEMA, "carelake watched files").await?;
        let text = |f: &dyn Fn(&WatchedFile) -> Option<String>| text_column(files, f);
        let int = |f: &dyn Fn(&WatchedFile) -> u64| int_column(files, |r| f(r) as i64);
        let batch = RecordBatch::try_new(
            Arc::clone(&SCHEMA),
            vec![
                text(&|f| Some(f.source.clone())),
                text(&|f| Some(f.path.clone())),
                int(&|f| f.size),
                time_column(files, |f| f.modified),
                text(&|f| Some(f.target.clone())),
                text(&|f| Some(f.status.clone())),
                text(&|f| f.load_id.clone()),
                int(&|f| f.rows),
                int(&|f| f.rejected),
                text(&|f| f.error.clone()),
                time_column(files, |f| f.seen_at),
            ],
        )?;
        crate::util::append_to_system_table(&self.lake, TABLE, batch).await
    }

    /// The latest record of each file of `source`, by path.
    pub async fn latest(&self, source: &str) -> Result<HashMap<String, WatchedFile>> {
        let mut latest: HashMap<String, WatchedFile> = HashMap::new();
        let Some(table) = self
            .lake
            .load_delta(&self.url()?, TimeTravel::Latest)
            .await?
        else {
            return Ok(latest);
        };
        for batch in read_table(&table).await? {
            for file in rows(&batch)? {
                if file.source != source {
                    continue;
                }
                match latest.get(&file.path) {
                    Some(known) if known.seen_at > file.seen_at => {}
                    _ => {
                        latest.insert(file.path.clone(), file);
                    }
                }
            }
        }
        Ok(latest)
    }
}

/// The records of one batch of the table.
fn rows(batch: &RecordBatch) -> Result<Vec<WatchedFile>> {
    let batch = SystemBatch::new(batch, TABLE, Error::Watch);
    let (text, int, micros) = (
        |name: &str| batch.text(name),
        |name: &str| batch.int(name),
        |name: &str| batch.time(name),
    );
    let (source, path, size, modified, target, status) = (
        text("source")?,
        text("path")?,
        int("size")?,
        micros("modified")?,
        text("target")?,
        text("status")?,
    );
    let (load_id, rows, rejected, error, seen_at) = (
        text("load_id")?,
        int("rows")?,
        int("rejected")?,
        text("error")?,
        micros("seen_at")?,
    );
    let time = |v: i64| DateTime::<Utc>::from_timestamp_micros(v).unwrap_or_default();
    let opt = text_at;
    Ok((0..batch.num_rows())
        .map(|i| WatchedFile {
            source: source.value(i).to_string(),
            path: path.value(i).to_string(),
            size: size.value(i).max(0) as u64,
            modified: time(modified.value(i)),
            target: target.value(i).to_string(),
            status: status.value(i).to_string(),
            load_id: opt(&load_id, i),
            rows: rows.value(i).max(0) as u64,
            rejected: rejected.value(i).max(0) as u64,
            error: opt(&error, i),
            seen_at: time(seen_at.value(i)),
        })
        .collect())
}
