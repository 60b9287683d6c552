//! Resource limits of the sessions a server opens: a memory pool for the whole process that
//! every session draws from, each session capped at its own share (a session runs one
//! statement at a time per connection, so the share bounds a query), and a row limit applied
//! inside the plan, so that a result larger than a client may receive is never collected.
//!
//! The process pool is DataFusion's `FairSpillPool`: operators that can spill (sorts,
//! aggregations, joins that support it) spill to disk when their share is used up; the
//! others fail with "Resources exhausted", which ends that statement only. The limits are set
//! once per process ([`limit_memory`], by `carelake serve`); without them a session's memory is
//! not bounded (the command line, acting as the lake's owner).
//!
//! Parquet footers read by scans are kept in one cache for the whole process
//! ([`session_caches`], `CARELAKE_FOOTER_CACHE_MB`, default 64), not one per session:
//! DataFusion's default gives every session its own 50 MB footer cache plus a 20 MB statistics
//! cache, so a server's long-lived sessions (an HTTP user, each Postgres connection, the
//! scheduler) each filled their own with footers of files that compaction had long replaced.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use datafusion::common::DataFusionError;
use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, CachedFileMetadataEntry, FileMetadataCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use object_store::path::Path;

/// The footer cache all sessions of the process share.
type Footers = DefaultCache<Path, CachedFileMetadataEntry>;

static FOOTERS: LazyLock<(Arc<Footers>, usize)> = LazyLock::new(|| {
    let mb = std::env::var("CARELAKE_FOOTER_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(64);
    let bytes = mb << 20;
    (
        Arc::new(Footers::new(bytes).with_name("carelake footers")),
        bytes,
    )
});

/// The runtime caches of a new session: the process's footer cache, and no per-session
/// statistics or listing caches (lake tables are Delta tables, whose files the log lists; the
/// external tables that list folders read them afresh, so a file added is seen at once).
pub(crate) fn session_caches() -> CacheManagerConfig {
    let (cache, bytes) = &*FOOTERS;
    CacheManagerConfig::default()
        .with_file_metadata_cache(Some(Arc::clone(cache) as Arc<FileMetadataCache>))
        .with_metadata_cache_limit(*bytes)
        .with_file_statistics_cache_limit(0)
        .with_list_files_cache_limit(0)
}

/// Bytes the process's footer cache holds now.
pub fn footer_cache_bytes() -> usize {
    FOOTERS.0.memory_used()
}

static LIMITS: OnceLock<(Arc<dyn MemoryPool>, usize)> = OnceLock::new();

/// Bounds the memory of every session opened from now on in this process: `process_bytes`
/// in all, `session_bytes` for any one session. `false` when limits were set already (they
/// are set once).
pub fn limit_memory(process_bytes: usize, session_bytes: usize) -> bool {
    let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(process_bytes.max(1 << 20)));
    LIMITS
        .set((
            pool,
            session_bytes.clamp(1 << 20, process_bytes.max(1 << 20)),
        ))
        .is_ok()
}

/// The pool for a new session, when limits are set.
pub(crate) fn session_pool() -> Option<Arc<dyn MemoryPool>> {
    let (process, limit) = LIMITS.get()?;
    Some(Arc::new(SessionPool {
        process: Arc::clone(process),
        limit: *limit,
        used: AtomicUsize::new(0),
    }))
}

/// One session's share of the process pool.
#[derive(Debug)]
struct SessionPool {
    process: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl std::fmt::Display for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session pool ({} of {} bytes)",
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

impl MemoryPool for SessionPool {
    fn name(&self) -> &str {
        "carelake session"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.process.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.process.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.process.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.process.shrink(reservation, shrink);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::common::Result<()> {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(additional);
            if next > self.limit {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "the statement needs more than the session memory limit of {} MiB ({} MiB in use, {} MiB more asked for by {})",
                    self.limit >> 20,
                    current >> 20,
                    additional.div_ceil(1 << 20),
                    reservation.consumer().name()
                )));
            }
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if let Err(e) = self.process.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

tokio::task_local! {
    /// The most rows a query run in this task may produce (see [`Session::sql_all_limited`]).
    ///
    /// [`Session::sql_all_limited`]: crate::Session::sql_all_limited
    pub(crate) static ROW_LIMIT: usize;
}

/// The row limit of the current task, if any.
pub(crate) fn row_limit() -> Option<usize> {
    ROW_LIMIT.try_with(|n| *n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn a_session_is_held_to_its_share_and_gives_it_back() {
        let process: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100));
        let pool: Arc<dyn MemoryPool> = Arc::new(SessionPool {
            process: Arc::clone(&process),
            limit: 60,
            used: AtomicUsize::new(0),
        });
        let a = MemoryConsumer::new("a").register(&pool);
        a.try_grow(50).unwrap();
        assert!(a.try_grow(20).is_err(), "over the session's share");
        assert_eq!(pool.reserved(), 50);
        assert_eq!(process.reserved(), 50);
        // Another session's use counts against the process pool.
        let other: Arc<dyn MemoryPool> = Arc::new(SessionPool {
            process: Arc::clone(&process),
            limit: 60,
            used: AtomicUsize::new(0),
        });
        let b = MemoryConsumer::new("b").register(&other);
        assert!(b.try_grow(60).is_err(), "over what the process has left");
        assert_eq!(other.reserved(), 0);
        b.try_grow(40).unwrap();
        a.free();
        assert_eq!(pool.reserved(), 0);
        assert_eq!(process.reserved(), 40);
    }
}
