/// Errors from running SQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement is not understood.
    #[error("{0}")]
    Syntax(String),
    /// The statement is understood but not supported.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The principal may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A load failed.
    #[error(transparent)]
    Ingest(#[from] carelake_ingest::Error),
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] carelake_lake::Error),
    /// Delta Lake failed.
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
    /// The query engine failed.
    #[error("{}", strip_backtrace(.0))]
    DataFusion(datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A name was invalid.
    #[error(transparent)]
    Name(#[from] carelake_common::Error),
}

impl From<datafusion::error::DataFusionError> for Error {
    /// A refusal carried through the engine comes back as the refusal.
    fn from(e: datafusion::error::DataFusionError) -> Self {
        match crate::session::denial_in(&e) {
            Some(message) => Error::PermissionDenied(message),
            None => Error::DataFusion(e),
        }
    }
}

/// DataFusion's message on one line, without its backtrace.
fn strip_backtrace(e: &datafusion::error::DataFusionError) -> String {
    let message = e.strip_backtrace();
    message.lines().next().unwrap_or_default().to_string()
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
