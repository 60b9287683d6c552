use std::path::PathBuf;

/// Errors from crawling and loading files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No file matched the inputs.
    #[error("no input files found for {0}")]
    NoInput(String),
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The format could not be told from the file name.
    #[error("cannot tell the format of {0}; pass --format csv|ndjson|parquet")]
    UnknownFormat(PathBuf),
    /// Files of different formats in one load.
    #[error("one load takes files of one format; found {0} and {1}")]
    MixedFormats(&'static str, &'static str),
    /// Clinical files of different formats in one load.
    #[error("one load takes files of one format; found {0} and {1}")]
    MixedClinicalFormats(String, String),
    /// A bad glob pattern.
    #[error("invalid pattern {pattern}: {reason}")]
    Pattern { pattern: String, reason: String },
    /// The target is an external table (files read in place, never written).
    #[error("{0} is an external table: its files are read in place, not loaded into")]
    ExternalTable(String),
    /// Loads go into the raw zone.
    #[error("bulk loads write to the raw zone (raw.<table>), not {0}")]
    NotRawZone(String),
    /// Too many rows were rejected; nothing was committed.
    #[error(
        "{rejected} of {total} rows rejected ({ratio:.2}%), above --max-reject-ratio {max:.2}%; nothing was committed"
    )]
    TooManyRejects {
        rejected: u64,
        total: u64,
        ratio: f64,
        max: f64,
    },
    /// A column's type in the table cannot hold the incoming values.
    #[error(
        "column {column}: the table's type {table_type} cannot take the file's {file_type} values"
    )]
    IncompatibleColumn {
        column: String,
        table_type: String,
        file_type: String,
    },
    /// A Parquet file could not be read.
    #[error("cannot read Parquet file {path}: {reason}")]
    Parquet { path: PathBuf, reason: String },
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
    /// A FHIR ViewDefinition could not be read or used.
    #[error("FHIR view {name}: {reason}")]
    FhirView {
        /// The view (or its file).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A worker thread failed.
    #[error("load worker failed: {0}")]
    Worker(String),
    /// A landing-area watch could not be set up, listed or read.
    #[error("{0}")]
    Watch(String),
    /// Local file access (the write-ahead log) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A streamed event was refused.
    #[error("{0}")]
    Event(String),
    /// A load created its target table and plans again (internal to the loader).
    #[error("the table was created; the load plans again")]
    TableCreated,
    /// The streaming ingest stopped.
    #[error("the streaming ingest has stopped")]
    StreamClosed,
    /// Too many acknowledged events are waiting for the lake (it is slow or failing): try
    /// again later.
    #[error(
        "{0} bytes of streamed events are waiting for the lake (the cap is {1}): try again shortly"
    )]
    Backlog(u64, u64),
}

impl Error {
    /// Whether a commit lost a race to a conflicting writer (see
    /// [`carelake_lake::Error::is_commit_conflict`]).
    pub fn is_commit_conflict(&self) -> bool {
        match self {
            Error::Lake(e) => e.is_commit_conflict(),
            Error::Delta(deltalake::DeltaTableError::Transaction { .. }) => true,
            _ => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<carelake_wal::Error> for Error {
    fn from(e: carelake_wal::Error) -> Self {
        match e {
            carelake_wal::Error::Io { context, source } => Error::Io { context, source },
        }
    }
}
