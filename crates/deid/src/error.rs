/// Errors of column tagging and de-identified export. Messages name tables, columns and
/// locations, never a value read from a table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] carelake_lake::Error),
    /// Delta Lake failed.
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
    /// The query engine failed.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A name was invalid.
    #[error(transparent)]
    Name(#[from] carelake_common::Error),
    /// A column tag could not be stored, read or understood.
    #[error("{0}")]
    Tags(String),
    /// The export target is not acceptable (inside the source, or not empty).
    #[error("{0}")]
    Target(String),
    /// The export was asked for something it cannot do.
    #[error("{0}")]
    Export(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
