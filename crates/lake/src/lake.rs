use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use carelake_common::{TableName, Zone};
use chrono::{DateTime, Utc};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use url::Url;

use crate::crypt::{EncryptedStore, KEYRING_FILE, KeySource, Keyring};

use crate::catalog::Catalog;
use crate::history::LoadHistory;
use crate::runs::RunHistory;
use crate::{Error, Result};

/// Folder under the lake root holding carelake's own tables.
const SYSTEM_FOLDER: &str = "_carelake";

/// URL scheme of the tables of an encrypted lake on the local file system. DataFusion's
/// sessions (deltalake's own included) come with a plain local store for `file://`, which
/// would read the lake's encrypted bytes as they are; under a scheme of its own the lake's
/// encrypting store is the only one that can serve its tables.
pub const ENCRYPTED_SCHEME: &str = "carelake-encrypted";

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTravel {
    /// The newest committed version.
    Latest,
    /// A Delta version number.
    Version(u64),
    /// The version current at this instant.
    Timestamp(DateTime<Utc>),
}

/// A lake: the root location, how to reach it, and its catalog.
///
/// Cheap to clone; every clone reaches the same storage.
#[derive(Debug, Clone)]
pub struct Lake {
    inner: Arc<LakeInner>,
}

#[derive(Debug)]
struct LakeInner {
    /// The location as the user gave it, for messages.
    display: String,
    /// Root URL, always ending in '/'.
    root: Url,
    /// The root as Delta tables are reached: the root, or for an encrypted lake on the local
    /// file system the root under [`ENCRYPTED_SCHEME`].
    table_root: Url,
    storage_options: HashMap<String, String>,
    /// The store at the root of the lake's file system or bucket (deltalake adds the table's
    /// prefix); encrypting when the lake is encrypted.
    store: Arc<dyn ObjectStore>,
    /// The store as it is, without encryption (for the key file), under the lake's layer.
    raw_store: Arc<dyn ObjectStore>,
    /// The store under every layer (object_store's local file system or S3 client).
    bare: Arc<dyn ObjectStore>,
    /// The local folder the store's paths start from, for a lake on the local file system.
    local: Option<std::path::PathBuf>,
    /// The lake's keys, when it is encrypted.
    keyring: Option<Arc<Keyring>>,
    audit: crate::AuditLog,
    secret: SecretCell,
    /// The folded catalog, refreshed from newer commits only.
    catalog_cache: crate::catalog::CatalogCache,
    /// Each table's newest snapshot as last read.
    snapshots: crate::snapshots::SnapshotCache,
}

/// The key source set by the command line (`--key-file`, `--key-command`); without one, the
/// `CARELAKE_KEY_*` variables are read.
static KEY_SOURCE: std::sync::OnceLock<KeySource> = std::sync::OnceLock::new();

/// Sets where every lake opened by this process finds its master key (once, at start-up).
pub fn set_key_source(source: KeySource) {
    let _ = KEY_SOURCE.set(source);
}

/// The key source of this process, if any.
pub fn key_source() -> Option<KeySource> {
    KEY_SOURCE.get().cloned().or_else(KeySource::from_env)
}

/// The lake key once read; never printed.
#[derive(Default)]
struct SecretCell(std::sync::OnceLock<Vec<u8>>);

impl std::fmt::Debug for SecretCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCell(…)")
    }
}

impl Lake {
    /// Creates the lake at `location` (a local folder or `s3://bucket/prefix`) if it does not
    /// exist yet, and opens it. Safe to run again on an existing lake.
    pub async fn init(location: &str) -> Result<Self> {
        Self::init_with(location, None).await
    }

    /// Like [`Lake::init`]; with `encrypt`, a new lake is encrypted under the key from that
    /// source (an existing lake keeps what it is: an encrypted one opens with the key, a plain
    /// one that holds data is refused rather than half encrypted).
    pub async fn init_with(location: &str, encrypt: Option<KeySource>) -> Result<Self> {
        let plain = Self::at(location)?;
        if let Some(path) = plain.local_root() {
            crate::files::create_private_dir(&path).map_err(|source| Error::Io {
                context: format!("creating the lake folder {}", path.display()),
                source,
            })?;
        }
        let lake = match (plain.read_keyring().await?, encrypt) {
            (Some(content), _) => plain.encrypted(&content)?,
            (None, Some(source)) => {
                if plain.catalog().exists().await? {
                    return Err(Error::Encryption(format!(
                        "the lake at {location} already holds plain data; encrypt a new lake and \
                         load it there (carelake export writes plain copies)"
                    )));
                }
                let (ring, content) = Keyring::create(source)?;
                plain
                    .lake_level(&plain.inner.raw_store)?
                    .put(&keyring_path(), content.into())
                    .await?;
                tracing::info!(lake = %plain.inner.display, "Lake encrypted (AES-256-GCM).");
                plain.with_keyring(Arc::new(ring))?
            }
            (None, None) => plain,
        };
        lake.catalog().ensure_created().await?;
        lake.load_history().ensure_created().await?;
        tracing::info!(lake = %lake.inner.display, "Lake ready.");
        Ok(lake)
    }

    /// Opens an existing lake, failing with a hint to run `carelake init` when there is none.
    pub async fn open(location: &str) -> Result<Self> {
        let plain = Self::at(location)?;
        let lake = match plain.read_keyring().await? {
            Some(content) => plain.encrypted(&content)?,
            None => plain,
        };
        if !lake.catalog().exists().await? {
            return Err(Error::LakeNotFound(lake.inner.display.clone()));
        }
        Ok(lake)
    }

    /// A plain handle on `location` without touching storage (the key file is read by
    /// [`Lake::open`] and [`Lake::init`]).
    pub(crate) fn at(location: &str) -> Result<Self> {
        let root = parse_location(location)?;
        let storage_options = storage_options_from_env();
        let store = DeltaTableBuilder::from_url(root.clone())?
            .with_storage_options(storage_options.clone())
            .build_storage()?
            .root_object_store(None);
        let local = (root.scheme() == "file").then(|| std::path::PathBuf::from("/"));
        let store = crate::listing::wrap(store, local.as_deref());
        let bare = crate::faults::wrap(store, crate::faults::process_plan()?);
        let store: Arc<dyn ObjectStore> = Arc::new(crate::files::LakeFiles::new(
            Arc::clone(&bare),
            local.clone(),
        ));
        let raw_store = Arc::clone(&store);
        Ok(Self {
            inner: Arc::new(LakeInner {
                display: location.to_string(),
                table_root: root.clone(),
                root,
                storage_options,
                store,
                raw_store,
                bare,
                local,
                keyring: None,
                audit: crate::AuditLog::default(),
                secret: SecretCell::default(),
                catalog_cache: Default::default(),
                snapshots: Default::default(),
            }),
        })
    }

    /// The root URL a location names (ending in '/'), without opening anything.
    pub fn root_url(location: &str) -> Result<Url> {
        parse_location(location)
    }

    /// The key file's content, when the lake is encrypted.
    async fn read_keyring(&self) -> Result<Option<Vec<u8>>> {
        match self
            .lake_level(&self.inner.raw_store)?
            .get(&keyring_path())
            .await
        {
            Ok(result) => Ok(Some(result.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// This handle opened with the key file's content and the process's key source.
    fn encrypted(&self, content: &[u8]) -> Result<Self> {
        let source = key_source().ok_or_else(|| Error::KeyRequired(self.inner.display.clone()))?;
        self.with_keyring(Arc::new(Keyring::open(content, source)?))
    }

    fn with_keyring(&self, ring: Arc<Keyring>) -> Result<Self> {
        // Commits are scrubbed before they are sealed.
        let store: Arc<dyn ObjectStore> = Arc::new(crate::files::LakeFiles::new(
            Arc::new(EncryptedStore::new(
                Arc::clone(&self.inner.bare),
                Arc::clone(&ring),
                self.lake_level(&self.inner.raw_store)?,
                keyring_path(),
            )),
            self.inner.local.clone(),
        ));
        let mut table_root = self.inner.root.clone();
        if table_root.scheme() == "file" {
            register_encrypted_scheme();
            table_root = Url::parse(&format!(
                "{ENCRYPTED_SCHEME}://{}",
                &self.inner.root[url::Position::BeforePath..]
            ))
            .expect("a file URL's path makes a URL");
        }
        Ok(Self {
            inner: Arc::new(LakeInner {
                display: self.inner.display.clone(),
                table_root,
                root: self.inner.root.clone(),
                storage_options: self.inner.storage_options.clone(),
                store,
                raw_store: Arc::clone(&self.inner.raw_store),
                bare: Arc::clone(&self.inner.bare),
                local: self.inner.local.clone(),
                keyring: Some(ring),
                audit: crate::AuditLog::default(),
                secret: SecretCell::default(),
                catalog_cache: Default::default(),
                snapshots: Default::default(),
            }),
        })
    }

    /// Whether the lake's files are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.inner.keyring.is_some()
    }

    /// Encrypts a blob the lake keeps outside its tables (a write-ahead log record) in the
    /// object format; the blob as it is when the lake is not encrypted.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        match &self.inner.keyring {
            Some(ring) => ring.seal_object(plain),
            None => Ok(plain.to_vec()),
        }
    }

    /// Decrypts what [`Lake::seal`] sealed.
    pub fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        match &self.inner.keyring {
            Some(ring) => ring
                .open_object(sealed)
                .map_err(|e| Error::Encryption(e.to_string())),
            None => Ok(sealed.to_vec()),
        }
    }

    /// `carelake key rotate`: re-wraps the lake keys under the key from `new_source` and adds a
    /// fresh lake key for new files; returns how many lake keys the lake now has. No data file
    /// is rewritten. Processes that have the lake open keep working (they take the new key
    /// file when they meet a file written with the new lake key, reading their key source
    /// again).
    pub async fn rotate_key(&self, new_source: &KeySource) -> Result<usize> {
        let Some(ring) = &self.inner.keyring else {
            return Err(Error::Encryption(format!(
                "the lake at {} is not encrypted",
                self.inner.display
            )));
        };
        let content = self
            .read_keyring()
            .await?
            .ok_or_else(|| Error::Encryption("the lake's key file is gone".into()))?;
        let new_master = new_source.read()?;
        let rotated = ring.rotate(&content, &new_master)?;
        // Check the new file opens with the new key before it replaces the old one.
        let check = Keyring::open(&rotated, new_source.clone())?;
        self.lake_level(&self.inner.raw_store)?
            .put(&keyring_path(), rotated.into())
            .await?;
        Ok(check.key_count())
    }

    /// The root URL of the lake, ending in '/'.
    pub fn root(&self) -> &Url {
        &self.inner.root
    }

    /// The root URL the lake's Delta tables are reached under (the root, except for an
    /// encrypted local lake: see [`ENCRYPTED_SCHEME`]).
    pub fn table_root(&self) -> &Url {
        &self.inner.table_root
    }

    /// The location as given by the user.
    pub fn display_location(&self) -> &str {
        &self.inner.display
    }

    /// Storage options (credentials, endpoint) passed to every Delta table.
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.inner.storage_options
    }

    /// The local folder of the lake, when it is on the local file system.
    pub fn local_root(&self) -> Option<std::path::PathBuf> {
        (self.inner.root.scheme() == "file")
            .then(|| self.inner.root.to_file_path().ok())
            .flatten()
    }

    /// The catalog of tables and views.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.clone())
    }

    /// The record of every load into the lake.
    pub fn load_history(&self) -> LoadHistory {
        LoadHistory::new(self.clone())
    }

    /// The lake's users and their password hashes.
    pub fn users(&self) -> crate::UserStore {
        crate::UserStore::new(self.clone())
    }

    /// Bearer tokens and UI sessions (hashed).
    pub fn tokens(&self) -> crate::TokenStore {
        crate::TokenStore::new(self.clone())
    }

    /// The alert rules and their deliveries.
    pub fn alerts(&self) -> crate::AlertStore {
        crate::AlertStore::new(self.clone())
    }

    /// The models trained in SQL (`CREATE MODEL`), every version.
    pub fn models(&self) -> crate::ModelStore {
        crate::ModelStore::new(self.clone())
    }

    /// Roles, grants, row and masking policies, user attributes.
    pub fn governance(&self) -> crate::GovernanceStore {
        crate::GovernanceStore::new(self.clone())
    }

    /// The tamper-evident audit log (one per lake handle, shared by its clones).
    pub fn audit(&self) -> &crate::AuditLog {
        &self.inner.audit
    }

    /// The lake's own secret (32 random bytes kept under `_carelake/`, made on first use),
    /// keying `pseudonym()` so that pseudonyms are stable within a lake and differ between
    /// lakes.
    pub async fn secret(&self) -> Result<Vec<u8>> {
        if let Some(secret) = self.inner.secret.0.get() {
            return Ok(secret.clone());
        }
        let existing = self
            .system_files("keys")
            .await?
            .into_iter()
            .find(|(name, _)| name == "pseudonym.key")
            .map(|(_, bytes)| bytes);
        let secret = match existing {
            Some(bytes) if bytes.len() >= 32 => bytes,
            _ => {
                let mut bytes = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .map_err(|_| Error::Governance("no random source for the lake key".into()))?;
                self.put_system_file("keys/pseudonym.key", bytes.clone())
                    .await?;
                bytes
            }
        };
        Ok(self.inner.secret.0.get_or_init(|| secret).clone())
    }

    /// The pipeline run history (`system.runs`).
    pub fn run_history(&self) -> RunHistory {
        RunHistory::new(self.clone())
    }

    /// The materialized views: definitions and refreshes.
    pub fn matviews(&self) -> crate::MatViewStore {
        crate::MatViewStore::new(self.clone())
    }

    /// What the landing-area watches have seen (`system.watch_files`).
    pub fn watches(&self) -> crate::WatchStore {
        crate::WatchStore::new(self.clone())
    }

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
        Ok(DeltaTableBuilder::from_url(url.clone())?
            .with_storage_options(self.inner.storage_options.clone())
            .with_storage_backend(Arc::clone(&self.inner.store), url.clone())
            .build()?)
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
        let mut builder = DeltaTableBuilder::from_url(url.clone())?
            .with_storage_options(self.inner.storage_options.clone())
            .with_storage_backend(Arc::clone(&self.inner.store), url.clone());
        builder = match at {
            TimeTravel::Latest => builder,
            TimeTravel::Version(v) => builder.with_version(v as _),
            TimeTravel::Timestamp(ts) => builder.with_timestamp(ts),
        };
        match builder.load().await {
            Ok(table) => {
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

    /// Writes a small file under the lake's `_carelake/` folder (e.g. a FHIR ViewDefinition),
    /// replacing any file of that name.
    pub async fn put_system_file(&self, relative: &str, content: Vec<u8>) -> Result<()> {
        let store = self.root_store()?;
        let path = StorePath::from(format!("{SYSTEM_FOLDER}/{}", relative.trim_matches('/')));
        store.put(&path, content.into()).await?;
        Ok(())
    }

    /// The files directly under `_carelake/<folder>/`, as (file name, content), by name.
    pub async fn system_files(&self, folder: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let store = self.root_store()?;
        let prefix = StorePath::from(format!("{SYSTEM_FOLDER}/{}", folder.trim_matches('/')));
        let listing = match store.list_with_delimiter(Some(&prefix)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut files = Vec::new();
        for object in listing.objects {
            let Some(name) = object.location.filename().map(str::to_string) else {
                continue;
            };
            let bytes = store.get(&object.location).await?.bytes().await?;
            files.push((name, bytes.to_vec()));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Reads a file under `_carelake/`; `None` when there is none.
    pub async fn get_system_file(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        let store = self.root_store()?;
        let path = StorePath::from(format!("{SYSTEM_FOLDER}/{}", relative.trim_matches('/')));
        match store.get(&path).await {
            Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The folded catalog cached for this lake handle (shared by its clones).
    pub(crate) fn catalog_cache(&self) -> &crate::catalog::CatalogCache {
        &self.inner.catalog_cache
    }

    /// Deletes a file under `_carelake/`; `false` when there was none.
    pub async fn delete_system_file(&self, relative: &str) -> Result<bool> {
        let store = self.root_store()?;
        let path = StorePath::from(format!("{SYSTEM_FOLDER}/{}", relative.trim_matches('/')));
        match store.delete(&path).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The store under every layer: the lake's files exactly as stored (encrypted, for an
    /// encrypted lake).
    pub(crate) fn inner_bare(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner.bare)
    }

    /// The store without encryption but with the lake's file layer (private modes).
    pub(crate) fn inner_raw(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner.raw_store)
    }

    /// The store the lake's tables are read through (decrypting, for an encrypted lake), at the
    /// lake root.
    pub(crate) fn lake_store(&self) -> Result<Arc<dyn ObjectStore>> {
        self.root_store()
    }

    /// An object store rooted at the lake root.
    fn root_store(&self) -> Result<Arc<dyn ObjectStore>> {
        self.lake_level(&self.inner.store)
    }

    /// `store` (a root store) scoped to the lake root, the way deltalake scopes it to a
    /// table's root.
    pub(crate) fn lake_level(&self, store: &Arc<dyn ObjectStore>) -> Result<Arc<dyn ObjectStore>> {
        let url = self.folder_url("")?;
        Ok(DeltaTableBuilder::from_url(url.clone())?
            .with_storage_options(self.inner.storage_options.clone())
            .with_storage_backend(Arc::clone(store), url)
            .build_storage()?
            .object_store(None))
    }
}

/// The local folder of a `file://` or encrypted local URL.
fn local_path(url: &Url) -> Option<std::path::PathBuf> {
    match url.scheme() {
        "file" => url.to_file_path().ok(),
        ENCRYPTED_SCHEME => Url::parse(&format!("file://{}", &url[url::Position::BeforePath..]))
            .ok()?
            .to_file_path()
            .ok(),
        _ => None,
    }
}

/// Tells deltalake that [`ENCRYPTED_SCHEME`] tables keep their log like local ones (the
/// store itself is always handed over with the table).
fn register_encrypted_scheme() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[derive(Debug)]
        struct Factory;
        impl deltalake::logstore::LogStoreFactory for Factory {
            fn with_options(
                &self,
                prefixed_store: deltalake::logstore::ObjectStoreRef,
                root_store: deltalake::logstore::ObjectStoreRef,
                location: &Url,
                options: &deltalake::logstore::StorageConfig,
            ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
                Ok(deltalake::logstore::default_logstore(
                    prefixed_store,
                    root_store,
                    location,
                    options,
                ))
            }
        }
        let scheme = Url::parse(&format!("{ENCRYPTED_SCHEME}://")).expect("a scheme URL");
        deltalake::logstore::logstore_factories().insert(scheme, Arc::new(Factory));
    });
}

/// The key file's path from the lake root.
fn keyring_path() -> StorePath {
    StorePath::from(format!("{SYSTEM_FOLDER}/{KEYRING_FILE}"))
}

pub(crate) fn parse_location(location: &str) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidLocation {
        location: location.to_string(),
        reason,
    };
    let mut url = if location.contains("://") {
        Url::parse(location).map_err(|e| invalid(e.to_string()))?
    } else {
        let path = std::path::absolute(location).map_err(|e| invalid(e.to_string()))?;
        Url::from_directory_path(&path).map_err(|()| invalid("not an absolute path".into()))?
    };
    match url.scheme() {
        "file" | "s3" | "s3a" | "memory" => {}
        other => {
            return Err(invalid(format!(
                "unsupported scheme '{other}' (use a folder or s3://)"
            )));
        }
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// An object store on a folder or bucket prefix outside the lake (a landing area that
/// `carelake serve --watch` loads from), opened with the same environment settings as a lake
/// (`AWS_*`, `CARELAKE_S3_ENDPOINT`); paths in it are relative to the location, whose URL
/// (ending in `/`) comes back with it.
pub fn landing_store(location: &str) -> Result<(Arc<dyn ObjectStore>, Url)> {
    let url = parse_location(location)?;
    if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|()| Error::InvalidLocation {
            location: location.to_string(),
            reason: "not a local path".into(),
        })?;
        if !path.is_dir() {
            return Err(Error::Watch(format!("{location}: no such folder")));
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(&path)?;
        return Ok((Arc::new(store), url));
    }
    let store = DeltaTableBuilder::from_url(url.clone())?
        .with_storage_options(storage_options_from_env())
        .build_storage()?
        .object_store(None);
    Ok((store, url))
}

/// `AWS_*` settings from the environment, plus `CARELAKE_S3_ENDPOINT` for S3-compatible stores.
fn storage_options_from_env() -> HashMap<String, String> {
    let mut options: HashMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("AWS_"))
        .collect();
    if let Ok(endpoint) = std::env::var("CARELAKE_S3_ENDPOINT") {
        if endpoint.starts_with("http://") {
            options.insert("AWS_ALLOW_HTTP".into(), "true".into());
        }
        options.insert("AWS_ENDPOINT_URL".into(), endpoint);
    }
    // Safe concurrent commits on S3 without a lock table: conditional writes (If-None-Match),
    // which AWS S3 and the common S3-compatible stores support.
    if !options.contains_key("AWS_S3_LOCKING_PROVIDER")
        && !options.contains_key("AWS_S3_ALLOW_UNSAFE_RENAME")
    {
        options
            .entry("conditional_put".into())
            .or_insert_with(|| "etag".into());
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_become_directory_urls() {
        let url = parse_location("s3://bucket/prefix").unwrap();
        assert_eq!(url.as_str(), "s3://bucket/prefix/");
        let url = parse_location("relative/lake").unwrap();
        assert_eq!(url.scheme(), "file");
        assert!(url.path().ends_with("/relative/lake/"));
        assert!(parse_location("ftp://x/y").is_err());
    }

    #[test]
    fn the_lake_folder_is_the_lake_root() {
        let lake = Lake::at("s3://bucket/prefix").unwrap();
        assert_eq!(lake.folder_url("").unwrap().as_str(), "s3://bucket/prefix");
        let lake = Lake::at("/tmp/some/lake").unwrap();
        assert_eq!(
            lake.folder_url("").unwrap().as_str(),
            "file:///tmp/some/lake"
        );
        assert_eq!(
            lake.folder_url("_carelake/keys").unwrap().as_str(),
            "file:///tmp/some/lake/_carelake/keys"
        );
    }

    #[test]
    fn table_urls_have_no_trailing_slash() {
        let lake = Lake::at("s3://bucket/prefix").unwrap();
        let name: TableName = "raw.claims".parse().unwrap();
        assert_eq!(
            lake.table_url(&name).unwrap().as_str(),
            "s3://bucket/prefix/raw/claims"
        );
    }
}
