//! Auto-load of landing areas (`carelake serve --watch`): a folder or bucket prefix is listed
//! every few seconds and each new or changed file is loaded once, in the order files arrived
//! (modification time, then path), into a named raw table or, for `auto`, into the tables of
//! its clinical format told from the content (HL7 v2, FHIR, X12 837).
//!
//! Exactly once rests on what every load already does: a file's content hash is committed
//! with its rows, so a file taken twice (a restart between the load and its record, two
//! servers watching one bucket) is skipped the second time. What a watch has dealt with is
//! kept in `_carelake/watch` (`system.watch_files`), so that a restarted server neither
//! re-reads every old file nor retries a failed one until it changes. A file that fails as a
//! whole is quarantined in `raw._rejects` with the reason and the start of its content.
//!
//! A local file is taken once two listings a poll apart saw the same size and modification
//! time (or it is a minute old), so a file still being written is not read half-way; an
//! object in a bucket appears only when its upload is complete. Hidden files and folders
//! (`.name`, `_name`) and partial downloads (`.tmp`, `.part`, `.partial`, `.crdownload`,
//! `.filepart`) are left alone.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use carelake_common::{Principal, TableName};
use carelake_lake::{Lake, LoadStatus, WatchedFile};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::io::AsyncWriteExt as _;

use crate::clinical::{ClinicalFormat, ClinicalRequest};
use crate::load::{LoadRequest, Loader, REJECTS_TABLE, quarantine};
use crate::rows::Reject;
use crate::{Error, Result};

/// Suffixes of files that are still being written by their sender.
const PARTIAL_SUFFIXES: [&str; 5] = [".tmp", ".part", ".partial", ".crdownload", ".filepart"];

/// A local file this old is taken even without a second listing.
const SETTLED_AFTER: Duration = Duration::from_secs(60);

/// Bytes of a failed file's content kept in the quarantine.
const QUARANTINE_BYTES: usize = 64 * 1024;

/// Where a watch's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    /// Into this raw table (CSV, NDJSON, Parquet, as `carelake load --into`).
    Table(TableName),
    /// Into the tables of the clinical format told from each file's content.
    Auto,
}

impl fmt::Display for WatchTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchTarget::Table(t) => write!(f, "{t}"),
            WatchTarget::Auto => f.write_str("auto"),
        }
    }
}

/// One `--watch` option: `<folder | s3://bucket/prefix>=<raw.table | auto>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The folder or bucket prefix, as given.
    pub location: String,
    /// Where its files go.
    pub target: WatchTarget,
}

impl FromStr for WatchSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::Watch(format!("--watch {text}: {reason}"));
        let (location, target) = text
            .rsplit_once('=')
            .ok_or_else(|| invalid("give <folder or s3://bucket/prefix>=<raw.table or auto>"))?;
        let (location, target) = (location.trim(), target.trim());
        if location.is_empty() {
            return Err(invalid("no folder or bucket before '='"));
        }
        let target = if target.eq_ignore_ascii_case("auto") {
            WatchTarget::Auto
        } else {
            let table: TableName = target.parse().map_err(|e| invalid(&format!("{e}")))?;
            if table.zone != carelake_common::Zone::Raw {
                return Err(invalid("files load into the raw zone (raw.<table>)"));
            }
            WatchTarget::Table(table)
        };
        Ok(Self {
            location: location.to_string(),
            target,
        })
    }
}

/// A file seen in a listing.
#[derive(Debug, Clone)]
struct Listed {
    /// Path below the source, with '/' between folders.
    path: String,
    size: u64,
    modified: DateTime<Utc>,
}

impl Listed {
    fn key(&self) -> (u64, i64) {
        (self.size, self.modified.timestamp_micros())
    }
}

/// Where a watch lists files.
#[derive(Debug)]
enum Source {
    /// A local folder, walked directly.
    Folder(PathBuf),
    /// A bucket prefix.
    Bucket(Arc<dyn ObjectStore>),
}

/// One watched landing area.
#[derive(Debug)]
pub struct Watcher {
    loader: Loader,
    lake: Lake,
    principal: Principal,
    target: WatchTarget,
    /// The source's URL (ending in '/'), as recorded.
    url: String,
    source: Source,
    /// Where objects of a bucket are copied to be loaded.
    spool: PathBuf,
    /// What each file was when the watch last dealt with it.
    done: HashMap<String, (u64, i64)>,
    /// The previous listing (for files still being written).
    previous: HashMap<String, (u64, i64)>,
}

impl Watcher {
    /// Opens a watch: checks the source and reads what earlier runs have dealt with. Objects
    /// of a bucket are copied to `spool` (a local folder) while they load.
    pub async fn open(
        lake: Lake,
        principal: Principal,
        spec: &WatchSpec,
        spool: &Path,
    ) -> Result<Self> {
        let (store, url) = carelake_lake::landing_store(&spec.location)?;
        let source = match url.to_file_path() {
            Ok(folder) if url.scheme() == "file" => Source::Folder(folder),
            _ => {
                // Fail now, not at the first poll, when the bucket cannot be listed.
                let mut listing = store.list(None);
                if let Some(Err(e)) = listing.next().await {
                    return Err(Error::Watch(format!("listing {url}: {e}")));
                }
                Source::Bucket(store)
            }
        };
        let url = url.to_string();
        let done = lake
            .watches()
            .latest(&url)
            .await?
            .into_iter()
            .map(|(path, f)| (path, (f.size, f.modified.timestamp_micros())))
            .collect();
        Ok(Self {
            loader: Loader::new(lake.clone(), principal.clone()),
            lake,
            principal,
            target: spec.target.clone(),
            url,
            source,
            spool: spool.to_path_buf(),
            done,
            previous: HashMap::new(),
        })
    }

    /// The watched location as a URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One pass: lists the source and loads every new or changed file that is complete, in
    /// the order they arrived. What became of each is recorded and returned.
    pub async fn poll(&mut self) -> Result<Vec<WatchedFile>> {
        let listing = self.list().await?;
        let now = Utc::now();
        let mut due: Vec<Listed> = listing
            .iter()
            .filter(|f| self.done.get(&f.path) != Some(&f.key()))
            .filter(|f| match self.source {
                Source::Bucket(_) => true,
                Source::Folder(_) => {
                    self.previous.get(&f.path) == Some(&f.key())
                        || (now - f.modified).to_std().unwrap_or_default() >= SETTLED_AFTER
                }
            })
            .cloned()
            .collect();
        self.previous = listing.iter().map(|f| (f.path.clone(), f.key())).collect();
        due.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
        let mut taken = Vec::with_capacity(due.len());
        for file in due {
            let record = self.take(&file).await;
            // Recorded one by one: a restart re-takes at most the file in hand (and its
            // content hash makes that a skip).
            self.lake
                .watches()
                .record(std::slice::from_ref(&record))
                .await?;
            self.done.insert(file.path.clone(), file.key());
            taken.push(record);
        }
        Ok(taken)
    }

    /// Polls every `interval` until `stop` completes; a failed poll (the bucket unreachable)
    /// is logged and tried again at the next.
    pub async fn run(mut self, interval: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.poll().await {
                Ok(taken) if !taken.is_empty() => {
                    let failed = taken.iter().filter(|f| f.status == "failed").count();
                    tracing::info!(source = %self.url, files = taken.len(), failed, "Watched files taken.");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(source = %self.url, error = %e, "Watch poll failed."),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = &mut stop => return,
            }
        }
    }

    async fn list(&self) -> Result<Vec<Listed>> {
        match &self.source {
            Source::Folder(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || list_folder(&root))
                    .await
                    .map_err(|e| Error::Worker(e.to_string()))?
            }
            Source::Bucket(store) => {
                let mut files = Vec::new();
                let mut listing = store.list(None);
                while let Some(meta) = listing.next().await {
                    let meta =
                        meta.map_err(|e| Error::Watch(format!("listing {}: {e}", self.url)))?;
                    let path = meta.location.to_string();
                    if !ignored(&path) {
                        files.push(Listed {
                            path,
                            size: meta.size,
                            modified: meta.last_modified,
                        });
                    }
                }
                Ok(files)
            }
        }
    }

    /// Loads one file; every failure becomes a `failed` record (and a quarantined file).
    async fn take(&self, file: &Listed) -> WatchedFile {
        let mut record = WatchedFile {
            source: self.url.clone(),
            path: file.path.clone(),
            size: file.size,
            modified: file.modified,
            target: self.target.to_string(),
            status: LoadStatus::Failed.as_str().to_string(),
            load_id: None,
            rows: 0,
            rejected: 0,
            error: None,
            seen_at: Utc::now(),
        };
        let label = format!("{}{}", self.url, file.path);
        let (local, copy) = match self.local_copy(file).await {
            Ok(found) => found,
            Err(e) => {
                record.error = Some(e.to_string());
                return record;
            }
        };
        let outcome = self.load(&local, &label).await;
        match outcome {
            Ok((status, load_id, rows, rejected)) => {
                record.status = status.as_str().to_string();
                record.load_id = Some(load_id);
                record.rows = rows;
                record.rejected = rejected;
            }
            Err(e) => {
                let reason = e.to_string();
                if let Err(q) = self.quarantine(&local, &label, &reason).await {
                    tracing::warn!(source = %self.url, error = %q, "Could not quarantine a failed watched file.");
                }
                record.error = Some(reason);
            }
        }
        if let Some(copy) = copy {
            let _ = std::fs::remove_dir_all(copy);
        }
        record.seen_at = Utc::now();
        record
    }

    /// The file on local disk, and the spool folder to remove afterwards for a bucket's copy.
    async fn local_copy(&self, file: &Listed) -> Result<(PathBuf, Option<PathBuf>)> {
        match &self.source {
            Source::Folder(root) => Ok((root.join(&file.path), None)),
            Source::Bucket(store) => {
                let folder = self.spool.join(uuid::Uuid::new_v4().to_string());
                carelake_lake::create_private_dir(&folder).map_err(|e| Error::ReadFile {
                    path: folder.clone(),
                    source: e,
                })?;
                // The object's own name keeps its extension, which tells the format.
                let name = file.path.rsplit('/').next().unwrap_or("object");
                let local = folder.join(name);
                let copied = async {
                    let location = object_store::path::Path::from(file.path.as_str());
                    let mut body = store
                        .get(&location)
                        .await
                        .map_err(|e| {
                            Error::Watch(format!("reading {}{}: {e}", self.url, file.path))
                        })?
                        .into_stream();
                    // The copy holds patient data: readable by this user only.
                    let mut options = tokio::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    options.mode(0o600);
                    let mut out = options.open(&local).await.map_err(|e| Error::ReadFile {
                        path: local.clone(),
                        source: e,
                    })?;
                    while let Some(chunk) = body.next().await {
                        let chunk = chunk.map_err(|e| {
                            Error::Watch(format!("reading {}{}: {e}", self.url, file.path))
                        })?;
                        out.write_all(&chunk).await.map_err(|e| Error::ReadFile {
                            path: local.clone(),
                            source: e,
                        })?;
                    }
                    out.flush().await.map_err(|e| Error::ReadFile {
                        path: local.clone(),
                        source: e,
                    })?;
                    Ok::<_, Error>(())
                }
                .await;
                match copied {
                    Ok(()) => Ok((local, Some(folder))),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&folder);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Loads one local file: (status, load id, rows, rejected).
    async fn load(&self, local: &Path, label: &str) -> Result<(LoadStatus, String, u64, u64)> {
        let input = local.to_string_lossy().into_owned();
        let labels = HashMap::from([(local.to_path_buf(), label.to_string())]);
        match &self.target {
            WatchTarget::Table(table) => {
                let mut request = LoadRequest::new(vec![input], table.clone());
                request.labels = labels;
                let summary = self.loader.load(request).await?;
                let file = summary.files.first();
                Ok((
                    file.map_or(LoadStatus::Loaded, |f| f.status),
                    summary.load_id,
                    file.map_or(0, |f| f.rows_loaded),
                    file.map_or(0, |f| f.rows_rejected),
                ))
            }
            WatchTarget::Auto => {
                let path = local.to_path_buf();
                let format = tokio::task::spawn_blocking(move || ClinicalFormat::sniff(&path))
                    .await
                    .map_err(|e| Error::Worker(e.to_string()))??
                    .ok_or_else(|| {
                        Error::Watch(
                            "not HL7 v2, FHIR or X12 837: watch tabular files with =raw.<table>"
                                .into(),
                        )
                    })?;
                let mut request = ClinicalRequest::new(vec![input]);
                request.format = Some(format);
                request.labels = labels;
                let summary = self.loader.load_clinical(request).await?;
                let file = summary.files.first();
                Ok((
                    file.map_or(LoadStatus::Loaded, |f| f.status),
                    summary.load_id,
                    file.map_or(0, |f| f.records.saturating_sub(f.rejected + f.duplicates)),
                    file.map_or(0, |f| f.rejected),
                ))
            }
        }
    }

    /// A wholly failed file to `raw._rejects`: the reason and the start of its content.
    async fn quarantine(&self, local: &Path, label: &str, reason: &str) -> Result<()> {
        let mut raw = Vec::new();
        if let Ok(file) = std::fs::File::open(local) {
            use std::io::Read as _;
            let _ = file.take(QUARANTINE_BYTES as u64).read_to_end(&mut raw);
        }
        let reject = Reject {
            line: 0,
            reason: reason.to_string(),
            raw: String::from_utf8_lossy(&raw).into_owned(),
        };
        let target = match &self.target {
            WatchTarget::Table(t) => t.to_string(),
            WatchTarget::Auto => format!("raw.{REJECTS_TABLE}"),
        };
        let load_id = uuid::Uuid::new_v4().to_string();
        quarantine(
            &self.lake,
            &self.principal,
            &target,
            &load_id,
            vec![(label.to_string(), reject)],
            Vec::new(),
        )
        .await
    }
}

/// Whether a path is hidden or a partial download.
fn ignored(path: &str) -> bool {
    path.split('/')
        .any(|part| part.starts_with('.') || part.starts_with('_'))
        || PARTIAL_SUFFIXES
            .iter()
            .any(|s| path.to_ascii_lowercase().ends_with(s))
}

/// The files below a folder, with '/'-separated relative paths.
fn list_folder(root: &Path) -> Result<Vec<Listed>> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| Error::ReadFile {
            path: folder.clone(),
            source: e,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if ignored(&relative) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                folders.push(path);
            } else if meta.is_file() {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.push(Listed {
                    path: relative,
                    size: meta.len(),
                    modified: DateTime::<Utc>::from(modified),
                });
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_source_and_a_raw_table_or_auto() {
        let spec: WatchSpec = "/landing/labs=raw.labs".parse().unwrap();
        assert_eq!(spec.location, "/landing/labs");
        assert_eq!(spec.target, WatchTarget::Table("raw.labs".parse().unwrap()));
        let spec: WatchSpec = "s3://bucket/in/hl7=auto".parse().unwrap();
        assert_eq!(spec.location, "s3://bucket/in/hl7");
        assert_eq!(spec.target, WatchTarget::Auto);
        assert!("/landing".parse::<WatchSpec>().is_err());
        assert!("=raw.labs".parse::<WatchSpec>().is_err());
        assert!("/landing=curated.labs".parse::<WatchSpec>().is_err());
    }

    #[test]
    fn hidden_files_and_partial_downloads_are_left_alone() {
        assert!(ignored(".DS_Store"));
        assert!(ignored("2026/_tmp/x.csv"));
        assert!(ignored("labs.csv.part"));
        assert!(ignored("LABS.CSV.TMP"));
        assert!(!ignored("2026/12/labs.csv"));
        assert!(!ignored("adt.hl7.gz"));
    }
}
