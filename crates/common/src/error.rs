/// Errors from parsing names and other shared values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A table name was not of the form `zone.table`.
    #[error("invalid table name '{name}': {reason}")]
    InvalidTableName { name: String, reason: &'static str },
    /// A zone other than raw, curated or analytics.
    #[error("unknown zone '{0}' (zones are raw, curated and analytics)")]
    UnknownZone(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
