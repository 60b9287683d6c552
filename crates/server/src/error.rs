/// Errors from the network listeners.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Accepting a connection failed.
    #[error("accepting a connection failed: {0}")]
    Accept(std::io::Error),
    /// Storing messages failed.
    #[error(transparent)]
    Ingest(#[from] carelake_ingest::Error),
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] carelake_lake::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
