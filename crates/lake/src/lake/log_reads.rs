//! Delta log reads with bounded memory: every table the lake opens reaches its log through
//! [`BoundedReads`], a log store that hands deltalake a kernel engine reading at most
//! [`READ_AHEAD`] log files at a time in batches of [`BATCH_ROWS`] actions.
//!
//! Why: deltalake 1.1 builds the kernel's default engine with a read-ahead of 1,000 files and
//! batches of 1,000 rows. A replay of a table's log (a fresh load, a `txn` lookup, a
//! checkpoint) opens every commit file since the last checkpoint at once — up to a hundred —
//! and arrow's JSON decoder reserves its token tape for a whole batch of the action schema up
//! front: about 2.6 MB per open file. In a 10-minute soak (streamed events flushed every
//! second, MLLP committing per group, the audit log per statement) those reservations were
//! 178 MB of the server's 196 MB peak heap (heaptrack), and the resident memory grew with
//! them. Commit files hold a few actions each, so small batches cost nothing there; a
//! checkpoint is read in more, smaller batches. Everything else is the wrapped store's.

use std::num::NonZeroUsize;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::object_store::ObjectStoreUrl;
use delta_kernel::Engine;
use delta_kernel_engine::DefaultEngineBuilder;
use delta_kernel_engine::executor::tokio::{TokioBackgroundExecutor, TokioMultiThreadExecutor};
use deltalake::DeltaResult;
use deltalake::kernel::Version;
use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::{CommitOrBytes, LogStore, LogStoreConfig, LogStoreRef};
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::runtime::{Handle, RuntimeFlavor};
use url::Url;
use uuid::Uuid;

/// Log files read at the same time by one replay.
pub(crate) const READ_AHEAD: NonZeroUsize = NonZeroUsize::new(16).unwrap();

/// Rows (actions) per batch read from a log file or checkpoint.
pub(crate) const BATCH_ROWS: NonZeroUsize = NonZeroUsize::new(256).unwrap();

/// A log store that replays its log with bounded read-ahead; see the module documentation.
pub(crate) struct BoundedReads {
    inner: LogStoreRef,
}

impl BoundedReads {
    /// `inner` with bounded log reads (itself when it has them already).
    pub(crate) fn wrap(inner: LogStoreRef) -> LogStoreRef {
        if delta_kernel::AsAny::as_any(Arc::clone(&inner)).is::<BoundedReads>() {
            return inner;
        }
        Arc::new(BoundedReads { inner })
    }
}

/// A kernel engine on `store` with bounded reads, on the current Tokio runtime as deltalake's
/// own is (a background thread's runtime outside a multi-threaded one).
pub(crate) fn bounded_engine(store: Arc<dyn ObjectStore>) -> Arc<dyn Engine> {
    let builder = DefaultEngineBuilder::new(store)
        .with_buffer_size(READ_AHEAD)
        .with_batch_size(BATCH_ROWS);
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => Arc::new(
            builder
                .with_task_executor(Arc::new(TokioMultiThreadExecutor::new(handle)))
                .build(),
        ),
        _ => Arc::new(
            builder
                .with_task_executor(Arc::new(TokioBackgroundExecutor::new()))
                .build(),
        ),
    }
}

#[async_trait::async_trait]
impl LogStore for BoundedReads {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn refresh(&self) -> DeltaResult<()> {
        self.inner.refresh().await
    }

    async fn read_commit_entry(&self, version: Version) -> DeltaResult<Option<Bytes>> {
        self.inner.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.inner
            .write_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn abort_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.inner
            .abort_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn get_latest_version(&self, start_version: Version) -> DeltaResult<Version> {
        self.inner.get_latest_version(start_version).await
    }

    fn object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.object_store(operation_id)
    }

    fn root_object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.root_object_store(operation_id)
    }

    fn engine(&self, operation_id: Option<Uuid>) -> Arc<dyn Engine> {
        bounded_engine(self.inner.root_object_store(operation_id))
    }

    fn to_uri(&self, location: &Path) -> String {
        self.inner.to_uri(location)
    }

    fn root_url(&self) -> &Url {
        self.inner.root_url()
    }

    fn log_path(&self) -> &Path {
        self.inner.log_path()
    }

    fn transaction_url(&self, operation_id: Option<Uuid>) -> DeltaResult<Url> {
        self.inner.transaction_url(operation_id)
    }

    async fn is_delta_table_location(&self) -> DeltaResult<bool> {
        self.inner.is_delta_table_location().await
    }

    fn config(&self) -> &LogStoreConfig {
        self.inner.config()
    }

    fn object_store_url(&self) -> ObjectStoreUrl {
        self.inner.object_store_url()
    }
}
