//! The SQLSTATE and message a Postgres client gets for an error, by the error's kind.

use carelake_common::redact_literals;
use datafusion::error::DataFusionError;
use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

pub(super) fn sql_error(error: carelake_sql::Error) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        sql_state(&error).into(),
        error.to_string(),
    )))
}

/// The SQLSTATE of a statement's error, by its kind.
fn sql_state(error: &carelake_sql::Error) -> &'static str {
    use carelake_sql::ErrorKind;
    match (error, error.kind()) {
        (carelake_sql::Error::Syntax(_), _) => "42601",
        (carelake_sql::Error::Unsupported(_), _) => "0A000",
        (_, ErrorKind::Denied) => "42501",
        (_, ErrorKind::Invalid) => "42000",
        // 53200, out of memory; 40001, serialization failure (retry the transaction);
        // 08006, the connection to a service failed.
        (_, ErrorKind::Exhausted) => "53200",
        (_, ErrorKind::Conflict) => "40001",
        (_, ErrorKind::Unavailable) => "08006",
        (_, ErrorKind::Internal) => "XX000",
    }
}

/// The SQLSTATE of a query engine error, by its kind (the innermost error of a chain of
/// contexts): an undefined column, a syntax error, a value that does not convert, memory, a
/// denial from carelake's policy layer; anything else is an internal error.
fn datafusion_sqlstate(error: &DataFusionError) -> &'static str {
    use datafusion::arrow::error::ArrowError;
    use datafusion::common::SchemaError;
    match error.find_root() {
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { .. } => "42703",
            SchemaError::AmbiguousReference { .. } => "42702",
            _ => "42P10",
        },
        DataFusionError::SQL(..) => "42601",
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
            ArrowError::DivideByZero => "22012",
            ArrowError::ArithmeticOverflow(_) => "22003",
            _ => "XX000",
        },
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::Plan(_) => "42000",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::External(e) => match e.downcast_ref::<carelake_sql::Error>() {
            Some(e) => sql_state(e),
            None => "XX000",
        },
        _ => "XX000",
    }
}

/// Gives errors a SQLSTATE that clients understand and blanks quoted literals in them, so that a
/// failed cast does not echo a patient's name into a client's log.
pub(crate) struct ErrorRewriter;

impl ErrorHandler for ErrorRewriter {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let PgWireError::ApiError(inner) = error else {
            if let PgWireError::UserError(info) = error {
                info.message = redact_literals(&info.message);
            }
            return;
        };
        let original = inner.to_string();
        // A missing table's name is no patient data, and the one thing the reader needs.
        if let Some(name) = original
            .split_once("table '")
            .and_then(|(_, rest)| rest.split_once("' not found"))
            .map(|(name, _)| name)
            .filter(|name| !name.contains('\''))
        {
            *error = PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "42P01".into(),
                format!("relation \"{name}\" does not exist"),
            )));
            return;
        }
        let message = redact_literals(&original);
        let code = match inner.downcast_ref::<DataFusionError>() {
            Some(e) => datafusion_sqlstate(e),
            None => "XX000",
        };
        // A layer between the policy and here may carry a refusal on as text only.
        let code = if original.contains("permission denied: ") {
            "42501"
        } else {
            code
        };
        *error = PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            code.into(),
            message,
        )));
    }
}
