//! The logical and physical codecs of a cluster's processes.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use carelake_lake::Lake;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{ExecutionPlan, Partitioning, PlanProperties};

use datafusion_proto::logical_plan::{AsLogicalPlan, LogicalExtensionCodec};
use datafusion_proto::physical_plan::{
    AsExecutionPlan, PhysicalExtensionCodec, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use prost::Message;

use super::table::*;
use super::wire::*;
use crate::policy::ProtectedTable;
use crate::policy::table::ProtectedExec;

/// The logical codec of a cluster's processes: lake tables and protected tables by the rules
/// above, the identity functions with their identity; anything else goes to `fallback`
/// (Ballista's codec).
pub struct LakeLogicalCodec {
    pub(super) lake: Option<Lake>,
    pub(super) fallback: Arc<dyn LogicalExtensionCodec>,
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

pub(super) fn plan_bytes(
    plan: &LogicalPlan,
    codec: &dyn LogicalExtensionCodec,
) -> DfResult<Vec<u8>> {
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
pub(super) fn encode_identity(node: &ScalarUDF, buf: &mut Vec<u8>) -> bool {
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

pub(super) fn decode_identity(name: &str, buf: &[u8]) -> DfResult<Option<Arc<ScalarUDF>>> {
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
    pub(super) lake: Option<Lake>,
    pub(super) logical: Arc<LakeLogicalCodec>,
    pub(super) fallback: Arc<dyn PhysicalExtensionCodec>,
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
