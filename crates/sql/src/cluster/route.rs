//! Which plans go to the cluster, and the planner that sends them.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::catalog::Session as DfSession;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result as DfResult;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;

use datafusion::prelude::SessionContext;

use super::table::*;
use crate::policy::ProtectedTable;

/// Names of the functions every process of a cluster has: DataFusion's and carelake's
/// (the identity functions are checked apart).
pub(super) static CLUSTER_FUNCTIONS: LazyLock<HashSet<String>> = LazyLock::new(|| {
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
pub(super) fn serializable(plan: &LogicalPlan, lake_scans: &mut usize) -> bool {
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

pub(super) static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
