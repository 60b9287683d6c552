//! Why an X12 file was refused. Messages name the segment (by position and id) and element,
//! never the values in it: claims carry patient names and member ids.

/// An X12 file that cannot be loaded. Every error refuses the whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file does not begin with a well-formed ISA segment.
    #[error("the file does not start with an ISA interchange header: {0}")]
    Isa(String),
    /// A segment is malformed or out of place.
    #[error("segment {position} ({id}): {reason}")]
    Segment {
        /// 1-based position of the segment in the file.
        position: usize,
        /// The segment identifier (`CLM`, `NM1`, …), or a placeholder when it is invalid.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// An envelope (ISA/IEA, GS/GE, ST/SE) does not close or its counts disagree.
    #[error("envelope: {0}")]
    Envelope(String),
    /// The transaction set is not an 837 claim.
    #[error("not an 837 claim file (ST01 = {0})")]
    NotClaims(String),
    /// A required loop is missing or a loop repeats more than the guide allows.
    #[error("transaction {transaction}: {reason}")]
    Loop {
        /// ST02 of the transaction.
        transaction: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn segment(position: usize, id: &str, reason: impl Into<String>) -> Self {
        let id = if crate::segment::valid_id(id) {
            id.to_string()
        } else {
            "?".to_string()
        };
        Error::Segment {
            position,
            id,
            reason: reason.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
