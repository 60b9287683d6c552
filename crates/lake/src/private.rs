//! Owner-only files for lakes on the local file system: every file the lake writes is made
//! 0600 and its folder 0700, whatever the process's umask.
//!
//! `object_store`'s local store creates files and folders with the default modes, and the
//! workspace forbids `unsafe` (so no `umask`); this wrapper sets the modes right after each write.

use std::fmt;
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

/// The local store of a lake on disk, with owner-only modes.
pub(crate) struct PrivateFiles {
    inner: Arc<dyn ObjectStore>,
    /// The file system folder the store's paths are relative to.
    base: PathBuf,
}

impl PrivateFiles {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, base: PathBuf) -> Self {
        Self { inner, base }
    }

    fn file(&self, path: &Path) -> PathBuf {
        let mut file = self.base.clone();
        for part in path.parts() {
            file.push(part.as_ref());
        }
        file
    }
}

impl fmt::Debug for PrivateFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Private({})", self.inner)
    }
}

impl fmt::Display for PrivateFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Private({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for PrivateFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        make_private(&self.file(location));
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(PrivateUpload {
            inner,
            file: self.file(location),
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
        sorted(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        sorted(self.inner.list_with_offset(prefix, offset))
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
        make_private(&self.file(to));
        Ok(())
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        make_private(&self.file(to));
        Ok(())
    }
}

/// A local listing in path order, as object stores list (the local store lists in directory
/// order; Delta's log reader expects commits in order, and only special-cases `file://`).
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
    file: PathBuf,
}

#[async_trait]
impl MultipartUpload for PrivateUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.inner.complete().await?;
        make_private(&self.file);
        Ok(result)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
