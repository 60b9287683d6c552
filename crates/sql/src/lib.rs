//! The query [`Session`]: the single place through which every interface (the CLI today; the
//! Postgres wire protocol, HTTP and the web UI later) runs SQL against a lake.
//!
//! A session is opened for one [`Principal`](carelake_common::Principal) and carries it into
//! every statement, so grants, row policies and masking are enforced here and nowhere else.
//! It extends DataFusion with the lake's zones as schemas, persisted views, `CREATE TABLE … AS`,
//! `INSERT`, `UPDATE`, `DELETE` and `MERGE` through Delta Lake, `COPY … FROM` bulk loads,
//! time travel (`raw."claims@v3"`), `VACUUM` and `OPTIMIZE`.
//!
//! ```ignore
//! let session = Session::open(lake, Principal::local_admin()).await?;
//! let result = session.sql("SELECT count(*) FROM raw.claims").await?;
//! ```

/// The methods every leaf `ExecutionPlan` of ours writes the same way (a scan with no children
/// and no expressions of its own): its properties, no children, and `self` back when asked
/// for new children.
macro_rules! leaf_plan_methods {
    () => {
        fn properties(&self) -> &std::sync::Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            vec![]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::error::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn replace_children(
            self: std::sync::Arc<Self>,
            _children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
            _options: datafusion::physical_plan::ReplaceChildrenOptions,
        ) -> datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>
        {
            Ok(self)
        }

        fn with_new_children(
            self: std::sync::Arc<Self>,
            children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        ) -> datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>
        {
            self.replace_children(
                children,
                datafusion::physical_plan::ReplaceChildrenOptions::new(
                    datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
                ),
            )
        }
    };
}

mod alert;
mod cache;
pub mod cluster;
mod ddl;
mod dml;
mod error;
mod external;
mod files;
mod functions;
mod govern;
mod grants;
mod limits;
mod matview;
mod model;
mod policy;
mod risk;
mod schema;
mod session;
mod standard;
mod statement;
mod surface;
mod system;

pub use cache::{result_cache_hits, set_result_cache_bytes};
pub use error::{Error, ErrorKind, Result};
pub use limits::{footer_cache_bytes, limit_memory};
pub use matview::{Refreshed, refresh_due as refresh_due_materialized_views};
pub use session::{QueryResult, Session};
pub use statement::{check_script, split_statements};
pub use surface::FileAccess;
