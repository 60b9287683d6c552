/// What went wrong training or using a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A column cannot be a feature, or rows do not fit the model's features.
    #[error("{0}")]
    Features(String),
    /// Training failed.
    #[error("training failed: {0}")]
    Training(String),
    /// A stored model could not be read.
    #[error("unreadable model: {0}")]
    Unreadable(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
