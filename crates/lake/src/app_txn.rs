//! Application transaction versions (Delta `txn` actions: a load's file hash, a stream's
//! sequence number, an MLLP group, a CDC watermark), remembered per table by this process.
//!
//! Asking the Delta kernel replays the table's log each time: its last checkpoint and every
//! commit file after it (up to a hundred). Streams ask before every flush and MLLP before
//! every group, so a server streaming into a table read about fifty log files a second per
//! table for an answer that it had written itself. Here the answer found at a version is
//! kept; at a newer version only the commit files in between are read (a writer appends one
//! or two between its own flushes), and the kernel is asked again when they cannot be, when
//! many came in between, or when the table is not the one the answer was read from (dropped
//! and made again: its commit file at that version differs). Tables that expire transactions
//! (`delta.setTransactionRetentionDuration`) always ask the kernel.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use deltalake::DeltaTable;
use object_store::{ObjectMeta, ObjectStoreExt as _};

use crate::Result;
use crate::snapshots::{commit_path, same_file};

/// Answers kept at most; past this the cache starts again (every loaded file's hash is an
/// application of its own).
const MAX_ENTRIES: usize = 4096;

/// Commits read to bring an answer up to date, at most; past this the kernel replays the log
/// (which reads at most a checkpoint and a hundred commits).
const MAX_CATCH_UP: u64 = 64;

#[derive(Clone)]
struct Known {
    /// The table version the answer holds at.
    at: u64,
    /// That version's commit file, to tell the same table from one made again.
    commit: ObjectMeta,
    /// The application's last transaction version at `at`.
    version: Option<i64>,
}

static KNOWN: LazyLock<Mutex<HashMap<(String, String), Known>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The version of application `app_id`'s last transaction recorded in the table, if any.
pub(crate) async fn app_version(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    let snapshot = table.snapshot()?;
    let at = snapshot.version();
    if snapshot
        .table_config()
        .set_transaction_retention_duration
        .is_some()
    {
        return kernel_answer(table, app_id).await;
    }
    let key = (table.table_url().to_string(), app_id.to_string());
    let known = KNOWN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let store = table.log_store().object_store(None);
    if let Some(known) = known
        && known.at <= at
        && at - known.at <= MAX_CATCH_UP
        && store
            .head(&commit_path(known.at))
            .await
            .is_ok_and(|meta| same_file(&meta, &known.commit))
        && let Some(newer) = newer_transaction(table, app_id, known.at + 1, at).await?
    {
        let version = newer.or(known.version);
        remember(table, key, at, version).await;
        return Ok(version);
    }
    let version = kernel_answer(table, app_id).await?;
    remember(table, key, at, version).await;
    Ok(version)
}

async fn kernel_answer(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), app_id)
        .await?)
}

async fn remember(table: &DeltaTable, key: (String, String), at: u64, version: Option<i64>) {
    let Ok(commit) = table
        .log_store()
        .object_store(None)
        .head(&commit_path(at))
        .await
    else {
        return;
    };
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if known.len() >= MAX_ENTRIES && !known.contains_key(&key) {
        known.clear();
    }
    known.insert(
        key,
        Known {
            at,
            commit,
            version,
        },
    );
}

/// The last `txn` of `app_id` in the commits `from..=to`: `Some(None)` when they have none,
/// `None` when one of them cannot be read.
async fn newer_transaction(
    table: &DeltaTable,
    app_id: &str,
    from: u64,
    to: u64,
) -> Result<Option<Option<i64>>> {
    let mut found = None;
    for version in from..=to {
        let Some(bytes) = table.log_store().read_commit_entry(version).await? else {
            return Ok(None);
        };
        let Some(txn) = transaction_in(&bytes, app_id) else {
            return Ok(None);
        };
        found = txn.or(found);
    }
    Ok(Some(found))
}

/// The version of `app_id`'s `txn` action in one commit file's bytes (`Some(None)` when it
/// has none), or `None` when a line is not JSON.
fn transaction_in(commit: &[u8], app_id: &str) -> Option<Option<i64>> {
    let mut found = None;
    for line in commit.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Most actions are adds; only lines naming a txn are parsed.
        if !line.windows(5).any(|w| w == b"\"txn\"") {
            continue;
        }
        let action: serde_json::Value = serde_json::from_slice(line).ok()?;
        let Some(txn) = action.get("txn") else {
            continue;
        };
        if txn.get("appId").and_then(|a| a.as_str()) == Some(app_id) {
            found = Some(txn.get("version").and_then(|v| v.as_i64())?);
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::transaction_in;

    #[test]
    fn a_commit_names_the_transaction_of_its_application_only() {
        let commit = br#"{"commitInfo":{"timestamp":1,"operation":"WRITE"}}
{"txn":{"appId":"other","version":9,"lastUpdated":1}}
{"txn":{"appId":"carelake-stream","version":42,"lastUpdated":1}}
{"add":{"path":"part-1.parquet","size":10,"dataChange":true}}
"#;
        assert_eq!(transaction_in(commit, "carelake-stream"), Some(Some(42)));
        assert_eq!(transaction_in(commit, "other"), Some(Some(9)));
        assert_eq!(transaction_in(commit, "absent"), Some(None));
        assert_eq!(transaction_in(b"{\"txn\": not json\n", "x"), None);
        assert_eq!(transaction_in(b"", "x"), Some(None));
    }
}
