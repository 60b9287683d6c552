use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::DeltaTableBuilder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use url::Url;

use crate::crypt::{KeySource, Keyring};

use crate::catalog::Catalog;
use crate::history::LoadHistory;
use crate::runs::RunHistory;
use crate::{Error, Result};

mod keys;
mod location;
mod log_reads;
mod tables;

pub use keys::{key_source, set_key_source};
pub use location::landing_store;
pub(crate) use location::parse_location;
use location::{keyring_path, storage_options_from_env};

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

#[cfg(test)]
mod tests {
    use super::*;
    use carelake_common::TableName;

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
