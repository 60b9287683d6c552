//! Listing a local folder from an offset by name, directly on the local store (below the fault
//! injector and the encryption, so both see these listings as any other).
//!
//! A Delta table's reader lists its log folder from the version it has, at every snapshot
//! update, and the folder keeps a file per commit for the log's retention (30 days by default).
//! `object_store`'s local store walks the folder and converts every entry's path before it
//! compares it with the offset, so each update costs as much as the folder is large; on a table
//! that takes a commit a second (streamed events, MLLP groups, the catalog) that grew to a
//! measurable share of the server's time within minutes of the soak. Here a folder of plain
//! files with plain names (a log folder is one) is read once, names are compared with the offset
//! first, and only the files after it are looked up. Anything else (subfolders, links, staged
//! uploads, names that need encoding) is listed by the store below, unchanged. Written here
//! because `object_store` has no such listing and the stack forbids `unsafe` file-system tricks.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// The local store with a listing from an offset that reads names before paths.
pub(crate) struct LocalListing {
    inner: Arc<dyn ObjectStore>,
    /// The file system folder the store's paths are relative to.
    base: PathBuf,
}

wrapper_display!(LocalListing, "LocalListing");

/// `store` with the fast listing when it is a local store rooted at `local`; else `store`.
pub(crate) fn wrap(
    store: Arc<dyn ObjectStore>,
    local: Option<&std::path::Path>,
) -> Arc<dyn ObjectStore> {
    match local {
        Some(base) => Arc::new(LocalListing {
            inner: store,
            base: base.to_path_buf(),
        }),
        None => store,
    }
}

/// A name that `object_store` keeps as it is (no percent-encoding) and that is no staged upload.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The paths of the files in `folder` (the store's `prefix`) after `offset`, sorted; `None`
/// when the folder holds anything but plain files with plain names (the store lists it then).
fn names_after(folder: &std::path::Path, prefix: &Path, offset: &Path) -> Option<Vec<Path>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.ok()?;
        if !entry.file_type().ok()?.is_file() {
            return None;
        }
        let name = entry.file_name();
        let name = name.to_str().filter(|n| plain(n))?;
        let path = prefix.clone().join(name);
        if path > *offset {
            paths.push(path);
        }
    }
    paths.sort();
    Some(paths)
}

impl LocalListing {
    /// The folder of `prefix`, when every part of it is a plain name.
    fn folder(&self, prefix: &Path) -> Option<PathBuf> {
        let mut folder = self.base.clone();
        for part in prefix.parts() {
            if !plain(part.as_ref()) {
                return None;
            }
            folder.push(part.as_ref());
        }
        Some(folder)
    }
}

#[async_trait]
impl ObjectStore for LocalListing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
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
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let Some((prefix, folder)) = prefix.and_then(|p| Some((p.clone(), self.folder(p)?))) else {
            return self.inner.list_with_offset(prefix, offset);
        };
        let inner = Arc::clone(&self.inner);
        let offset = offset.clone();
        futures::stream::once(async move {
            let names = {
                let (prefix, offset) = (prefix.clone(), offset.clone());
                let read = move || names_after(&folder, &prefix, &offset);
                match tokio::runtime::Handle::try_current() {
                    Ok(_) => tokio::task::spawn_blocking(read).await.ok().flatten(),
                    Err(_) => read(),
                }
            };
            match names {
                Some(paths) => {
                    futures::stream::iter(paths)
                        .then(move |path| {
                            let inner = Arc::clone(&inner);
                            async move {
                                object_store::ObjectStoreExt::head(inner.as_ref(), &path).await
                            }
                        })
                        // A file deleted since the folder was read is not listed.
                        .filter_map(|head| async move {
                            match head {
                                Err(object_store::Error::NotFound { .. }) => None,
                                other => Some(other),
                            }
                        })
                        .boxed()
                }
                None => inner.list_with_offset(Some(&prefix), &offset),
            }
        })
        .flatten()
        .boxed()
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

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;
    use object_store::local::LocalFileSystem;

    use super::*;

    async fn listed(store: &dyn ObjectStore, prefix: &Path, offset: &Path) -> Vec<(String, u64)> {
        let metas: Vec<ObjectMeta> = store
            .list_with_offset(Some(prefix), offset)
            .try_collect()
            .await
            .unwrap();
        let mut listed: Vec<_> = metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect();
        listed.sort();
        listed
    }

    /// A log folder is listed from the offset by name with what the store below reports; a
    /// folder with a subfolder, or a prefix that needs encoding, is listed by the store below.
    #[tokio::test]
    async fn a_local_listing_after_an_offset_matches_the_store_below() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t/_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        for v in (0..12).rev() {
            std::fs::write(log.join(format!("{v:020}.json")), vec![b'x'; v + 1]).unwrap();
        }
        std::fs::write(log.join("00000000000000000009.checkpoint.parquet"), b"cp").unwrap();
        std::fs::write(log.join("_last_checkpoint"), b"{}").unwrap();
        let inner: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let fast = wrap(Arc::clone(&inner), Some(dir.path()));
        let prefix = Path::from("t/_delta_log");
        for offset in [
            "t/_delta_log/00000000000000000004.json",
            "t/_delta_log/00000000000000000009",
            "t/_delta_log/",
            "t/_delta_log/99",
        ] {
            let offset = Path::from(offset);
            let expected = listed(inner.as_ref(), &prefix, &offset).await;
            assert_eq!(
                listed(fast.as_ref(), &prefix, &offset).await,
                expected,
                "{offset}"
            );
        }
        let from_four = listed(
            fast.as_ref(),
            &prefix,
            &Path::from("t/_delta_log/00000000000000000004.json"),
        )
        .await;
        assert_eq!(from_four.len(), 9, "{from_four:?}");
        assert_eq!(
            from_four[0],
            ("t/_delta_log/00000000000000000005.json".into(), 6)
        );
        // A missing folder lists nothing; a folder with a subfolder lists it recursively.
        assert!(
            listed(
                fast.as_ref(),
                &Path::from("nothing"),
                &Path::from("nothing/a")
            )
            .await
            .is_empty()
        );
        std::fs::create_dir_all(log.join("_staged")).unwrap();
        std::fs::write(log.join("_staged/a.json"), b"a").unwrap();
        let offset = Path::from("t/_delta_log/00000000000000000010.json");
        let expected = listed(inner.as_ref(), &prefix, &offset).await;
        let got = listed(fast.as_ref(), &prefix, &offset).await;
        assert_eq!(got, expected);
        assert!(
            got.iter().any(|(p, _)| p.ends_with("_staged/a.json")),
            "{got:?}"
        );
        // A prefix whose name the store encodes goes to the store below.
        let odd = dir.path().join("a b");
        std::fs::create_dir_all(&odd).unwrap();
        std::fs::write(odd.join("x.json"), b"x").unwrap();
        let prefix = Path::from("a b");
        let offset = Path::from("a b/");
        assert_eq!(
            listed(fast.as_ref(), &prefix, &offset).await,
            listed(inner.as_ref(), &prefix, &offset).await
        );
    }
}
