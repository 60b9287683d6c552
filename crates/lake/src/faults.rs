//! Fault injection: a store layer at the bottom of the lake's stack that fails, stalls or tears
//! the operations a plan names, so that tests can see what every part of carelake does when its
//! storage misbehaves (a clear error, a retry where one is safe, a consistent lake after).
//!
//! A plan is a list of rules separated by `;`, each `OPS[@PATH]:FAULT[:OPTION…]`:
//! - `OPS`: `get`, `head`, `list`, `put`, `multipart`, `delete`, `copy`, `rename`, joined by
//!   `,`; `read` (get, head, list), `write` (the others) or `*`;
//! - `@PATH`: only paths that contain this text (`@_delta_log/`, `@raw/`, `@.parquet`);
//! - `FAULT`: `error` (the store answers with an error, as an S3 500), `unavailable`
//!   (connection refused), `timeout=DUR` (no answer for DUR, then a timeout), `latency=DUR`
//!   (the operation succeeds DUR late), `disk-full`, `read-only`, `torn` (a put writes the
//!   first half of its bytes where they go, then fails: a file system without atomic writes);
//! - options: `after=N` (let the first N matching operations through), `times=N` (inject N
//!   faults, then none), `for=DUR` (inject for DUR from the first fault), `p=F` (inject with
//!   probability F; a fixed seed, so a run is repeatable).
//!
//! `CARELAKE_FAULTS` holds a plan for the process; `CARELAKE_FAULTS=@FILE` reads the plan from
//! FILE and reads it again when it changes, so that a test can break and mend the storage of a
//! running server. Without the variable the layer is not in the stack at all.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

use crate::{Error, Result};

/// The environment variable that holds a plan (or `@FILE`).
pub const FAULTS_VAR: &str = "CARELAKE_FAULTS";

/// One kind of storage operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Reading an object or a range of one.
    Get,
    /// Reading an object's metadata.
    Head,
    /// Listing a prefix.
    List,
    /// Writing an object in one request.
    Put,
    /// Writing an object in parts.
    Multipart,
    /// Deleting objects.
    Delete,
    /// Copying an object.
    Copy,
    /// Renaming an object.
    Rename,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::Get,
        Op::Head,
        Op::List,
        Op::Put,
        Op::Multipart,
        Op::Delete,
        Op::Copy,
        Op::Rename,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn is_write(self) -> bool {
        !matches!(self, Op::Get | Op::Head | Op::List)
    }
}

/// What a rule does to an operation it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The store answers with an error.
    Error,
    /// The store cannot be reached.
    Unavailable,
    /// No answer for this long, then a timeout.
    Timeout(Duration),
    /// The operation succeeds this much later.
    Latency(Duration),
    /// No space left.
    DiskFull,
    /// The storage refuses writes.
    ReadOnly,
    /// A put writes half its bytes, then fails.
    Torn,
}

/// One rule of a plan.
#[derive(Debug)]
struct Rule {
    ops: u8,
    path: Option<String>,
    fault: Fault,
    after: u64,
    times: Option<u64>,
    window: Option<Duration>,
    probability: Option<f64>,
    seen: AtomicU64,
    injected: AtomicU64,
    first: Mutex<Option<Instant>>,
    rng: AtomicU64,
}

impl Rule {
    fn parse(text: &str) -> Result<Self> {
        let bad = |what: &str| Error::Faults(format!("{what} in fault rule '{text}'"));
        let mut parts = text.split(':');
        let target = parts.next().unwrap_or_default().trim();
        let (ops_text, path) = match target.split_once('@') {
            Some((ops, path)) => (ops, Some(path.to_string())),
            None => (target, None),
        };
        let mut ops = 0u8;
        for op in ops_text.split(',') {
            ops |= match op.trim() {
                "get" => Op::Get.bit(),
                "head" => Op::Head.bit(),
                "list" => Op::List.bit(),
                "put" => Op::Put.bit(),
                "multipart" => Op::Multipart.bit(),
                "delete" => Op::Delete.bit(),
                "copy" => Op::Copy.bit(),
                "rename" => Op::Rename.bit(),
                "read" => Op::Get.bit() | Op::Head.bit() | Op::List.bit(),
                "write" => Op::ALL
                    .iter()
                    .filter(|o| o.is_write())
                    .fold(0, |acc, o| acc | o.bit()),
                "*" => u8::MAX,
                other => return Err(bad(&format!("unknown operation '{other}'"))),
            };
        }
        let fault_text = parts.next().ok_or_else(|| bad("no fault"))?.trim();
        let (name, value) = match fault_text.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (fault_text, None),
        };
        let duration = |v: Option<&str>| -> Result<Duration> {
            parse_duration(v.ok_or_else(|| bad(&format!("{name} needs =DURATION")))?)
                .ok_or_else(|| bad("a duration like 200ms or 2s"))
        };
        let fault = match name {
            "error" => Fault::Error,
            "unavailable" => Fault::Unavailable,
            "timeout" => Fault::Timeout(duration(value)?),
            "latency" => Fault::Latency(duration(value)?),
            "disk-full" => Fault::DiskFull,
            "read-only" => Fault::ReadOnly,
            "torn" => Fault::Torn,
            other => return Err(bad(&format!("unknown fault '{other}'"))),
        };
        let mut rule = Rule {
            ops,
            path,
            fault,
            after: 0,
            times: None,
            window: None,
            probability: None,
            seen: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            first: Mutex::new(None),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        };
        for option in parts {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| bad(&format!("option '{option}' needs a value")))?;
            match key.trim() {
                "after" => rule.after = value.parse().map_err(|_| bad("after=N"))?,
                "times" => rule.times = Some(value.parse().map_err(|_| bad("times=N"))?),
                "for" => {
                    rule.window = Some(parse_duration(value).ok_or_else(|| bad("for=DURATION"))?)
                }
                "p" => {
                    let p: f64 = value.parse().map_err(|_| bad("p=F"))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(bad("p between 0 and 1"));
                    }
                    rule.probability = Some(p);
                }
                "seed" => {
                    let seed: u64 = value.parse().map_err(|_| bad("seed=N"))?;
                    rule.rng.store(seed.max(1), Ordering::Relaxed);
                }
                other => return Err(bad(&format!("unknown option '{other}'"))),
            }
        }
        Ok(rule)
    }

    /// Whether this rule injects its fault into `op` on `path` now.
    fn fires(&self, op: Op, path: &str) -> bool {
        if self.ops & op.bit() == 0 {
            return false;
        }
        if matches!(self.fault, Fault::DiskFull | Fault::ReadOnly | Fault::Torn) && !op.is_write() {
            return false;
        }
        if let Some(p) = &self.path
            && !path.contains(p.as_str())
        {
            return false;
        }
        if self.seen.fetch_add(1, Ordering::Relaxed) < self.after {
            return false;
        }
        if let Some(times) = self.times
            && self.injected.load(Ordering::Relaxed) >= times
        {
            return false;
        }
        if let Some(window) = self.window {
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            let started = *first.get_or_insert_with(Instant::now);
            if started.elapsed() > window {
                return false;
            }
        }
        if let Some(p) = self.probability {
            // xorshift64: repeatable without a dependency on the thread's RNG.
            let mut x = self.rng.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng.store(x, Ordering::Relaxed);
            if (x >> 11) as f64 / (1u64 << 53) as f64 >= p {
                return false;
            }
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        true
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    (value >= 0.0 && value.is_finite()).then(|| Duration::from_secs_f64(value * scale))
}

/// A set of rules, fixed or read from a file that may change.
#[derive(Debug)]
pub struct FaultPlan {
    rules: Mutex<Arc<Vec<Rule>>>,
    file: Option<PathBuf>,
    /// The file's modification time and when it was last looked at.
    file_state: Mutex<(Option<SystemTime>, Option<Instant>)>,
}

impl FaultPlan {
    /// A plan from its text (see the module's documentation).
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Self {
            rules: Mutex::new(Arc::new(parse_rules(text)?)),
            file: None,
            file_state: Mutex::new((None, None)),
        })
    }

    /// A plan read from `file`, read again whenever the file changes (an absent or empty file
    /// injects nothing).
    pub fn from_file(file: PathBuf) -> Result<Self> {
        let plan = Self {
            rules: Mutex::new(Arc::new(Vec::new())),
            file: Some(file),
            file_state: Mutex::new((None, None)),
        };
        plan.reload()?;
        Ok(plan)
    }

    /// The plan `CARELAKE_FAULTS` names, if any.
    pub fn from_env() -> Result<Option<Arc<Self>>> {
        match std::env::var(FAULTS_VAR) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => match text.strip_prefix('@') {
                Some(file) => Ok(Some(Arc::new(Self::from_file(PathBuf::from(file))?))),
                None => Ok(Some(Arc::new(Self::parse(&text)?))),
            },
            Err(_) => Ok(None),
        }
    }

    fn reload(&self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut state = self.file_state.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .1
            .is_some_and(|at| at.elapsed() < Duration::from_millis(100))
        {
            return Ok(());
        }
        state.1 = Some(Instant::now());
        let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok();
        if modified == state.0 && state.0.is_some() {
            return Ok(());
        }
        state.0 = modified;
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let rules = parse_rules(&text)?;
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
        Ok(())
    }

    /// The first fault a rule injects into `op` on `path`.
    fn fault(&self, op: Op, path: &str) -> Option<Fault> {
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "fault plan file not read");
        }
        let rules = Arc::clone(&self.rules.lock().unwrap_or_else(|e| e.into_inner()));
        rules
            .iter()
            .find(|r| r.fires(op, path))
            .map(|r| r.fault.clone())
    }

    /// How many faults have been injected.
    pub fn injected(&self) -> u64 {
        let rules = Arc::clone(&self.rules.lock().unwrap_or_else(|e| e.into_inner()));
        rules
            .iter()
            .map(|r| r.injected.load(Ordering::Relaxed))
            .sum()
    }
}

fn parse_rules(text: &str) -> Result<Vec<Rule>> {
    text.split([';', '\n'])
        .map(str::trim)
        .filter(|r| !r.is_empty() && !r.starts_with('#'))
        .map(Rule::parse)
        .collect()
}

/// The store layer that injects a plan's faults.
pub(crate) struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    plan: Arc<FaultPlan>,
}

impl FaultStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }

    /// Applies the plan to `op` on `path`: waits, or fails, or lets it through (a torn write
    /// is left to the caller, which knows the payload).
    async fn enter(&self, op: Op, path: &Path) -> object_store::Result<Option<Fault>> {
        let Some(fault) = self.plan.fault(op, path.as_ref()) else {
            return Ok(None);
        };
        tracing::debug!(?op, ?fault, "injected fault");
        match fault {
            Fault::Latency(d) => {
                tokio::time::sleep(d).await;
                Ok(None)
            }
            Fault::Torn => Ok(Some(Fault::Torn)),
            other => {
                if let Fault::Timeout(d) = other {
                    tokio::time::sleep(d).await;
                }
                Err(injected(&other))
            }
        }
    }
}

/// The error a store would give for `fault`.
fn injected(fault: &Fault) -> object_store::Error {
    use std::io::ErrorKind as K;
    let (kind, text) = match fault {
        Fault::Error => (K::Other, "the store answered 500 Internal Server Error"),
        Fault::Unavailable => (K::ConnectionRefused, "connection refused"),
        Fault::Timeout(_) => (K::TimedOut, "the store did not answer in time"),
        Fault::DiskFull => (K::StorageFull, "no space left on device"),
        Fault::ReadOnly => (K::ReadOnlyFilesystem, "read-only file system"),
        Fault::Torn => (K::UnexpectedEof, "the write was cut off"),
        Fault::Latency(_) => (K::Other, "latency"),
    };
    object_store::Error::Generic {
        store: "storage",
        source: Box::new(std::io::Error::new(kind, text)),
    }
}

wrapper_display!(FaultStore, "FaultStore");

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if let Some(Fault::Torn) = self.enter(Op::Put, location).await? {
            let bytes: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
            let half = bytes[..bytes.len() / 2].to_vec();
            self.inner
                .put_opts(location, half.into(), PutOptions::default())
                .await?;
            return Err(injected(&Fault::Torn));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if let Some(Fault::Torn) = self.enter(Op::Multipart, location).await? {
            // The upload goes ahead and fails at its end, having written nothing visible (as
            // a multipart upload does).
            let inner = self.inner.put_multipart_opts(location, opts).await?;
            return Ok(Box::new(TornUpload { inner }));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        self.enter(op, location).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.enter(Op::Get, location).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let plan = Arc::clone(&self.plan);
        let inner = Arc::clone(&self.inner);
        locations
            .map(move |location| {
                let plan = Arc::clone(&plan);
                let inner = Arc::clone(&inner);
                async move {
                    let location = location?;
                    let layer = FaultStore { inner, plan };
                    layer.enter(Op::Delete, &location).await?;
                    let mut done = layer
                        .inner
                        .delete_stream(futures::stream::once(async move { Ok(location) }).boxed());
                    match done.next().await {
                        Some(result) => result,
                        None => Err(injected(&Fault::Error)),
                    }
                }
            })
            .buffered(4)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let path = prefix.map(|p| p.to_string()).unwrap_or_default();
        match self.plan.fault(Op::List, &path) {
            Some(Fault::Latency(_)) | None => self.inner.list(prefix),
            Some(fault) => futures::stream::once(async move { Err(injected(&fault)) }).boxed(),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let path = prefix.map(|p| p.to_string()).unwrap_or_default();
        match self.plan.fault(Op::List, &path) {
            Some(Fault::Latency(_)) | None => self.inner.list_with_offset(prefix, offset),
            Some(fault) => futures::stream::once(async move { Err(injected(&fault)) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let path = prefix.cloned().unwrap_or_default();
        self.enter(Op::List, &path).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.enter(Op::Copy, to).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.enter(Op::Rename, to).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload that fails when it completes (and aborts, leaving nothing).
#[derive(Debug)]
struct TornUpload {
    inner: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for TornUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let _ = self.inner.abort().await;
        Err(injected(&Fault::Torn))
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

/// The process's plan from `CARELAKE_FAULTS`, read once (so that `after=` and `times=` count
/// across every handle on the lake).
pub(crate) fn process_plan() -> Result<Option<Arc<FaultPlan>>> {
    static PLAN: std::sync::OnceLock<std::result::Result<Option<Arc<FaultPlan>>, String>> =
        std::sync::OnceLock::new();
    PLAN.get_or_init(|| {
        FaultPlan::from_env().map_err(|e| match e {
            Error::Faults(text) => text,
            other => other.to_string(),
        })
    })
    .clone()
    .map_err(Error::Faults)
}

/// Wraps `store` in the plan's layer, when there is a plan.
pub(crate) fn wrap(
    store: Arc<dyn ObjectStore>,
    plan: Option<Arc<FaultPlan>>,
) -> Arc<dyn ObjectStore> {
    match plan {
        Some(plan) => Arc::new(FaultStore::new(store, plan)),
        None => store,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt as _;
    use object_store::ObjectStoreExt as _;
    use object_store::memory::InMemory;

    fn store(plan: &str) -> (FaultStore, Arc<dyn ObjectStore>) {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let plan = Arc::new(FaultPlan::parse(plan).unwrap());
        (FaultStore::new(Arc::clone(&inner), plan), inner)
    }

    #[test]
    fn plans_parse_and_bad_ones_say_why() {
        assert!(
            FaultPlan::parse("put@_delta_log/:error:after=2:times=1; read:latency=20ms").is_ok()
        );
        assert!(FaultPlan::parse("get:timeout=1.5s:p=0.25:seed=3").is_ok());
        for (bad, says) in [
            ("fetch:error", "unknown operation"),
            ("put:explode", "unknown fault"),
            ("put:latency", "needs =DURATION"),
            ("put:latency=fast", "duration"),
            ("put:error:p=2", "between 0 and 1"),
            ("put:error:when=now", "unknown option"),
        ] {
            let e = FaultPlan::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn rules_fire_on_their_operations_paths_and_counts() {
        let (s, _) = store("put@raw/:disk-full:after=1:times=2");
        let put = |p: &'static str| {
            let s = &s;
            async move { s.put(&Path::from(p), vec![1u8; 4].into()).await }
        };
        assert!(
            put("raw/t/a.parquet").await.is_ok(),
            "the first goes through"
        );
        let e = put("raw/t/b.parquet").await.unwrap_err();
        let io = match &e {
            object_store::Error::Generic { source, .. } => {
                source.downcast_ref::<std::io::Error>().unwrap().kind()
            }
            other => panic!("{other}"),
        };
        assert_eq!(io, std::io::ErrorKind::StorageFull);
        assert!(put("raw/t/c.parquet").await.is_err());
        assert!(
            put("raw/t/d.parquet").await.is_ok(),
            "two faults, then none"
        );
        assert!(put("curated/t/e.parquet").await.is_ok(), "another path");
        assert!(
            s.get(&Path::from("raw/t/a.parquet")).await.is_ok(),
            "reads are not writes"
        );
        assert_eq!(s.plan.injected(), 2);
    }

    #[tokio::test]
    async fn a_torn_write_leaves_half_the_bytes() {
        let (s, inner) = store("put:torn:times=1");
        let path = Path::from("raw/t/part.parquet");
        assert!(s.put(&path, vec![7u8; 100].into()).await.is_err());
        let left = inner.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(left.len(), 50);
    }

    #[tokio::test]
    async fn listings_and_deletes_fail_as_told() {
        let (s, inner) = store("list:unavailable:times=1; delete:error");
        inner
            .put(&Path::from("a/x"), vec![1u8].into())
            .await
            .unwrap();
        let first: object_store::Result<Vec<_>> = s.list(None).try_collect().await;
        assert!(first.is_err());
        let second: Vec<_> = s.list(None).try_collect().await.unwrap();
        assert_eq!(second.len(), 1);
        assert!(s.delete(&Path::from("a/x")).await.is_err());
        assert!(inner.head(&Path::from("a/x")).await.is_ok());
    }

    #[tokio::test]
    async fn a_plan_file_is_read_again_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("carelake-faults-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("faults");
        let plan = Arc::new(FaultPlan::from_file(file.clone()).unwrap());
        let s = FaultStore::new(Arc::new(InMemory::new()), Arc::clone(&plan));
        let path = Path::from("raw/t/a");
        assert!(
            s.put(&path, vec![1u8].into()).await.is_ok(),
            "no file: no faults"
        );
        std::fs::write(&file, "put:read-only\n").unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(s.put(&path, vec![1u8].into()).await.is_err());
        std::fs::write(&file, "# mended\n").unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(s.put(&path, vec![1u8].into()).await.is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
