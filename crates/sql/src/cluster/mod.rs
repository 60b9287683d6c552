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

mod codec;
mod route;
mod table;
mod wire;

use std::collections::HashSet;
use std::sync::Arc;

use carelake_lake::Lake;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

pub use codec::{LakeLogicalCodec, LakePhysicalCodec};
pub(crate) use route::RoutingPlanner;
pub use route::{cluster_can_run, queries_sent};
pub(crate) use table::LakeTable;

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
