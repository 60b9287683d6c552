/// Errors from the lake and its catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No lake was initialised at the location.
    #[error("no carelake lake at {0}; create one with `carelake init --lake {0}`")]
    LakeNotFound(String),
    /// The lake location could not be understood.
    #[error("invalid lake location '{location}': {reason}")]
    InvalidLocation { location: String, reason: String },
    /// The table is not in the lake.
    #[error("table {0} does not exist")]
    TableNotFound(String),
    /// The table already exists.
    #[error("table {0} already exists")]
    TableExists(String),
    /// A catalog row could not be read.
    #[error("catalog is damaged: {0}")]
    CorruptCatalog(String),
    /// Delta Lake failed.
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
    /// The query engine failed.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The object store failed.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// A name was invalid.
    #[error(transparent)]
    Name(#[from] carelake_common::Error),
    /// A user could not be created, changed or read.
    #[error("{0}")]
    Users(String),
    /// Too much is going on at once (sign-ins waiting for their turn); try again shortly.
    #[error("{0}")]
    Busy(String),
    /// A token could not be issued, revoked or read.
    #[error("{0}")]
    Tokens(String),
    /// A role, grant or policy could not be created, changed or read.
    #[error("{0}")]
    Governance(String),
    /// An alert rule or delivery could not be stored or read.
    #[error("{0}")]
    Alerts(String),
    /// A model could not be stored or read.
    #[error("{0}")]
    Models(String),
    /// A materialized view could not be stored or read.
    #[error("{0}")]
    MatViews(String),
    /// A watch's record of files could not be stored or read.
    #[error("{0}")]
    Watch(String),
    /// The audit log could not be written or read.
    #[error("audit log: {0}")]
    Audit(String),
    /// The lake's encryption: a missing or wrong key, a damaged key file or object.
    #[error("encryption: {0}")]
    Encryption(String),
    /// The lake is encrypted and no key was given.
    #[error(
        "the lake at {0} is encrypted: give its key with --key-file, CARELAKE_KEY_FILE, CARELAKE_KEY_COMMAND or CARELAKE_KEY"
    )]
    KeyRequired(String),
    /// A backup, a restore or a check of the lake's files.
    #[error("{0}")]
    Backup(String),
    /// A fault plan (`CARELAKE_FAULTS`) that cannot be read.
    #[error("CARELAKE_FAULTS: {0}")]
    Faults(String),
    /// Local file system access failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    /// Whether a commit lost a race to another writer whose actions conflict with it (Delta
    /// tried [`crate::COMMIT_RETRIES`] times): running the whole operation again, after
    /// checking what the winner wrote, is safe.
    pub fn is_commit_conflict(&self) -> bool {
        matches!(
            self,
            Error::Delta(deltalake::DeltaTableError::Transaction { .. })
        )
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
