//! The pipeline run history: an append-only Delta table at `<lake>/_carelake/runs`, one row per
//! model per run, queryable as `system.runs`.

use std::sync::{Arc, LazyLock};

use arrow::array::{RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::util::create_system_table;
use crate::util::{SystemBatch, int_column, read_table, text_at, text_column, time_column};
use crate::{Error, Lake, Result, TimeTravel};

/// One model in one pipeline run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run this model was part of.
    pub run_id: String,
    /// Model name.
    pub model: String,
    /// Table or view written, `zone.name` (several, comma-separated, for built-in models).
    pub target: String,
    /// table, view, incremental or builtin.
    pub materialization: String,
    /// success, failed, skipped (an upstream model failed) or up_to_date (no new input).
    pub status: String,
    /// Attempts made (retries + 1 when it failed every time).
    pub attempts: i64,
    /// Rows read: new rows for an incremental model, all input rows otherwise.
    pub rows_in: i64,
    /// Rows in the target after the run (rows merged for an incremental model).
    pub rows_out: i64,
    /// The error of the last attempt, when it failed.
    pub error: Option<String>,
    /// Upstream tables and the Delta versions read, as JSON (`{"raw.encounters": 12}`): the
    /// watermark of the next run.
    pub upstream_versions: String,
    /// SHA-256 of the model's definition: a changed model runs again in full.
    pub definition_sha256: String,
    /// Who ran it.
    pub principal: String,
    /// When the model started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

static RUNS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("materialization", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("attempts", DataType::Int64, false),
        Field::new("rows_in", DataType::Int64, false),
        Field::new("rows_out", DataType::Int64, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("upstream_versions", DataType::Utf8, false),
        Field::new("definition_sha256", DataType::Utf8, false),
        Field::new("principal", DataType::Utf8, false),
        Field::new("started_at", ts.clone(), false),
        Field::new("finished_at", ts, false),
    ]))
});

/// The run history of `carelake run`.
#[derive(Debug, Clone)]
pub struct RunHistory {
    lake: Lake,
}

impl RunHistory {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// The Delta table's URL, for SQL access.
    pub fn url(&self) -> Result<url::Url> {
        self.lake.system_table_url("runs")
    }

    /// Appends records in one commit, creating the table on first use.
    pub async fn record(&self, records: &[RunRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        create_system_table(&self.lake, "runs", &RUNS_SCHEMA, "carelake pipeline runs").await?;
        let strings = |f: &dyn Fn(&RunRecord) -> Option<String>| text_column(records, f);
        let ints = |f: &dyn Fn(&RunRecord) -> i64| int_column(records, f);
        let times = |f: &dyn Fn(&RunRecord) -> DateTime<Utc>| time_column(records, f);
        let batch = RecordBatch::try_new(
            Arc::clone(&RUNS_SCHEMA),
            vec![
                strings(&|r| Some(r.run_id.clone())),
                strings(&|r| Some(r.model.clone())),
                strings(&|r| Some(r.target.clone())),
                strings(&|r| Some(r.materialization.clone())),
                strings(&|r| Some(r.status.clone())),
                ints(&|r| r.attempts),
                ints(&|r| r.rows_in),
                ints(&|r| r.rows_out),
                strings(&|r| r.error.clone()),
                strings(&|r| Some(r.upstream_versions.clone())),
                strings(&|r| Some(r.definition_sha256.clone())),
                strings(&|r| Some(r.principal.clone())),
                times(&|r| r.started_at),
                times(&|r| r.finished_at),
            ],
        )?;
        crate::util::append_to_system_table(&self.lake, "runs", batch).await
    }

    /// The last successful (or up-to-date) record of each model, by model name.
    pub async fn last_successes(&self) -> Result<Vec<RunRecord>> {
        let Some(table) = self
            .lake
            .load_delta(&self.url()?, TimeTravel::Latest)
            .await?
        else {
            return Ok(Vec::new());
        };
        let batches = read_table(&table).await?;
        let mut latest: std::collections::HashMap<String, RunRecord> =
            std::collections::HashMap::new();
        for batch in &batches {
            let batch = SystemBatch::new(batch, "runs", Error::CorruptCatalog);
            let (run_id, model, target, materialization, status) = (
                batch.text("run_id")?,
                batch.text("model")?,
                batch.text("target")?,
                batch.text("materialization")?,
                batch.text("status")?,
            );
            let (attempts, rows_in, rows_out) = (
                batch.int("attempts")?,
                batch.int("rows_in")?,
                batch.int("rows_out")?,
            );
            let (error, upstream, definition, principal) = (
                batch.text("error")?,
                batch.text("upstream_versions")?,
                batch.text("definition_sha256")?,
                batch.text("principal")?,
            );
            let (started, finished) = (batch.time("started_at")?, batch.time("finished_at")?);
            for i in 0..batch.num_rows() {
                let status_i = status.value(i);
                if status_i != "success" && status_i != "up_to_date" {
                    continue;
                }
                let when = |a: &TimestampMicrosecondArray| {
                    DateTime::from_timestamp_micros(a.value(i)).unwrap_or_default()
                };
                let record = RunRecord {
                    run_id: run_id.value(i).to_string(),
                    model: model.value(i).to_string(),
                    target: target.value(i).to_string(),
                    materialization: materialization.value(i).to_string(),
                    status: status_i.to_string(),
                    attempts: attempts.value(i),
                    rows_in: rows_in.value(i),
                    rows_out: rows_out.value(i),
                    error: text_at(&error, i),
                    upstream_versions: upstream.value(i).to_string(),
                    definition_sha256: definition.value(i).to_string(),
                    principal: principal.value(i).to_string(),
                    started_at: when(&started),
                    finished_at: when(&finished),
                };
                let newer = latest
                    .get(&record.model)
                    .is_none_or(|kept| kept.finished_at <= record.finished_at);
                if newer {
                    latest.insert(record.model.clone(), record);
                }
            }
        }
        let mut out: Vec<RunRecord> = latest.into_values().collect();
        out.sort_by(|a, b| a.model.cmp(&b.model));
        Ok(out)
    }
}
