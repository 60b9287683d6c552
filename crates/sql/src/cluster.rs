//! What a query needs to run on a cluster of processes (`carelake-cluster` runs them on
//! Apache Ballista): lake tables that travel by name and version, the principal's policy that
//! travels inside the plan, and codecs that carry both.
//!
//! - Every Delta table a session resolves is a `LakeTable`: the provider, its name and the
//!   version read. Sent to a scheduler, it is encoded as the name and version only; the
//!   scheduler opens that version through its own lake handle (its own credentials and key:
//!   nothing secret travels in a plan), so every process reads the same snapshot.
//! - A `ProtectedTable` travels as its policy plan (the visible rows and columns, masked),
//!   which the scheduler plans as the client would: the governance layer is the same on a
//!   cluster because it is in the plan that is sent.
//! - deltalake 1.1 has no physical codec for its scan, so the scheduler's scan of a table is a
//!   `LakeScanExec` that carries the scan request (table, version, projection, filters,
//!   limit) and a fingerprint of the plan it made. An executor replays the request on its own
//!   lake handle and refuses to run when its plan differs (other files or partitions).
//! - The identity functions (`current_user()`, `current_roles()`, `current_user_attr()`)
//!   travel with the identity they answer for; the executors' registries do not have them,
//!   so a policy can never meet another principal's answer.
//!
//! [`cluster_can_run`] decides which plans go to the cluster: reads of lake tables whose
//! functions every process of the cluster has. Writes, DDL, `system.*`, external tables and
//! model predictions run in the client's process.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use carelake_common::{TableName, Zone};
use carelake_lake::{Lake, TimeTravel};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Constraints, DataFusionError, Statistics, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result as DfResult;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, ScalarUDF, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, displayable,
};

use datafusion::prelude::SessionContext;
use datafusion_proto::logical_plan::{AsLogicalPlan, LogicalExtensionCodec};
use datafusion_proto::physical_plan::{
    AsExecutionPlan, PhysicalExtensionCodec, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use futures::TryStreamExt;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::policy::ProtectedTable;
use crate::policy::table::ProtectedExec;

/// The first bytes of everything these codecs write: `0xff` can begin no protobuf message
/// (its wire type would be 7), so a buffer of Ballista's or DataFusion's is never taken for
/// one of carelake's.
const MAGIC: [u8; 3] = [0xff, b'C', b'L'];
const KIND_TABLE: u8 = 1;
const KIND_PROTECTED: u8 = 2;
const KIND_SCAN: u8 = 3;
const KIND_PROTECTED_EXEC: u8 = 4;
const KIND_IDENTITY: u8 = 5;

fn frame(kind: u8, message: &impl Message, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&MAGIC);
    buf.push(kind);
    message.encode(buf).expect("a Vec grows as needed");
}

/// The kind and body of a buffer carelake's codecs wrote; `None` for anyone else's.
fn unframe(buf: &[u8]) -> Option<(u8, &[u8])> {
    let rest = buf.strip_prefix(&MAGIC)?;
    let (&kind, body) = rest.split_first()?;
    Some((kind, body))
}

fn decode<M: Message + Default>(body: &[u8], what: &str) -> DfResult<M> {
    M::decode(body).map_err(|e| DataFusionError::Internal(format!("decoding {what}: {e}")))
}

fn internal(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(message.into())
}

#[derive(Clone, PartialEq, Message)]
struct TableMsg {
    #[prost(string, tag = "1")]
    zone: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(uint64, tag = "3")]
    version: u64,
}

impl TableMsg {
    fn of(name: &TableName, version: u64) -> Self {
        Self {
            zone: name.zone.as_str().to_string(),
            name: name.name.clone(),
            version,
        }
    }

    /// The table named (never anything outside the zones: a zone is one of three words).
    fn table(&self) -> DfResult<TableName> {
        let zone: Zone = self
            .zone
            .parse()
            .map_err(|_| internal(format!("a plan names the zone '{}'", self.zone)))?;
        TableName::new(zone, self.name.clone()).map_err(|e| internal(e.to_string()))
    }
}

#[derive(Clone, PartialEq, Message)]
struct ProtectedMsg {
    #[prost(message, optional, tag = "1")]
    table: Option<TableMsg>,
    #[prost(bytes = "vec", tag = "2")]
    plan: Vec<u8>,
    #[prost(string, repeated, tag = "3")]
    pushable: Vec<String>,
    #[prost(bool, tag = "4")]
    can_select: bool,
}

#[derive(Clone, PartialEq, Message)]
struct ScanMsg {
    #[prost(message, optional, tag = "1")]
    table: Option<TableMsg>,
    #[prost(bool, tag = "2")]
    projected: bool,
    #[prost(uint64, repeated, tag = "3")]
    projection: Vec<u64>,
    #[prost(bytes = "vec", tag = "4")]
    filters: Vec<u8>,
    #[prost(uint64, optional, tag = "5")]
    limit: Option<u64>,
    #[prost(string, tag = "6")]
    fingerprint: String,
    #[prost(bytes = "vec", tag = "7")]
    schema: Vec<u8>,
    #[prost(uint64, tag = "8")]
    partitions: u64,
}

#[derive(Clone, PartialEq, Message)]
struct ProtectedExecMsg {
    #[prost(string, tag = "1")]
    table: String,
    #[prost(bytes = "vec", tag = "2")]
    plan: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct IdentityMsg {
    #[prost(string, tag = "1")]
    function: String,
    #[prost(string, tag = "2")]
    user: String,
    #[prost(string, repeated, tag = "3")]
    roles: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    attribute_names: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    attribute_values: Vec<String>,
}

/// A Delta table of the lake as a plan reads it: one version of one table.
pub(crate) struct LakeTable {
    name: TableName,
    version: u64,
    source: Source,
}

enum Source {
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

    fn remote(name: TableName, version: u64, lake: Lake, schema: SchemaRef) -> Self {
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
async fn open_at(lake: &Lake, name: &TableName, version: u64) -> DfResult<Arc<dyn TableProvider>> {
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
fn fingerprint(plan: &Arc<dyn ExecutionPlan>) -> String {
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
fn taken_filters(provider: &dyn TableProvider, filters: &[Expr]) -> DfResult<Vec<Expr>> {
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
struct ScanRequest {
    name: TableName,
    version: u64,
    projection: Option<Vec<usize>>,
    filters: Vec<Expr>,
    limit: Option<usize>,
    fingerprint: String,
}

enum ScanPlan {
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
    request: ScanRequest,
    properties: Arc<PlanProperties>,
    plan: ScanPlan,
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

/// The logical codec of a cluster's processes: lake tables and protected tables by the rules
/// above, the identity functions with their identity; anything else goes to `fallback`
/// (Ballista's codec).
pub struct LakeLogicalCodec {
    lake: Option<Lake>,
    fallback: Arc<dyn LogicalExtensionCodec>,
}

impl fmt::Debug for LakeLogicalCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeLogicalCodec").finish_non_exhaustive()
    }
}

impl LakeLogicalCodec {
    /// A codec that decodes tables through `lake` (a scheduler's) or, without one, only
    /// encodes them (a client's).
    pub fn new(lake: Option<Lake>, fallback: Arc<dyn LogicalExtensionCodec>) -> Self {
        Self { lake, fallback }
    }

    fn lake(&self) -> DfResult<&Lake> {
        self.lake
            .as_ref()
            .ok_or_else(|| internal("this process has no lake to open the plan's tables in"))
    }
}

fn plan_bytes(plan: &LogicalPlan, codec: &dyn LogicalExtensionCodec) -> DfResult<Vec<u8>> {
    let node = LogicalPlanNode::try_from_logical_plan(plan, codec)?;
    Ok(node.encode_to_vec())
}

/// The function half of both codecs, the same in each: carelake's SQL functions travel by
/// name (and are rebuilt from the registry on the other side), everything else as DataFusion
/// encodes it.
macro_rules! function_codecs {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
            match decode_identity(name, buf)? {
                Some(udf) => Ok(udf),
                None => self.fallback.try_decode_udf(name, buf),
            }
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
            if encode_identity(node, buf) {
                return Ok(());
            }
            self.fallback.try_encode_udf(node, buf)
        }

        fn try_decode_udaf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> DfResult<Arc<datafusion::logical_expr::AggregateUDF>> {
            self.fallback.try_decode_udaf(name, buf)
        }

        fn try_encode_udaf(
            &self,
            node: &datafusion::logical_expr::AggregateUDF,
            buf: &mut Vec<u8>,
        ) -> DfResult<()> {
            self.fallback.try_encode_udaf(node, buf)
        }

        fn try_decode_udwf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> DfResult<Arc<datafusion::logical_expr::WindowUDF>> {
            self.fallback.try_decode_udwf(name, buf)
        }

        fn try_encode_udwf(
            &self,
            node: &datafusion::logical_expr::WindowUDF,
            buf: &mut Vec<u8>,
        ) -> DfResult<()> {
            self.fallback.try_encode_udwf(node, buf)
        }
    };
}

impl LogicalExtensionCodec for LakeLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.fallback.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.fallback.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match unframe(buf) {
            Some((KIND_TABLE, body)) => {
                let msg: TableMsg = decode(body, "a lake table")?;
                Ok(Arc::new(LakeTable::remote(
                    msg.table()?,
                    msg.version,
                    self.lake()?.clone(),
                    schema,
                )))
            }
            Some((KIND_PROTECTED, body)) => {
                let msg: ProtectedMsg = decode(body, "a protected table")?;
                let table = msg
                    .table
                    .as_ref()
                    .ok_or_else(|| internal("a protected table without its name"))?
                    .table()?;
                let plan = LogicalPlanNode::decode(msg.plan.as_slice())
                    .map_err(|e| internal(format!("decoding a policy plan: {e}")))?
                    .try_into_logical_plan(ctx, self)?;
                let protected =
                    ProtectedTable::from_read_parts(table, plan, msg.pushable, msg.can_select);
                if protected.schema() != schema {
                    return Err(internal(format!(
                        "the policy plan of {} does not give the table's columns",
                        protected.name()
                    )));
                }
                Ok(Arc::new(protected))
            }
            Some((kind, _)) => Err(internal(format!("an unknown table kind {kind}"))),
            None => self
                .fallback
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        if let Some(table) = node.downcast_ref::<LakeTable>() {
            frame(KIND_TABLE, &TableMsg::of(&table.name, table.version), buf);
            return Ok(());
        }
        if let Some(protected) = node.downcast_ref::<ProtectedTable>() {
            let (plan, pushable, can_select) = protected.read_parts();
            let msg = ProtectedMsg {
                table: Some(TableMsg::of(protected.name(), 0)),
                plan: plan_bytes(plan, self)?,
                pushable,
                can_select,
            };
            frame(KIND_PROTECTED, &msg, buf);
            return Ok(());
        }
        self.fallback
            .try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.fallback.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> DfResult<()> {
        self.fallback.try_encode_file_format(buf, node)
    }

    function_codecs!();
}

/// Writes an identity function with the identity it answers for; `false` for any other.
fn encode_identity(node: &ScalarUDF, buf: &mut Vec<u8>) -> bool {
    let Some(identity) = crate::policy::functions::identity_of(node) else {
        return false;
    };
    let (attribute_names, attribute_values) = identity.attributes.iter().cloned().unzip();
    let msg = IdentityMsg {
        function: node.name().to_string(),
        user: identity.user.clone(),
        roles: identity.roles.clone(),
        attribute_names,
        attribute_values,
    };
    frame(KIND_IDENTITY, &msg, buf);
    true
}

fn decode_identity(name: &str, buf: &[u8]) -> DfResult<Option<Arc<ScalarUDF>>> {
    let Some((KIND_IDENTITY, body)) = unframe(buf) else {
        return Ok(None);
    };
    let msg: IdentityMsg = decode(body, "an identity function")?;
    let identity = crate::policy::functions::Identity {
        user: msg.user,
        roles: msg.roles,
        attributes: msg
            .attribute_names
            .into_iter()
            .zip(msg.attribute_values)
            .collect(),
    };
    crate::policy::functions::identity_function(name, identity)
        .map(|f| Some(Arc::new(f)))
        .ok_or_else(|| internal(format!("{name} is not an identity function")))
}

/// The physical codec of a cluster's processes: protected scans with the plan inside them,
/// lake scans as their requests; anything else goes to `fallback` (Ballista's codec).
pub struct LakePhysicalCodec {
    lake: Option<Lake>,
    logical: Arc<LakeLogicalCodec>,
    fallback: Arc<dyn PhysicalExtensionCodec>,
}

impl fmt::Debug for LakePhysicalCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakePhysicalCodec").finish_non_exhaustive()
    }
}

impl LakePhysicalCodec {
    /// A codec whose decoded scans replay on `lake` (an executor's).
    pub fn new(
        lake: Option<Lake>,
        logical: Arc<LakeLogicalCodec>,
        fallback: Arc<dyn PhysicalExtensionCodec>,
    ) -> Self {
        Self {
            lake,
            logical,
            fallback,
        }
    }
}

impl PhysicalExtensionCodec for LakePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match unframe(buf) {
            Some((KIND_PROTECTED_EXEC, body)) => {
                let msg: ProtectedExecMsg = decode(body, "a protected scan")?;
                let inner = PhysicalPlanNode::decode(msg.plan.as_slice())
                    .map_err(|e| internal(format!("decoding a protected scan: {e}")))?
                    .try_into_physical_plan(ctx, self)?;
                Ok(Arc::new(ProtectedExec::new(msg.table, inner)))
            }
            Some((KIND_SCAN, body)) => {
                let msg: ScanMsg = decode(body, "a lake scan")?;
                let lake = self
                    .lake
                    .clone()
                    .ok_or_else(|| internal("this process has no lake to scan"))?;
                let name = msg
                    .table
                    .as_ref()
                    .ok_or_else(|| internal("a lake scan without its table"))?
                    .table()?;
                let list =
                    datafusion_proto::protobuf::LogicalExprList::decode(msg.filters.as_slice())
                        .map_err(|e| internal(format!("decoding a scan's filters: {e}")))?;
                let filters = datafusion_proto::logical_plan::from_proto::parse_exprs(
                    &list.expr,
                    ctx,
                    self.logical.as_ref(),
                )?;
                let schema_node = datafusion_proto::protobuf::Schema::decode(msg.schema.as_slice())
                    .map_err(|e| internal(format!("decoding a scan's schema: {e}")))?;
                let schema: Schema = (&schema_node).try_into()?;
                let properties = PlanProperties::new(
                    EquivalenceProperties::new(Arc::new(schema)),
                    Partitioning::UnknownPartitioning(msg.partitions as usize),
                    EmissionType::Incremental,
                    Boundedness::Bounded,
                );
                Ok(Arc::new(LakeScanExec {
                    request: ScanRequest {
                        version: msg.table.as_ref().map(|t| t.version).unwrap_or_default(),
                        name,
                        projection: msg
                            .projected
                            .then(|| msg.projection.iter().map(|&i| i as usize).collect()),
                        filters,
                        limit: msg.limit.map(|l| l as usize),
                        fingerprint: msg.fingerprint,
                    },
                    properties: Arc::new(properties),
                    plan: ScanPlan::Replay {
                        lake,
                        planned: Arc::new(tokio::sync::OnceCell::new()),
                    },
                }))
            }
            Some((kind, _)) => Err(internal(format!("an unknown plan kind {kind}"))),
            None => self.fallback.try_decode(buf, inputs, ctx, proto_converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if let Some(protected) = node.downcast_ref::<ProtectedExec>() {
            let (table, inner) = protected.parts();
            let plan = PhysicalPlanNode::try_from_physical_plan(Arc::clone(inner), self)?;
            let msg = ProtectedExecMsg {
                table: table.to_string(),
                plan: plan.encode_to_vec(),
            };
            frame(KIND_PROTECTED_EXEC, &msg, buf);
            return Ok(());
        }
        if let Some(scan) = node.downcast_ref::<LakeScanExec>() {
            let request = &scan.request;
            let filters = datafusion_proto::logical_plan::to_proto::serialize_exprs(
                &request.filters,
                self.logical.as_ref(),
            )?;
            let schema = datafusion_proto::protobuf::Schema::try_from(
                scan.properties.eq_properties.schema().as_ref(),
            )?;
            let msg = ScanMsg {
                table: Some(TableMsg::of(&request.name, request.version)),
                projected: request.projection.is_some(),
                projection: request
                    .projection
                    .iter()
                    .flatten()
                    .map(|&i| i as u64)
                    .collect(),
                filters: datafusion_proto::protobuf::LogicalExprList { expr: filters }
                    .encode_to_vec(),
                limit: request.limit.map(|l| l as u64),
                fingerprint: request.fingerprint.clone(),
                schema: schema.encode_to_vec(),
                partitions: scan.properties.partitioning.partition_count() as u64,
            };
            frame(KIND_SCAN, &msg, buf);
            return Ok(());
        }
        self.fallback.try_encode(node, buf, proto_converter)
    }

    function_codecs!();
}

/// carelake's functions as a cluster's processes have them: the SQL functions, the
/// standard-code and risk functions and the masks keyed with the lake's secret. Not the
/// identity functions (they travel with each plan) nor model predictions (queries that
/// call them run in the client).
pub async fn cluster_functions(lake: &Lake) -> crate::Result<Vec<Arc<ScalarUDF>>> {
    let ctx = SessionContext::new();
    let builtin: HashSet<String> = ctx.state().scalar_functions().keys().cloned().collect();
    crate::functions::register(&ctx);
    crate::policy::functions::register_masks(&ctx, &lake.secret().await?);
    Ok(ctx
        .state()
        .scalar_functions()
        .iter()
        .filter(|(name, _)| !builtin.contains(*name))
        .map(|(_, f)| Arc::clone(f))
        .collect())
}

/// The runtime of a cluster's process: object stores confined to the lake (as every
/// session's), and for an encrypted lake no spill files (they would hold plaintext rows
/// outside the lake).
pub fn cluster_runtime(lake: &Lake, temp_dir: Option<&str>) -> crate::Result<Arc<RuntimeEnv>> {
    let registry = Arc::new(crate::surface::LakeRegistry::new(lake.table_root().clone()));
    let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(registry as _);
    if lake.is_encrypted() {
        runtime = runtime.with_disk_manager_builder(
            datafusion::execution::disk_manager::DiskManagerBuilder::default()
                .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
        );
    } else if let Some(dir) = temp_dir {
        runtime = runtime.with_temp_file_path(dir);
    }
    Ok(runtime.build_arc()?)
}

/// Names of the functions every process of a cluster has: DataFusion's and carelake's
/// (the identity functions are checked apart).
static CLUSTER_FUNCTIONS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let ctx = SessionContext::new();
    crate::functions::register(&ctx);
    crate::policy::functions::register_masks(&ctx, b"names only");
    let state = ctx.state();
    state
        .scalar_functions()
        .keys()
        .chain(state.aggregate_functions().keys())
        .chain(state.window_functions().keys())
        .cloned()
        .collect()
});

/// Whether `plan` can run on a cluster: a query (no write, DDL, statement or EXPLAIN) that
/// reads at least one lake table, reads nothing but lake tables (protected or not), and calls
/// only functions every process of the cluster has.
pub fn cluster_can_run(plan: &LogicalPlan) -> bool {
    if matches!(
        plan,
        LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Extension(_)
    ) {
        return false;
    }
    let mut lake_scans = 0usize;
    serializable(plan, &mut lake_scans) && lake_scans > 0
}

/// Whether every node of `plan` (and of the policy plans of the protected tables it reads)
/// can travel: lake tables only, no extension node, no subquery expression left (datafusion-
/// proto has none), only functions every process has. Counts the lake scans.
fn serializable(plan: &LogicalPlan, lake_scans: &mut usize) -> bool {
    let mut ok = true;
    let walked = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => match source_as_provider(&scan.source) {
                Ok(provider) if provider.downcast_ref::<LakeTable>().is_some() => {
                    *lake_scans += 1;
                }
                Ok(provider) => match provider.downcast_ref::<ProtectedTable>() {
                    Some(protected) => {
                        *lake_scans += 1;
                        let (inner, _, _) = protected.read_parts();
                        let mut inner_scans = 0;
                        ok = serializable(inner, &mut inner_scans);
                    }
                    None => ok = false,
                },
                Err(_) => ok = false,
            },
            LogicalPlan::Extension(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_) => ok = false,
            _ => {}
        }
        if ok {
            for expr in node.expressions() {
                let _ = expr.apply(|e| {
                    let known = match e {
                        Expr::ScalarFunction(f) => {
                            crate::policy::functions::identity_of(&f.func).is_some()
                                || CLUSTER_FUNCTIONS.contains(f.func.name())
                        }
                        Expr::AggregateFunction(f) => CLUSTER_FUNCTIONS.contains(f.func.name()),
                        Expr::WindowFunction(f) => CLUSTER_FUNCTIONS.contains(f.fun.name()),
                        Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_) => false,
                        _ => true,
                    };
                    if !known {
                        ok = false;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
            }
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    walked.is_ok() && ok
}

static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many queries this process's sessions have sent to a cluster.
pub fn queries_sent() -> u64 {
    SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// The query planner of a session attached to a cluster: what [`cluster_can_run`] allows
/// goes to `remote` (Ballista's planner), everything else is planned here.
pub(crate) struct RoutingPlanner {
    pub(crate) remote: Arc<dyn QueryPlanner + Send + Sync>,
    /// The session's own planner (deltalake's, which plans its write nodes).
    pub(crate) local: Arc<dyn QueryPlanner + Send + Sync>,
}

impl fmt::Debug for RoutingPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutingPlanner").finish_non_exhaustive()
    }
}

#[async_trait]
impl QueryPlanner for RoutingPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn DfSession,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if cluster_can_run(logical_plan) {
            tracing::debug!("query planned on the cluster");
            SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.remote
                .create_physical_plan(logical_plan, session_state)
                .await
        } else {
            self.local
                .create_physical_plan(logical_plan, session_state)
                .await
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
