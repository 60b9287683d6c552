//! Errors of FHIR reading, FHIRPath and views. Messages name paths and positions, never the
//! values found in a resource.

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A FHIRPath expression does not parse.
    #[error("FHIRPath expression `{expression}` does not parse at character {position}: {reason}")]
    Parse {
        /// The expression (written by the view's author, not patient data).
        expression: String,
        /// Character offset of the problem.
        position: usize,
        /// What was wrong.
        reason: String,
    },
    /// A FHIRPath expression failed while evaluating.
    #[error("FHIRPath evaluation failed: {0}")]
    Eval(String),
    /// A ViewDefinition is not valid.
    #[error("invalid ViewDefinition: {0}")]
    View(String),
    /// A Bundle or resource is not valid FHIR JSON.
    #[error("invalid FHIR: {0}")]
    Resource(String),
    /// A conformance suite file could not be read.
    #[error("cannot read the conformance suite at {path}: {reason}")]
    Suite {
        /// The file or folder.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
