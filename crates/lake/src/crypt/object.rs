//! The sealed object format: segments, their nonces, and sealed and plain sizes.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use super::{HEADER, SEGMENT, TAG};
use crate::{Error, Result};

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

pub(super) fn seal_segment(
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
pub(super) fn open_segments(
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
