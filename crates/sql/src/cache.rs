//! The result cache: answers of read queries kept by what determines them — the principal,
//! the optimised plan (with its policies: a protected table's plan carries its row filters
//! and masks) and the Delta version of every table read — so that a cached answer is never
//! stale: a new commit to any table read gives a new key. Only plans whose every scan is a
//! versioned lake table are cached (not the system tables, external files or streams), and
//! none that calls a volatile function (`random()`; `now()` is folded into the plan as a
//! constant, so it keys by the instant). The cache is shared by the sessions of a process
//! and bounded in bytes (`CARELAKE_RESULT_CACHE_MB`, default 256; 0 switches it off); the
//! least recently used answers go first, and an answer above a sixteenth of the bound is
//! not kept. A query keeps one answer: the one for the newest versions it was run on (an
//! answer for older versions can never be asked for again once a table moved on, so it is
//! dropped then rather than left to fill the cache; streamed tables move every second).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use sha2::{Digest, Sha256};

use crate::cluster::LakeTable;
use crate::policy::ProtectedTable;

static HITS: AtomicU64 = AtomicU64::new(0);

/// Queries answered from the cache in this process.
pub fn result_cache_hits() -> u64 {
    HITS.load(Ordering::Relaxed)
}

/// Bounds the process's result cache at `bytes` from now on, dropping what it holds (0 switches
/// it off): benchmarks time the engine, not the cache.
pub fn set_result_cache_bytes(bytes: usize) {
    if let Ok(mut cache) = CACHE.lock() {
        cache.entries.clear();
        cache.bytes = 0;
        cache.limit = bytes;
    }
}

/// What identifies a cached answer: the query (lake, principal, planner, optimised plan) and
/// the versions of what it read (with the policies in force).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    query: [u8; 32],
    versions: [u8; 32],
}

struct Entry {
    versions: [u8; 32],
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    bytes: usize,
    used: u64,
}

struct Cache {
    entries: HashMap<[u8; 32], Entry>,
    bytes: usize,
    limit: usize,
    clock: u64,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    let mb = std::env::var("CARELAKE_RESULT_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(256);
    Mutex::new(Cache {
        entries: HashMap::new(),
        bytes: 0,
        limit: mb << 20,
        clock: 0,
    })
});

/// The cache key of an optimised plan run by `principal` on the lake at `lake` with a
/// query planner described by `planner` (a session attached to a cluster keeps its own
/// answers), or `None` when its answer must not be cached.
pub(crate) fn key(lake: &str, principal: &str, planner: &str, plan: &LogicalPlan) -> Option<Key> {
    if CACHE.lock().map(|c| c.limit == 0).unwrap_or(true) {
        return None;
    }
    if matches!(
        plan,
        LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
    ) {
        return None;
    }
    let mut hasher = Sha256::new();
    for part in [lake, principal, planner] {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let text = plan.display_indent_schema().to_string();
    hasher.update(text.as_bytes());
    let mut versions = Sha256::new();
    if !versions_into(plan, &mut versions) {
        return None;
    }
    Some(Key {
        query: hasher.finalize().into(),
        versions: versions.finalize().into(),
    })
}

/// Hashes the version of every scan of `plan`; `false` when a scan is not a versioned lake
/// table or an expression is volatile.
fn versions_into(plan: &LogicalPlan, hasher: &mut Sha256) -> bool {
    let mut cacheable = true;
    let _ = plan.apply_with_subqueries(|node| {
        let volatile = node
            .expressions()
            .iter()
            .any(|e| e.exists(|e| Ok(e.is_volatile_node())).unwrap_or(true));
        if volatile {
            cacheable = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        if let LogicalPlan::TableScan(scan) = node {
            let Ok(provider) = source_as_provider(&scan.source) else {
                cacheable = false;
                return Ok(TreeNodeRecursion::Stop);
            };
            if let Some(table) = provider.downcast_ref::<LakeTable>() {
                let (name, version) = table.version();
                hasher.update(format!("{name}@{version};").as_bytes());
            } else if let Some(protected) = provider.downcast_ref::<ProtectedTable>() {
                let (inner, pushable, can_select) = protected.read_parts();
                hasher.update(
                    format!(
                        "{}|{pushable:?}|{can_select};",
                        inner.display_indent_schema()
                    )
                    .as_bytes(),
                );
                if !versions_into(inner, hasher) {
                    cacheable = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
            } else {
                cacheable = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    cacheable
}

/// The cached answer for `key`.
pub(crate) fn get(key: &Key) -> Option<(SchemaRef, Vec<RecordBatch>)> {
    let mut cache = CACHE.lock().ok()?;
    cache.clock += 1;
    let clock = cache.clock;
    let entry = cache
        .entries
        .get_mut(&key.query)
        .filter(|e| e.versions == key.versions)?;
    entry.used = clock;
    HITS.fetch_add(1, Ordering::Relaxed);
    Some((SchemaRef::clone(&entry.schema), entry.batches.clone()))
}

/// Keeps an answer in place of the query's earlier one, making room by dropping the least
/// recently used.
pub(crate) fn put(key: Key, schema: SchemaRef, batches: &[RecordBatch]) {
    let bytes: usize = batches
        .iter()
        .map(RecordBatch::get_array_memory_size)
        .sum::<usize>()
        + 256;
    let Ok(mut cache) = CACHE.lock() else {
        return;
    };
    if bytes > cache.limit / 16 {
        return;
    }
    cache.clock += 1;
    let used = cache.clock;
    if let Some(old) = cache.entries.insert(
        key.query,
        Entry {
            versions: key.versions,
            schema,
            batches: batches.to_vec(),
            bytes,
            used,
        },
    ) {
        cache.bytes -= old.bytes;
    }
    cache.bytes += bytes;
    while cache.bytes > cache.limit {
        let Some(oldest) = cache
            .entries
            .iter()
            .min_by_key(|(_, e)| e.used)
            .map(|(k, _)| *k)
        else {
            break;
        };
        if let Some(gone) = cache.entries.remove(&oldest) {
            cache.bytes -= gone.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_query_keeps_only_its_answer_for_the_newest_versions() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let answer = |n: i64| {
            vec![
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(vec![n]))],
                )
                .unwrap(),
            ]
        };
        // A query of its own (no other test's key can be the same).
        let query: [u8; 32] = Sha256::digest(uuid_like().as_bytes()).into();
        let at = |version: u8| Key {
            query,
            versions: [version; 32],
        };
        let held = || CACHE.lock().unwrap().entries.contains_key(&query);
        put(at(1), Arc::clone(&schema), &answer(1));
        assert!(get(&at(1)).is_some());
        // The table moved on: the new answer replaces the old one, which is never asked again.
        put(at(2), Arc::clone(&schema), &answer(2));
        assert!(get(&at(1)).is_none());
        let (_, batches) = get(&at(2)).unwrap();
        let n = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 2);
        assert!(held());
    }

    fn uuid_like() -> String {
        format!("{:?}-{}", std::time::SystemTime::now(), std::process::id())
    }
}
