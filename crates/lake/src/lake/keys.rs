//! Where a lake's master key comes from, and the lake's own use of its key ring: opening an
//! encrypted lake, sealing blobs kept outside its tables, and rotating the master key.

use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt as _};
use url::Url;

use crate::crypt::{EncryptedStore, KeySource, Keyring};

use super::location::{keyring_path, register_encrypted_scheme};
use super::{ENCRYPTED_SCHEME, Lake, LakeInner, SecretCell};
use crate::{Error, Result};

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

impl Lake {
    /// The key file's content, when the lake is encrypted.
    pub(super) async fn read_keyring(&self) -> Result<Option<Vec<u8>>> {
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
    pub(super) fn encrypted(&self, content: &[u8]) -> Result<Self> {
        let source = key_source().ok_or_else(|| Error::KeyRequired(self.inner.display.clone()))?;
        self.with_keyring(Arc::new(Keyring::open(content, source)?))
    }

    pub(super) fn with_keyring(&self, ring: Arc<Keyring>) -> Result<Self> {
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
}
