//! The newest snapshot of each table this process has read, so that a query does not replay a
//! table's Delta log when nobody has committed to it since.
//!
//! A cached snapshot at version `v` is still the newest when the commit file of `v` is the one
//! it was read from (same size, modification time and entity tag: a table dropped and created
//! again writes a new one) and there is no commit file `v + 1`: two metadata requests, where
//! a fresh load lists the log, reads the last checkpoint and every commit after it. When a
//! newer commit exists, only the commits after `v` are read (`update_incremental`). Time travel
//! reads never use the cache.

use std::collections::HashMap;
use std::sync::Mutex;

use deltalake::DeltaTable;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStoreExt as _};
use url::Url;

use crate::Result;

/// Tables cached at most; past this the cache starts again (a lake has far fewer tables).
const MAX_TABLES: usize = 1024;

/// A table's newest snapshot and the commit file it was read from.
#[derive(Clone)]
struct Cached {
    table: DeltaTable,
    commit: ObjectMeta,
}

/// The cache: one entry per table URL.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    tables: Mutex<HashMap<Url, Cached>>,
}

impl std::fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCache").finish_non_exhaustive()
    }
}

pub(crate) fn commit_path(version: u64) -> StorePath {
    StorePath::from(format!("_delta_log/{version:020}.json"))
}

pub(crate) fn same_file(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.size == b.size && a.last_modified == b.last_modified && a.e_tag == b.e_tag
}

/// The metadata of a table's current commit file, when it can be read.
async fn commit_meta(table: &DeltaTable) -> Option<ObjectMeta> {
    let version = table.version()?;
    table
        .log_store()
        .object_store(None)
        .head(&commit_path(version))
        .await
        .ok()
}

impl SnapshotCache {
    /// The newest snapshot of the table at `url`, from the cache when it is still the newest
    /// or can be brought up to date from newer commits; `None` when the table is not cached.
    pub(crate) async fn latest(&self, url: &Url) -> Result<Option<DeltaTable>> {
        let cached = self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
            .cloned();
        let Some(Cached { mut table, commit }) = cached else {
            return Ok(None);
        };
        let Some(version) = table.version() else {
            return Ok(None);
        };
        let store = table.log_store().object_store(None);
        match store.head(&commit_path(version)).await {
            Ok(meta) if same_file(&meta, &commit) => {}
            // Dropped, created again, or its log cleaned: read it afresh.
            _ => {
                self.forget(url);
                return Ok(None);
            }
        }
        match store.head(&commit_path(version + 1)).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(Some(table)),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        table.update_incremental(None).await?;
        self.remember(url, &table).await;
        Ok(Some(table))
    }

    /// Caches a table just read at its newest version.
    pub(crate) async fn remember(&self, url: &Url, table: &DeltaTable) {
        let Some(commit) = commit_meta(table).await else {
            return;
        };
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if tables.len() >= MAX_TABLES && !tables.contains_key(url) {
            tables.clear();
        }
        tables.insert(
            url.clone(),
            Cached {
                table: table.clone(),
                commit,
            },
        );
    }

    /// Drops a table from the cache.
    pub(crate) fn forget(&self, url: &Url) {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(url);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use crate::util::{append_batches, row_count};
    use crate::{Lake, TimeTravel};

    fn rows(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cached_snapshot_follows_other_writers_and_a_table_made_again() {
        let dir = std::env::temp_dir().join(format!("carelake-snap-{}", uuid::Uuid::new_v4()));
        let location = dir.to_string_lossy().to_string();
        let lake = Lake::init(&location).await.unwrap();
        // Another handle is another process to this one's cache.
        let other = Lake::open(&location).await.unwrap();
        let url = lake.table_url(&"raw.t".parse().unwrap()).unwrap();
        let latest = || lake.load_delta(&url, TimeTravel::Latest);

        other
            .delta_handle(&url)
            .unwrap()
            .write(vec![rows(3)])
            .await
            .unwrap();
        let first = latest().await.unwrap().unwrap();
        assert_eq!((first.version(), row_count(&first)), (Some(0), Some(3)));
        let cached = latest().await.unwrap().unwrap();
        assert_eq!((cached.version(), row_count(&cached)), (Some(0), Some(3)));

        let theirs = other.load_delta(&url, TimeTravel::Latest).await.unwrap();
        append_batches(theirs.unwrap(), vec![rows(2)])
            .await
            .unwrap();
        let newer = latest().await.unwrap().unwrap();
        assert_eq!((newer.version(), row_count(&newer)), (Some(1), Some(5)));
        // The old version is still there to read by number.
        let old = lake.load_delta(&url, TimeTravel::Version(0)).await.unwrap();
        assert_eq!(old.and_then(|t| row_count(&t)), Some(3));

        // Dropped and made again up to the same version number by the other handle: the cache
        // must not serve the old table's files.
        std::fs::remove_dir_all(url.to_file_path().unwrap()).unwrap();
        let remade = other
            .delta_handle(&url)
            .unwrap()
            .write(vec![rows(7)])
            .await
            .unwrap();
        append_batches(remade, vec![rows(1)]).await.unwrap();
        let again = latest().await.unwrap().unwrap();
        assert_eq!((again.version(), row_count(&again)), (Some(1), Some(8)));

        // Dropped for good.
        std::fs::remove_dir_all(url.to_file_path().unwrap()).unwrap();
        assert!(latest().await.unwrap().is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
