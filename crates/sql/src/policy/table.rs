//! [`ProtectedTable`]: a lake table as one principal may read it.
//!
//! Its rows are those some row policy for the principal's roles allows, its columns those
//! granted, each masked column replaced by its mask's expression — a plan over the Delta
//! provider built when the table resolves. To the query planner it is an opaque table, and
//! its scan a leaf ([`ProtectedExec`]) whose inside the optimiser never sees: a user's
//! predicate cannot be pushed below the policy's filter or the masks (so a failing cast or a
//! division by zero never runs on hidden rows, and a filter on a masked column compares the
//! masked value). Only leak-free filters — a visible, unmasked column compared with a literal,
//! `IN` a list of literals, `IS [NOT] NULL` — are handed to the scan, where they may prune Delta
//! files. EXPLAIN shows the leaf and not the policy inside it; statistics are unknown, so no
//! row count is answered from metadata.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use carelake_common::TableName;
use carelake_lake::Privilege;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, Session as DfSession, TableProvider,
};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DataFusionError};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DfResult;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlan, LogicalPlanBuilder, Operator, TableProviderFilterPushDown,
    TableType,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::StreamExt;

use super::{ColumnAccess, Rules};
use crate::Error;

/// The schema under which a policy's plan reads the protected table itself.
const POLICY_SCHEMA: &str = "__policy";
const BASE: &str = "__base";

/// A table as one principal may read it.
pub(crate) struct ProtectedTable {
    name: TableName,
    /// The table as stored, for INSERT; `None` for a table decoded on a cluster's scheduler,
    /// which only reads.
    inner: Option<Arc<dyn TableProvider>>,
    /// The visible rows and columns, masked.
    plan: LogicalPlan,
    schema: SchemaRef,
    can_select: bool,
    can_insert: bool,
    /// The row policies' predicate over the table's own columns, checked on every row an
    /// INSERT writes; `Err` with the reason when it cannot be checked that way.
    insert_check: Option<std::result::Result<Expr, String>>,
    /// Visible columns whose values are the table's own (not masked).
    pushable: HashSet<String>,
    /// Names of the row and masking policies applied (for the audit log).
    applied: Vec<String>,
}

impl fmt::Debug for ProtectedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedTable")
            .field("name", &self.name.to_string())
            .finish_non_exhaustive()
    }
}

/// `"name"` with inner quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A planning state whose catalog holds the lake's tables unwrapped and `__policy.__base`:
/// policies and masks are the admin's words, evaluated with full sight of the mapping tables
/// they name (their results are never shown, only which rows pass).
fn policy_state(
    state: &SessionState,
    lake: &carelake_lake::Lake,
    base: Arc<dyn TableProvider>,
) -> DfResult<SessionState> {
    let catalog = MemoryCatalogProvider::new();
    for zone in carelake_common::Zone::ALL {
        catalog.register_schema(
            zone.as_str(),
            Arc::new(crate::schema::ZoneSchema::unprotected(lake.clone(), zone)),
        )?;
    }
    let policy = MemorySchemaProvider::new();
    datafusion::catalog::SchemaProvider::register_table(&policy, BASE.into(), base)?;
    catalog.register_schema(POLICY_SCHEMA, Arc::new(policy))?;
    let list = MemoryCatalogProviderList::new();
    list.register_catalog(crate::session::CATALOG.into(), Arc::new(catalog));
    Ok(SessionStateBuilder::new_from_existing(state.clone())
        .with_catalog_list(Arc::new(list))
        .build())
}

/// Whether any expression of `plan` is a subquery.
fn has_subquery(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                found |= matches!(
                    e,
                    Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
                );
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

impl ProtectedTable {
    /// Wraps `inner` (the Delta provider of `name`) with the principal's rules.
    pub(crate) async fn new(
        name: TableName,
        inner: Arc<dyn TableProvider>,
        rules: &Rules,
        state: &SessionState,
        lake: &carelake_lake::Lake,
    ) -> DfResult<Self> {
        let full = inner.schema();
        let access = rules.columns(&name);
        let masks = rules.masks(&name);
        let policies = rules.row_policies(&name);
        let visible: Vec<&arrow::datatypes::Field> = full
            .fields()
            .iter()
            .map(|f| f.as_ref())
            .filter(|f| match &access {
                ColumnAccess::Some(cols) => cols.contains(&f.name().to_ascii_lowercase()),
                ColumnAccess::All | ColumnAccess::None => true,
            })
            .collect();
        let can_select = access != ColumnAccess::None && !visible.is_empty();
        let mut applied: Vec<String> = Vec::new();
        let mut select = Vec::new();
        let mut pushable = HashSet::new();
        for field in &visible {
            match masks.get(&field.name().to_ascii_lowercase()) {
                Some(mask) => {
                    applied.push(mask.name.clone());
                    select.push(format!("({}) AS {}", mask.expression, quote(field.name())));
                }
                None => {
                    pushable.insert(field.name().clone());
                    select.push(quote(field.name()));
                }
            }
        }
        let predicate = policies.as_ref().map(|p| {
            applied.extend(p.iter().map(|p| p.name.clone()));
            if p.is_empty() {
                "false".to_string()
            } else {
                p.iter()
                    .map(|p| format!("({})", p.predicate))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            }
        });
        let plan =
            if predicate.is_none() && masks.is_empty() && visible.len() == full.fields().len() {
                LogicalPlanBuilder::scan(
                    name.to_string(),
                    provider_as_source(Arc::clone(&inner)),
                    None,
                )?
                .build()?
            } else if select.is_empty() {
                LogicalPlanBuilder::empty(false).build()?
            } else {
                let sql = format!(
                    "SELECT {} FROM {}.{}{}",
                    select.join(", "),
                    POLICY_SCHEMA,
                    BASE,
                    predicate
                        .as_ref()
                        .map(|p| format!(" WHERE {p}"))
                        .unwrap_or_default()
                );
                let planning = policy_state(state, lake, Arc::clone(&inner))?;
                let plan = planning.create_logical_plan(&sql).await.map_err(|e| {
                    DataFusionError::Plan(format!(
                        "the policies on {name} cannot be applied ({}); an admin must fix them",
                        e.strip_backtrace().lines().next().unwrap_or_default()
                    ))
                })?;
                // A policy reading another table (`facility IN (SELECT …)`) is decorrelated
                // into a join now: the same rows, and a plan a cluster can be sent (no
                // serialized form has subquery expressions).
                if has_subquery(&plan) {
                    planning.optimize(&plan)?
                } else {
                    plan
                }
            };
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let insert_check = predicate.as_ref().map(|p| {
            let df_schema = DFSchema::try_from(full.as_ref().clone()).map_err(|e| e.to_string())?;
            let expr = state
                .create_logical_expr(p, &df_schema)
                .map_err(|_| "its row policies read other tables".to_string())?;
            let mut has_subquery = false;
            expr.apply(|e| {
                if matches!(
                    e,
                    Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
                ) {
                    has_subquery = true;
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .map_err(|e| e.to_string())?;
            if has_subquery {
                return Err("its row policies read other tables".to_string());
            }
            Ok(expr)
        });
        let can_insert = rules.allows(Privilege::Insert, &name)
            && masks.is_empty()
            && visible.len() == full.fields().len();
        Ok(Self {
            name,
            inner: Some(inner),
            plan,
            schema,
            can_select,
            can_insert,
            insert_check,
            pushable,
            applied,
        })
    }

    /// The table.
    pub(crate) fn name(&self) -> &TableName {
        &self.name
    }

    /// The row and masking policies applied.
    pub(crate) fn applied(&self) -> &[String] {
        &self.applied
    }

    /// What a cluster needs to read the table as this principal: the plan of the visible
    /// rows and columns, the columns a filter may be pushed into, whether SELECT is allowed.
    pub(crate) fn read_parts(&self) -> (&LogicalPlan, Vec<String>, bool) {
        let mut pushable: Vec<String> = self.pushable.iter().cloned().collect();
        pushable.sort();
        (&self.plan, pushable, self.can_select)
    }

    /// The read side of a protected table sent to a cluster (see [`Self::read_parts`]); it
    /// refuses INSERT.
    pub(crate) fn from_read_parts(
        name: TableName,
        plan: LogicalPlan,
        pushable: Vec<String>,
        can_select: bool,
    ) -> Self {
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        Self {
            name,
            inner: None,
            plan,
            schema,
            can_select,
            can_insert: false,
            insert_check: None,
            pushable: pushable.into_iter().collect(),
            applied: Vec::new(),
        }
    }

    /// Whether `expr` can be evaluated below the policy without running user code on hidden
    /// rows or comparing unmasked values.
    fn leak_free(&self, expr: &Expr) -> bool {
        let is_col = |e: &Expr| matches!(e, Expr::Column(c) if self.pushable.contains(&c.name));
        let is_lit = |e: &Expr| matches!(e, Expr::Literal(..));
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq => {
                    (is_col(left) && is_lit(right)) || (is_lit(left) && is_col(right))
                }
                Operator::And | Operator::Or => self.leak_free(left) && self.leak_free(right),
                _ => false,
            },
            Expr::InList(list) => is_col(&list.expr) && list.list.iter().all(is_lit),
            Expr::IsNull(e) | Expr::IsNotNull(e) => is_col(e),
            Expr::Between(b) => is_col(&b.expr) && is_lit(&b.low) && is_lit(&b.high),
            Expr::Not(e) => self.leak_free(e),
            _ => false,
        }
    }
}

/// `expr` with its columns unqualified (they name columns of the protected plan's output).
fn unqualified(expr: &Expr) -> DfResult<Expr> {
    use datafusion::common::tree_node::Transformed;
    Ok(expr
        .clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                c.name,
            )))),
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

fn denied(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(Error::PermissionDenied(message)))
}

#[async_trait]
impl TableProvider for ProtectedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.leak_free(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !self.can_select {
            return Err(denied(format!("SELECT on {}", self.name)));
        }
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return Err(DataFusionError::Internal(
                "a protected table is read outside a carelake session".into(),
            ));
        };
        let mut builder = LogicalPlanBuilder::from(self.plan.clone()).alias("__protected")?;
        for filter in filters {
            // Only leak-free filters are accepted (supports_filters_pushdown); check again.
            if self.leak_free(filter) {
                builder = builder.filter(unqualified(filter)?)?;
            }
        }
        if let Some(projection) = projection {
            let columns: Vec<Expr> = projection
                .iter()
                .map(|i| {
                    Expr::Column(Column::new_unqualified(
                        self.schema.field(*i).name().clone(),
                    ))
                })
                .collect();
            builder = builder.project(columns)?;
        }
        if let Some(limit) = limit {
            builder = builder.limit(0, Some(limit))?;
        }
        let plan = state.optimize(&builder.build()?)?;
        // The default planner, not the session's: a cluster's query planner sends whole
        // queries, never the policy inside one of their scans.
        use datafusion::physical_planner::PhysicalPlanner as _;
        let planner = datafusion::physical_planner::DefaultPhysicalPlanner::default();
        let physical = if self.inner.is_some() {
            planner.create_physical_plan(&plan, state).await?
        } else {
            // Decoded on a cluster's scheduler: DataFusion's own physical rules, as the
            // scheduler's adaptive ones would leave nodes that only its stage planner resolves.
            let planning = SessionStateBuilder::new_from_existing(state.clone())
                .with_physical_optimizer_rules(
                    datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules,
                )
                .build();
            let physical = planner.create_physical_plan(&plan, &planning).await?;
            // The policy's plan runs whole, inside one task: its partitions share state within
            // one instance of the plan (a broadcast join's build side and which of its rows
            // matched, a repartition's channels), and a cluster runs each partition of a leaf
            // as a task of its own, on its own copy. Split, a semi join of a row policy's
            // subquery emitted its matched rows once per task.
            if physical.properties().partitioning.partition_count() > 1 {
                Arc::new(
                    datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec::new(
                        physical,
                    ),
                ) as Arc<dyn ExecutionPlan>
            } else {
                physical
            }
        };
        Ok(Arc::new(ProtectedExec::new(
            self.name.to_string(),
            physical,
        )))
    }

    async fn insert_into(
        &self,
        state: &dyn DfSession,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !self.can_insert {
            return Err(denied(format!(
                "INSERT on {} (or it has columns hidden or masked for you)",
                self.name
            )));
        }
        if insert_op != InsertOp::Append {
            return Err(denied(format!(
                "INSERT OVERWRITE on {}: replace a table with CREATE OR REPLACE TABLE",
                self.name
            )));
        }
        let input = match &self.insert_check {
            None => input,
            Some(Err(reason)) => {
                return Err(denied(format!(
                    "INSERT on {}: {reason}, so the rows written cannot be checked",
                    self.name
                )));
            }
            Some(Ok(predicate)) => {
                let Some(session) = state.as_any().downcast_ref::<SessionState>() else {
                    return Err(DataFusionError::Internal(
                        "a protected table is written outside a carelake session".into(),
                    ));
                };
                let df_schema = DFSchema::try_from(input.schema().as_ref().clone())?;
                let check = session.create_physical_expr(unqualified(predicate)?, &df_schema)?;
                Arc::new(PolicyCheckExec::new(self.name.to_string(), input, check)) as _
            }
        };
        let Some(inner) = &self.inner else {
            return Err(denied(format!("INSERT on {} from a cluster", self.name)));
        };
        inner.insert_into(state, input, insert_op).await
    }
}

/// The scan of a [`ProtectedTable`]: a leaf wrapping the plan that applies the policy, which
/// it runs but does not show (to EXPLAIN, the physical optimiser or statistics).
pub(crate) struct ProtectedExec {
    table: String,
    inner: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for ProtectedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedExec")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl ProtectedExec {
    /// The table's name and the plan that applies its policy (for a cluster's codec).
    pub(crate) fn parts(&self) -> (&str, &Arc<dyn ExecutionPlan>) {
        (&self.table, &self.inner)
    }

    pub(crate) fn new(table: String, inner: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(inner.properties());
        Self {
            table,
            inner,
            properties,
        }
    }
}

impl DisplayAs for ProtectedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ProtectedScan: {}", self.table)
    }
}

impl ExecutionPlan for ProtectedExec {
    fn name(&self) -> &'static str {
        "ProtectedScan"
    }

    leaf_plan_methods!();

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.inner.execute(partition, context)
    }
}

/// Passes rows through to an INSERT, failing the statement at the first row the principal's
/// row policies would not let them see.
struct PolicyCheckExec {
    table: String,
    input: Arc<dyn ExecutionPlan>,
    check: Arc<dyn PhysicalExpr>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for PolicyCheckExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyCheckExec")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl PolicyCheckExec {
    fn new(table: String, input: Arc<dyn ExecutionPlan>, check: Arc<dyn PhysicalExpr>) -> Self {
        let properties = Arc::clone(input.properties());
        Self {
            table,
            input,
            check,
            properties,
        }
    }
}

impl DisplayAs for PolicyCheckExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RowPolicyCheck: {}", self.table)
    }
}

impl ExecutionPlan for PolicyCheckExec {
    fn name(&self) -> &'static str {
        "RowPolicyCheck"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        f(&self.check)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("RowPolicyCheck takes one input".into()))?;
        Ok(Arc::new(Self::new(
            self.table.clone(),
            input,
            Arc::clone(&self.check),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let check = Arc::clone(&self.check);
        let table = self.table.clone();
        let checked = stream.map(move |batch| {
            let batch: RecordBatch = batch?;
            let value = check.evaluate(&batch)?.into_array(batch.num_rows())?;
            let passed = value
                .as_any()
                .downcast_ref::<BooleanArray>()
                .is_some_and(|b| (0..b.len()).all(|i| b.is_valid(i) && b.value(i)));
            if passed {
                Ok(batch)
            } else {
                Err(denied(format!(
                    "INSERT on {table}: a row lies outside your row policies"
                )))
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, checked)))
    }
}
