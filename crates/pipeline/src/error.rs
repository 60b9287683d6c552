//! Why a pipeline could not be loaded or a model could not run.

use std::path::PathBuf;

/// Pipeline errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model's definition is wrong.
    #[error("model {model}: {reason}")]
    Model {
        /// The model (file stem).
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// Two models write the same table.
    #[error("models {first} and {second} both write {table}")]
    DuplicateTarget {
        /// One model.
        first: String,
        /// The other.
        second: String,
        /// The table.
        table: String,
    },
    /// Models read each other in a loop.
    #[error("models depend on each other in a cycle: {0}")]
    Cycle(String),
    /// A selector names no model.
    #[error("no model named {0:?}")]
    UnknownModel(String),
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] carelake_lake::Error),
    /// SQL failed.
    #[error(transparent)]
    Sql(#[from] carelake_sql::Error),
    /// The query engine failed.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// Linkage failed.
    #[error(transparent)]
    Link(#[from] carelake_link::Error),
    /// A name is not a valid table name.
    #[error(transparent)]
    Name(#[from] carelake_common::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
