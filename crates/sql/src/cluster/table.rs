//! A lake table as a cluster plan reads it (one version, by name) and its scan, which an
//! executor replays on its own lake handle.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use carelake_common::TableName;
use carelake_lake::{Lake, TimeTravel};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{Constraints, DataFusionError, Statistics};
use datafusion::error::Result as DfResult;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, displayable,
};

use futures::TryStreamExt;
use sha2::{Digest, Sha256};

/// A Delta table of the lake as a plan reads it: one version of one table.
pub(crate) struct LakeTable {
    pub(super) name: TableName,
    pub(super) version: u64,
    pub(super) source: Source,
}

pub(super) enum Source {
    /// Opened by the session that planned the query.
    Open(Arc<dyn TableProvider>),
    /// Decoded on a scheduler: opened at its version when it is first scanned.
    Remote {
        lake: Lake,
        schema: SchemaRef,
        opened: tokio::sync::OnceCell<Arc<dyn TableProvider>>,
    },
}

impl fmt::Debug for LakeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeTable")
            .field("name", &self.name.to_string())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl LakeTable {
    /// The table and the Delta version read.
    pub(crate) fn version(&self) -> (&TableName, u64) {
        (&self.name, self.version)
    }

    /// The provider of a Delta table opened at `version`.
    pub(crate) fn new(name: TableName, version: u64, provider: Arc<dyn TableProvider>) -> Self {
        Self {
            name,
            version,
            source: Source::Open(provider),
        }
    }

    pub(super) fn remote(name: TableName, version: u64, lake: Lake, schema: SchemaRef) -> Self {
        Self {
            name,
            version,
            source: Source::Remote {
                lake,
                schema,
                opened: tokio::sync::OnceCell::new(),
            },
        }
    }
}

/// Opens `name` at `version` through `lake` (the process's own handle).
pub(super) async fn open_at(
    lake: &Lake,
    name: &TableName,
    version: u64,
) -> DfResult<Arc<dyn TableProvider>> {
    let lake_error = |e: carelake_lake::Error| DataFusionError::External(Box::new(e));
    let url = lake.table_url(name).map_err(lake_error)?;
    let table = lake
        .load_delta(&url, TimeTravel::Version(version))
        .await
        .map_err(lake_error)?
        .ok_or_else(|| {
            DataFusionError::Plan(format!("{name} has no version {version} in this lake"))
        })?;
    table
        .table_provider()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// A fingerprint of a scan's plan: its files, their groups and what is read of them.
pub(super) fn fingerprint(plan: &Arc<dyn ExecutionPlan>) -> String {
    let text = displayable(plan.as_ref()).indent(true).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        match &self.source {
            Source::Open(provider) => provider.schema(),
            Source::Remote { schema, .. } => Arc::clone(schema),
        }
    }

    fn constraints(&self) -> Option<&Constraints> {
        match &self.source {
            Source::Open(provider) => provider.constraints(),
            Source::Remote { .. } => None,
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        match &self.source {
            Source::Open(provider) => provider.supports_filters_pushdown(filters),
            // Not opened yet: every filter is offered and kept above the scan as well; the
            // scan passes on only those the Delta provider takes.
            Source::Remote { .. } => Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()]),
        }
    }

    fn statistics(&self) -> Option<Statistics> {
        match &self.source {
            Source::Open(provider) => provider.statistics(),
            Source::Remote { .. } => None,
        }
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match &self.source {
            Source::Open(provider) => provider.scan(state, projection, filters, limit).await,
            Source::Remote { lake, opened, .. } => {
                let provider = opened
                    .get_or_try_init(|| open_at(lake, &self.name, self.version))
                    .await?;
                let filters = taken_filters(provider.as_ref(), filters)?;
                let plan = provider.scan(state, projection, &filters, limit).await?;
                Ok(Arc::new(LakeScanExec {
                    request: ScanRequest {
                        name: self.name.clone(),
                        version: self.version,
                        projection: projection.cloned(),
                        filters,
                        limit,
                        fingerprint: fingerprint(&plan),
                    },
                    properties: Arc::clone(plan.properties()),
                    plan: ScanPlan::Ready(plan),
                }))
            }
        }
    }

    async fn insert_into(
        &self,
        state: &dyn DfSession,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match &self.source {
            Source::Open(provider) => provider.insert_into(state, input, insert_op).await,
            Source::Remote { .. } => Err(DataFusionError::Plan(format!(
                "INSERT on {}: a cluster only reads",
                self.name
            ))),
        }
    }
}

/// The filters a Delta provider takes into its scan (the rest stay above it).
pub(super) fn taken_filters(provider: &dyn TableProvider, filters: &[Expr]) -> DfResult<Vec<Expr>> {
    let refs: Vec<&Expr> = filters.iter().collect();
    let support = provider.supports_filters_pushdown(&refs)?;
    Ok(filters
        .iter()
        .zip(support)
        .filter(|(_, s)| *s != TableProviderFilterPushDown::Unsupported)
        .map(|(f, _)| f.clone())
        .collect())
}

/// What a scan of one table version was asked, to be replayed on an executor.
#[derive(Debug, Clone)]
pub(super) struct ScanRequest {
    pub(super) name: TableName,
    pub(super) version: u64,
    pub(super) projection: Option<Vec<usize>>,
    pub(super) filters: Vec<Expr>,
    pub(super) limit: Option<usize>,
    pub(super) fingerprint: String,
}

pub(super) enum ScanPlan {
    /// Planned in this process.
    Ready(Arc<dyn ExecutionPlan>),
    /// Decoded on an executor: replayed on the executor's lake handle when first executed.
    Replay {
        lake: Lake,
        planned: Arc<tokio::sync::OnceCell<Arc<dyn ExecutionPlan>>>,
    },
}

/// The scan of a [`LakeTable`] on a cluster: a leaf that carries its request.
pub(crate) struct LakeScanExec {
    pub(super) request: ScanRequest,
    pub(super) properties: Arc<PlanProperties>,
    pub(super) plan: ScanPlan,
}

impl fmt::Debug for LakeScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeScanExec")
            .field("table", &self.request.name.to_string())
            .field("version", &self.request.version)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for LakeScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LakeScan: {}@v{}",
            self.request.name, self.request.version
        )
    }
}

impl LakeScanExec {
    async fn replayed(
        request: &ScanRequest,
        lake: &Lake,
        context: &Arc<TaskContext>,
        partitions: usize,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let provider = open_at(lake, &request.name, request.version).await?;
        let state = SessionStateBuilder::new()
            .with_config(context.session_config().clone())
            .with_runtime_env(context.runtime_env())
            .build();
        let plan = provider
            .scan(
                &state,
                request.projection.as_ref(),
                &request.filters,
                request.limit,
            )
            .await?;
        if fingerprint(&plan) != request.fingerprint
            || plan.properties().partitioning.partition_count() != partitions
        {
            return Err(DataFusionError::Execution(format!(
                "the scan of {}@v{} planned on this executor differs from the scheduler's \
                 (another deltalake version or configuration?)",
                request.name, request.version
            )));
        }
        Ok(plan)
    }
}

impl ExecutionPlan for LakeScanExec {
    fn name(&self) -> &'static str {
        "LakeScan"
    }

    leaf_plan_methods!();

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        match &self.plan {
            ScanPlan::Ready(plan) => plan.execute(partition, context),
            ScanPlan::Replay { lake, planned } => {
                let request = self.request.clone();
                let lake = lake.clone();
                let planned = Arc::clone(planned);
                let partitions = self.properties.partitioning.partition_count();
                let stream = futures::stream::once(async move {
                    let plan = planned
                        .get_or_try_init(|| Self::replayed(&request, &lake, &context, partitions))
                        .await?;
                    plan.execute(partition, context)
                })
                .try_flatten();
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(self.properties.eq_properties.schema()),
                    stream,
                )))
            }
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Open(_) => f.write_str("Open"),
            Source::Remote { .. } => f.write_str("Remote"),
        }
    }
}
