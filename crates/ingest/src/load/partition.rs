//! The bridge into DataFusion: a one-shot partition stream fed by the conversion thread, so
//! that deltalake's writer pulls batches as they are made.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use tokio::sync::mpsc;

/// A one-shot partition fed by the conversion thread.
pub(super) struct ChannelPartition {
    pub(super) schema: SchemaRef,
    pub(super) receiver:
        Mutex<Option<mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>>>,
}

impl ChannelPartition {
    pub(super) fn new(
        schema: SchemaRef,
        receiver: mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>,
    ) -> Self {
        Self {
            schema,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl fmt::Debug for ChannelPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelPartition").finish_non_exhaustive()
    }
}

impl PartitionStream for ChannelPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let receiver = self.receiver.lock().ok().and_then(|mut r| r.take());
        // The rows of a load can be read once; a second read would silently see nothing.
        let first: Option<std::result::Result<RecordBatch, DataFusionError>> =
            receiver.is_none().then(|| {
                Err(DataFusionError::Internal(
                    "the load's input stream was already consumed".into(),
                ))
            });
        let failed = futures::stream::iter(first);
        let rows = futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let item = receiver.recv().await?;
            Some((item, Some(receiver)))
        });
        let stream = futures::StreamExt::chain(failed, rows);
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}
