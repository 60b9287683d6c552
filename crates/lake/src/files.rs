//! The lake's store layer, on top of every lake's store (above the encryption, if any):
//! - every Delta commit is scrubbed of PHI before it is written ([`crate::scrub`]);
//! - on the local file system, every file the lake writes is made 0600 and its folder 0700,
//!   whatever the process's umask (`object_store`'s local store uses the default modes, and the
//!   workspace forbids `unsafe`, so no `umask`), and listings come in path order, as object
//!   stores list (the local store lists in directory order; Delta's log reader expects commits
//!   in order and only special-cases `file://`, which an encrypted lake's tables are not).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

/// Folder mode of the lake's folders.
pub(crate) const FOLDER_MODE: u32 = 0o700;
/// File mode of the lake's files.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Sets `path` (a file) to 0600 and its folder to 0700; failures are only logged (the write
/// itself succeeded).
pub(crate) fn make_private(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let set = |p: &std::path::Path, mode: u32| {
            if let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)) {
                tracing::debug!(path = %p.display(), error = %e, "Could not restrict a lake file's mode.");
            }
        };
        set(path, FILE_MODE);
        if let Some(parent) = path.parent() {
            set(parent, FOLDER_MODE);
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Creates a folder (and its parents) readable by the owner only.
pub fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, FOLDER_MODE);
    builder.create(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(FOLDER_MODE))?;
    }
    Ok(())
}

/// The lake's store layer.
pub(crate) struct LakeFiles {
    inner: Arc<dyn ObjectStore>,
    /// For a lake on the local file system, the folder the store's paths are relative to.
    local: Option<PathBuf>,
}

impl LakeFiles {
    /// The layer over `inner`; `local` is the file system folder of a local store's paths.
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, local: Option<PathBuf>) -> Self {
        Self { inner, local }
    }

    /// Makes the file at `path` owner-only, for a local lake.
    fn restrict(&self, path: &Path) {
        if let Some(base) = &self.local {
            let mut file = base.clone();
            for part in path.parts() {
                file.push(part.as_ref());
            }
            make_private(&file);
        }
    }

    fn in_order(
        &self,
        stream: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.local.is_some() {
            sorted(stream)
        } else {
            stream
        }
    }
}

wrapper_display!(LakeFiles, "LakeFiles");

#[async_trait]
impl ObjectStore for LakeFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let payload = if crate::scrub::is_commit(location) {
            let content: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
            crate::scrub::scrub_commit(location, &content)
                .unwrap_or(content)
                .into()
        } else {
            payload
        };
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.restrict(location);
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        if self.local.is_none() {
            return Ok(inner);
        }
        Ok(Box::new(PrivateUpload {
            inner,
            layer: LakeFiles::new(Arc::clone(&self.inner), self.local.clone()),
            location: location.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.in_order(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.in_order(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.restrict(to);
        Ok(())
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.restrict(to);
        Ok(())
    }
}

/// A listing in path order.
fn sorted(
    stream: BoxStream<'static, object_store::Result<ObjectMeta>>,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    futures::stream::once(async move {
        let mut all: Vec<ObjectMeta> = stream.try_collect().await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok::<_, object_store::Error>(futures::stream::iter(all.into_iter().map(Ok)))
    })
    .try_flatten()
    .boxed()
}

#[derive(Debug)]
struct PrivateUpload {
    inner: Box<dyn MultipartUpload>,
    layer: LakeFiles,
    location: Path,
}

#[async_trait]
impl MultipartUpload for PrivateUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.inner.complete().await?;
        self.layer.restrict(&self.location);
        Ok(result)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
