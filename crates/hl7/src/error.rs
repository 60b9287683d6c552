/// Errors from parsing HL7 v2. Messages name segments, positions and rules, never field values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The message is empty.
    #[error("empty message")]
    Empty,
    /// The first segment is not MSH.
    #[error("the message does not start with an MSH segment (found {found})")]
    MissingHeader {
        /// The first segment's name (at most 3 characters, never data).
        found: String,
    },
    /// MSH is too short to carry the delimiters.
    #[error("MSH is too short to hold the field separator and encoding characters")]
    ShortHeader,
    /// The delimiters in MSH-1/MSH-2 are unusable.
    #[error("invalid delimiters in MSH-1/MSH-2: {0}")]
    Delimiters(&'static str),
    /// A segment name is not 3 upper-case letters or digits.
    #[error("segment {index} has an invalid name")]
    SegmentName {
        /// 1-based segment number in the message.
        index: usize,
    },
    /// A batch or file wrapper is malformed.
    #[error("line {line}: {problem}")]
    Batch {
        /// 1-based line where the problem was found.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A field path is malformed.
    #[error("'{0}' is not a field path like PID-5.1, PID-3(2).1 or OBX[2]-5")]
    Path(String),
}

impl Error {
    /// The line a batch error was found at, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Batch { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
