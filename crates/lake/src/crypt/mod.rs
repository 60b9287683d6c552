//! Encryption at rest: an [`ObjectStore`](object_store::ObjectStore) wrapper that encrypts every object of the lake.
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

mod keys;
mod object;
mod store;

pub use keys::{KeySource, Keyring, MasterKey};
pub(crate) use store::EncryptedStore;

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

#[cfg(test)]
mod tests {
    use super::object::*;
    use super::*;
    use crate::Result;
    use base64::Engine as _;
    use futures::StreamExt as _;
    use object_store::ObjectStoreExt as _;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{GetOptions, GetRange, MultipartUpload, ObjectMeta, ObjectStore};
    use std::sync::Arc;

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
