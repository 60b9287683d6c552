//! Encryption at rest: an [`ObjectStore`] wrapper that encrypts every object of the lake.
//!
//! Keys form three levels (envelope encryption, as KMS-backed lakes do it):
//! - the **master key** (32 bytes) is never stored in the lake: it comes from a key file, the
//!   `CARELAKE_KEY` variable, or the standard output of an external command (the hook for a KMS
//!   or a vault), see [`KeySource`];
//! - **lake keys** (32 random bytes each) are kept in `_carelake/encryption.json`, each wrapped
//!   (AES-256-GCM) by the master key. The newest encrypts new objects; the older ones stay for
//!   the objects they wrote. `carelake key rotate` re-wraps them under a new master key and adds
//!   a fresh lake key, without touching the data;
//! - every object has its own random **data key**, wrapped by a lake key in the object's header.
//!
//! An object is an 80-byte header followed by the plaintext in 64 KiB segments, each sealed with
//! AES-256-GCM (16-byte tag). A segment's nonce is its index and a last-segment flag, so segments
//! cannot be reordered, dropped or cut off unnoticed; the header is the associated data of every
//! segment. Because the segment size is fixed, a ranged read (Parquet footers, column chunks)
//! decrypts only the segments it touches, and the plaintext size of an object follows from its
//! stored size, so listings report plaintext sizes as Delta expects.
//!
//! The key file `_carelake/encryption.json` itself is the one object stored as it is (it holds
//! only wrapped keys). An object without the header in an encrypted lake is refused, not read.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    UploadPart,
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Name of the key file under `_carelake/`.
pub(crate) const KEYRING_FILE: &str = "encryption.json";
const MAGIC: &[u8; 8] = b"CLKENC\x00\x01";
/// Header: magic, lake key id (u32), wrap nonce (12), wrapped data key (32 + 16), reserved (8).
pub(crate) const HEADER: usize = 80;
const TAG: usize = 16;
/// Plaintext bytes per segment.
pub(crate) const SEGMENT: usize = 64 << 10;
/// Smallest part handed to the underlying multipart upload (S3's minimum is 5 MiB).
const PART: usize = 8 << 20;

/// Where the master key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding the key: 32 raw bytes, 64 hex digits, or base64.
    File(PathBuf),
    /// The key itself (hex or base64), e.g. from the `CARELAKE_KEY` variable.
    Value(String),
    /// A shell command whose standard output is the key (hex or base64): the hook for a KMS.
    Command(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "KeySource::File({})", path.display()),
            KeySource::Value(_) => f.write_str("KeySource::Value(…)"),
            KeySource::Command(command) => write!(f, "KeySource::Command({command})"),
        }
    }
}

impl KeySource {
    /// The source named by `CARELAKE_KEY_FILE`, `CARELAKE_KEY_COMMAND` or `CARELAKE_KEY`
    /// (in that order), if any.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(file) = var("CARELAKE_KEY_FILE") {
            return Some(KeySource::File(file.into()));
        }
        if let Some(command) = var("CARELAKE_KEY_COMMAND") {
            return Some(KeySource::Command(command));
        }
        var("CARELAKE_KEY").map(KeySource::Value)
    }

    /// What to call the source in messages (never the key).
    pub fn describe(&self) -> String {
        match self {
            KeySource::File(path) => format!("the key file {}", path.display()),
            KeySource::Value(_) => "CARELAKE_KEY".to_string(),
            KeySource::Command(_) => "the key command".to_string(),
        }
    }

    /// Reads the master key.
    pub fn read(&self) -> Result<MasterKey> {
        let bytes = match self {
            KeySource::File(path) => std::fs::read(path).map_err(|source| Error::Io {
                context: format!("reading the key file {}", path.display()),
                source,
            })?,
            KeySource::Value(value) => value.as_bytes().to_vec(),
            KeySource::Command(command) => {
                let output = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|source| Error::Io {
                        context: "running the key command".into(),
                        source,
                    })?;
                if !output.status.success() {
                    return Err(Error::Encryption(format!(
                        "the key command failed ({})",
                        output.status
                    )));
                }
                output.stdout
            }
        };
        MasterKey::parse(&bytes).map_err(|reason| {
            Error::Encryption(format!("{} does not hold a key: {reason}", self.describe()))
        })
    }
}

/// A 256-bit master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<Self> {
        Ok(Self(random_bytes()?))
    }

    /// The key as 64 hex digits (for writing a new key file).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 raw bytes, 64 hex digits or base64 of 32 bytes (surrounding whitespace ignored).
    fn parse(bytes: &[u8]) -> std::result::Result<Self, &'static str> {
        if bytes.len() == 32 {
            return Ok(Self(bytes.try_into().expect("32 bytes")));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "expected 32 bytes, 64 hex digits or base64")?
            .trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| "bad hex")?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| "expected 32 bytes, 64 hex digits or base64")?
        };
        let key: [u8; 32] = decoded
            .try_into()
            .map_err(|_| "a key must be 32 bytes (256 bits)")?;
        Ok(Self(key))
    }

    fn aead(&self) -> LessSafeKey {
        aead_key(&self.0)
    }
}

fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES key"))
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Encryption("no random source".into()))?;
    Ok(bytes)
}

/// `_carelake/encryption.json`: the lake keys, wrapped by the master key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyringFile {
    format: u32,
    cipher: String,
    segment_bytes: usize,
    /// The lake key new objects are written with.
    current: u32,
    keys: Vec<WrappedKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedKey {
    id: u32,
    created_at: chrono::DateTime<chrono::Utc>,
    /// Base64 of nonce, ciphertext and tag.
    wrapped: String,
}

fn wrap_aad(id: u32) -> Vec<u8> {
    let mut aad = b"carelake lake key ".to_vec();
    aad.extend_from_slice(&id.to_be_bytes());
    aad
}

fn wrap_key(master: &MasterKey, id: u32, key: &[u8; 32]) -> Result<WrappedKey> {
    let nonce: [u8; NONCE_LEN] = random_bytes()?;
    let mut sealed = key.to_vec();
    master
        .aead()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(id)),
            &mut sealed,
        )
        .map_err(|_| Error::Encryption("sealing a lake key".into()))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&sealed);
    Ok(WrappedKey {
        id,
        created_at: chrono::Utc::now(),
        wrapped: base64::engine::general_purpose::STANDARD.encode(wrapped),
    })
}

fn unwrap_key(master: &MasterKey, wrapped: &WrappedKey) -> Result<[u8; 32]> {
    let wrong = || {
        Error::Encryption(
            "the key given does not open this lake (wrong key, or the lake's key file was altered)"
                .into(),
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&wrapped.wrapped)
        .map_err(|_| wrong())?;
    if bytes.len() != NONCE_LEN + 32 + TAG {
        return Err(wrong());
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let mut sealed = sealed.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
    let plain = master
        .aead()
        .open_in_place(nonce, Aad::from(wrap_aad(wrapped.id)), &mut sealed)
        .map_err(|_| wrong())?;
    plain.try_into().map_err(|_| wrong())
}

/// The unwrapped lake keys of an encrypted lake.
pub struct Keyring {
    keys: RwLock<BTreeMap<u32, [u8; 32]>>,
    current: RwLock<u32>,
    /// Where the master key came from, to read it again when the key file changes.
    source: KeySource,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "current",
                &*self.current.read().unwrap_or_else(|e| e.into_inner()),
            )
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A new key file with one lake key, wrapped by the key from `source`.
    pub(crate) fn create(source: KeySource) -> Result<(Self, Vec<u8>)> {
        let master = source.read()?;
        let key: [u8; 32] = random_bytes()?;
        let file = KeyringFile {
            format: 1,
            cipher: "AES-256-GCM".into(),
            segment_bytes: SEGMENT,
            current: 1,
            keys: vec![wrap_key(&master, 1, &key)?],
        };
        let ring = Self {
            keys: RwLock::new(BTreeMap::from([(1, key)])),
            current: RwLock::new(1),
            source,
        };
        Ok((ring, serialize(&file)?))
    }

    /// Opens the key file's content with the key from `source`.
    pub(crate) fn open(content: &[u8], source: KeySource) -> Result<Self> {
        let master = source.read()?;
        let (keys, current) = unwrap_all(content, &master)?;
        Ok(Self {
            keys: RwLock::new(keys),
            current: RwLock::new(current),
            source,
        })
    }

    /// Re-wraps every lake key under `new_master` and adds a fresh lake key for new objects;
    /// returns the new key file content. The data is not touched.
    pub(crate) fn rotate(&self, content: &[u8], new_master: &MasterKey) -> Result<Vec<u8>> {
        let old_master = self.source.read()?;
        let (mut keys, _) = unwrap_all(content, &old_master)?;
        let next = keys.keys().max().copied().unwrap_or(0) + 1;
        keys.insert(next, random_bytes()?);
        let file = KeyringFile {
            format: 1,
            cipher: "AES-256-GCM".into(),
            segment_bytes: SEGMENT,
            current: next,
            keys: keys
                .iter()
                .map(|(id, key)| wrap_key(new_master, *id, key))
                .collect::<Result<_>>()?,
        };
        serialize(&file)
    }

    /// Takes the keys of a newer key file (after `key rotate`), reading the master key again.
    pub(crate) fn reload(&self, content: &[u8]) -> Result<()> {
        let master = self.source.read()?;
        let (keys, current) = unwrap_all(content, &master)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = current;
        Ok(())
    }

    /// How many lake keys the ring holds.
    pub fn key_count(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn key(&self, id: u32) -> Option<LessSafeKey> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(aead_key)
    }

    fn current(&self) -> (u32, LessSafeKey) {
        let id = *self.current.read().unwrap_or_else(|e| e.into_inner());
        let key = self.key(id).expect("the current lake key is in the ring");
        (id, key)
    }

    /// A fresh header and the data key it wraps.
    fn new_object(&self) -> Result<([u8; HEADER], LessSafeKey)> {
        let (id, lake_key) = self.current();
        let data_key: [u8; 32] = random_bytes()?;
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let mut header = [0u8; HEADER];
        header[0..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&id.to_be_bytes());
        header[12..24].copy_from_slice(&nonce);
        let mut sealed = data_key.to_vec();
        lake_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header[0..12]),
                &mut sealed,
            )
            .map_err(|_| Error::Encryption("sealing a data key".into()))?;
        header[24..72].copy_from_slice(&sealed);
        Ok((header, aead_key(&data_key)))
    }

    /// The data key of an object from its header.
    fn object_key(&self, header: &[u8]) -> std::result::Result<LessSafeKey, CryptError> {
        if header.len() < HEADER || &header[0..8] != MAGIC {
            return Err(CryptError::NotEncrypted);
        }
        let id = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        let lake_key = self.key(id).ok_or(CryptError::UnknownKey(id))?;
        let nonce =
            Nonce::try_assume_unique_for_key(&header[12..24]).map_err(|_| CryptError::Damaged)?;
        let mut sealed = header[24..72].to_vec();
        let plain = lake_key
            .open_in_place(nonce, Aad::from(&header[0..12]), &mut sealed)
            .map_err(|_| CryptError::Damaged)?;
        let data_key: [u8; 32] = plain.try_into().map_err(|_| CryptError::Damaged)?;
        Ok(aead_key(&data_key))
    }

    /// Encrypts a whole object.
    pub(crate) fn seal_object(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let (header, key) = self.new_object()?;
        let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
        out.extend_from_slice(&header);
        let segments = segment_count(plain.len() as u64);
        for index in 0..segments {
            let start = (index as usize) * SEGMENT;
            let end = (start + SEGMENT).min(plain.len());
            seal_segment(
                &key,
                &header,
                index,
                index + 1 == segments,
                &plain[start..end],
                &mut out,
            )?;
        }
        Ok(out)
    }

    /// Decrypts a whole object.
    pub(crate) fn open_object(&self, sealed: &[u8]) -> std::result::Result<Vec<u8>, CryptError> {
        let key = self.object_key(sealed)?;
        let plain_len = plain_len(sealed.len() as u64).ok_or(CryptError::Damaged)?;
        let segments = segment_count(plain_len);
        open_segments(&key, &sealed[..HEADER], 0, segments, &sealed[HEADER..])
    }
}

fn serialize(file: &KeyringFile) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(file).map_err(|e| Error::Encryption(e.to_string()))
}

fn unwrap_all(content: &[u8], master: &MasterKey) -> Result<(BTreeMap<u32, [u8; 32]>, u32)> {
    let file: KeyringFile = serde_json::from_slice(content)
        .map_err(|e| Error::Encryption(format!("the lake's key file is unreadable: {e}")))?;
    if file.format != 1 || file.segment_bytes != SEGMENT {
        return Err(Error::Encryption(format!(
            "the lake's key file has format {} (this carelake reads format 1)",
            file.format
        )));
    }
    let mut keys = BTreeMap::new();
    for wrapped in &file.keys {
        keys.insert(wrapped.id, unwrap_key(master, wrapped)?);
    }
    if !keys.contains_key(&file.current) {
        return Err(Error::Encryption(
            "the lake's key file names a current key it does not hold".into(),
        ));
    }
    Ok((keys, file.current))
}

/// Why an object could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CryptError {
    /// No carelake header: the object was not written through the encrypted lake.
    NotEncrypted,
    /// Written with a lake key this ring does not hold.
    UnknownKey(u32),
    /// A tag did not match: the object was altered, cut off, or is not what it claims.
    Damaged,
}

impl fmt::Display for CryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptError::NotEncrypted => {
                f.write_str("the object is not encrypted, in an encrypted lake: refused")
            }
            CryptError::UnknownKey(id) => {
                write!(
                    f,
                    "the object was written with lake key {id}, which the lake's key file does not hold"
                )
            }
            CryptError::Damaged => f.write_str(
                "the object does not decrypt: it was altered or cut off (or the key is wrong)",
            ),
        }
    }
}

impl std::error::Error for CryptError {}

fn segment_nonce(index: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[0] = u8::from(last);
    nonce[4..12].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

fn seal_segment(
    key: &LessSafeKey,
    header: &[u8],
    index: u64,
    last: bool,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(plain);
    let tag = key
        .seal_in_place_separate_tag(
            segment_nonce(index, last),
            Aad::from(header),
            &mut out[start..],
        )
        .map_err(|_| Error::Encryption("sealing a segment".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(())
}

/// Decrypts consecutive segments `first..` of an object of `segments` segments.
fn open_segments(
    key: &LessSafeKey,
    header: &[u8],
    first: u64,
    segments: u64,
    sealed: &[u8],
) -> std::result::Result<Vec<u8>, CryptError> {
    let mut out = Vec::with_capacity(sealed.len());
    for (index, chunk) in (first..).zip(sealed.chunks(SEGMENT + TAG)) {
        if chunk.len() < TAG || index >= segments {
            return Err(CryptError::Damaged);
        }
        let mut buffer = chunk.to_vec();
        let plain = key
            .open_in_place(
                segment_nonce(index, index + 1 == segments),
                Aad::from(header),
                &mut buffer,
            )
            .map_err(|_| CryptError::Damaged)?;
        out.extend_from_slice(plain);
    }
    Ok(out)
}

/// Segments of an object of `plain` bytes (an empty object has one, empty).
pub(crate) fn segment_count(plain: u64) -> u64 {
    plain.div_ceil(SEGMENT as u64).max(1)
}

/// Stored size of an object of `plain` bytes.
pub(crate) fn sealed_len(plain: u64) -> u64 {
    HEADER as u64 + plain + TAG as u64 * segment_count(plain)
}

/// Plaintext size of a stored object of `sealed` bytes, `None` when no plaintext has that size.
pub(crate) fn plain_len(sealed: u64) -> Option<u64> {
    let body = sealed.checked_sub(HEADER as u64)?;
    let segments = body.div_ceil((SEGMENT + TAG) as u64).max(1);
    let plain = body.checked_sub(TAG as u64 * segments)?;
    (sealed_len(plain) == sealed).then_some(plain)
}

/// Whether `path` is the key file, the one object stored as it is.
fn is_keyring(path: &Path) -> bool {
    let text = path.as_ref();
    text == format!("_carelake/{KEYRING_FILE}")
        || text.ends_with(&format!("/_carelake/{KEYRING_FILE}"))
}

/// An object store that encrypts what it writes and decrypts what it reads.
pub(crate) struct EncryptedStore {
    inner: Arc<dyn ObjectStore>,
    ring: Arc<Keyring>,
    /// Where the key file is (a store and a path in it), to take a rotated key file when an
    /// object names a lake key the ring does not hold yet.
    keyring_store: Arc<dyn ObjectStore>,
    keyring_path: Path,
}

wrapper_display!(EncryptedStore, "Encrypted");

fn store_error(
    path: &Path,
    source: impl std::error::Error + Send + Sync + 'static,
) -> object_store::Error {
    object_store::Error::Generic {
        store: "carelake encryption",
        source: format!("{path}: {source}").into(),
    }
}

impl EncryptedStore {
    pub(crate) fn new(
        inner: Arc<dyn ObjectStore>,
        ring: Arc<Keyring>,
        keyring_store: Arc<dyn ObjectStore>,
        keyring_path: Path,
    ) -> Self {
        Self {
            inner,
            ring,
            keyring_store,
            keyring_path,
        }
    }

    /// The data key of an object, reading a rotated key file once when the lake key is new.
    async fn object_key(&self, path: &Path, header: &[u8]) -> object_store::Result<LessSafeKey> {
        match self.ring.object_key(header) {
            Err(CryptError::UnknownKey(_)) => {
                let content = self
                    .keyring_store
                    .get(&self.keyring_path)
                    .await?
                    .bytes()
                    .await?;
                self.ring
                    .reload(&content)
                    .map_err(|e| store_error(path, e))?;
                self.ring
                    .object_key(header)
                    .map_err(|e| store_error(path, e))
            }
            other => other.map_err(|e| store_error(path, e)),
        }
    }

    async fn open_whole(&self, path: &Path, sealed: &[u8]) -> object_store::Result<Vec<u8>> {
        let key = self.object_key(path, sealed).await?;
        let plain_len =
            plain_len(sealed.len() as u64).ok_or_else(|| store_error(path, CryptError::Damaged))?;
        open_segments(
            &key,
            &sealed[..HEADER],
            0,
            segment_count(plain_len),
            &sealed[HEADER..],
        )
        .map_err(|e| store_error(path, e))
    }

    /// Reads plaintext ranges: the header (with the object's metadata), then the segments
    /// covering every range in one request.
    async fn read_ranges(
        &self,
        path: &Path,
        options: GetOptions,
        ranges: &[GetRange],
    ) -> object_store::Result<(ObjectMeta, Vec<Range<u64>>, Vec<Bytes>)> {
        let mut header_options = options;
        header_options.range = Some(GetRange::Bounded(0..HEADER as u64));
        header_options.head = false;
        let head = self.inner.get_opts(path, header_options).await?;
        let meta = head.meta.clone();
        let header = head.bytes().await?;
        let key = self.object_key(path, &header).await?;
        let plain_size =
            plain_len(meta.size).ok_or_else(|| store_error(path, CryptError::Damaged))?;
        let segments = segment_count(plain_size);
        let mut plain_ranges = Vec::with_capacity(ranges.len());
        let mut sealed_ranges = Vec::with_capacity(ranges.len());
        for range in ranges {
            let range = range
                .as_range(plain_size)
                .map_err(|e| object_store::Error::Generic {
                    store: "carelake encryption",
                    source: Box::new(e),
                })?;
            let (first, last) = if range.is_empty() {
                (0, 0)
            } else {
                (
                    range.start / SEGMENT as u64,
                    (range.end - 1) / SEGMENT as u64,
                )
            };
            let step = (SEGMENT + TAG) as u64;
            let start = HEADER as u64 + first * step;
            let end = (HEADER as u64 + (last + 1) * step).min(meta.size);
            plain_ranges.push(range);
            sealed_ranges.push(start..end);
        }
        let sealed = self.inner.get_ranges(path, &sealed_ranges).await?;
        let mut out = Vec::with_capacity(ranges.len());
        for (range, bytes) in plain_ranges.iter().zip(sealed) {
            if range.is_empty() {
                out.push(Bytes::new());
                continue;
            }
            let first = range.start / SEGMENT as u64;
            let plain = open_segments(&key, &header, first, segments, &bytes)
                .map_err(|e| store_error(path, e))?;
            let offset = (range.start - first * SEGMENT as u64) as usize;
            let len = (range.end - range.start) as usize;
            if offset + len > plain.len() {
                return Err(store_error(path, CryptError::Damaged));
            }
            out.push(Bytes::from(plain).slice(offset..offset + len));
        }
        let meta = ObjectMeta {
            size: plain_size,
            ..meta
        };
        Ok((meta, plain_ranges, out))
    }
}

fn single(bytes: Bytes) -> GetResultPayload {
    GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed())
}

#[async_trait]
impl ObjectStore for EncryptedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if is_keyring(location) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let plain: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
        let sealed = self
            .ring
            .seal_object(&plain)
            .map_err(|e| store_error(location, e))?;
        self.inner.put_opts(location, sealed.into(), opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let (header, key) = self
            .ring
            .new_object()
            .map_err(|e| store_error(location, e))?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(SealingUpload {
            inner,
            key,
            header,
            pending: Vec::new(),
            out: header.to_vec(),
            index: 0,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if is_keyring(location) {
            return self.inner.get_opts(location, options).await;
        }
        if options.head {
            let result = self.inner.get_opts(location, options).await?;
            let meta = plain_meta(result.meta.clone());
            return Ok(GetResult {
                range: 0..meta.size,
                meta,
                payload: single(Bytes::new()),
                attributes: result.attributes,
            });
        }
        match options.range.clone() {
            None => {
                let result = self.inner.get_opts(location, options).await?;
                let attributes = result.attributes.clone();
                let meta = result.meta.clone();
                let sealed = result.bytes().await?;
                let plain = self.open_whole(location, &sealed).await?;
                let meta = ObjectMeta {
                    size: plain.len() as u64,
                    ..meta
                };
                Ok(GetResult {
                    range: 0..meta.size,
                    meta,
                    payload: single(Bytes::from(plain)),
                    attributes,
                })
            }
            Some(range) => {
                let (meta, ranges, mut bytes) =
                    self.read_ranges(location, options, &[range]).await?;
                Ok(GetResult {
                    range: ranges[0].clone(),
                    meta,
                    payload: single(bytes.remove(0)),
                    attributes: Default::default(),
                })
            }
        }
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if is_keyring(location) {
            return self.inner.get_ranges(location, ranges).await;
        }
        let ranges: Vec<GetRange> = ranges.iter().cloned().map(GetRange::Bounded).collect();
        let (_, _, bytes) = self
            .read_ranges(location, GetOptions::default(), &ranges)
            .await?;
        Ok(bytes)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        list_plain(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        list_plain(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listing = self.inner.list_with_delimiter(prefix).await?;
        listing.objects = listing.objects.into_iter().map(plain_meta).collect();
        Ok(listing)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// An object's metadata with its plaintext size (the key file is stored as it is).
fn plain_meta(mut meta: ObjectMeta) -> ObjectMeta {
    if !is_keyring(&meta.location)
        && let Some(size) = plain_len(meta.size)
    {
        meta.size = size;
    }
    meta
}

fn list_plain(
    stream: BoxStream<'static, object_store::Result<ObjectMeta>>,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    stream.map(|meta| meta.map(plain_meta)).boxed()
}

/// A multipart upload that seals segments as they fill and hands the underlying upload parts
/// of at least [`PART`] bytes (the last segment waits for `complete`, which flags it).
struct SealingUpload {
    inner: Box<dyn MultipartUpload>,
    key: LessSafeKey,
    header: [u8; HEADER],
    /// Plaintext not sealed yet.
    pending: Vec<u8>,
    /// Sealed bytes not handed on yet (starts with the header).
    out: Vec<u8>,
    index: u64,
}

impl fmt::Debug for SealingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingUpload")
            .field("inner", &self.inner)
            .field("segments", &self.index)
            .finish_non_exhaustive()
    }
}

impl SealingUpload {
    /// Seals every full segment except the newest (which may turn out to be the last).
    fn seal_full(&mut self) -> Result<()> {
        let mut start = 0;
        while self.pending.len() - start > SEGMENT {
            seal_segment(
                &self.key,
                &self.header,
                self.index,
                false,
                &self.pending[start..start + SEGMENT],
                &mut self.out,
            )?;
            self.index += 1;
            start += SEGMENT;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

#[async_trait]
impl MultipartUpload for SealingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        for chunk in data.iter() {
            self.pending.extend_from_slice(chunk);
        }
        if let Err(e) = self.seal_full() {
            let error = store_error(&Path::default(), e);
            return Box::pin(async move { Err(error) });
        }
        if self.out.len() >= PART {
            let part = std::mem::take(&mut self.out);
            self.inner.put_part(part.into())
        } else {
            Box::pin(async { Ok(()) })
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let pending = std::mem::take(&mut self.pending);
        seal_segment(
            &self.key,
            &self.header,
            self.index,
            true,
            &pending,
            &mut self.out,
        )
        .map_err(|e| store_error(&Path::default(), e))?;
        self.index += 1;
        let part = std::mem::take(&mut self.out);
        self.inner.put_part(part.into()).await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn ring() -> Arc<Keyring> {
        let source = KeySource::Value(MasterKey::generate().unwrap().to_hex());
        Arc::new(Keyring::create(source).unwrap().0)
    }

    fn store(ring: Arc<Keyring>) -> (Arc<InMemory>, EncryptedStore) {
        let inner = Arc::new(InMemory::new());
        let store = EncryptedStore::new(
            Arc::clone(&inner) as _,
            ring,
            Arc::clone(&inner) as _,
            Path::from(format!("_carelake/{KEYRING_FILE}")),
        );
        (inner, store)
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn sizes_round_trip() {
        for plain in [
            0u64,
            1,
            15,
            16,
            17,
            SEGMENT as u64 - 1,
            SEGMENT as u64,
            SEGMENT as u64 + 1,
            3 * SEGMENT as u64,
            1_000_003,
        ] {
            assert_eq!(plain_len(sealed_len(plain)), Some(plain), "{plain}");
        }
        assert_eq!(plain_len(10), None);
        assert_eq!(plain_len(HEADER as u64), None);
    }

    #[test]
    fn keys_parse_in_three_spellings() {
        let key = MasterKey::generate().unwrap();
        let hex = key.to_hex();
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.0);
        assert_eq!(MasterKey::parse(hex.as_bytes()).unwrap().0, key.0);
        assert_eq!(
            MasterKey::parse(format!("{b64}\n").as_bytes()).unwrap().0,
            key.0
        );
        assert_eq!(MasterKey::parse(&key.0).unwrap().0, key.0);
        assert!(MasterKey::parse(b"too short").is_err());
    }

    #[tokio::test]
    async fn objects_are_sealed_and_ranges_read_back() {
        let (inner, store) = store(ring());
        let plain = sample(3 * SEGMENT + 123);
        let path = Path::from("raw/t/part-0.parquet");
        store.put(&path, plain.clone().into()).await.unwrap();
        let sealed = inner.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(sealed.len() as u64, sealed_len(plain.len() as u64));
        assert!(!sealed.windows(64).any(|w| w == &plain[1000..1064]));
        assert_eq!(store.head(&path).await.unwrap().size, plain.len() as u64);
        assert_eq!(
            store.get(&path).await.unwrap().bytes().await.unwrap(),
            plain
        );
        for range in [
            0..1,
            5..70_000,
            65_535..65_537,
            (plain.len() - 8) as u64 as usize..plain.len(),
        ] {
            let got = store
                .get_range(&path, range.start as u64..range.end as u64)
                .await
                .unwrap();
            assert_eq!(&got[..], &plain[range.clone()], "{range:?}");
        }
        let got = store
            .get_ranges(&path, &[0..10, 190_000..190_100])
            .await
            .unwrap();
        assert_eq!(&got[1][..], &plain[190_000..190_100]);
        let suffix = store
            .get_opts(
                &path,
                GetOptions {
                    range: Some(GetRange::Suffix(8)),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&suffix[..], &plain[plain.len() - 8..]);
        let listed: Vec<ObjectMeta> = store
            .list(None)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(listed[0].size, plain.len() as u64);
    }

    #[tokio::test]
    async fn multipart_uploads_match_single_puts() {
        let (_, store) = store(ring());
        for len in [0, 10, SEGMENT, SEGMENT * 2 + 1, PART + SEGMENT * 3 + 7] {
            let plain = sample(len);
            let path = Path::from(format!("raw/t/m-{len}"));
            let mut upload = store.put_multipart(&path).await.unwrap();
            for chunk in plain.chunks(100_000) {
                upload.put_part(chunk.to_vec().into()).await.unwrap();
            }
            upload.complete().await.unwrap();
            assert_eq!(
                store.get(&path).await.unwrap().bytes().await.unwrap(),
                plain,
                "{len}"
            );
        }
    }

    #[tokio::test]
    async fn tampering_and_plain_objects_are_refused() {
        let (inner, store) = store(ring());
        let path = Path::from("raw/t/x");
        store.put(&path, sample(SEGMENT * 2).into()).await.unwrap();
        let mut sealed = inner
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        // Cut off the last segment: the remaining one is not flagged last.
        sealed.truncate(HEADER + SEGMENT + TAG);
        inner.put(&path, sealed.clone().into()).await.unwrap();
        assert!(store.get(&path).await.is_err());
        sealed[HEADER + 5] ^= 1;
        inner.put(&path, sealed.into()).await.unwrap();
        assert!(store.get(&path).await.is_err());
        inner
            .put(&Path::from("raw/t/plain"), b"hello".to_vec().into())
            .await
            .unwrap();
        let error = store.get(&Path::from("raw/t/plain")).await.unwrap_err();
        assert!(error.to_string().contains("not encrypted"), "{error}");
        // Another lake's keys do not open an object either.
        let (inner_a, store_a) = self::store(ring());
        store_a.put(&path, sample(10).into()).await.unwrap();
        let sealed = inner_a.get(&path).await.unwrap().bytes().await.unwrap();
        inner.put(&path, sealed.into()).await.unwrap();
        assert!(store.get(&path).await.is_err());
    }

    #[tokio::test]
    async fn rotation_rewraps_without_touching_objects() {
        let first = KeySource::Value(MasterKey::generate().unwrap().to_hex());
        let (ring, content) = Keyring::create(first.clone()).unwrap();
        let ring = Arc::new(ring);
        let (inner, store) = store(Arc::clone(&ring));
        let keyring_path = Path::from(format!("_carelake/{KEYRING_FILE}"));
        store
            .put(&keyring_path, content.clone().into())
            .await
            .unwrap();
        let path = Path::from("raw/t/old");
        store.put(&path, sample(1000).into()).await.unwrap();
        let before = inner.get(&path).await.unwrap().bytes().await.unwrap();

        let new_master = MasterKey::generate().unwrap();
        let rotated = ring.rotate(&content, &new_master).unwrap();
        let second = KeySource::Value(new_master.to_hex());
        assert!(
            Keyring::open(&rotated, first).is_err(),
            "the old key no longer opens it"
        );
        let reopened = Arc::new(Keyring::open(&rotated, second).unwrap());
        assert_eq!(reopened.key_count(), 2);
        // The old object (written with lake key 1) still reads under the new master key.
        let inner2 = Arc::new(InMemory::new());
        inner2.put(&path, before.clone().into()).await.unwrap();
        let store3 = EncryptedStore::new(Arc::clone(&inner2) as _, reopened, inner2, keyring_path);
        assert_eq!(
            store3.get(&path).await.unwrap().bytes().await.unwrap(),
            sample(1000)
        );
    }
}
