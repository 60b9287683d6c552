//! `carelake backup` and `carelake restore`: a consistent copy of a whole lake at one point,
//! incremental against the backups already taken, and a lake rebuilt from one of them.
//!
//! A backup destination (a local folder or `s3://bucket/prefix`) holds:
//! - `blobs/<ab>/<sha256>`: every file ever backed up, once per content, exactly as the lake
//!   stores it (an encrypted lake's files stay encrypted; its key file is copied, the master
//!   key never is);
//! - `sets/<id>.json`: one manifest per backup, written last (a backup without its manifest
//!   did not happen): the point it was taken at, each table's Delta version, and every file
//!   with its size and SHA-256.
//!
//! The point: the files outside tables (the key file, view definitions, a local lake's
//! write-ahead log and spools) are copied first, then the instant `point` is fixed and every
//! table is taken at its newest version committed by then. A streamed event acknowledged
//! before the backup started is therefore in the copied log or, if the log was already
//! truncated past it, in a table version at or before the point; replaying the restored log
//! stores each event once (the flushes carry the log's sequence as a Delta transaction).
//!
//! Of each table only the log up to its version and the files that version reads are copied
//! (files removed earlier, and commits after the point, are not). Delta's data files and
//! commits never change once written, so a later backup takes a file again only when it is new;
//! the others are hashed and stored again only when their content changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Error, Lake, Result, TimeTravel};

/// Version of the manifest format.
const FORMAT: u32 = 1;
/// Files copied at once.
const PARALLEL: usize = 8;
/// Files up to this size are read whole (and not stored again when their content is already
/// there); larger ones are streamed.
const SMALL_FILE: u64 = 8 * 1024 * 1024;

/// One backup: what `sets/<id>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Manifest format.
    pub format: u32,
    /// The backup's name: its point, as `YYYYMMDDTHHMMSS.ffffffZ`.
    pub id: String,
    /// Every table is taken at its newest version committed at or before this instant.
    pub point: DateTime<Utc>,
    /// When the copy finished.
    pub finished: DateTime<Utc>,
    /// The backup this one was taken incrementally against.
    pub previous: Option<String>,
    /// Whether the lake's files are encrypted (restoring needs the lake's master key).
    pub encrypted: bool,
    /// The Delta tables, by folder.
    pub tables: Vec<BackedUpTable>,
    /// Every file, by its path in the lake.
    pub files: Vec<BackedUpFile>,
}

/// A table in a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackedUpTable {
    /// The table's folder in the lake, e.g. `raw/claims` or `_carelake/catalog`.
    pub path: String,
    /// The Delta version taken.
    pub version: u64,
    /// Data files of that version.
    pub data_files: usize,
    /// Rows of that version, from the log's statistics.
    pub rows: Option<i64>,
}

/// A file in a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackedUpFile {
    /// Path from the lake root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content as stored, in hex: the blob's name.
    pub sha256: String,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The manifest written.
    pub manifest: BackupManifest,
    /// Files read from the lake this time (the others were unchanged since `previous`).
    pub files_read: usize,
    /// Bytes read from the lake this time.
    pub bytes_read: u64,
    /// Bytes written to the destination (new content only).
    pub bytes_written: u64,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup restored.
    pub manifest: BackupManifest,
    /// Bytes written into the new lake.
    pub bytes: u64,
}

/// A backup destination.
struct Destination {
    store: Arc<dyn ObjectStore>,
    display: String,
}

impl Destination {
    /// Opens (creating, for a local folder) the destination at `location`.
    async fn open(location: &str, create: bool) -> Result<Self> {
        let url = crate::lake::parse_location(location)?;
        let store: Arc<dyn ObjectStore> = if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| Error::InvalidLocation {
                location: location.to_string(),
                reason: "not a local path".into(),
            })?;
            if create {
                crate::files::create_private_dir(&path).map_err(|source| Error::Io {
                    context: format!("creating the backup folder {}", path.display()),
                    source,
                })?;
            } else if !path.is_dir() {
                return Err(Error::Backup(format!("no backup at {location}")));
            }
            let local = object_store::local::LocalFileSystem::new_with_prefix(&path)?;
            Arc::new(crate::files::LakeFiles::new(Arc::new(local), Some(path)))
        } else {
            let (store, _) = crate::lake::landing_store(location)?;
            store
        };
        Ok(Self {
            store,
            display: location.to_string(),
        })
    }

    /// Every manifest, oldest first.
    async fn manifests(&self) -> Result<Vec<BackupManifest>> {
        let metas: Vec<ObjectMeta> = match self
            .store
            .list(Some(&StorePath::from("sets")))
            .try_collect()
            .await
        {
            Ok(metas) => metas,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut manifests = Vec::new();
        for meta in metas {
            if !meta.location.as_ref().ends_with(".json") {
                continue;
            }
            let bytes = self.store.get(&meta.location).await?.bytes().await?;
            let manifest: BackupManifest = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Backup(format!(
                    "{}: the manifest {} is damaged: {e}",
                    self.display, meta.location
                ))
            })?;
            if manifest.format > FORMAT {
                return Err(Error::Backup(format!(
                    "{}: backup {} was written by a newer carelake (format {})",
                    self.display, manifest.id, manifest.format
                )));
            }
            manifests.push(manifest);
        }
        manifests.sort_by_key(|m| m.point);
        Ok(manifests)
    }
}

/// The blob path of a content hash.
fn blob_path(sha256: &str) -> StorePath {
    StorePath::from(format!("blobs/{}/{sha256}", &sha256[..2]))
}

/// The manifests of the backups at `location`, oldest first.
pub async fn list_backups(location: &str) -> Result<Vec<BackupManifest>> {
    Destination::open(location, false).await?.manifests().await
}

/// Where a file of the lake belongs: the Delta table whose folder holds it, if any.
fn table_folder(path: &str) -> Option<&str> {
    let index = path.find("/_delta_log/")?;
    Some(&path[..index])
}

/// The version of a file in a `_delta_log` folder (`00000000000000000012.json`,
/// `….checkpoint.parquet`, `….crc`); `None` for other files (`_last_checkpoint`, temporary files,
/// staged commits).
fn log_version(file: &str) -> Option<u64> {
    let (digits, rest) = file.split_at_checked(20)?;
    if !rest.starts_with('.') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let known = rest == ".json"
        || rest == ".crc"
        || (rest.starts_with(".checkpoint") && rest.ends_with(".parquet"));
    known.then(|| digits.parse().ok()).flatten()
}

impl Lake {
    /// `carelake backup --to LOCATION`: copies the lake at one point into the backup at
    /// `location` (made when missing), incrementally against the backups already there.
    pub async fn backup(&self, location: &str) -> Result<BackupReport> {
        self.refuse_nested(location)?;
        let dest = Destination::open(location, true).await?;
        let previous = dest.manifests().await?.pop();
        let known: HashMap<String, BackedUpFile> = previous
            .iter()
            .flat_map(|m| m.files.iter())
            .map(|f| (f.path.clone(), f.clone()))
            .collect();
        let source = self.lake_level(&self.inner_bare())?;
        let copier = Copier {
            source: Arc::clone(&source),
            dest: Arc::clone(&dest.store),
            known,
        };

        // 1. The files outside tables, before the point.
        let (_, loose) = by_table(list_all(&source).await?);
        let mut files = copier.copy_all(loose, false).await?;

        // 2. The point, then every table at its newest version committed by then.
        let point = Utc::now();
        let (tables_listed, _) = by_table(list_all(&source).await?);
        // A table made between the two listings: its files were not loose after all.
        files.retain(|f| owning_table(&f.file.path, |t| tables_listed.contains_key(t)).is_none());
        let mut tables = Vec::new();
        let mut wanted = Vec::new();
        for (folder, metas) in tables_listed {
            let log_prefix = format!("{folder}/_delta_log/");
            let version = metas
                .iter()
                .filter(|m| m.last_modified <= point)
                .filter_map(|m| {
                    let file = m.location.as_ref().strip_prefix(&log_prefix)?;
                    file.ends_with(".json").then(|| log_version(file)).flatten()
                })
                .max();
            let Some(version) = version else {
                // Made after the point.
                continue;
            };
            let url = self.folder_url(&folder)?;
            let table = match self.load_delta(&url, TimeTravel::Latest).await? {
                Some(t) if t.version() == Some(version) => t,
                _ => self
                    .load_delta(&url, TimeTravel::Version(version))
                    .await?
                    .ok_or_else(|| {
                        Error::Backup(format!(
                            "the table in {folder} went away during the backup; run it again"
                        ))
                    })?,
            };
            let snapshot = table.snapshot()?;
            let mut data: Vec<String> = Vec::new();
            let mut whole_folder = false;
            for file in snapshot.log_data().iter() {
                if file.deletion_vector_descriptor().is_some() {
                    // Written by another engine: take every file of the folder rather than
                    // work out where its deletion vectors are.
                    whole_folder = true;
                }
                data.push(format!("{folder}/{}", file.object_store_path()));
            }
            tables.push(BackedUpTable {
                path: folder.clone(),
                version,
                data_files: data.len(),
                rows: crate::util::row_count(&table),
            });
            let data: std::collections::HashSet<String> = data.into_iter().collect();
            let mut found = std::collections::HashSet::new();
            for meta in metas {
                let path = meta.location.as_ref().to_string();
                let take = match path.strip_prefix(&log_prefix) {
                    Some(file) => log_version(file).is_some_and(|v| v <= version),
                    None => whole_folder || data.contains(&path),
                };
                if take {
                    found.insert(path);
                    wanted.push(meta);
                }
            }
            if let Some(missing) = data.iter().find(|p| !found.contains(*p)) {
                return Err(Error::Backup(format!(
                    "{folder} version {version} reads {missing}, which is not in the lake; \
                     `carelake check` tells what else is missing"
                )));
            }
        }
        files.extend(copier.copy_all(wanted, true).await?);
        files.sort_by(|a, b| a.file.path.cmp(&b.file.path));
        let files_read = files.iter().filter(|f| f.read).count();
        let bytes_read = files.iter().filter(|f| f.read).map(|f| f.file.size).sum();
        let bytes_written = files.iter().map(|f| f.written).sum();
        let manifest = BackupManifest {
            format: FORMAT,
            id: point.format("%Y%m%dT%H%M%S%.6fZ").to_string(),
            point,
            finished: Utc::now(),
            previous: previous.map(|m| m.id),
            encrypted: self.is_encrypted(),
            tables,
            files: files.into_iter().map(|f| f.file).collect(),
        };
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::Backup(format!("writing the manifest: {e}")))?;
        dest.store
            .put(
                &StorePath::from(format!("sets/{}.json", manifest.id)),
                body.into(),
            )
            .await?;
        tracing::info!(
            backup = %manifest.id,
            tables = manifest.tables.len(),
            files = manifest.files.len(),
            "Backup taken."
        );
        Ok(BackupReport {
            manifest,
            files_read,
            bytes_read,
            bytes_written,
        })
    }

    /// Refuses a backup destination inside the lake (it would back itself up) or a lake
    /// inside its backup.
    fn refuse_nested(&self, location: &str) -> Result<()> {
        let dest = crate::lake::parse_location(location)?;
        let root = self.root();
        if dest.scheme() == root.scheme()
            && dest.host_str() == root.host_str()
            && (dest.path().starts_with(root.path()) || root.path().starts_with(dest.path()))
        {
            return Err(Error::Backup(format!(
                "the backup at {location} and the lake at {} would hold each other; back up \
                 to another folder or bucket prefix",
                self.display_location()
            )));
        }
        Ok(())
    }
}

/// Groups a listing of the lake by the Delta table whose folder holds each file; the files
/// outside every table come apart.
fn by_table(listing: Vec<ObjectMeta>) -> (BTreeMap<String, Vec<ObjectMeta>>, Vec<ObjectMeta>) {
    let folders: std::collections::BTreeSet<String> = listing
        .iter()
        .filter_map(|m| table_folder(m.location.as_ref()).map(str::to_string))
        .collect();
    let mut tables: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    let mut loose = Vec::new();
    for meta in listing {
        match owning_table(meta.location.as_ref(), |t| folders.contains(t)) {
            Some(folder) => tables.entry(folder).or_default().push(meta),
            None => loose.push(meta),
        }
    }
    (tables, loose)
}

/// The table folder (one for which `is_table` holds) that holds `path`, the innermost one if
/// several do.
fn owning_table(path: &str, is_table: impl Fn(&str) -> bool) -> Option<String> {
    path.rmatch_indices('/')
        .map(|(i, _)| &path[..i])
        .find(|prefix| is_table(prefix))
        .map(str::to_string)
}

/// A file copied (or found unchanged) by a backup.
struct Copied {
    file: BackedUpFile,
    /// Whether it was read from the lake this time.
    read: bool,
    /// Bytes written to the destination for it (0 when its content was there).
    written: u64,
}

/// Copies lake files into a destination's blobs.
struct Copier {
    source: Arc<dyn ObjectStore>,
    dest: Arc<dyn ObjectStore>,
    /// The previous backup's files, by path.
    known: HashMap<String, BackedUpFile>,
}

impl Copier {
    /// Copies `metas`; with `immutable`, a file the previous backup holds with the same size is
    /// taken from it without reading. Each result says whether the file was read.
    async fn copy_all(&self, metas: Vec<ObjectMeta>, immutable: bool) -> Result<Vec<Copied>> {
        futures::stream::iter(metas)
            .map(|meta| async move {
                let path = meta.location.as_ref().to_string();
                if immutable
                    && let Some(known) = self.known.get(&path)
                    && known.size == meta.size
                {
                    return Ok(Copied {
                        file: known.clone(),
                        read: false,
                        written: 0,
                    });
                }
                let (sha256, size, written) = self.copy(&meta).await?;
                Ok(Copied {
                    file: BackedUpFile { path, size, sha256 },
                    read: true,
                    written,
                })
            })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await
    }

    /// Copies one file into its blob; returns its hash, its size and the bytes written.
    async fn copy(&self, meta: &ObjectMeta) -> Result<(String, u64, u64)> {
        let missing = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => Error::Backup(format!(
                "{} went away during the backup; run it again",
                meta.location
            )),
            e => e.into(),
        };
        if meta.size <= SMALL_FILE {
            let bytes = self
                .source
                .get(&meta.location)
                .await
                .map_err(missing)?
                .bytes()
                .await?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let blob = blob_path(&sha256);
            let size = bytes.len() as u64;
            let written = match self.dest.head(&blob).await {
                Ok(_) => 0,
                Err(object_store::Error::NotFound { .. }) => {
                    self.dest.put(&blob, bytes.into()).await?;
                    size
                }
                Err(e) => return Err(e.into()),
            };
            return Ok((sha256, size, written));
        }
        // Streamed into a temporary blob, named once its hash is known.
        let temporary = StorePath::from(format!("blobs/tmp/{}", uuid::Uuid::new_v4()));
        let stream = self
            .source
            .get(&meta.location)
            .await
            .map_err(missing)?
            .into_stream();
        let mut writer = WriteMultipart::new(self.dest.put_multipart(&temporary).await?);
        let (sha256, size) = stream_hashed(stream, &mut writer).await?;
        writer.finish().await?;
        self.dest.rename(&temporary, &blob_path(&sha256)).await?;
        Ok((sha256, size, size))
    }
}

/// Every object under a store's root.
async fn list_all(store: &Arc<dyn ObjectStore>) -> Result<Vec<ObjectMeta>> {
    match store.list(None).try_collect().await {
        Ok(metas) => Ok(metas),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// `carelake restore --from BACKUP --lake LOCATION [--as-of T]`: rebuilds a lake at `location`
/// (an empty folder or bucket prefix) from the newest backup taken at or before `as_of` (the
/// newest of all without it), checking every file's hash as it is written. The lake opens
/// with the master key it had when the backup was taken.
pub async fn restore(
    from: &str,
    location: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<RestoreReport> {
    let backup = Destination::open(from, false).await?;
    let manifests = backup.manifests().await?;
    let manifest = match as_of {
        None => manifests.last(),
        Some(t) => manifests.iter().rev().find(|m| m.point <= t),
    }
    .cloned()
    .ok_or_else(|| match as_of {
        None => Error::Backup(format!("no backup at {from}")),
        Some(t) => Error::Backup(format!(
            "no backup at {from} was taken at or before {}",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        )),
    })?;
    let plain = Lake::at(location)?;
    if let Some(path) = plain.local_root() {
        crate::files::create_private_dir(&path).map_err(|source| Error::Io {
            context: format!("creating the lake folder {}", path.display()),
            source,
        })?;
    }
    let target = plain.lake_level(&plain.inner_raw())?;
    if target.list(None).next().await.transpose()?.is_some() {
        return Err(Error::Backup(format!(
            "{location} is not empty: restore into a new folder or bucket prefix"
        )));
    }
    let bytes: u64 = futures::stream::iter(manifest.files.iter())
        .map(|file| {
            let (source, target) = (Arc::clone(&backup.store), Arc::clone(&target));
            async move { restore_file(&source, &target, file).await }
        })
        .buffer_unordered(PARALLEL)
        .try_fold(0u64, |total, size| async move { Ok(total + size) })
        .await?;
    tracing::info!(backup = %manifest.id, files = manifest.files.len(), "Lake restored.");
    Ok(RestoreReport { manifest, bytes })
}

/// Streams `stream` into `writer` (not finished, so that the caller can still abort it) and
/// returns the bytes' SHA-256 and size.
async fn stream_hashed(
    mut stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    writer: &mut WriteMultipart,
) -> Result<(String, u64)> {
    let mut digest = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        digest.update(&chunk);
        size += chunk.len() as u64;
        writer.wait_for_capacity(4).await?;
        writer.put(chunk);
    }
    Ok((hex::encode(digest.finalize()), size))
}

/// Writes one file of a backup into the lake, checking its hash and size.
async fn restore_file(
    backup: &Arc<dyn ObjectStore>,
    target: &Arc<dyn ObjectStore>,
    file: &BackedUpFile,
) -> Result<u64> {
    let damaged = |what: &str| {
        Error::Backup(format!(
            "the backup is damaged: {} ({what}); `carelake check --backup` tells which files",
            file.path
        ))
    };
    let stream = match backup.get(&blob_path(&file.sha256)).await {
        Ok(got) => got.into_stream(),
        Err(object_store::Error::NotFound { .. }) => return Err(damaged("its content is gone")),
        Err(e) => return Err(e.into()),
    };
    let path = StorePath::from(file.path.as_str());
    let mut writer = WriteMultipart::new(target.put_multipart(&path).await?);
    let (sha256, size) = stream_hashed(stream, &mut writer).await?;
    if size != file.size || sha256 != file.sha256 {
        writer.abort().await?;
        return Err(damaged("its content does not match its hash"));
    }
    writer.finish().await?;
    Ok(size)
}

/// A backup's files whose content is missing or does not match its hash.
#[derive(Debug, Clone, Default)]
pub struct BackupCheck {
    /// Backups checked.
    pub backups: usize,
    /// Distinct contents read.
    pub blobs: usize,
    /// Bytes read.
    pub bytes: u64,
    /// `(backup id, file path, what is wrong)`.
    pub problems: Vec<(String, String, String)>,
}

/// `carelake check --backup LOCATION`: reads every content every backup there refers to and
/// checks its hash.
pub async fn check_backup(location: &str) -> Result<BackupCheck> {
    let backup = Destination::open(location, false).await?;
    let manifests = backup.manifests().await?;
    let mut blobs: BTreeMap<String, Vec<(String, String, u64)>> = BTreeMap::new();
    for m in &manifests {
        for f in &m.files {
            blobs
                .entry(f.sha256.clone())
                .or_default()
                .push((m.id.clone(), f.path.clone(), f.size));
        }
    }
    let store = &backup.store;
    let results: Vec<(String, std::result::Result<u64, String>)> =
        futures::stream::iter(blobs.keys().cloned())
            .map(|sha| async move {
                let outcome = async {
                    let mut stream = match store.get(&blob_path(&sha)).await {
                        Ok(got) => got.into_stream(),
                        Err(object_store::Error::NotFound { .. }) => {
                            return Ok(Err("its content is gone".to_string()));
                        }
                        Err(e) => return Err(Error::from(e)),
                    };
                    let mut digest = Sha256::new();
                    let mut size = 0u64;
                    while let Some(chunk) = stream.try_next().await? {
                        digest.update(&chunk);
                        size += chunk.len() as u64;
                    }
                    Ok(if hex::encode(digest.finalize()) == sha {
                        Ok(size)
                    } else {
                        Err("its content does not match its hash".to_string())
                    })
                }
                .await;
                outcome.map(|o| (sha, o))
            })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
    let mut check = BackupCheck {
        backups: manifests.len(),
        blobs: blobs.len(),
        ..Default::default()
    };
    for (sha, outcome) in results {
        let uses = &blobs[&sha];
        match outcome {
            Ok(size) => {
                check.bytes += size;
                for (id, path, expected) in uses {
                    if *expected != size {
                        check.problems.push((
                            id.clone(),
                            path.clone(),
                            format!("{size} bytes where the manifest says {expected}"),
                        ));
                    }
                }
            }
            Err(what) => {
                for (id, path, _) in uses {
                    check
                        .problems
                        .push((id.clone(), path.clone(), what.clone()));
                }
            }
        }
    }
    check.problems.sort();
    Ok(check)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::util::{append_batches, row_count};

    fn rows(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, false),
            Field::new("note", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n)),
                Arc::new(StringArray::from_iter_values(
                    (from..from + n).map(|i| format!("plain-marker-{i}")),
                )),
            ],
        )
        .unwrap()
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("carelake-{name}-{}", uuid::Uuid::new_v4()))
    }

    async fn append(lake: &Lake, table: &str, from: i64, n: i64) {
        let url = lake.table_url(&table.parse().unwrap()).unwrap();
        match lake.load_delta(&url, TimeTravel::Latest).await.unwrap() {
            Some(t) => append_batches(t, vec![rows(from, n)]).await.unwrap(),
            None => lake
                .delta_handle(&url)
                .unwrap()
                .write(vec![rows(from, n)])
                .await
                .unwrap(),
        };
    }

    async fn count(lake: &Lake, table: &str) -> Option<i64> {
        let table = lake.open_table(&table.parse().unwrap()).await.unwrap();
        row_count(&table)
    }

    /// Files of a backup outside its tables.
    fn loose(manifest: &BackupManifest) -> usize {
        manifest
            .files
            .iter()
            .filter(|f| {
                !manifest
                    .tables
                    .iter()
                    .any(|t| f.path.starts_with(&format!("{}/", t.path)))
            })
            .count()
    }

    fn files_under(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_restores_each_point_and_stores_only_what_is_new() {
        let (dir, dest) = (temp("backup-lake"), temp("backup-dest"));
        let location = dir.to_string_lossy().to_string();
        let to = dest.to_string_lossy().to_string();
        let lake = Lake::init(&location).await.unwrap();
        append(&lake, "raw.a", 0, 100).await;
        append(&lake, "raw.a", 100, 50).await;
        append(&lake, "curated.b", 0, 10).await;
        lake.put_system_file("views/v.json", b"{}".to_vec())
            .await
            .unwrap();

        let first = lake.backup(&to).await.unwrap();
        let paths: Vec<&str> = first
            .manifest
            .tables
            .iter()
            .map(|t| t.path.as_str())
            .collect();
        assert!(
            paths.contains(&"raw/a") && paths.contains(&"curated/b"),
            "{paths:?}"
        );
        assert!(
            paths.iter().any(|p| p.starts_with("_carelake/")),
            "{paths:?}"
        );
        assert!(
            first
                .manifest
                .files
                .iter()
                .any(|f| f.path == "_carelake/views/v.json")
        );
        assert_eq!(first.files_read, first.manifest.files.len());

        // Nothing changed: nothing of the tables is read again.
        let second = lake.backup(&to).await.unwrap();
        assert_eq!(
            second.manifest.previous.as_deref(),
            Some(first.manifest.id.as_str())
        );
        assert_eq!(second.bytes_written, 0, "unchanged content is stored once");
        assert_eq!(second.files_read, loose(&second.manifest));

        // Newer rows, a compaction removing files: the third backup takes the new files only.
        append(&lake, "raw.a", 150, 25).await;
        let third = lake.backup(&to).await.unwrap();
        // The new commit and its data file, and the files outside tables (hashed again).
        assert_eq!(third.files_read, loose(&third.manifest) + 2);
        let a = |m: &BackupManifest| m.tables.iter().find(|t| t.path == "raw/a").cloned();
        assert_eq!(a(&third.manifest).unwrap().rows, Some(175));
        assert_eq!(list_backups(&to).await.unwrap().len(), 3);

        // The newest, and the first by its point.
        let newest = temp("restored");
        let report = restore(&to, &newest.to_string_lossy(), None).await.unwrap();
        assert_eq!(report.manifest.id, third.manifest.id);
        let restored = Lake::open(&newest.to_string_lossy()).await.unwrap();
        assert_eq!(count(&restored, "raw.a").await, Some(175));
        assert_eq!(count(&restored, "curated.b").await, Some(10));
        let check = restored.check(true).await.unwrap();
        assert!(check.is_sound(), "{:?}", check.problems);
        assert_eq!(
            restored
                .get_system_file("views/v.json")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"{}"[..])
        );

        let older = temp("restored-old");
        restore(&to, &older.to_string_lossy(), Some(first.manifest.point))
            .await
            .unwrap();
        let old = Lake::open(&older.to_string_lossy()).await.unwrap();
        assert_eq!(count(&old, "raw.a").await, Some(150));
        assert!(old.check(false).await.unwrap().is_sound());

        // A restore only goes into an empty place.
        let err = restore(&to, &older.to_string_lossy(), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        // A backup inside the lake is refused.
        let inside = dir.join("backups").to_string_lossy().to_string();
        assert!(lake.backup(&inside).await.is_err());

        // A damaged backup is found by its check and refused by a restore.
        assert!(check_backup(&to).await.unwrap().problems.is_empty());
        let parquet = third
            .manifest
            .files
            .iter()
            .find(|f| f.path.starts_with("raw/a/") && f.path.ends_with(".parquet"))
            .unwrap();
        let blob = dest
            .join("blobs")
            .join(&parquet.sha256[..2])
            .join(&parquet.sha256);
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&blob, bytes).unwrap();
        let found = check_backup(&to).await.unwrap();
        assert!(
            found
                .problems
                .iter()
                .any(|(_, path, _)| path == &parquet.path),
            "{:?}",
            found.problems
        );
        let err = restore(&to, &temp("restored-bad").to_string_lossy(), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");

        for d in [dir, dest, newest, older] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_check_finds_missing_and_damaged_files() {
        let dir = temp("check-lake");
        let location = dir.to_string_lossy().to_string();
        let lake = Lake::init(&location).await.unwrap();
        append(&lake, "raw.a", 0, 100).await;
        append(&lake, "raw.a", 100, 100).await;
        append(&lake, "raw.b", 0, 5).await;
        let sound = lake.check(true).await.unwrap();
        assert!(sound.is_sound(), "{:?}", sound.problems);
        assert!(
            sound
                .tables
                .iter()
                .any(|t| t.path == "raw/a" && t.files == 2)
        );

        let data: Vec<PathBuf> = files_under(&dir.join("raw/a"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        std::fs::remove_file(&data[0]).unwrap();
        let mut bytes = std::fs::read(&data[1]).unwrap();
        let n = bytes.len();
        bytes.truncate(n - 3);
        std::fs::write(&data[1], bytes).unwrap();

        let fresh = Lake::open(&location).await.unwrap();
        let report = fresh.check(false).await.unwrap();
        let text = format!("{:?}", report.problems);
        assert!(text.contains("missing"), "{text}");
        assert!(text.contains("bytes where the log recorded"), "{text}");
        assert_eq!(report.problems.len(), 2, "{text}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_encrypted_lake_is_backed_up_as_it_is_stored() {
        let (dir, dest, again) = (temp("enc-lake"), temp("enc-dest"), temp("enc-restored"));
        let key = crate::KeySource::Value(crate::MasterKey::generate().unwrap().to_hex());
        let lake = Lake::init_with(&dir.to_string_lossy(), Some(key))
            .await
            .unwrap();
        append(&lake, "raw.a", 0, 50).await;
        let taken = lake.backup(&dest.to_string_lossy()).await.unwrap();
        assert!(taken.manifest.encrypted);
        for blob in files_under(&dest.join("blobs")) {
            let bytes = std::fs::read(&blob).unwrap();
            assert!(
                !bytes.windows(12).any(|w| w == b"plain-marker"),
                "{} holds plain text",
                blob.display()
            );
        }
        restore(&dest.to_string_lossy(), &again.to_string_lossy(), None)
            .await
            .unwrap();
        // Byte for byte what the lake holds (the files the backup took).
        for file in &taken.manifest.files {
            assert_eq!(
                std::fs::read(dir.join(&file.path)).unwrap(),
                std::fs::read(again.join(&file.path)).unwrap(),
                "{}",
                file.path
            );
        }
        for d in [dir, dest, again] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn log_files_have_versions_and_the_rest_do_not() {
        assert_eq!(log_version("00000000000000000012.json"), Some(12));
        assert_eq!(
            log_version("00000000000000000010.checkpoint.parquet"),
            Some(10)
        );
        assert_eq!(
            log_version("00000000000000000010.checkpoint.0000000001.0000000002.parquet"),
            Some(10)
        );
        assert_eq!(log_version("00000000000000000003.crc"), Some(3));
        assert_eq!(log_version("_last_checkpoint"), None);
        assert_eq!(log_version("00000000000000000003.json.tmp"), None);
        assert_eq!(log_version("0000000000000000003.json"), None);
    }

    #[test]
    fn files_belong_to_the_table_whose_log_is_beside_them() {
        assert_eq!(
            table_folder("raw/claims/_delta_log/00000000000000000000.json"),
            Some("raw/claims")
        );
        assert_eq!(table_folder("raw/claims/part-0.parquet"), None);
        let meta = |path: &str| ObjectMeta {
            location: StorePath::from(path),
            last_modified: Utc::now(),
            size: 1,
            e_tag: None,
            version: None,
        };
        let (tables, loose) = by_table(vec![
            meta("_carelake/keyring"),
            meta("_carelake/wal/00000001.log"),
            meta("_carelake/catalog/_delta_log/00000000000000000000.json"),
            meta("_carelake/catalog/part-1.parquet"),
            meta("raw/claims/_delta_log/00000000000000000000.json"),
            meta("raw/claims/year=2024/part-0.parquet"),
            meta("raw/claimsx/part-9.parquet"),
        ]);
        let paths = |metas: &[ObjectMeta]| -> Vec<String> {
            metas.iter().map(|m| m.location.to_string()).collect()
        };
        assert_eq!(
            tables.keys().cloned().collect::<Vec<_>>(),
            ["_carelake/catalog", "raw/claims"]
        );
        assert_eq!(
            paths(&tables["raw/claims"]),
            [
                "raw/claims/_delta_log/00000000000000000000.json",
                "raw/claims/year=2024/part-0.parquet"
            ]
        );
        assert_eq!(
            paths(&loose),
            [
                "_carelake/keyring",
                "_carelake/wal/00000001.log",
                "raw/claimsx/part-9.parquet"
            ]
        );
    }
}
