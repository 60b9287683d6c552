//! The one commit path. Every writer of a lake table (the file loader and its quarantine, the
//! clinical loads, the stream flusher, the MLLP store, FHIR views, SQL sessions and the pipelines
//! through them, CDC) goes through [`TableWrite`]: open the table or create it, write in one Delta
//! commit carrying the writer's application transactions (what makes a retried load, flush or
//! group a no-op) and carelake's metadata, retry a lost race [`COMMIT_RETRIES`] times, compact
//! small files when due, and record the write in the catalog with its provenance.
//!
//! ```ignore
//! let written = TableWrite::new(name, WriteMode::Append, Provenance::new("HTTP ingest", &principal.name))
//!     .transaction(STREAM_APP, last_seq)
//!     .compact(AutoCompact::STREAMED)
//!     .batches(&lake, None, vec![batch])
//!     .await?;
//! ```

use std::sync::Arc;

use arrow::array::RecordBatch;
use carelake_common::TableName;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::{DeltaOperation, SaveMode};
use serde_json::Value;

use crate::{AutoCompact, CatalogEvent, Error, Lake, Result, TimeTravel};

/// How many times a commit is tried again when another writer committed first (Delta then
/// checks the winner's actions against ours; appends never conflict).
pub const COMMIT_RETRIES: usize = 15;

/// The commit properties of every carelake write: the application transactions, the
/// `carelake.*` metadata and the retry count. Expired log entries are not looked for after each
/// commit (delta-rs lists the whole log folder to do so); the write paths call
/// [`crate::clean_logs_when_due`] instead, at most hourly per table.
pub fn commit_properties(
    transactions: Vec<Transaction>,
    metadata: Vec<(String, Value)>,
) -> CommitProperties {
    CommitProperties::default()
        .with_application_transactions(transactions)
        .with_metadata(metadata)
        .with_max_retries(COMMIT_RETRIES)
        .with_cleanup_expired_logs(Some(false))
}

/// What a write does to the rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Add rows; columns the table lacks are added to its schema.
    Append,
    /// Replace every row and the schema (`CREATE OR REPLACE`, a rewrite in a wider schema).
    Replace,
    /// Make a new table; fail when it exists (`CREATE TABLE`).
    Create,
}

/// What a write records in the catalog beside the table's version and row count.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// What wrote the table ("HTTP ingest", "CREATE TABLE", "csv load of 3 file(s)…").
    pub source: String,
    /// The principal writing; the table's owner when the write creates it.
    pub principal: String,
    /// The writer becomes the owner at every write, not only the first (a replacement).
    pub takes_ownership: bool,
    /// The table's description.
    pub description: Option<String>,
    /// The description is set at every write, not only the first.
    pub describes_every_write: bool,
    /// The tables the rows were computed from (`None`: unchanged, empty for a new table).
    pub upstream: Option<Vec<TableName>>,
}

impl Provenance {
    pub fn new(source: impl Into<String>, principal: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            principal: principal.into(),
            takes_ownership: false,
            description: None,
            describes_every_write: false,
            upstream: None,
        }
    }

    /// The description given to the table when this write creates it.
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The tables the written rows were computed from.
    pub fn upstream(mut self, upstream: Vec<TableName>) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// The catalog event of a write that left the table at `written`; `created` when the
    /// table or its catalog entry is new.
    pub fn event(&self, name: TableName, written: &DeltaTable, created: bool) -> CatalogEvent {
        let mut event = CatalogEvent::written(name, written);
        event.source = Some(self.source.clone());
        if created || self.takes_ownership {
            event.owner = Some(self.principal.clone());
        }
        if created || self.describes_every_write {
            event.description.clone_from(&self.description);
        }
        event.upstream = match (&self.upstream, created) {
            (Some(upstream), _) => Some(upstream.clone()),
            (None, true) => Some(Vec::new()),
            (None, false) => None,
        };
        event
    }
}

/// What a write commits.
#[derive(Debug)]
pub enum WriteInput {
    /// Rows in memory.
    Batches(Vec<RecordBatch>),
    /// A plan DataFusion executes while writing (optionally with the session that planned it).
    Plan(LogicalPlan, Option<Arc<SessionState>>),
}

/// One write to one lake table, committed and catalogued the same way by every writer.
#[derive(Debug)]
pub struct TableWrite {
    name: TableName,
    mode: WriteMode,
    provenance: Provenance,
    transactions: Vec<Transaction>,
    metadata: Vec<(String, Value)>,
    compact: Option<AutoCompact>,
    coalesce: bool,
}

impl TableWrite {
    pub fn new(name: TableName, mode: WriteMode, provenance: Provenance) -> Self {
        Self {
            name,
            mode,
            provenance,
            transactions: Vec::new(),
            metadata: Vec::new(),
            compact: None,
            coalesce: false,
        }
    }

    /// The table written.
    pub fn name(&self) -> &TableName {
        &self.name
    }

    /// Records application `app_id`'s progress (a file's hash, a stream's sequence number) in
    /// the same commit, so that a write retried after a crash is recognised.
    pub fn transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.transactions
            .push(Transaction::new(app_id.into(), version));
        self
    }

    pub fn transactions(mut self, transactions: impl IntoIterator<Item = Transaction>) -> Self {
        self.transactions.extend(transactions);
        self
    }

    /// A `carelake.<key>` entry in the commit's metadata.
    pub fn metadata(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata
            .push((format!("carelake.{key}"), value.into()));
        self
    }

    /// Compacts the table's small files after the commit when they reach `policy`'s
    /// threshold (on a task of its own: the writer never waits for it).
    pub fn compact(mut self, policy: AutoCompact) -> Self {
        self.compact = Some(policy);
        self
    }

    /// Records a write that only adds rows to a listed table with the catalog's coalesced
    /// events ([`crate::Catalog::record_coalesced`]), for writers that commit every second.
    pub fn coalesce_catalog(mut self) -> Self {
        self.coalesce = true;
        self
    }

    /// Writes rows or a plan's output. `existing` is the table as the caller already opened
    /// it, or `None` to open it here (creating it when absent).
    pub async fn write(
        mut self,
        lake: &Lake,
        existing: Option<DeltaTable>,
        input: WriteInput,
    ) -> Result<DeltaTable> {
        let url = lake.table_url(&self.name)?;
        let existing = match existing {
            Some(table) => Some(table),
            None => lake.load_delta(&url, TimeTravel::Latest).await?,
        };
        let existed = existing.is_some();
        let handle = match existing {
            Some(table) => table,
            None => lake.delta_handle(&url)?,
        };
        let (batches, plan) = match input {
            WriteInput::Batches(batches) => (batches, None),
            WriteInput::Plan(plan, state) => (Vec::new(), Some((plan, state))),
        };
        let mut builder = handle
            .write(batches)
            .with_table_name(self.name.name.clone())
            .with_commit_properties(commit_properties(
                std::mem::take(&mut self.transactions),
                std::mem::take(&mut self.metadata),
            ));
        if let Some((plan, state)) = plan {
            builder = builder.with_input_plan(plan);
            if let Some(state) = state {
                builder = builder.with_session_state(state);
            }
        }
        if !existed && let Some(description) = &self.provenance.description {
            builder = builder.with_description(description.clone());
        }
        builder = match self.mode {
            WriteMode::Append => builder
                .with_save_mode(SaveMode::Append)
                .with_schema_mode(SchemaMode::Merge),
            WriteMode::Replace => builder
                .with_save_mode(SaveMode::Overwrite)
                .with_schema_mode(SchemaMode::Overwrite),
            WriteMode::Create => builder.with_save_mode(SaveMode::ErrorIfExists),
        };
        let written = builder.await?;
        self.finish(lake, &written, !existed).await?;
        Ok(written)
    }

    /// Writes rows (see [`TableWrite::write`]).
    pub async fn batches(
        self,
        lake: &Lake,
        existing: Option<DeltaTable>,
        batches: Vec<RecordBatch>,
    ) -> Result<DeltaTable> {
        self.write(lake, existing, WriteInput::Batches(batches))
            .await
    }

    /// Commits prepared actions (files a staged load already wrote, a schema change) on top of
    /// `table`, and returns the table at the new version.
    pub async fn actions(
        mut self,
        lake: &Lake,
        table: &DeltaTable,
        actions: Vec<Action>,
        created: bool,
    ) -> Result<DeltaTable> {
        let finalized = CommitBuilder::from(commit_properties(
            std::mem::take(&mut self.transactions),
            std::mem::take(&mut self.metadata),
        ))
        .with_actions(actions)
        .build(
            Some(table.snapshot()?),
            table.log_store(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
        )
        .await?;
        let version = finalized.version() as u64;
        let written = lake
            .load_delta(&lake.table_url(&self.name)?, TimeTravel::Version(version))
            .await?
            .ok_or_else(|| Error::TableNotFound(self.name.to_string()))?;
        self.finish(lake, &written, created).await?;
        Ok(written)
    }

    /// Records a write that committed nothing new (a table made empty, or a commit whose
    /// catalog event a crash lost) in the catalog.
    pub async fn record(self, lake: &Lake, table: &DeltaTable, created: bool) -> Result<()> {
        self.finish(lake, table, created).await
    }

    async fn finish(&self, lake: &Lake, written: &DeltaTable, created: bool) -> Result<()> {
        if let Some(policy) = &self.compact {
            policy.spawn_when_due(written);
        }
        crate::clean_logs_when_due(written).await;
        // A crash between a first commit and its catalog event leaves the table unlisted: the
        // next write lists it as the first would have.
        let created = created || !lake.catalog().contains(&self.name).await?;
        let event = self.provenance.event(self.name.clone(), written, created);
        if self.coalesce && !created {
            lake.catalog().record_coalesced(event).await
        } else {
            lake.catalog().record(&[event]).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::util::{app_version, row_count};

    fn rows(ids: &[i64], extra: bool) -> RecordBatch {
        let mut fields = vec![Field::new("id", DataType::Int64, true)];
        let mut columns: Vec<arrow::array::ArrayRef> =
            vec![Arc::new(Int64Array::from(ids.to_vec()))];
        if extra {
            fields.push(Field::new("note", DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from(vec![Some("x"); ids.len()])));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_write_commits_its_transactions_and_is_catalogued_with_its_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("lake").to_string_lossy().into_owned();
        let lake = Lake::init(&location).await.unwrap();
        let name: TableName = "raw.events".parse().unwrap();
        let first = || {
            Provenance::new("HTTP ingest", "ann")
                .described("Events streamed to /api/v1/ingest/events")
        };

        // The first write creates the table and its catalog entry: owner, description, no
        // upstream tables, the writer as source; the transaction is in the same commit.
        let written = TableWrite::new(name.clone(), WriteMode::Append, first())
            .transaction("carelake-stream", 3)
            .metadata("operation", "flush")
            .batches(&lake, None, vec![rows(&[1, 2], false)])
            .await
            .unwrap();
        assert_eq!(row_count(&written), Some(2));
        assert_eq!(
            app_version(&written, "carelake-stream").await.unwrap(),
            Some(3)
        );
        let entry = lake.catalog().get(&name).await.unwrap().unwrap();
        assert_eq!(entry.owner.as_deref(), Some("ann"));
        assert_eq!(entry.source.as_deref(), Some("HTTP ingest"));
        assert_eq!(
            entry.description.as_deref(),
            Some("Events streamed to /api/v1/ingest/events")
        );
        assert!(entry.upstream.is_empty());
        assert_eq!(entry.table_version, written.version().map(|v| v as i64));

        // A later append by someone else adds a column and keeps owner and description.
        let later = Provenance::new("HTTP ingest", "bob").described("changed");
        let written = TableWrite::new(name.clone(), WriteMode::Append, later)
            .transaction("carelake-stream", 4)
            .batches(&lake, None, vec![rows(&[3], true)])
            .await
            .unwrap();
        assert_eq!(row_count(&written), Some(3));
        let schema = written.snapshot().unwrap().snapshot().arrow_schema();
        assert!(schema.field_with_name("note").is_ok(), "{schema:?}");
        let entry = lake.catalog().get(&name).await.unwrap().unwrap();
        assert_eq!(entry.owner.as_deref(), Some("ann"));
        assert_eq!(
            entry.description.as_deref(),
            Some("Events streamed to /api/v1/ingest/events")
        );
        assert_eq!(entry.row_count, Some(3));
        assert_eq!(
            app_version(&written, "carelake-stream").await.unwrap(),
            Some(4)
        );

        // A replacement takes over the rows and, when it says so, the ownership; its
        // upstream tables are recorded.
        let upstream: TableName = "raw.source".parse().unwrap();
        let mut replace = Provenance::new("CREATE TABLE", "carol").upstream(vec![upstream.clone()]);
        replace.takes_ownership = true;
        let written = TableWrite::new(name.clone(), WriteMode::Replace, replace)
            .batches(&lake, None, vec![rows(&[7], false)])
            .await
            .unwrap();
        assert_eq!(row_count(&written), Some(1));
        let entry = lake.catalog().get(&name).await.unwrap().unwrap();
        assert_eq!(entry.owner.as_deref(), Some("carol"));
        assert_eq!(entry.upstream, vec![upstream]);

        // CREATE of an existing table fails and leaves it as it was.
        let err = TableWrite::new(
            name.clone(),
            WriteMode::Create,
            Provenance::new("CREATE TABLE", "dan"),
        )
        .batches(&lake, None, vec![rows(&[9], false)])
        .await
        .unwrap_err();
        assert!(!err.is_commit_conflict(), "{err}");
        let entry = lake.catalog().get(&name).await.unwrap().unwrap();
        assert_eq!(entry.row_count, Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_a_crash_left_unlisted_is_listed_as_new_by_its_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("lake").to_string_lossy().into_owned();
        let lake = Lake::init(&location).await.unwrap();
        let name: TableName = "raw.hl7_messages".parse().unwrap();
        // A commit whose catalog event was lost: written straight to Delta.
        let url = lake.table_url(&name).unwrap();
        let table = lake
            .delta_handle(&url)
            .unwrap()
            .write(vec![rows(&[1], false)])
            .with_save_mode(SaveMode::Append)
            .await
            .unwrap();
        assert!(lake.catalog().get(&name).await.unwrap().is_none());
        let provenance = Provenance::new("MLLP listener", "mllp").described("Every HL7 v2 message");
        TableWrite::new(name.clone(), WriteMode::Append, provenance)
            .transaction("carelake-mllp", 1)
            .actions(&lake, &table, Vec::new(), false)
            .await
            .unwrap();
        let entry = lake.catalog().get(&name).await.unwrap().unwrap();
        assert_eq!(entry.owner.as_deref(), Some("mllp"));
        assert_eq!(entry.description.as_deref(), Some("Every HL7 v2 message"));
        assert_eq!(entry.row_count, Some(1));
    }

    /// Writes that only add rows record their catalog event at most once per interval: the
    /// first at once, the next ones by a timer or at a flush, the newest version winning.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frequent_appends_coalesce_their_catalog_events() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("lake").to_string_lossy().into_owned();
        let lake = Lake::init(&location).await.unwrap();
        let name: TableName = "raw.vitals".parse().unwrap();
        let catalog_commits = || async {
            let url = lake.system_table_url("catalog").unwrap();
            let table = lake
                .load_delta(&url, crate::TimeTravel::Latest)
                .await
                .unwrap()
                .unwrap();
            table.version().unwrap()
        };
        let append = |id: i64| {
            TableWrite::new(
                name.clone(),
                WriteMode::Append,
                Provenance::new("HTTP ingest", "ann").described("Vitals"),
            )
            .coalesce_catalog()
            .batches(&lake, None, vec![rows(&[id], false)])
        };
        let recorded = || async {
            let entry = lake.catalog().get(&name).await.unwrap().unwrap();
            (entry.table_version, entry.row_count)
        };
        // Created: recorded now, with its description. The first append after it too.
        let first = append(1).await.unwrap();
        assert_eq!(
            recorded().await,
            (first.version().map(|v| v as i64), Some(1))
        );
        let second = append(2).await.unwrap().version().map(|v| v as i64);
        assert_eq!(recorded().await, (second, Some(2)));
        let before = catalog_commits().await;
        // Within the interval: held back, then written once by a flush.
        let mut last = None;
        for id in 3..8 {
            last = append(id).await.unwrap().version().map(|v| v as i64);
        }
        assert_eq!(catalog_commits().await, before);
        assert_eq!(recorded().await, (second, Some(2)));
        lake.catalog().flush_coalesced().await.unwrap();
        assert_eq!(catalog_commits().await, before + 1);
        assert_eq!(recorded().await, (last, Some(7)));
        let entry = lake.catalog().get(&name).await.unwrap().unwrap();
        assert_eq!(entry.description.as_deref(), Some("Vitals"));
        // Without a flush, the timer writes it once the interval has passed.
        let last = append(8).await.unwrap();
        assert_eq!(recorded().await.1, Some(7));
        tokio::time::sleep(crate::COALESCE_EVERY + std::time::Duration::from_millis(700)).await;
        assert_eq!(
            recorded().await,
            (last.version().map(|v| v as i64), Some(8))
        );
        assert_eq!(catalog_commits().await, before + 2);
    }
}
