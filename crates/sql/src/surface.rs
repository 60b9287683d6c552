//! The closed SQL surface: what a session's DataFusion context can reach, and which plans a
//! session runs at all.
//!
//! - The context has no table factories (no `CREATE EXTERNAL TABLE` over arbitrary files) and an
//!   object store registry ([`LakeRegistry`]) that confines every store it is given to the
//!   lake's zones and the lake tables `system` shows (`_carelake/loads`, `runs`, `audit`, `alert_deliveries`, `watch`): no
//!   plan reads or writes a file elsewhere, or the lake's users, governance or keys, whatever
//!   it is.
//! - [`check_plan`] allows queries, and at the top of a statement the writes and DDL carelake
//!   implements itself, walking the whole plan tree (subqueries, `EXPLAIN` and
//!   `EXPLAIN ANALYZE` included). Everything else — `COPY … TO` through DataFusion, external
//!   tables, catalogs, functions, indexes — is refused; `SET datafusion.*` only for the local
//!   owner of the lake.
//! - [`FileAccess`] confines the files `COPY … FROM`, `COPY … TO` and `CREATE EXTERNAL TABLE`
//!   name to the folders the server's configuration lists (canonicalised, so neither `..` nor a
//!   symbolic link leads out), never inside the lake.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, Statement, WriteOp};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use url::Url;

use crate::{Error, Result};

/// Folders of the lake a session's context may read and write (relative to the lake root).
const REACHABLE: [&str; 8] = [
    "raw",
    "curated",
    "analytics",
    "_carelake/loads",
    "_carelake/runs",
    "_carelake/audit",
    "_carelake/alert_deliveries",
    "_carelake/watch",
];

/// The object store registry of every session: stores are confined to the lake, and to
/// reading the files of the lake's external tables.
#[derive(Debug)]
pub(crate) struct LakeRegistry {
    root: Url,
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
    /// Local paths (object-store form, no leading `/`) of the external tables' files: readable,
    /// never writable. Shared with every `file://` store the registry confines.
    external: Arc<RwLock<Vec<String>>>,
}

impl LakeRegistry {
    pub(crate) fn new(root: Url) -> Self {
        Self {
            root,
            stores: RwLock::new(HashMap::new()),
            external: Arc::new(RwLock::new(Vec::new())),
        }
    }

    /// Sets the local files and folders the external tables read (absolute paths). Registers
    /// a local file store for them when the lake itself is elsewhere (S3).
    pub(crate) fn set_external(&self, paths: &[PathBuf]) {
        let paths: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().trim_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let any = !paths.is_empty();
        *self.external.write().unwrap_or_else(|e| e.into_inner()) = paths;
        let local = Url::parse("file:///").expect("a valid URL");
        let registered = self
            .stores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&store_key(&local));
        if any && !registered {
            self.register_store(
                &local,
                Arc::new(object_store::local::LocalFileSystem::new()),
            );
        }
    }
}

fn store_key(url: &Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

impl ObjectStoreRegistry for LakeRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        // deltalake's `delta-rs://…` stores are already scoped to one table's root; any other
        // store (deltalake registers the lake's own root store under its URL) is confined.
        let store: Arc<dyn ObjectStore> = if url.scheme() == "delta-rs" {
            store
        } else {
            let allowed = if store_key(url) == store_key(&self.root) {
                let root = self.root.path().trim_matches('/').to_string();
                REACHABLE
                    .iter()
                    .map(|f| {
                        if root.is_empty() {
                            f.to_string()
                        } else {
                            format!("{root}/{f}")
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let read_only = if url.scheme() == "file" {
                Arc::clone(&self.external)
            } else {
                Arc::default()
            };
            Arc::new(ConfinedStore {
                inner: store,
                allowed,
                read_only,
            })
        };
        self.stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(store_key(url), store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&store_key(url))
            .ok_or_else(|| DataFusionError::Execution("no such object store".into()))
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.stores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&store_key(url))
            .cloned()
            .ok_or_else(|| {
                DataFusionError::External(Box::new(Error::PermissionDenied(format!(
                    "carelake reads only the lake's own tables, not {}:// files",
                    url.scheme()
                ))))
            })
    }
}

/// An object store that refuses every path outside the folders it allows, and every write
/// to the paths it may only read.
#[derive(Debug)]
struct ConfinedStore {
    inner: Arc<dyn ObjectStore>,
    allowed: Vec<String>,
    read_only: Arc<RwLock<Vec<String>>>,
}

impl fmt::Display for ConfinedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Confined({})", self.inner)
    }
}

fn refused() -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: String::new(),
        source: "carelake reads only the lake's own tables".into(),
    }
}

/// Whether `path` is `folder` or inside it.
fn under(path: &str, folder: &str) -> bool {
    path == folder || (path.starts_with(folder) && path[folder.len()..].starts_with('/'))
}

impl ConfinedStore {
    fn allows(&self, path: &Path) -> bool {
        self.allowed.iter().any(|a| under(path.as_ref(), a))
    }

    /// Whether `path` may be read: the lake's folders, and the external tables' files.
    fn reads(&self, path: &Path) -> bool {
        self.allows(path)
            || self
                .read_only
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|a| under(path.as_ref(), a))
    }

    fn check(&self, path: &Path) -> object_store::Result<()> {
        if self.allows(path) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    fn check_read(&self, path: &Path) -> object_store::Result<()> {
        if self.reads(path) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

#[async_trait]
impl ObjectStore for ConfinedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check_read(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check_read(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let confined = ConfinedStore {
            inner: Arc::clone(&self.inner),
            allowed: self.allowed.clone(),
            read_only: Arc::default(),
        };
        let checked = locations
            .map(move |p| p.and_then(|p| confined.check(&p).map(|_| p)))
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match prefix {
            Some(p) if self.reads(p) => self.inner.list(Some(p)),
            _ => futures::stream::once(async { Err(refused()) }).boxed(),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match prefix {
            Some(p) if self.reads(p) => self.inner.list_with_offset(Some(p), offset),
            _ => futures::stream::once(async { Err(refused()) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        match prefix {
            Some(p) if self.reads(p) => self.inner.list_with_delimiter(Some(p)).await,
            _ => Err(refused()),
        }
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// What a statement may be, beyond a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allow {
    /// `SET`/`RESET` of DataFusion's options (the local owner only).
    pub(crate) set_options: bool,
}

fn refuse(what: &str) -> Error {
    Error::PermissionDenied(format!("{what} is not allowed in carelake SQL"))
}

/// Checks that `plan` is a query, or one of the statements carelake runs itself with a query
/// inside. Walks the whole tree, subqueries in expressions included.
pub(crate) fn check_plan(plan: &LogicalPlan, allow: Allow) -> Result<()> {
    match plan {
        LogicalPlan::Dml(dml) => match dml.op {
            WriteOp::Insert(_) | WriteOp::Ctas => check_query(&dml.input),
            _ => Err(refuse("this write through DataFusion")),
        },
        LogicalPlan::Ddl(ddl) => match ddl {
            DdlStatement::CreateMemoryTable(c) => check_query(&c.input),
            DdlStatement::CreateView(v) => check_query(&v.input),
            DdlStatement::DropTable(_) | DdlStatement::DropView(_) => Ok(()),
            DdlStatement::CreateExternalTable(_) => Err(Error::PermissionDenied(
                "CREATE EXTERNAL TABLE needs the admin role and a location under a configured import folder".into(),
            )),
            other => Err(refuse(other.name())),
        },
        LogicalPlan::Explain(explain) => check_query(&explain.plan),
        LogicalPlan::Analyze(analyze) => check_query(&analyze.input),
        LogicalPlan::DescribeTable(_) => Ok(()),
        LogicalPlan::Copy(_) => Err(Error::PermissionDenied(
            "COPY … TO needs the admin role and a path under a configured export folder".into(),
        )),
        LogicalPlan::Statement(statement) => match statement {
            Statement::TransactionStart(_) | Statement::TransactionEnd(_) => Ok(()),
            Statement::SetVariable(_) | Statement::ResetVariable(_) if allow.set_options => Ok(()),
            Statement::SetVariable(_) | Statement::ResetVariable(_) => Err(Error::PermissionDenied(
                "SET of engine options is for the lake's owner on the command line".into(),
            )),
            Statement::Prepare(prepare) => check_query(&prepare.input),
            Statement::Execute(_) | Statement::Deallocate(_) => Ok(()),
        },
        _ => check_query(plan),
    }
}

/// Checks that every node of `plan` (and of its subqueries) is part of a query.
pub(crate) fn check_query(plan: &LogicalPlan) -> Result<()> {
    let mut refused: Option<Error> = None;
    plan.apply_with_subqueries(|node| {
        let ok = matches!(
            node,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::Repartition(_)
                | LogicalPlan::Union(_)
                | LogicalPlan::TableScan(_)
                | LogicalPlan::EmptyRelation(_)
                | LogicalPlan::Subquery(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Values(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Unnest(_)
                | LogicalPlan::RecursiveQuery(_)
        );
        if ok {
            Ok(TreeNodeRecursion::Continue)
        } else {
            refused = Some(refuse(&format!(
                "{} inside a query",
                node.display()
                    .to_string()
                    .split(':')
                    .next()
                    .unwrap_or("this statement")
            )));
            Ok(TreeNodeRecursion::Stop)
        }
    })?;
    refused.map_or(Ok(()), Err)
}

/// Folders `COPY … FROM`, `COPY … TO` and external tables may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAccess {
    /// Folders files may be read from (`COPY … FROM`, `CREATE EXTERNAL TABLE`).
    pub import_roots: Vec<PathBuf>,
    /// Folders files may be written to (`COPY … TO`).
    pub export_roots: Vec<PathBuf>,
}

impl FileAccess {
    /// From `CARELAKE_IMPORT_ROOTS` and `CARELAKE_EXPORT_ROOTS` (folders separated by `:`).
    pub fn from_env() -> Self {
        let roots = |name: &str| -> Vec<PathBuf> {
            std::env::var(name)
                .ok()
                .map(|v| {
                    v.split(':')
                        .filter(|s| !s.trim().is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            import_roots: roots("CARELAKE_IMPORT_ROOTS"),
            export_roots: roots("CARELAKE_EXPORT_ROOTS"),
        }
    }
}

/// Where a file statement may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Import,
    Export,
}

/// The canonical path of `path` when the caller may use it: under one of `roots` (`None`: the
/// local owner, anywhere), never inside the lake, no `..`. For an export the file may not exist
/// yet: its folder must.
pub(crate) fn confine(
    path: &str,
    roots: Option<&[PathBuf]>,
    lake_root: Option<&FsPath>,
    direction: Direction,
) -> Result<PathBuf> {
    let raw = PathBuf::from(path.strip_prefix("file://").unwrap_or(path));
    if path.contains("://") && !path.starts_with("file://") {
        return Err(Error::PermissionDenied(
            "files are read and written on the server's own disk here (no URLs)".into(),
        ));
    }
    if raw
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::PermissionDenied("a path with '..'".into()));
    }
    let canonical = match direction {
        Direction::Import => raw.canonicalize(),
        Direction::Export => {
            let name = raw
                .file_name()
                .ok_or_else(|| Error::Syntax("COPY … TO needs a file name".into()))?
                .to_owned();
            let parent = raw
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| FsPath::new("."));
            parent.canonicalize().map(|p| p.join(name))
        }
    }
    .map_err(|e| Error::Syntax(format!("cannot use that path: {e}")))?;
    if direction == Direction::Export
        && std::fs::symlink_metadata(&canonical).is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(Error::PermissionDenied(
            "writing through a symbolic link".into(),
        ));
    }
    if let Some(lake) = lake_root.and_then(|l| l.canonicalize().ok())
        && canonical.starts_with(&lake)
    {
        return Err(Error::PermissionDenied(
            "files inside the lake: read its tables with SQL".into(),
        ));
    }
    if let Some(roots) = roots {
        let inside = roots.iter().any(|root| {
            root.canonicalize()
                .is_ok_and(|root| canonical.starts_with(root))
        });
        if !inside {
            let what = match direction {
                Direction::Import => "import (CARELAKE_IMPORT_ROOTS, --import-root)",
                Direction::Export => "export (CARELAKE_EXPORT_ROOTS, --export-root)",
            };
            return Err(Error::PermissionDenied(format!(
                "that path is not under a configured {what} folder"
            )));
        }
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("imports");
        let lake = dir.path().join("lake");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(lake.join("_carelake/users")).unwrap();
        std::fs::write(root.join("a.csv"), "x\n1\n").unwrap();
        std::fs::write(dir.path().join("outside.csv"), "x\n1\n").unwrap();
        let roots = [root.clone()];
        let ok = confine(
            root.join("a.csv").to_str().unwrap(),
            Some(&roots),
            Some(&lake),
            Direction::Import,
        );
        assert!(ok.is_ok(), "{ok:?}");
        for bad in [
            dir.path().join("outside.csv"),
            root.join("../outside.csv"),
            lake.join("_carelake/users"),
        ] {
            assert!(
                confine(
                    bad.to_str().unwrap(),
                    Some(&roots),
                    Some(&lake),
                    Direction::Import
                )
                .is_err(),
                "{}",
                bad.display()
            );
        }
        // A symbolic link inside the root that points out of it.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("outside.csv"), root.join("link.csv"))
                .unwrap();
            assert!(
                confine(
                    root.join("link.csv").to_str().unwrap(),
                    Some(&roots),
                    Some(&lake),
                    Direction::Import
                )
                .is_err()
            );
        }
        // The local owner may read anywhere but inside the lake.
        assert!(
            confine(
                dir.path().join("outside.csv").to_str().unwrap(),
                None,
                Some(&lake),
                Direction::Import
            )
            .is_ok()
        );
        assert!(
            confine(
                lake.join("_carelake/users").to_str().unwrap(),
                None,
                Some(&lake),
                Direction::Import
            )
            .is_err()
        );
    }
}
