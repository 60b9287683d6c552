use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::TableName;
use chrono::{DateTime, Utc};

use object_store::ObjectStoreExt as _;

use crate::util::{SystemBatch, create_system_table, read_table, text_at};
use crate::{Error, Lake, Result, TimeTravel};

/// Whether a catalog entry is a stored table or a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EntryKind {
    /// A Delta table in a zone folder.
    Table,
    /// A SQL view stored in the catalog.
    View,
    /// Files read in place (`CREATE EXTERNAL TABLE`), defined by a statement in the catalog.
    External,
}

impl EntryKind {
    /// The kind's name in the catalog and in `system.tables`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Table => "table",
            EntryKind::View => "view",
            EntryKind::External => "external",
        }
    }

    fn parse(kind: &str) -> Self {
        match kind {
            "view" => EntryKind::View,
            "external" => EntryKind::External,
            _ => EntryKind::Table,
        }
    }
}

/// The current description of one table or view, folded from the catalog's events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CatalogEntry {
    /// Table or view.
    pub kind: EntryKind,
    /// `zone.name`.
    pub name: TableName,
    /// What the table holds.
    pub description: Option<String>,
    /// Who created it.
    pub owner: Option<String>,
    /// Where its data came from (files, a query, a feed).
    pub source: Option<String>,
    /// Rows at the last recorded write.
    pub row_count: Option<i64>,
    /// Delta version at the last recorded write.
    pub table_version: Option<i64>,
    /// Tables this one was built from (lineage).
    pub upstream: Vec<TableName>,
    /// For views, the defining query; for external tables, the defining statement.
    pub view_sql: Option<String>,
    /// When the entry was first recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One change to the catalog. Fields left `None` keep their previous value.
#[derive(Debug, Clone)]
pub struct CatalogEvent {
    /// Table or view.
    pub kind: EntryKind,
    /// Which table.
    pub name: TableName,
    /// `true` removes the entry.
    pub dropped: bool,
    /// See [`CatalogEntry::description`].
    pub description: Option<String>,
    /// See [`CatalogEntry::owner`].
    pub owner: Option<String>,
    /// See [`CatalogEntry::source`].
    pub source: Option<String>,
    /// See [`CatalogEntry::row_count`].
    pub row_count: Option<i64>,
    /// See [`CatalogEntry::table_version`].
    pub table_version: Option<i64>,
    /// See [`CatalogEntry::upstream`]; `None` keeps the previous lineage.
    pub upstream: Option<Vec<TableName>>,
    /// See [`CatalogEntry::view_sql`].
    pub view_sql: Option<String>,
}

impl CatalogEvent {
    /// An event that records a table write (or creation) with no other changes.
    pub fn table(name: TableName) -> Self {
        Self {
            kind: EntryKind::Table,
            name,
            dropped: false,
            description: None,
            owner: None,
            source: None,
            row_count: None,
            table_version: None,
            upstream: None,
            view_sql: None,
        }
    }

    /// An event that records a committed write: the table's row count and Delta version as of
    /// `table`, which should be the snapshot the write returned.
    pub fn written(name: TableName, table: &deltalake::DeltaTable) -> Self {
        Self {
            row_count: crate::util::row_count(table),
            table_version: table.version().map(|v| v as i64),
            ..Self::table(name)
        }
    }

    /// An event that defines or replaces a view.
    pub fn view(name: TableName, sql: String, upstream: Vec<TableName>) -> Self {
        Self {
            kind: EntryKind::View,
            view_sql: Some(sql),
            upstream: Some(upstream),
            ..Self::table(name)
        }
    }

    /// An event that defines an external table: files at `location` read in place, as the
    /// statement `definition` describes.
    pub fn external(name: TableName, definition: String, location: String) -> Self {
        Self {
            kind: EntryKind::External,
            view_sql: Some(definition),
            source: Some(location),
            upstream: Some(Vec::new()),
            ..Self::table(name)
        }
    }

    /// An event that removes a table or view.
    pub fn drop(kind: EntryKind, name: TableName) -> Self {
        Self {
            kind,
            dropped: true,
            ..Self::table(name)
        }
    }
}

static CATALOG_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("event_time", ts, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("zone", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("owner", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("row_count", DataType::Int64, true),
        Field::new("table_version", DataType::Int64, true),
        Field::new("upstream", DataType::Utf8, true),
        Field::new("view_sql", DataType::Utf8, true),
    ]))
});

/// The catalog: an append-only Delta table of [`CatalogEvent`]s at `<lake>/_carelake/catalog`.
///
/// Appends never conflict in Delta, so any number of processes may record changes at once; the
/// current state is the fold of all events in commit order.
#[derive(Debug, Clone)]
pub struct Catalog {
    lake: Lake,
}

impl Catalog {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    pub(crate) async fn exists(&self) -> Result<bool> {
        let url = self.lake.system_table_url("catalog")?;
        Ok(self
            .lake
            .load_delta(&url, TimeTravel::Latest)
            .await?
            .is_some())
    }

    pub(crate) async fn ensure_created(&self) -> Result<()> {
        create_system_table(
            &self.lake,
            "catalog",
            &CATALOG_SCHEMA,
            "carelake catalog events",
        )
        .await
    }

    /// Appends events in one commit, and folds them into this handle's cached catalog when
    /// it was current (so a session sees its own writes without reading the log again).
    pub async fn record(&self, events: &[CatalogEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        {
            // A pending coalesced event older than one recorded now must not follow it.
            let mut coalesced = self.coalesced();
            if !coalesced.pending.is_empty() {
                for event in events {
                    let older = coalesced.pending.get(&event.name).is_some_and(|pending| {
                        event.dropped || pending.table_version <= event.table_version
                    });
                    if older {
                        coalesced.pending.remove(&event.name);
                    }
                }
            }
        }
        let batch = events_to_batch(events)?;
        let url = self.lake.system_table_url("catalog")?;
        let table = self
            .lake
            .load_delta(&url, TimeTravel::Latest)
            .await?
            .ok_or_else(|| Error::LakeNotFound(self.lake.display_location().to_string()))?;
        let written = crate::util::append_batches(table, vec![batch.clone()]).await?;
        COMPACTION.spawn_when_due(&written);
        if let Some(version) = written.version() {
            let mut cached = self.lake.catalog_cache().folded.lock().await;
            if let Some(state) = cached.as_mut()
                && state.version + 1 == version as i64
            {
                fold_into(&mut state.entries, &[batch])?;
                state.version = version as i64;
            }
        }
        Ok(())
    }

    /// Records the event of a write that only moved a table's version and row count, at most
    /// once per [`COALESCE_EVERY`] for all such writes together: a stream flushing every second
    /// and an MLLP listener committing per group would otherwise add a catalog commit for each
    /// of theirs (and every catalog commit is a log file that every refresh lists). The newest
    /// event of each table is kept and written by the next write past the interval, or by a
    /// timer when none comes. A crash can lose the pending events; the catalog then shows the
    /// table's previous version until its next write (`carelake check` allows a catalog
    /// behind its tables, never ahead). An event that changes anything else is written now.
    pub async fn record_coalesced(&self, event: CatalogEvent) -> Result<()> {
        let only_stats = !event.dropped
            && event.owner.is_none()
            && event.description.is_none()
            && event.upstream.is_none()
            && event.view_sql.is_none();
        if !only_stats {
            return self.record(&[event]).await;
        }
        let now = std::time::Instant::now();
        let due = {
            let mut coalesced = self.coalesced();
            coalesced.pending.insert(event.name.clone(), event);
            let due = coalesced
                .written
                .is_none_or(|at| now.duration_since(at) >= COALESCE_EVERY);
            if due {
                coalesced.written = Some(now);
                std::mem::take(&mut coalesced.pending)
            } else {
                if !coalesced.timer {
                    coalesced.timer = true;
                    let wait = COALESCE_EVERY.saturating_sub(
                        coalesced
                            .written
                            .map_or(COALESCE_EVERY, |at| now.duration_since(at)),
                    );
                    let catalog = Catalog::new(self.lake.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        if let Err(e) = catalog.flush_coalesced().await {
                            tracing::warn!(error = %e, "Could not record coalesced catalog events; the next write records them.");
                        }
                    });
                }
                BTreeMap::new()
            }
        };
        self.write_pending(due).await
    }

    /// Writes the events [`Catalog::record_coalesced`] holds back (at a clean shutdown).
    pub async fn flush_coalesced(&self) -> Result<()> {
        let pending = {
            let mut coalesced = self.coalesced();
            coalesced.timer = false;
            coalesced.written = Some(std::time::Instant::now());
            std::mem::take(&mut coalesced.pending)
        };
        self.write_pending(pending).await
    }

    async fn write_pending(&self, pending: BTreeMap<TableName, CatalogEvent>) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let events: Vec<CatalogEvent> = pending.into_values().collect();
        if let Err(e) = self.record(&events).await {
            // Kept for the next attempt, unless a newer event of the same table came meanwhile.
            let mut coalesced = self.coalesced();
            for event in events {
                coalesced.pending.entry(event.name.clone()).or_insert(event);
            }
            coalesced.written = None;
            return Err(e);
        }
        Ok(())
    }

    fn coalesced(&self) -> std::sync::MutexGuard<'_, Coalesced> {
        self.lake
            .catalog_cache()
            .coalesced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every current table and view, sorted by name.
    ///
    /// The fold is cached per lake handle at a Delta version of the events table: a call reads
    /// only the commits made since (one probe for the next version when there are none), and
    /// the folded state is saved every hundred versions so that a new process starts
    /// from it instead of from every event.
    pub async fn list(&self) -> Result<Vec<CatalogEntry>> {
        self.read(|entries| entries.values().cloned().collect())
            .await
    }

    /// The current entry of one table or view (without copying the others).
    pub async fn get(&self, name: &TableName) -> Result<Option<CatalogEntry>> {
        self.read(|entries| entries.get(name).cloned()).await
    }

    /// Whether the catalog lists the table or view.
    pub async fn contains(&self, name: &TableName) -> Result<bool> {
        self.read(|entries| entries.contains_key(name)).await
    }

    /// Brings the cached fold up to date and reads the current entries with `f`.
    async fn read<T>(&self, f: impl FnOnce(&BTreeMap<TableName, CatalogEntry>) -> T) -> Result<T> {
        let mut cached = self.lake.catalog_cache().folded.lock().await;
        let state = match cached.take() {
            Some(state) => state,
            None => match self.load_saved().await? {
                Some(state) => state,
                None => self.fold_all().await?,
            },
        };
        let mut state = match self.catch_up(state).await? {
            Some(state) => state,
            // The tail was too long, or rewrote data: fold from the Delta snapshot.
            None => self.fold_all().await?,
        };
        if state.version - state.saved_version >= SAVE_EVERY {
            match self.save(&state).await {
                Ok(()) => state.saved_version = state.version,
                // The saved state only speeds up a cold start; never fail a read for it.
                Err(e) => tracing::warn!(error = %e, "Could not save the folded catalog."),
            }
        }
        let answer = f(&state.entries);
        *cached = Some(state);
        Ok(answer)
    }

    /// The Delta version of the events table that the cached fold reflects (for tests and the
    /// catalog benchmark).
    pub async fn cached_version(&self) -> Option<i64> {
        self.lake
            .catalog_cache()
            .folded
            .lock()
            .await
            .as_ref()
            .map(|s| s.version)
    }

    /// Every current entry folded from every event, bypassing the cache and the saved fold
    /// (what each refresh cost before the cache; for checks and the catalog benchmark).
    pub async fn list_from_events(&self) -> Result<Vec<CatalogEntry>> {
        Ok(self.fold_all().await?.entries.into_values().collect())
    }

    /// Every event folded, from the table's latest snapshot.
    async fn fold_all(&self) -> Result<Folded> {
        let url = self.lake.system_table_url("catalog")?;
        let Some(table) = self.lake.load_delta(&url, TimeTravel::Latest).await? else {
            return Err(Error::LakeNotFound(
                self.lake.display_location().to_string(),
            ));
        };
        let version = table.version().map_or(-1, |v| v as i64);
        let mut entries = BTreeMap::new();
        fold_into(&mut entries, &read_table(&table).await?)?;
        Ok(Folded {
            version,
            entries,
            saved_version: -1,
        })
    }

    /// Applies the commits after `state.version`; `None` when more than [`MAX_TAIL`] follow
    /// or one of them removed data (a full fold is then cheaper or needed).
    async fn catch_up(&self, mut state: Folded) -> Result<Option<Folded>> {
        let log = self.lake.catalog_cache().log_store(&self.lake)?;
        let mut added = Vec::new();
        let mut next = state.version + 1;
        while let Some(commit) = log.read_commit_entry(next as _).await? {
            if next - state.version > MAX_TAIL {
                return Ok(None);
            }
            match added_files(&commit)? {
                Some(files) => added.extend(files),
                None => return Ok(None),
            }
            next += 1;
        }
        if next == state.version + 1 {
            return Ok(Some(state));
        }
        let store = log.object_store(None);
        let mut batches = Vec::new();
        for path in added {
            let bytes = store.get(&path).await?.bytes().await?;
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    bytes,
                )
                .and_then(|b| b.build())
                .map_err(|e| Error::CorruptCatalog(format!("an events file: {e}")))?;
            for batch in reader {
                batches.push(batch?);
            }
        }
        fold_into(&mut state.entries, &batches)?;
        state.version = next - 1;
        Ok(Some(state))
    }

    async fn load_saved(&self) -> Result<Option<Folded>> {
        let Some(bytes) = self.lake.get_system_file(SAVED_STATE).await? else {
            return Ok(None);
        };
        match serde_json::from_slice::<Saved>(&bytes) {
            Ok(saved) => Ok(Some(Folded {
                version: saved.version,
                saved_version: saved.version,
                entries: saved
                    .entries
                    .into_iter()
                    .map(|e| (e.name.clone(), e))
                    .collect(),
            })),
            Err(e) => {
                // Written by another release, or cut off: fold from the events instead.
                tracing::warn!(error = %e, "Ignoring an unreadable saved catalog.");
                Ok(None)
            }
        }
    }

    async fn save(&self, state: &Folded) -> Result<()> {
        let saved = Saved {
            version: state.version,
            entries: state.entries.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&saved)
            .map_err(|e| Error::CorruptCatalog(format!("saving the folded catalog: {e}")))?;
        self.lake.put_system_file(SAVED_STATE, bytes).await
    }
}

/// Every stream flush and MLLP group records an event, each a small file: past this many they
/// are compacted (the fold orders events by their time, whichever file holds them), so that
/// neither a commit nor a full fold slows down with the number of events.
const COMPACTION: crate::AutoCompact = crate::AutoCompact {
    min_small_files: 128,
    target_size: std::num::NonZeroU64::new(8 << 20).unwrap(),
};

/// The folded catalog is saved after this many new versions of the events table.
const SAVE_EVERY: i64 = 100;

/// Beyond this many unread commits a refresh folds from the Delta snapshot instead (which
/// reads its checkpoint rather than every commit file).
const MAX_TAIL: i64 = 1000;

/// How often coalesced catalog events are written; see [`Catalog::record_coalesced`].
pub const COALESCE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The events [`Catalog::record_coalesced`] holds back.
#[derive(Debug, Default)]
struct Coalesced {
    /// The newest pending event of each table.
    pending: BTreeMap<TableName, CatalogEvent>,
    /// When pending events were last written.
    written: Option<std::time::Instant>,
    /// Whether a timer will write them.
    timer: bool,
}

/// Where the folded catalog is saved, under `_carelake/`.
const SAVED_STATE: &str = "catalog_state.json";

/// The folded catalog of one lake handle; see [`Catalog::list`].
#[derive(Default)]
pub(crate) struct CatalogCache {
    folded: tokio::sync::Mutex<Option<Folded>>,
    /// The events table's log, built once (a refresh reads commit files through it).
    log: std::sync::OnceLock<deltalake::logstore::LogStoreRef>,
    coalesced: std::sync::Mutex<Coalesced>,
}

impl std::fmt::Debug for CatalogCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogCache")
            .field("folded", &self.folded)
            .finish_non_exhaustive()
    }
}

impl CatalogCache {
    fn log_store(&self, lake: &Lake) -> Result<deltalake::logstore::LogStoreRef> {
        if let Some(log) = self.log.get() {
            return Ok(Arc::clone(log));
        }
        let url = lake.system_table_url("catalog")?;
        let log = lake.delta_handle(&url)?.log_store();
        Ok(Arc::clone(self.log.get_or_init(|| log)))
    }
}

#[derive(Debug)]
struct Folded {
    /// The events table's version this fold includes (-1: none).
    version: i64,
    entries: BTreeMap<TableName, CatalogEntry>,
    /// The version last saved to [`SAVED_STATE`].
    saved_version: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    version: i64,
    entries: Vec<CatalogEntry>,
}

/// The data files a commit of the events table added; `None` when it removed data (which an
/// append-only table never does, though an OPTIMIZE rewrites files without changing data).
fn added_files(commit: &[u8]) -> Result<Option<Vec<object_store::path::Path>>> {
    let mut files = Vec::new();
    for line in commit.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let action: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| Error::CorruptCatalog(format!("a commit is not JSON: {e}")))?;
        let changes_data = |a: &serde_json::Value| a["dataChange"].as_bool().unwrap_or(true);
        if let Some(add) = action.get("add") {
            let path = add["path"]
                .as_str()
                .ok_or_else(|| Error::CorruptCatalog("an add action has no path".into()))?;
            if !changes_data(add) {
                // A rewrite (OPTIMIZE) of rows already folded.
                continue;
            }
            let path = object_store::path::Path::from_url_path(path)
                .map_err(|e| Error::CorruptCatalog(format!("a file path: {e}")))?;
            files.push(path);
        } else if let Some(remove) = action.get("remove")
            && changes_data(remove)
        {
            return Ok(None);
        }
    }
    Ok(Some(files))
}

fn events_to_batch(events: &[CatalogEvent]) -> Result<RecordBatch> {
    let now = Utc::now().timestamp_micros();
    let strings = |f: &dyn Fn(&CatalogEvent) -> Option<String>| -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(vec![now; events.len()]).with_timezone("UTC")),
        strings(&|e| Some(if e.dropped { "drop" } else { "upsert" }.to_string())),
        strings(&|e| Some(e.kind.as_str().to_string())),
        strings(&|e| Some(e.name.zone.to_string())),
        strings(&|e| Some(e.name.name.clone())),
        strings(&|e| e.description.clone()),
        strings(&|e| e.owner.clone()),
        strings(&|e| e.source.clone()),
        Arc::new(events.iter().map(|e| e.row_count).collect::<Int64Array>()),
        Arc::new(
            events
                .iter()
                .map(|e| e.table_version)
                .collect::<Int64Array>(),
        ),
        strings(&|e| {
            e.upstream.as_ref().map(|u| {
                u.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }),
        strings(&|e| e.view_sql.clone()),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&CATALOG_SCHEMA), columns)?)
}

/// Applies the events in `batches` (in time order) to the current entries.
fn fold_into(
    current: &mut BTreeMap<TableName, CatalogEntry>,
    batches: &[RecordBatch],
) -> Result<()> {
    let mut rows = Vec::new();
    for batch in batches {
        let batch = SystemBatch::new(batch, "catalog", Error::CorruptCatalog);
        let time = batch.time("event_time")?;
        let string_col = |name: &str| batch.text(name);
        let int_col = |name: &str| batch.int(name);
        let (event, kind, zone, name) = (
            string_col("event")?,
            string_col("kind")?,
            string_col("zone")?,
            string_col("name")?,
        );
        let (description, owner, source, upstream, view_sql) = (
            string_col("description")?,
            string_col("owner")?,
            string_col("source")?,
            string_col("upstream")?,
            string_col("view_sql")?,
        );
        let (row_count, table_version) = (int_col("row_count")?, int_col("table_version")?);
        let opt = text_at;
        for i in 0..batch.num_rows() {
            let table = TableName::new(zone.value(i).parse()?, name.value(i))?;
            let at = DateTime::from_timestamp_micros(time.value(i)).unwrap_or_default();
            let upstream = opt(&upstream, i).map(|u| {
                u.split(',')
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| s.parse().ok())
                    .collect::<Vec<TableName>>()
            });
            rows.push((
                at,
                event.value(i) == "drop",
                CatalogEntry {
                    kind: EntryKind::parse(kind.value(i)),
                    name: table,
                    description: opt(&description, i),
                    owner: opt(&owner, i),
                    source: opt(&source, i),
                    row_count: (!row_count.is_null(i)).then(|| row_count.value(i)),
                    table_version: (!table_version.is_null(i)).then(|| table_version.value(i)),
                    upstream: upstream.clone().unwrap_or_default(),
                    view_sql: opt(&view_sql, i),
                    created_at: at,
                    updated_at: at,
                },
                upstream.is_some(),
            ));
        }
    }
    // Stable sort keeps commit order for events with the same timestamp.
    rows.sort_by_key(|(at, ..)| *at);
    for (at, dropped, event, has_upstream) in rows {
        if dropped {
            current.remove(&event.name);
            continue;
        }
        match current.get_mut(&event.name) {
            None => {
                current.insert(event.name.clone(), event);
            }
            Some(entry) => {
                entry.kind = event.kind;
                entry.updated_at = at;
                macro_rules! keep_or_replace {
                    ($($field:ident),*) => {$(
                        if event.$field.is_some() { entry.$field = event.$field; }
                    )*};
                }
                keep_or_replace!(description, owner, source, view_sql);
                // Concurrent writers may record their counts out of order: keep the count of
                // the newest Delta version.
                let newer = match (event.table_version, entry.table_version) {
                    (Some(new), Some(old)) => new >= old,
                    _ => true,
                };
                if newer {
                    keep_or_replace!(row_count, table_version);
                }
                if has_upstream {
                    entry.upstream = event.upstream;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_latest_values_and_honours_drops() {
        let name: TableName = "raw.claims".parse().unwrap();
        let other: TableName = "raw.gone".parse().unwrap();
        let mut first = CatalogEvent::table(name.clone());
        first.description = Some("claims".into());
        first.row_count = Some(10);
        let mut second = CatalogEvent::table(name.clone());
        second.row_count = Some(25);
        second.table_version = Some(2);
        // Recorded late by a slower writer: an older version's count must not win.
        let mut stale = CatalogEvent::table(name.clone());
        stale.row_count = Some(12);
        stale.table_version = Some(1);
        let events = [
            first,
            CatalogEvent::table(other.clone()),
            second,
            stale,
            CatalogEvent::drop(EntryKind::Table, other),
        ];
        let batch = events_to_batch(&events).unwrap();
        let mut folded = BTreeMap::new();
        fold_into(&mut folded, &[batch]).unwrap();
        let entries: Vec<_> = folded.into_values().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, name);
        assert_eq!(entries[0].description.as_deref(), Some("claims"));
        assert_eq!(entries[0].row_count, Some(25));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refresh_reads_new_commits_only_and_a_new_handle_starts_from_the_saved_fold() {
        let dir = std::env::temp_dir().join(format!("carelake-catalog-{}", uuid::Uuid::new_v4()));
        let location = dir.to_string_lossy().to_string();
        let lake = Lake::init(&location).await.unwrap();
        let other = Lake::open(&location).await.unwrap();
        let name = |i: usize| -> TableName { format!("raw.t{}", i % 7).parse().unwrap() };
        let start = lake.catalog().cached_version().await;
        assert_eq!(start, None);
        assert!(lake.catalog().list().await.unwrap().is_empty());
        let base = lake.catalog().cached_version().await.unwrap();
        for i in 0..(SAVE_EVERY as usize + 5) {
            let mut event = CatalogEvent::table(name(i));
            event.row_count = Some(i as i64);
            event.table_version = Some(i as i64);
            // Half the events from another handle (another process, to this one's cache).
            if i % 2 == 0 {
                lake.catalog().record(&[event]).await.unwrap();
            } else {
                other.catalog().record(&[event]).await.unwrap();
            }
            if i == 0 {
                // Our own write is folded without reading the log.
                assert_eq!(lake.catalog().cached_version().await, Some(base + 1));
            }
        }
        let entries = lake.catalog().list().await.unwrap();
        let latest = base + SAVE_EVERY + 5;
        assert_eq!(lake.catalog().cached_version().await, Some(latest));
        assert_eq!(entries.len(), 7);
        let t0 = entries.iter().find(|e| e.name == name(0)).unwrap();
        let last_of_t0 = (0..SAVE_EVERY + 5).filter(|i| i % 7 == 0).max();
        assert_eq!(t0.row_count, last_of_t0);
        // The same answer as a fold of every event, and from a new handle (the saved fold
        // plus the commits after it).
        let full = lake.catalog().fold_all().await.unwrap();
        assert_eq!(full.version, latest);
        assert_eq!(full.entries.into_values().collect::<Vec<_>>(), entries);
        let saved = lake.get_system_file(SAVED_STATE).await.unwrap();
        assert!(
            saved.is_some(),
            "the fold was saved after {SAVE_EVERY} versions"
        );
        let fresh = Lake::open(&location).await.unwrap();
        assert_eq!(fresh.catalog().list().await.unwrap(), entries);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
