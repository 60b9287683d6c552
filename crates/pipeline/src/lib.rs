//! carelake's curation pipeline: models as SQL files (dbt-like) with a small header, run in
//! dependency order with retries, incremental merges driven by new loads, and a run history in
//! the lake; plus the built-in models written in Rust (the master patient index).
//!
//! ```no_run
//! # async fn example(session: std::sync::Arc<carelake_sql::Session>) -> carelake_pipeline::Result<()> {
//! use carelake_pipeline::{Project, RunOptions, run};
//! let project = std::sync::Arc::new(Project::load(std::path::Path::new("my-project"))?);
//! let summary = run(session, project, &RunOptions::default()).await?;
//! assert!(summary.ok());
//! # Ok(()) }
//! ```

pub mod cdc;
mod dag;
mod dq;
mod error;
mod incremental;
mod materialize;
mod mpi;
mod project;
mod runner;
mod sql_text;

pub use dag::{Dag, tables_read};
pub use error::{Error, Result};
pub use project::{Builtin, Materialization, Model, Project};
pub use runner::{ModelOutcome, ModelStatus, RunOptions, RunSummary, run};
