//! Auto-compaction of tables written by many small commits: streamed events (one commit per
//! flush), MLLP messages (one per acknowledged group) and the audit log (one per statement).
//! Without it such a table gains a file a second, and every scan, commit and snapshot of it
//! slows down as it grows (a 10-minute soak took queries from 0.14 s to 1.1 s).
//!
//! A table is compacted when it holds [`AutoCompact::min_small_files`] small files (below
//! [`TIER_BASE`], or a quarter of the target size when that is less). Compaction is tiered,
//! as a log-structured merge tree is: delta-rs' bin-packing OPTIMIZE packs every file below its
//! target size, so a target of the full size would rewrite the whole table each time until the
//! table reached it (the table grows by a file a second: the work of each compaction would grow
//! with the table). Instead the target is the smallest tier bound that merges what is due:
//! small files into files of the first bound, and files of one tier into the next once
//! [`TIER_FACTOR`] of them have gathered, up to the target size. Each row is so rewritten about
//! once per tier, a handful of times in all, however long the stream runs. Rows keep their
//! values and lineage; the commit removes only the files it
//! rewrote, so it does not conflict with appends made meanwhile (Delta's own auto-compaction,
//! `delta.autoOptimize.autoCompact`, works the same way). The rewritten files stay on storage
//! for time travel until they are older than the table's retention
//! (`delta.deletedFileRetentionDuration`, a week by default): after a compaction, at most once
//! an hour per table and process, a VACUUM deletes those (so a table streamed into for months
//! keeps about a week of small files on disk, not every one it ever had).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use deltalake::DeltaTable;

/// When and how far a table is compacted.
#[derive(Debug, Clone, Copy)]
pub struct AutoCompact {
    /// Compact once the table has this many small files (below [`TIER_BASE`], or a quarter
    /// of `target_size` when that is less).
    pub min_small_files: usize,
    /// The size the largest compacted files grow to (the top tier's bound).
    pub target_size: NonZeroU64,
}

impl AutoCompact {
    /// For tables that streams append to every second or message.
    pub const STREAMED: AutoCompact = AutoCompact {
        min_small_files: 64,
        target_size: NonZeroU64::new(64 << 20).unwrap(),
    };

    /// Whether `table` has reached the threshold.
    pub fn is_due(&self, table: &DeltaTable) -> bool {
        self.plan(table).is_some()
    }

    /// The target size of the compaction that is due, if one is.
    fn plan(&self, table: &DeltaTable) -> Option<NonZeroU64> {
        let snapshot = table.snapshot().ok()?;
        let sizes: Vec<u64> = snapshot
            .log_data()
            .iter()
            .map(|f| f.size().max(0) as u64)
            .collect();
        self.target_for(&sizes)
    }

    /// The target size for files of `sizes`: `None` while fewer than `min_small_files` are
    /// small; else the bound of the highest tier that has gathered [`TIER_FACTOR`] files
    /// below it.
    fn target_for(&self, sizes: &[u64]) -> Option<NonZeroU64> {
        let target = self.target_size.get();
        let base = TIER_BASE.min(target / 4).max(1);
        if sizes.iter().filter(|&&s| s < base).count() < self.min_small_files {
            return None;
        }
        let (mut lower, mut bound) = (base, base.saturating_mul(TIER_FACTOR));
        while bound < target
            && sizes.iter().filter(|&&s| s >= lower && s < bound).count() >= TIER_FACTOR as usize
        {
            (lower, bound) = (bound, bound.saturating_mul(TIER_FACTOR));
        }
        NonZeroU64::new(bound.min(target))
    }

    /// The table compacted when due (returned as it was otherwise, or when the compaction
    /// failed: it is tried again after the next commit).
    pub async fn compact_when_due(&self, table: DeltaTable) -> DeltaTable {
        let Some(target) = self.plan(&table) else {
            return table;
        };
        match table.clone().optimize().with_target_size(target).await {
            Ok((compacted, metrics)) => {
                tracing::debug!(
                    removed = metrics.num_files_removed,
                    added = metrics.num_files_added,
                    "Table compacted."
                );
                vacuum_when_due(compacted).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "Compaction failed; it is tried again after the next commit.");
                table
            }
        }
    }

    /// Compacts `table` on a task of its own when due, so that the writer (whose commit an
    /// acknowledgement may wait on) does not wait for it. At most one compaction per table runs
    /// at a time in a process.
    pub fn spawn_when_due(&self, table: &DeltaTable) {
        if !self.is_due(table) {
            return;
        }
        let key = table.table_url().to_string();
        if !RUNNING
            .lock()
            .is_ok_and(|mut running| running.insert(key.clone()))
        {
            return;
        }
        let (policy, table) = (*self, table.clone());
        tokio::spawn(async move {
            policy.compact_when_due(table).await;
            if let Ok(mut running) = RUNNING.lock() {
                running.remove(&key);
            }
        });
    }
}

/// Files below this size are small: a table compacts once it has gathered enough of them.
pub const TIER_BASE: u64 = 256 << 10;

/// Each tier's bound is this many times the one below, and this many files of a tier are
/// merged into the next.
pub const TIER_FACTOR: u64 = 4;

/// The tables being compacted by [`AutoCompact::spawn_when_due`] in this process.
static RUNNING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// How often, at most, a compacted table is vacuumed by one process.
const VACUUM_EVERY: Duration = Duration::from_secs(3600);

/// When this process last vacuumed each compacted table.
static LAST_VACUUM: LazyLock<Mutex<HashMap<String, Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Deletes the files that compactions removed longer ago than the table's retention, when this
/// process has not done so for the table within [`VACUUM_EVERY`].
async fn vacuum_when_due(table: DeltaTable) -> DeltaTable {
    let key = table.table_url().to_string();
    let due = LAST_VACUUM.lock().is_ok_and(|mut last| {
        let due = last.get(&key).is_none_or(|at| at.elapsed() >= VACUUM_EVERY);
        if due {
            last.insert(key, Instant::now());
        }
        due
    });
    if !due {
        return table;
    }
    // The table's own retention, enforced: only files no snapshot within it needs.
    match table.clone().vacuum().await {
        Ok((vacuumed, metrics)) => {
            tracing::debug!(
                deleted = metrics.files_deleted.len(),
                "Files removed by compaction vacuumed."
            );
            vacuumed
        }
        Err(e) => {
            tracing::warn!(error = %e, "Vacuum after compaction failed; it is tried again within the hour.");
            table
        }
    }
}

/// How often, at most, one process deletes a table's expired log entries.
const LOG_CLEANUP_EVERY: Duration = Duration::from_secs(3600);

/// When this process last deleted each table's expired log entries.
static LAST_LOG_CLEANUP: LazyLock<Mutex<HashMap<String, Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Deletes the log entries of `table` older than its log retention
/// (`delta.logRetentionDuration`, 30 days by default) and its last checkpoint before them, when
/// this process has not done so for the table within the hour.
///
/// delta-rs does this after every commit by default, listing the whole `_delta_log` folder each
/// time: for a table committed to every second (streamed events, MLLP, the audit log) that is a
/// listing of thousands of entries per commit, growing all month. carelake's commits turn that
/// off ([`crate::commit_properties`]) and every write path calls this instead.
pub async fn clean_logs_when_due(table: &DeltaTable) {
    let Ok(snapshot) = table.snapshot() else {
        return;
    };
    if !deltalake::table::config::TablePropertiesExt::enable_expired_log_cleanup(
        snapshot.table_config(),
    ) {
        return;
    }
    let key = table.table_url().to_string();
    let due = LAST_LOG_CLEANUP.lock().is_ok_and(|mut last| {
        let due = last
            .get(&key)
            .is_none_or(|at| at.elapsed() >= LOG_CLEANUP_EVERY);
        if due {
            last.insert(key, Instant::now());
        }
        due
    });
    if !due {
        return;
    }
    match deltalake::protocol::checkpoints::cleanup_metadata(table, None).await {
        Ok(deleted) => tracing::debug!(deleted, "Expired log entries deleted."),
        Err(e) => {
            tracing::warn!(error = %e, "Deleting expired log entries failed; it is tried again within the hour.")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use deltalake::protocol::SaveMode;

    use super::*;

    /// A stream of small files, compacted whenever due with file sizes as the plan makes them:
    /// every row is rewritten a bounded number of times, however long the stream runs (a
    /// target of the full size each time would rewrite the whole table every round).
    #[test]
    fn tiers_bound_the_rewriting() {
        let policy = AutoCompact::STREAMED;
        let (small, rounds) = (60u64 << 10, 2_000);
        let mut files: Vec<u64> = Vec::new();
        let (mut written, mut rewritten) = (0u64, 0u64);
        let mut most_files = 0;
        for _ in 0..rounds {
            files.push(small);
            written += small;
            if let Some(target) = policy.target_for(&files) {
                // Bin-pack newest first, as delta-rs does: files above the target stay.
                let target = target.get();
                let (keep, candidates): (Vec<u64>, Vec<u64>) =
                    files.iter().rev().partition(|&&f| f > target);
                let (mut bins, mut bin) = (Vec::new(), Vec::<u64>::new());
                for f in candidates {
                    if bin.iter().sum::<u64>() + f > target && !bin.is_empty() {
                        bins.push(std::mem::take(&mut bin));
                    }
                    bin.push(f);
                }
                bins.push(bin);
                files = keep;
                for bin in bins {
                    if bin.len() > 1 {
                        rewritten += bin.iter().sum::<u64>();
                        files.push(bin.iter().sum());
                    } else {
                        files.extend(bin);
                    }
                }
                files.reverse();
            }
            most_files = most_files.max(files.len());
        }
        let amplification = rewritten as f64 / written as f64;
        assert!(
            amplification < 8.0,
            "each byte rewritten {amplification:.1} times"
        );
        assert!(most_files < 200, "{most_files} files at most");
        assert_eq!(files.iter().sum::<u64>(), written);
    }

    #[tokio::test]
    async fn many_small_commits_are_compacted_and_every_row_stays() {
        let dir = std::env::temp_dir().join(format!("carelake-compact-{}", uuid::Uuid::new_v4()));
        let lake = crate::Lake::init(&dir.to_string_lossy()).await.unwrap();
        let name = carelake_common::TableName::new(carelake_common::Zone::Raw, "ticks").unwrap();
        let mut table = lake.delta_handle(&lake.table_url(&name).unwrap()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let policy = AutoCompact {
            min_small_files: 10,
            target_size: NonZeroU64::new(1 << 20).unwrap(),
        };
        let mut most_files = 0;
        for i in 0..35i64 {
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(vec![i * 2, i * 2 + 1]))],
            )
            .unwrap();
            table = table
                .write(vec![batch])
                .with_save_mode(SaveMode::Append)
                .await
                .unwrap();
            table = policy.compact_when_due(table).await;
            let files = table.snapshot().unwrap().log_data().num_files();
            most_files = most_files.max(files);
        }
        assert!(most_files <= 10, "files never compacted: {most_files}");
        assert_eq!(crate::util::row_count(&table), Some(70));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// carelake's commits leave expired log entries alone (delta-rs would list the whole log
    /// after each); the first write of the hour deletes them, the next ones do not look again.
    #[tokio::test]
    async fn expired_log_entries_go_once_an_hour_not_at_every_commit() {
        let dir = std::env::temp_dir().join(format!("carelake-logs-{}", uuid::Uuid::new_v4()));
        let lake = crate::Lake::init(&dir.to_string_lossy()).await.unwrap();
        let name = carelake_common::TableName::new(carelake_common::Zone::Raw, "logs").unwrap();
        let url = lake.table_url(&name).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = |n: i64| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(vec![n]))],
            )
            .unwrap()
        };
        let mut table = lake.delta_handle(&url).unwrap();
        let log = url.to_file_path().unwrap().join("_delta_log");
        let commits = || {
            std::fs::read_dir(&log)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".json")
                })
                .count()
        };
        for n in 0..6 {
            let mut write = table
                .write(vec![batch(n)])
                .with_save_mode(SaveMode::Append)
                .with_commit_properties(crate::commit_properties(Vec::new(), Vec::new()));
            if n == 0 {
                write = write.with_configuration([
                    ("delta.logRetentionDuration", Some("interval 0 seconds")),
                    ("delta.checkpointInterval", Some("2")),
                ]);
            }
            table = write.await.unwrap();
        }
        // Checkpoints were written (every 2 versions) but no commit file was deleted.
        assert_eq!(commits(), 6);
        clean_logs_when_due(&table).await;
        let after = commits();
        assert!(after < 6, "{after} commit files left");
        table = table
            .write(vec![batch(9)])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(crate::commit_properties(Vec::new(), Vec::new()))
            .await
            .unwrap();
        clean_logs_when_due(&table).await;
        assert_eq!(commits(), after + 1, "cleaned again within the hour");
        assert_eq!(crate::util::row_count(&table), Some(7));
        std::fs::remove_dir_all(&dir).ok();
    }
}
