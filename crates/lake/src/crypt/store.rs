//! The object store that encrypts what it writes and decrypts what it reads.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
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
use ring::aead::LessSafeKey;

use super::keys::Keyring;
use super::object::{CryptError, open_segments, plain_len, seal_segment, segment_count};
use super::{HEADER, KEYRING_FILE, PART, SEGMENT, TAG};
use crate::Result;

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
