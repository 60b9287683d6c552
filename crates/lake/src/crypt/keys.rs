//! Where the master key comes from, the lake keys it wraps, and the key file that holds them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};

use super::object::{
    CryptError, open_segments, plain_len, seal_segment, sealed_len, segment_count,
};
use super::{HEADER, MAGIC, SEGMENT, TAG};
use crate::{Error, Result};

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
pub struct MasterKey(pub(super) [u8; 32]);

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
    pub(super) fn parse(bytes: &[u8]) -> std::result::Result<Self, &'static str> {
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
    pub(super) fn new_object(&self) -> Result<([u8; HEADER], LessSafeKey)> {
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
    pub(super) fn object_key(&self, header: &[u8]) -> std::result::Result<LessSafeKey, CryptError> {
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
