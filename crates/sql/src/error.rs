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
    /// A service the statement needs (a cluster's scheduler, the object store) cannot be
    /// reached; trying again later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// What kind of failure an error is: the interfaces choose their answer from it (HTTP status,
/// SQLSTATE class) and callers decide from it whether trying again may help, never from the
/// message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The statement is wrong (syntax, names, types, values, an unsupported feature): the same
    /// statement fails again.
    Invalid,
    /// The principal lacks a privilege.
    Denied,
    /// The statement needs more than a limit allows (memory, rows): ask for less.
    Exhausted,
    /// A service the statement needs cannot be reached or cannot take more for now (the
    /// object store, a cluster's scheduler, a full disk, a full stream backlog): try again.
    Unavailable,
    /// A concurrent writer committed first: running the statement again is safe.
    Conflict,
    /// A fault in carelake, its engine or the lake's files.
    Internal,
}

impl ErrorKind {
    /// The kind `error` (or the first error in its chain of causes whose type tells) has.
    pub fn in_chain(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        kind_in(error)
    }

    /// Whether running the same statement again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Conflict)
    }
}

impl Error {
    /// What kind of failure this is, from the first error in its chain of causes that says.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Syntax(_) | Error::Unsupported(_) => ErrorKind::Invalid,
            Error::PermissionDenied(_) => ErrorKind::Denied,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Name(_) => ErrorKind::Invalid,
            other => kind_in(other).unwrap_or(ErrorKind::Internal),
        }
    }
}

/// The kind of the first error in `error`'s chain (itself included) whose type tells it.
pub(crate) fn kind_in(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let next = match kind_of(e) {
            Step::Kind(kind) => return Some(kind),
            Step::Into(inner) => Some(inner),
            Step::Source => e.source(),
        };
        current = next;
    }
    None
}

/// A Parquet error: the store's or the file system's when it carries one (a write that
/// failed for lack of space, a read the store refused), else a fault of the file.
fn parquet_step(e: &datafusion::parquet::errors::ParquetError) -> Step<'_> {
    match e {
        datafusion::parquet::errors::ParquetError::External(inner) => Step::Into(inner.as_ref()),
        _ => Step::Kind(ErrorKind::Internal),
    }
}

/// One error's say in [`kind_in`]: a kind, a wrapped error to look into, or its source.
enum Step<'a> {
    Kind(ErrorKind),
    Into(&'a (dyn std::error::Error + 'static)),
    Source,
}

fn kind_of<'a>(e: &'a (dyn std::error::Error + 'static)) -> Step<'a> {
    use datafusion::error::DataFusionError as Df;
    if let Some(e) = e.downcast_ref::<Error>() {
        return match e {
            Error::Ingest(inner) => Step::Into(inner),
            Error::Lake(inner) => Step::Into(inner),
            Error::Delta(inner) => Step::Into(inner),
            Error::DataFusion(inner) => Step::Into(inner),
            Error::Arrow(inner) => Step::Into(inner),
            other => Step::Kind(other.kind()),
        };
    }
    if let Some(e) = e.downcast_ref::<Df>() {
        return match e {
            Df::SQL(..)
            | Df::Plan(_)
            | Df::SchemaError(..)
            | Df::NotImplemented(_)
            | Df::Configuration(_)
            | Df::Execution(_) => Step::Kind(ErrorKind::Invalid),
            Df::ResourcesExhausted(_) => Step::Kind(ErrorKind::Exhausted),
            Df::External(inner) => Step::Into(inner.as_ref()),
            Df::Context(_, inner) | Df::Diagnostic(_, inner) => Step::Into(inner.as_ref()),
            Df::Shared(inner) => Step::Into(inner.as_ref()),
            Df::Collection(errors) => match errors.first() {
                Some(first) => Step::Into(first),
                None => Step::Kind(ErrorKind::Internal),
            },
            Df::ArrowError(inner, _) => Step::Into(inner.as_ref()),
            Df::ObjectStore(inner) => Step::Into(inner.as_ref()),
            Df::IoError(inner) => Step::Into(inner),
            Df::ParquetError(inner) => parquet_step(inner),
            Df::Internal(_) | Df::Substrait(_) | Df::ExecutionJoin(_) => {
                Step::Kind(ErrorKind::Internal)
            }
            _ => Step::Source,
        };
    }
    if let Some(e) = e.downcast_ref::<arrow::error::ArrowError>() {
        use arrow::error::ArrowError as A;
        return match e {
            A::ExternalError(inner) => Step::Into(inner.as_ref()),
            A::IoError(_, inner) => Step::Into(inner),
            A::CastError(_)
            | A::ParseError(_)
            | A::ComputeError(_)
            | A::DivideByZero
            | A::ArithmeticOverflow(_)
            | A::InvalidArgumentError(_)
            | A::NotYetImplemented(_) => Step::Kind(ErrorKind::Invalid),
            A::MemoryError(_) => Step::Kind(ErrorKind::Exhausted),
            _ => Step::Kind(ErrorKind::Internal),
        };
    }
    if let Some(e) = e.downcast_ref::<object_store::Error>() {
        use object_store::Error as O;
        return match e {
            O::NotFound { .. } | O::NotImplemented { .. } | O::InvalidPath { .. } => {
                Step::Kind(ErrorKind::Internal)
            }
            O::AlreadyExists { .. } | O::Precondition { .. } | O::NotModified { .. } => {
                Step::Kind(ErrorKind::Conflict)
            }
            // A store that answers with errors or not at all, or refuses the server's own
            // credentials: the lake is unavailable, not the statement wrong.
            _ => Step::Kind(ErrorKind::Unavailable),
        };
    }
    if let Some(e) = e.downcast_ref::<std::io::Error>() {
        // An I/O error of no telling kind that wraps another (a Parquet writer's failed
        // upload wraps the store's error) says what the wrapped one says.
        return match (io_kind(e), e.get_ref()) {
            (ErrorKind::Internal, Some(inner)) => Step::Into(inner),
            (kind, _) => Step::Kind(kind),
        };
    }
    if let Some(e) = e.downcast_ref::<deltalake::DeltaTableError>() {
        use deltalake::DeltaTableError as D;
        return match e {
            D::VersionAlreadyExists(_) => Step::Kind(ErrorKind::Conflict),
            D::Transaction { source } => match source {
                deltalake::kernel::transaction::TransactionError::VersionAlreadyExists(_)
                | deltalake::kernel::transaction::TransactionError::CommitConflict(_)
                | deltalake::kernel::transaction::TransactionError::MaxCommitAttempts(_) => {
                    Step::Kind(ErrorKind::Conflict)
                }
                deltalake::kernel::transaction::TransactionError::ObjectStore { source } => {
                    Step::Into(source)
                }
                _ => Step::Kind(ErrorKind::Internal),
            },
            D::ObjectStore { source } => Step::Into(source),
            D::Io { source } => Step::Into(source),
            D::Parquet { source } => parquet_step(source),
            // The kernel's errors carry the store's error as their source.
            D::KernelError(_) => Step::Source,
            D::Arrow { source } => Step::Into(source),
            D::Generic(_) => Step::Kind(ErrorKind::Invalid),
            _ => Step::Kind(ErrorKind::Internal),
        };
    }
    if let Some(e) = e.downcast_ref::<delta_kernel::Error>() {
        use delta_kernel::Error as K;
        // The kernel's wrappers do not all name their cause as a source.
        return match e {
            K::Backtraced { source, .. } => Step::Into(source.as_ref()),
            K::ObjectStore(inner) => Step::Into(inner),
            K::IOError(inner) => Step::Into(inner),
            K::Arrow(inner) => Step::Into(inner),
            K::Parquet(inner) => parquet_step(inner),
            K::GenericError { source } => Step::Into(source.as_ref()),
            _ => Step::Kind(ErrorKind::Internal),
        };
    }
    if let Some(e) = e.downcast_ref::<carelake_lake::Error>() {
        use carelake_lake::Error as L;
        return match e {
            L::TableNotFound(_) | L::TableExists(_) | L::InvalidLocation { .. } | L::Name(_) => {
                Step::Kind(ErrorKind::Invalid)
            }
            L::Busy(_) => Step::Kind(ErrorKind::Conflict),
            L::Delta(inner) => Step::Into(inner),
            L::DataFusion(inner) => Step::Into(inner),
            L::Arrow(inner) => Step::Into(inner),
            L::ObjectStore(inner) => Step::Into(inner),
            _ => Step::Source,
        };
    }
    if let Some(e) = e.downcast_ref::<carelake_ingest::Error>() {
        use carelake_ingest::Error as I;
        return match e {
            I::Lake(inner) => Step::Into(inner),
            I::Delta(inner) => Step::Into(inner),
            I::DataFusion(inner) => Step::Into(inner),
            I::Arrow(inner) => Step::Into(inner),
            // An input the statement named that is missing or unreadable is the statement's.
            I::ReadFile { source, .. } => Step::Kind(match io_kind(source) {
                ErrorKind::Internal => ErrorKind::Invalid,
                kind => kind,
            }),
            I::Io { source, .. } => Step::Into(source),
            I::Worker(_) => Step::Kind(ErrorKind::Internal),
            I::StreamClosed => Step::Kind(ErrorKind::Unavailable),
            I::Backlog(..) => Step::Kind(ErrorKind::Unavailable),
            I::TableCreated => Step::Kind(ErrorKind::Conflict),
            // The load's own refusals: no input, a format or zone, a file's content.
            _ => Step::Kind(ErrorKind::Invalid),
        };
    }
    Step::Source
}

/// The kind of an operating-system error.
fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::AddrNotAvailable
        | K::ReadOnlyFilesystem
        | K::ResourceBusy
        | K::Interrupted
        | K::WouldBlock
        | K::StorageFull
        | K::QuotaExceeded => ErrorKind::Unavailable,
        K::OutOfMemory | K::FileTooLarge => ErrorKind::Exhausted,
        K::InvalidInput | K::InvalidData | K::Unsupported => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    /// A refusal carried through the engine comes back as the refusal.
    fn from(e: datafusion::error::DataFusionError) -> Self {
        if let Some(message) = crate::session::denial_in(&e) {
            return Error::PermissionDenied(message);
        }
        if let Some(message) = unavailable_in(&e) {
            return Error::Unavailable(message);
        }
        Error::DataFusion(e)
    }
}

/// An [`Error::Unavailable`] carried through the engine (a cluster's scheduler that cannot be
/// reached), so it comes back as itself.
fn unavailable_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    carried_in(error, |e| match e {
        Error::Unavailable(m) => Some(m.clone()),
        _ => None,
    })
}

/// The first of this crate's errors in `error`'s chain (directly or inside DataFusion's
/// `External`) that `pick` takes.
pub(crate) fn carried_in(
    error: &(dyn std::error::Error + 'static),
    pick: impl Fn(&Error) -> Option<String>,
) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<Error>().and_then(&pick) {
            return Some(found);
        }
        if let Some(datafusion::error::DataFusionError::External(inner)) =
            e.downcast_ref::<datafusion::error::DataFusionError>()
            && let Some(found) = inner.downcast_ref::<Error>().and_then(&pick)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// DataFusion's message on one line, without its backtrace.
fn strip_backtrace(e: &datafusion::error::DataFusionError) -> String {
    let message = e.strip_backtrace();
    message.lines().next().unwrap_or_default().to_string()
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError as Df;

    fn kind(e: Df) -> ErrorKind {
        Error::from(e).kind()
    }

    #[test]
    fn kinds_come_from_the_types_in_the_chain() {
        assert_eq!(kind(Df::Plan("no table".into())), ErrorKind::Invalid);
        assert_eq!(
            kind(Df::ResourcesExhausted("memory".into())),
            ErrorKind::Exhausted
        );
        assert_eq!(kind(Df::Internal("bug".into())), ErrorKind::Internal);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            kind(Df::Context(
                "reading".into(),
                Box::new(Df::IoError(refused))
            )),
            ErrorKind::Unavailable
        );
        let store = object_store::Error::Generic {
            store: "S3",
            source: "503 Slow Down".into(),
        };
        assert_eq!(
            kind(Df::ObjectStore(Box::new(store))),
            ErrorKind::Unavailable
        );
        let gone = object_store::Error::NotFound {
            path: "part-0.parquet".into(),
            source: "missing".into(),
        };
        assert_eq!(kind(Df::ObjectStore(Box::new(gone))), ErrorKind::Internal);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            Error::Ingest(carelake_ingest::Error::Io {
                context: "writing the log".into(),
                source: full,
            })
            .kind(),
            ErrorKind::Unavailable
        );
        let conflict = deltalake::DeltaTableError::VersionAlreadyExists(7);
        assert_eq!(
            Error::Lake(carelake_lake::Error::Delta(conflict)).kind(),
            ErrorKind::Conflict
        );
        // Carried through the engine, a refusal and an unreachable service keep their kind.
        let carried =
            |e: Error| Df::Context("executing".into(), Box::new(Df::External(Box::new(e))));
        assert_eq!(
            kind(carried(Error::PermissionDenied("raw.patients".into()))),
            ErrorKind::Denied
        );
        assert!(matches!(
            Error::from(carried(Error::Unavailable("scheduler".into()))),
            Error::Unavailable(_)
        ));
        assert!(ErrorKind::Unavailable.is_retryable() && ErrorKind::Conflict.is_retryable());
        assert!(!ErrorKind::Invalid.is_retryable() && !ErrorKind::Exhausted.is_retryable());
    }
}
