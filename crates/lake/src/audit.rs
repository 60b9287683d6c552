//! The tamper-evident audit log: a Delta table at `<lake>/_carelake/audit` whose records form
//! a hash chain. Each record carries a sequence number, the previous record's hash and its own
//! SHA-256 over the previous hash and its content, so that an edited, removed or reordered
//! record breaks the chain; each commit also carries the last sequence number as a Delta
//! application transaction (`carelake-audit`), which anchors the tail and makes two processes
//! that append at once conflict (the loser re-reads the tail and chains again).
//!
//! Appends are grouped: callers that arrive while a commit is running are written together in
//! the next one, and each waits until its own record is committed — a statement whose record
//! cannot be written fails.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use sha2::{Digest, Sha256};

use crate::compact::AutoCompact;
use crate::util::create_system_table;
use crate::util::{SystemBatch, read_table, text_at, text_column, time_column};
use crate::{Error, Lake, Result, TimeTravel};

/// The application id of the audit log's commits.
const AUDIT_APP: &str = "carelake-audit";
/// The previous hash of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How long a commit that keeps losing races with other processes is tried for.
const COMMIT_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);
/// The least time between two audit commits of one process. A busy server commits a group of
/// records after another; without a gap, a CLI command (which must read the chain's tail before
/// it can append) would lose every race to it. Records arriving meanwhile join the next group,
/// so a busy process makes fewer, larger commits; a lone append never waits.
const COMMIT_SPACING: std::time::Duration = std::time::Duration::from_millis(100);

static AUDIT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("at", ts, false),
        Field::new("principal", DataType::Utf8, false),
        Field::new("interface", DataType::Utf8, false),
        Field::new("peer", DataType::Utf8, true),
        Field::new("action", DataType::Utf8, false),
        Field::new("statement", DataType::Utf8, true),
        Field::new("tables", DataType::Utf8, true),
        Field::new("columns", DataType::Utf8, true),
        Field::new("policies", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
        Field::new("prev_hash", DataType::Utf8, false),
        Field::new("hash", DataType::Utf8, false),
    ]))
});

/// The schema of `system.audit`.
pub fn audit_schema() -> SchemaRef {
    Arc::clone(&AUDIT_SCHEMA)
}

/// One thing that happened, as the audit log keeps it. Statement texts are kept with their
/// literals blanked; no value read from a table is ever recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (the user name, or the operating-system user for the command line).
    pub principal: String,
    /// Through which interface (cli, http, ui, postgres, mllp, internal).
    pub interface: String,
    /// The peer's address, for network interfaces.
    pub peer: Option<String>,
    /// What: `sign_in`, `statement`, `export`, `download`, `grant`, `policy`, `user`, `ingest`.
    pub action: String,
    /// The statement, literals blanked.
    pub statement: Option<String>,
    /// Tables read or written, comma-separated.
    pub tables: Option<String>,
    /// Columns read, comma-separated (`table.column`).
    pub columns: Option<String>,
    /// Row and masking policies applied, comma-separated.
    pub policies: Option<String>,
    /// Rows returned or written.
    pub rows: Option<i64>,
    /// `ok`, `denied` or `error`.
    pub outcome: String,
    /// More about the outcome (an error message, literals blanked).
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record of `action` by `principal` on `interface`, now, succeeded.
    pub fn new(
        principal: impl Into<String>,
        interface: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self {
            at: Utc::now(),
            principal: principal.into(),
            interface: interface.into(),
            peer: None,
            action: action.into(),
            statement: None,
            tables: None,
            columns: None,
            policies: None,
            rows: None,
            outcome: "ok".into(),
            detail: None,
        }
    }

    /// The record's hash, chained to `prev_hash`.
    fn hash(&self, prev_hash: &str) -> String {
        let content = serde_json::json!([
            self.at.timestamp_micros(),
            self.principal,
            self.interface,
            self.peer,
            self.action,
            self.statement,
            self.tables,
            self.columns,
            self.policies,
            self.rows,
            self.outcome,
            self.detail,
        ]);
        let mut digest = Sha256::new();
        digest.update(prev_hash.as_bytes());
        digest.update(b"\n");
        digest.update(content.to_string().as_bytes());
        hex::encode(digest.finalize())
    }
}

/// A record as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedRecord {
    /// Its sequence number, from 1.
    pub seq: i64,
    /// The record.
    pub record: AuditRecord,
    /// The hash of the record before it.
    pub prev_hash: String,
    /// Its own hash.
    pub hash: String,
}

/// What `carelake audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every record is in place: this many.
    Intact {
        /// Records checked.
        records: usize,
    },
    /// The chain is broken at the record with this sequence number (or where it should be).
    Broken {
        /// The sequence number.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

type Waiter = tokio::sync::oneshot::Sender<std::result::Result<(), String>>;

/// The audit log's writer: records waiting for the next commit, and the chain's tail.
#[derive(Default)]
pub struct AuditLog {
    pending: std::sync::Mutex<Vec<(Vec<AuditRecord>, Waiter)>>,
    /// Held while committing.
    writer: tokio::sync::Mutex<Writer>,
}

#[derive(Default)]
struct Writer {
    /// The chain's end as this process last committed or read it.
    tail: Option<Tail>,
    /// When this process last committed.
    last_commit: Option<std::time::Instant>,
}

/// The audit table as of this process's last commit, with the chain's last sequence number
/// and hash there. A commit appends to this version without reading the log again; when
/// another process has appended since, the commit finds the version taken, and the tail is
/// read again.
struct Tail {
    table: deltalake::DeltaTable,
    seq: i64,
    hash: String,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Appends `records` and returns once they are committed.
    pub(crate) async fn append(&self, lake: &Lake, records: Vec<AuditRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((records, tx));
        {
            let mut writer = self.writer.lock().await;
            if let Some(since) = writer.last_commit.map(|at| at.elapsed())
                && since < COMMIT_SPACING
            {
                tokio::time::sleep(COMMIT_SPACING - since).await;
            }
            let group =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
            if !group.is_empty() {
                let records: Vec<AuditRecord> =
                    group.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
                let outcome = commit(lake, &mut writer.tail, records)
                    .await
                    .map_err(|e| e.to_string());
                writer.last_commit = Some(std::time::Instant::now());
                for (_, waiter) in group {
                    let _ = waiter.send(outcome.clone());
                }
            }
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Audit(e)),
            Err(_) => Err(Error::Audit("the audit writer stopped".into())),
        }
    }
}

async fn commit(lake: &Lake, tail: &mut Option<Tail>, records: Vec<AuditRecord>) -> Result<()> {
    let mut last_error = None;
    let started = std::time::Instant::now();
    let mut attempts = 0u32;
    let mut other_failures = 0;
    while attempts == 0 || started.elapsed() < COMMIT_BUDGET {
        attempts += 1;
        let current = match tail.take() {
            Some(current) => current,
            None => read_current(lake).await?,
        };
        let mut chained = Vec::with_capacity(records.len());
        let mut prev = current.hash.clone();
        for (i, record) in records.iter().enumerate() {
            let hash = record.hash(&prev);
            chained.push(ChainedRecord {
                seq: current.seq + 1 + i as i64,
                record: record.clone(),
                prev_hash: prev,
                hash: hash.clone(),
            });
            prev = hash;
        }
        let seq = current.seq + records.len() as i64;
        let batch = to_batch(&chained)?;
        let written = current
            .table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(
                CommitProperties::default()
                    .with_application_transactions(vec![Transaction::new(AUDIT_APP, seq)])
                    .with_max_retries(0)
                    .with_cleanup_expired_logs(Some(false)),
            )
            .await;
        match written {
            Ok(table) => {
                crate::clean_logs_when_due(&table).await;
                let table = COMPACTION.compact_when_due(table).await;
                *tail = Some(Tail {
                    table,
                    seq,
                    hash: prev,
                });
                return Ok(());
            }
            Err(e) => {
                // Another process appended first: chain after its records (the tail stays
                // unset, so the next attempt reads it again). Any other failure (storage that
                // is away) is tried twice more, then reported.
                if !lost_race(&e) {
                    other_failures += 1;
                    if other_failures >= 3 {
                        return Err(e.into());
                    }
                }
                tracing::debug!(error = %e, "Audit commit failed; reading the tail again.");
                last_error = Some(e);
                // A random pause, growing with the attempts up to 200 ms, so that writers that
                // keep colliding drift apart and this one meets a gap between another's commits.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let ceiling_us = (5_000u64 << attempts.min(6)).min(200_000);
                tokio::time::sleep(std::time::Duration::from_micros(
                    u64::from(nanos) % ceiling_us,
                ))
                .await;
            }
        }
    }
    Err(Error::Audit(format!(
        "could not commit after {attempts} attempts in {} s: {}",
        started.elapsed().as_secs(),
        last_error.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// Whether a commit failed because another writer took its version.
fn lost_race(e: &deltalake::DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        e,
        deltalake::DeltaTableError::VersionAlreadyExists(_)
            | deltalake::DeltaTableError::Transaction {
                source: TransactionError::VersionAlreadyExists(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::CommitConflict(_)
            }
    )
}

/// Each commit adds a small file; past this many they are compacted, so that neither a commit
/// (which reads every file's entry in the log) nor `system.audit` slows down as the log grows.
/// Compaction rewrites whole records (each keeps its sequence number and hashes, so the chain
/// verifies as before); compacted files grow to 8 MB (about 25k records).
const COMPACTION: AutoCompact = AutoCompact {
    min_small_files: 128,
    target_size: std::num::NonZeroU64::new(8 << 20).unwrap(),
};

/// The audit table's newest version (made when missing) and the chain's end in it.
async fn read_current(lake: &Lake) -> Result<Tail> {
    create_system_table(
        lake,
        "audit",
        &AUDIT_SCHEMA,
        "carelake audit log (hash chain)",
    )
    .await?;
    let url = lake.system_table_url("audit")?;
    let table = lake
        .load_delta(&url, TimeTravel::Latest)
        .await?
        .ok_or_else(|| Error::Audit("the audit table vanished".into()))?;
    let (seq, hash) = read_tail(&table).await?;
    Ok(Tail { table, seq, hash })
}

/// The last sequence number and hash of the table (0 and the genesis hash when empty).
/// The file holding the highest sequence number is found from the log's statistics, and only
/// its row is read, so that a writer that lost a race to another process catches up in about
/// the time of one commit, however long the log (reading it all, the loser of a busy server's
/// stream of audit commits would lose every time).
async fn read_tail(table: &deltalake::DeltaTable) -> Result<(i64, String)> {
    let Some(highest) = highest_seq(table) else {
        let records = read_records(table).await?;
        return Ok(records
            .into_iter()
            .max_by_key(|r| r.seq)
            .map(|r| (r.seq, r.hash))
            .unwrap_or_else(|| (0, GENESIS.to_string())));
    };
    if highest == 0 {
        // Sequence numbers start at 1: the table is empty.
        return Ok((0, GENESIS.to_string()));
    }
    use datafusion::prelude::{SessionContext, col, lit};
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    let batches = ctx
        .read_table(provider)?
        .filter(col("seq").eq(lit(highest)))?
        .select_columns(&["hash"])?
        .collect()
        .await?;
    for batch in batches {
        let hash = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        if let Some(hash) = hash.as_any().downcast_ref::<StringArray>()
            && !hash.is_empty()
            && hash.is_valid(0)
        {
            return Ok((highest, hash.value(0).to_string()));
        }
    }
    Err(Error::Audit(format!(
        "the log's statistics name record {highest}, which no file holds"
    )))
}

/// The highest sequence number in the table from the log's file statistics: `Some(0)` for an
/// empty table, `None` when a file has no statistics (then the records are read).
fn highest_seq(table: &deltalake::DeltaTable) -> Option<i64> {
    let snapshot = table.snapshot().ok()?;
    let mut highest = 0;
    for file in snapshot.log_data().iter() {
        let stats: serde_json::Value = serde_json::from_str(&file.stats()?).ok()?;
        highest = highest.max(stats.pointer("/maxValues/seq")?.as_i64()?);
    }
    Some(highest)
}

fn to_batch(records: &[ChainedRecord]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::clone(&AUDIT_SCHEMA),
        vec![
            Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.seq))),
            time_column(records, |r| r.record.at),
            text_column(records, |r| Some(r.record.principal.clone())),
            text_column(records, |r| Some(r.record.interface.clone())),
            text_column(records, |r| r.record.peer.clone()),
            text_column(records, |r| Some(r.record.action.clone())),
            text_column(records, |r| r.record.statement.clone()),
            text_column(records, |r| r.record.tables.clone()),
            text_column(records, |r| r.record.columns.clone()),
            text_column(records, |r| r.record.policies.clone()),
            Arc::new(Int64Array::from(
                records.iter().map(|r| r.record.rows).collect::<Vec<_>>(),
            )),
            text_column(records, |r| Some(r.record.outcome.clone())),
            text_column(records, |r| r.record.detail.clone()),
            text_column(records, |r| Some(r.prev_hash.clone())),
            text_column(records, |r| Some(r.hash.clone())),
        ],
    )?)
}

async fn read_records(table: &deltalake::DeltaTable) -> Result<Vec<ChainedRecord>> {
    let mut out = Vec::new();
    for batch in read_table(table).await? {
        let batch = SystemBatch::new(&batch, "audit", Error::Audit);
        let at = batch.time("at")?;
        let (seq, rows) = (batch.int("seq")?, batch.int("rows")?);
        let [
            principal,
            interface,
            peer,
            action,
            statement,
            tables,
            columns,
            policies,
            outcome,
            detail,
            prev_hash,
            hash,
        ] = [
            batch.text("principal")?,
            batch.text("interface")?,
            batch.text("peer")?,
            batch.text("action")?,
            batch.text("statement")?,
            batch.text("tables")?,
            batch.text("columns")?,
            batch.text("policies")?,
            batch.text("outcome")?,
            batch.text("detail")?,
            batch.text("prev_hash")?,
            batch.text("hash")?,
        ];
        let opt = text_at;
        for i in 0..batch.num_rows() {
            out.push(ChainedRecord {
                seq: seq.value(i),
                record: AuditRecord {
                    at: DateTime::from_timestamp_micros(at.value(i)).unwrap_or_default(),
                    principal: principal.value(i).to_string(),
                    interface: interface.value(i).to_string(),
                    peer: opt(&peer, i),
                    action: action.value(i).to_string(),
                    statement: opt(&statement, i),
                    tables: opt(&tables, i),
                    columns: opt(&columns, i),
                    policies: opt(&policies, i),
                    rows: (!rows.is_null(i)).then(|| rows.value(i)),
                    outcome: outcome.value(i).to_string(),
                    detail: opt(&detail, i),
                },
                prev_hash: prev_hash.value(i).to_string(),
                hash: hash.value(i).to_string(),
            });
        }
    }
    Ok(out)
}

impl Lake {
    /// Appends records to the audit log; returns once they are committed.
    pub async fn audit_append(&self, records: Vec<AuditRecord>) -> Result<()> {
        self.audit().append(self, records).await
    }

    /// Every audit record, by sequence number.
    pub async fn audit_records(&self) -> Result<Vec<ChainedRecord>> {
        let url = self.system_table_url("audit")?;
        let Some(table) = self.load_delta(&url, TimeTravel::Latest).await? else {
            return Ok(Vec::new());
        };
        let mut records = read_records(&table).await?;
        records.sort_by_key(|r| r.seq);
        Ok(records)
    }

    /// The audit table's current provider (for `system.audit`), when there is one.
    pub async fn audit_table(&self) -> Result<Option<deltalake::DeltaTable>> {
        let url = self.system_table_url("audit")?;
        self.load_delta(&url, TimeTravel::Latest).await
    }

    /// Recomputes the audit log's hash chain and names the first record that is broken,
    /// missing or out of order.
    pub async fn audit_verify(&self) -> Result<Verification> {
        let url = self.system_table_url("audit")?;
        let Some(table) = self.load_delta(&url, TimeTravel::Latest).await? else {
            return Ok(Verification::Intact { records: 0 });
        };
        let anchor = crate::util::app_version(&table, AUDIT_APP).await?;
        let mut records = read_records(&table).await?;
        records.sort_by_key(|r| r.seq);
        Ok(verify_chain(&records, anchor))
    }
}

/// Checks a chain sorted by sequence number; `anchor` is the last sequence number the Delta
/// log says was committed.
pub fn verify_chain(records: &[ChainedRecord], anchor: Option<i64>) -> Verification {
    let hashes: std::collections::HashMap<&str, i64> =
        records.iter().map(|r| (r.hash.as_str(), r.seq)).collect();
    let mut prev_hash = GENESIS.to_string();
    let mut expected_seq = 1;
    for r in records {
        if r.record.hash(&r.prev_hash) != r.hash {
            return Verification::Broken {
                seq: r.seq,
                reason: "its content does not match its hash (edited)".into(),
            };
        }
        if r.seq < expected_seq {
            return Verification::Broken {
                seq: r.seq,
                reason: "its sequence number appears twice".into(),
            };
        }
        if r.seq > expected_seq {
            return Verification::Broken {
                seq: expected_seq,
                reason: format!(
                    "missing: the log jumps from {} to {}",
                    expected_seq - 1,
                    r.seq
                ),
            };
        }
        if r.prev_hash != prev_hash {
            let reason = match hashes.get(r.prev_hash.as_str()) {
                Some(before) => format!(
                    "out of order: it follows record {before}, not record {}",
                    r.seq - 1
                ),
                None => "the record before it is missing or was replaced".into(),
            };
            return Verification::Broken { seq: r.seq, reason };
        }
        prev_hash = r.hash.clone();
        expected_seq += 1;
    }
    let last = expected_seq - 1;
    if let Some(anchor) = anchor
        && anchor > last
    {
        return Verification::Broken {
            seq: last + 1,
            reason: format!(
                "missing: the Delta log committed up to {anchor}, the table ends at {last}"
            ),
        };
    }
    Verification::Intact {
        records: records.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<ChainedRecord> {
        let mut prev = GENESIS.to_string();
        (0..n)
            .map(|i| {
                let mut record = AuditRecord::new("u", "cli", "statement");
                record.statement = Some(format!("SELECT {i}"));
                let hash = record.hash(&prev);
                let r = ChainedRecord {
                    seq: i as i64 + 1,
                    record,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn detects_edits_removals_and_reorders() {
        let good = chain(5);
        assert_eq!(
            verify_chain(&good, Some(5)),
            Verification::Intact { records: 5 }
        );

        let mut edited = good.clone();
        edited[2].record.statement = Some("SELECT 42".into());
        assert!(matches!(
            verify_chain(&edited, Some(5)),
            Verification::Broken { seq: 3, .. }
        ));

        let mut removed = good.clone();
        removed.remove(1);
        assert!(matches!(
            verify_chain(&removed, Some(5)),
            Verification::Broken { seq: 2, .. }
        ));

        let mut tail_cut = good.clone();
        tail_cut.pop();
        assert!(matches!(
            verify_chain(&tail_cut, Some(5)),
            Verification::Broken { seq: 5, .. }
        ));

        // Swap the places of records 2 and 3 (their sequence numbers follow the places).
        let mut reordered = good.clone();
        reordered.swap(1, 2);
        reordered[1].seq = 2;
        reordered[2].seq = 3;
        match verify_chain(&reordered, Some(5)) {
            Verification::Broken { seq, reason } => {
                assert_eq!(seq, 2);
                assert!(reason.contains("out of order"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_keep_one_chain_and_the_log_stays_compact() {
        let dir = std::env::temp_dir().join(format!("carelake-audit-{}", uuid::Uuid::new_v4()));
        let location = dir.to_string_lossy().to_string();
        let lake = Lake::init(&location).await.unwrap();
        // Another handle is another process: its appends make this one's cached tail stale.
        let other = Lake::open(&location).await.unwrap();
        let commits = COMPACTION.min_small_files * 2 + 10;
        for i in 0..commits {
            let writer = if i % 3 == 0 { &other } else { &lake };
            let mut record = AuditRecord::new("u", "cli", "statement");
            record.statement = Some(format!("SELECT {i}"));
            writer.audit_append(vec![record]).await.unwrap();
        }
        assert_eq!(
            lake.audit_verify().await.unwrap(),
            Verification::Intact { records: commits }
        );
        let records = lake.audit_records().await.unwrap();
        let statements: Vec<_> = records
            .iter()
            .map(|r| r.record.statement.clone().unwrap())
            .collect();
        let expected: Vec<_> = (0..commits).map(|i| format!("SELECT {i}")).collect();
        assert_eq!(statements, expected);
        let table = lake.audit_table().await.unwrap().unwrap();
        let files = table.snapshot().unwrap().log_data().num_files();
        assert!(
            files <= COMPACTION.min_small_files,
            "{files} files after {commits} commits"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
