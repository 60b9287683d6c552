//! A lake's tables by name and URL: opening one at a version, finding those of a zone,
//! deleting one's files.

use std::path::Path;
use std::sync::Arc;

use carelake_common::{TableName, Zone};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use url::Url;

use super::location::local_path;
use super::log_reads::BoundedReads;
use super::{ENCRYPTED_SCHEME, Lake, SYSTEM_FOLDER, TimeTravel};
use crate::{Error, Result};

impl Lake {
    /// URL of a folder inside the lake (no trailing slash, as Delta expects).
    pub fn folder_url(&self, relative: &str) -> Result<Url> {
        // The lake root itself for "" (joining "/" would give the file system's or the
        // bucket's root).
        let relative = relative.trim_matches('/');
        let mut url = if relative.is_empty() {
            self.inner.table_root.clone()
        } else {
            self.inner
                .table_root
                .join(&format!("{relative}/"))
                .map_err(|e| Error::InvalidLocation {
                    location: relative.to_string(),
                    reason: e.to_string(),
                })?
        };
        let trimmed = url.path().trim_end_matches('/').to_string();
        url.set_path(&trimmed);
        Ok(url)
    }

    /// URL of a carelake system table such as the catalog.
    pub(crate) fn system_table_url(&self, name: &str) -> Result<Url> {
        self.folder_url(&format!("{SYSTEM_FOLDER}/{name}"))
    }

    /// The latest version of a carelake system table (`catalog`, `audit`, …), for maintenance
    /// and benchmarks in the binary; `None` before its first write. Never reachable from SQL.
    pub async fn system_table(&self, name: &str) -> Result<Option<DeltaTable>> {
        let url = self.system_table_url(name)?;
        self.load_delta(&url, TimeTravel::Latest).await
    }

    /// URL of a table: `<lake>/<zone>/<table>`.
    pub fn table_url(&self, name: &TableName) -> Result<Url> {
        self.folder_url(&name.relative_path())
    }

    /// A Delta handle on the URL, without loading it; creates the local folder if needed.
    pub fn delta_handle(&self, url: &Url) -> Result<DeltaTable> {
        if let Some(path) = local_path(url) {
            crate::files::create_private_dir(&path).map_err(|source| Error::Io {
                context: format!("creating {}", path.display()),
                source,
            })?;
        }
        let table = DeltaTableBuilder::from_url(url.clone())?
            .with_storage_options(self.inner.storage_options.clone())
            .with_storage_backend(Arc::clone(&self.inner.store), url.clone())
            .build()?;
        Ok(DeltaTable::new(BoundedReads::wrap(table.log_store())))
    }

    /// Loads the Delta table at `url`, or `None` when there is no Delta table there.
    pub async fn load_delta(&self, url: &Url, at: TimeTravel) -> Result<Option<DeltaTable>> {
        if at == TimeTravel::Latest
            && let Some(table) = self.inner.snapshots.latest(url).await?
        {
            return Ok(Some(table));
        }
        if url.scheme() == "file" || url.scheme() == ENCRYPTED_SCHEME {
            let Some(path) = local_path(url) else {
                return Ok(None);
            };
            if !Path::new(&path).join("_delta_log").is_dir() {
                return Ok(None);
            }
        } else if !self.has_delta_log(url).await? {
            return Ok(None);
        }
        let mut table = self.delta_handle(url)?;
        let loaded = match at {
            TimeTravel::Latest => table.load().await,
            TimeTravel::Version(v) => table.load_version(v as _).await,
            TimeTravel::Timestamp(ts) => table.load_with_datetime(ts).await,
        };
        match loaded {
            Ok(()) => {
                if at == TimeTravel::Latest {
                    self.inner.snapshots.remember(url, &table).await;
                }
                Ok(Some(table))
            }
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a table of a zone at a version, or `None` when it does not exist.
    pub async fn open_table_at(
        &self,
        name: &TableName,
        at: TimeTravel,
    ) -> Result<Option<DeltaTable>> {
        self.load_delta(&self.table_url(name)?, at).await
    }

    /// Loads the newest version of a table, failing when it does not exist.
    pub async fn open_table(&self, name: &TableName) -> Result<DeltaTable> {
        self.open_table_at(name, TimeTravel::Latest)
            .await?
            .ok_or_else(|| Error::TableNotFound(name.to_string()))
    }

    /// Names of the tables that have a Delta log in a zone's folder (whether or not the catalog
    /// knows them, e.g. tables written by another engine).
    pub async fn discover_tables(&self, zone: Zone) -> Result<Vec<TableName>> {
        let store = self.root_store()?;
        let prefix = StorePath::from(zone.as_str());
        let listing = match store.list_with_delimiter(Some(&prefix)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut names = Vec::new();
        for folder in listing.common_prefixes {
            let Some(name) = folder.filename() else {
                continue;
            };
            let Ok(table) = TableName::new(zone, name) else {
                continue;
            };
            let log = folder.clone().join("_delta_log");
            let has_log = store
                .list_with_delimiter(Some(&log))
                .await
                .map(|l| !l.objects.is_empty())
                .unwrap_or(false);
            if has_log {
                names.push(table);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether a Delta log exists under the URL (for object stores, where there are no folders).
    async fn has_delta_log(&self, url: &Url) -> Result<bool> {
        let root = self.folder_url("")?;
        let relative = url.path().strip_prefix(root.path()).unwrap_or(url.path());
        let log = StorePath::from(format!("{}/_delta_log", relative.trim_matches('/')));
        let store = self.root_store()?;
        match store.list_with_delimiter(Some(&log)).await {
            Ok(listing) => Ok(!listing.objects.is_empty()),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every file of a table (its data and its log).
    pub async fn delete_table_files(&self, name: &TableName) -> Result<()> {
        let store = self.root_store()?;
        let prefix = StorePath::from(name.relative_path());
        let files: Vec<_> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for file in files {
            store.delete(&file).await?;
        }
        if let Some(root) = self.local_root() {
            let _ = std::fs::remove_dir_all(root.join(name.relative_path()));
        }
        Ok(())
    }
}
