//! Why a linkage could not run. Messages name fields and counts, never the values in them:
//! person records carry names, birth dates and identifiers.

/// A linkage that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The records have no field the linker can compare.
    #[error("no comparable fields: map at least a name, a birth date or an identifier")]
    NoComparableFields,
    /// A record was pushed with the wrong number of values.
    #[error("record {record} has {got} values, expected {expected}")]
    RecordWidth {
        /// 0-based record position.
        record: usize,
        /// Values given.
        got: usize,
        /// Fields declared.
        expected: usize,
    },
    /// Two records share a source and an id.
    #[error("duplicate record key: source {source_index} has the same id twice (record {record})")]
    DuplicateRecord {
        /// Index of the source.
        source_index: usize,
        /// 0-based position of the second record.
        record: usize,
    },
    /// Linking two sets needs records from exactly two sources.
    #[error("link mode needs records from exactly two sources, found {0}")]
    LinkSources(usize),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// An input file could not be read.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong (never a value from the file).
        reason: String,
    },
    /// An input file lacks a column the settings name.
    #[error("{path}: no column {column:?}")]
    MissingColumn {
        /// The file.
        path: String,
        /// The column.
        column: String,
    },
    /// More records than the linker indexes (u32 positions).
    #[error("too many records: {0} (at most 4,294,967,295)")]
    TooManyRecords(usize),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
