//! carelake's hook on a connection's statements: writes through the session, every read plan
//! through [`Session::authorize`], statement timeouts and the command tags of what was done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use carelake_sql::{QueryResult, Session};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr, Statement, Value, visit_expressions};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::portal::Format;
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

use super::errors::sql_error;

/// How stale a connection's view of the catalog may be.
const REFRESH_AFTER: Duration = Duration::from_secs(1);

/// carelake's rules for a connection's statements.
pub(super) struct CarelakeHook {
    pub(super) session: Arc<Session>,
    pub(super) refreshed: tokio::sync::Mutex<Instant>,
    pub(super) sign_in: Arc<crate::SignIn>,
    pub(super) user: String,
    pub(super) signed_in_at: chrono::DateTime<chrono::Utc>,
    /// The server's longest statement timeout (clients may only lower it).
    pub(super) max_statement_timeout: Duration,
}

impl std::fmt::Debug for CarelakeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarelakeHook").finish_non_exhaustive()
    }
}

/// How a statement is run over the Postgres protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A query (or EXPLAIN of one): planned and encoded by datafusion-postgres on the session's
    /// context, after [`Session::authorize`] saw its plan.
    Read,
    /// Session settings and transactions, for the other hooks (refused for engine options).
    Control,
    /// Everything else runs through [`Session::sql`], with all its checks.
    Session,
}

fn route(statement: &Statement) -> Route {
    if matches!(statement, Statement::Query(_) | Statement::Explain { .. }) {
        return Route::Read;
    }
    let text = statement.to_string();
    let first = text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "SET" | "SHOW" | "RESET" | "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "END" | "ABORT"
        | "DISCARD" | "DEALLOCATE" => {
            // Governance listings are carelake's own statements.
            let upper = text.to_ascii_uppercase();
            if upper.starts_with("SHOW GRANTS")
                || upper.starts_with("SHOW ROLES")
                || upper.starts_with("SHOW POLICIES")
            {
                Route::Session
            } else {
                Route::Control
            }
        }
        _ => Route::Session,
    }
}

/// Whether a session-control statement would change an engine option (`SET datafusion.…`).
fn sets_engine_option(statement: &Statement) -> bool {
    let text = statement.to_string().to_ascii_lowercase();
    (text.starts_with("set") || text.starts_with("reset")) && text.contains("datafusion.")
}

/// The timeout a `SET [SESSION] statement_timeout …` asks for, held to the server's `max`
/// (`0`, `DEFAULT` or more than `max` mean `max`: a client cannot switch it off); `None` when
/// the statement sets something else.
fn statement_timeout(statement: &Statement, max: Duration) -> Option<Duration> {
    let text = statement.to_string().to_ascii_lowercase();
    let rest = text
        .strip_prefix("set session ")
        .or_else(|| text.strip_prefix("set local "))
        .or_else(|| text.strip_prefix("set "))
        .or_else(|| text.strip_prefix("reset "))?
        .trim_start();
    let value = rest.strip_prefix("statement_timeout")?.trim();
    let value = value
        .strip_prefix('=')
        .or_else(|| value.strip_prefix("to "))
        .unwrap_or(value)
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .trim();
    let (number, unit_ms) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = value.strip_suffix("min") {
        (n, 60_000)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000)
    } else {
        (value, 1)
    };
    let asked = number
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| Duration::from_millis(n.saturating_mul(unit_ms)));
    Some(asked.map_or(max, |a| a.min(max)))
}

fn has_parameters(statement: &Statement) -> bool {
    visit_expressions(statement, |expr| {
        if let Expr::Value(v) = expr
            && matches!(v.value, Value::Placeholder(_))
        {
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    })
    .is_break()
}

/// The command tag for what [`Session::sql`] said it did ("INSERT 3", "MERGE inserted 1, …").
fn tag_for(message: &str) -> Tag {
    let words: Vec<&str> = message.split_whitespace().collect();
    let command: Vec<&str> = words
        .iter()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        .copied()
        .collect();
    let numbers = words
        .iter()
        .filter_map(|w| w.trim_end_matches(',').parse::<usize>().ok());
    let command = if command.is_empty() {
        "OK".to_string()
    } else {
        command.join(" ")
    };
    let rows: Option<usize> = match command.as_str() {
        "MERGE" => Some(numbers.sum()),
        "INSERT" | "UPDATE" | "DELETE" | "COPY" => numbers.into_iter().next(),
        _ => None,
    };
    let tag = Tag::new(&command);
    let tag = if command == "INSERT" {
        tag.with_oid(0)
    } else {
        tag
    };
    match rows {
        Some(n) => tag.with_rows(n),
        None => tag,
    }
}

impl CarelakeHook {
    /// Reads the catalog again when the connection's view is more than a second old, so that
    /// tables made by others appear.
    async fn refresh(&self) -> PgWireResult<()> {
        // A disabled user, a changed password or an admin's revocation ends the connection's
        // sign-in at its next statement (the users are read again at most every second).
        match self
            .sign_in
            .still_signed_in(&self.user, self.signed_in_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".into(),
                    "28000".into(),
                    "the session has ended: the user was disabled, changed password or was signed out by an admin; sign in again".into(),
                ))));
            }
            Err(e) => {
                return Err(PgWireError::ApiError(Box::new(std::io::Error::other(
                    e.to_string(),
                ))));
            }
        }
        let mut refreshed = self.refreshed.lock().await;
        if refreshed.elapsed() > REFRESH_AFTER {
            self.session.refresh().await.map_err(sql_error)?;
            *refreshed = Instant::now();
        }
        Ok(())
    }

    /// How a statement that the two query protocols both see is answered: a statement timeout
    /// is set, a write runs through the session, an engine option is refused, another control
    /// statement goes to the service, and a read is left to the caller (with its plan).
    async fn answer(&self, statement: &Statement, client: &mut dyn HookClient) -> Answer {
        if let Some(timeout) = statement_timeout(statement, self.max_statement_timeout) {
            return Answer::Here(Ok(set_statement_timeout(client, timeout)));
        }
        match route(statement) {
            Route::Session => Answer::Here(self.write(statement).await),
            Route::Control if sets_engine_option(statement) => {
                Answer::Here(Err(engine_option_refused()))
            }
            Route::Control => Answer::ByService,
            Route::Read => Answer::Read,
        }
    }

    /// Authorizes a read's plan and records it in the audit log (before it runs: a read
    /// whose record cannot be written is refused).
    async fn check_read(&self, statement: &Statement, plan: &LogicalPlan) -> PgWireResult<()> {
        let sql = statement.to_string();
        let checked = self.session.authorize(plan);
        let recorded = self
            .session
            .record_statement(&sql, Some(plan), None, checked.as_ref().err())
            .await;
        checked.map_err(sql_error)?;
        recorded.map_err(sql_error)
    }

    /// A planning error for a column not granted, as the refusal; `None` for other errors
    /// (the service reports them itself).
    async fn column_denial<T>(
        &self,
        statement: &Statement,
        error: &datafusion::error::DataFusionError,
    ) -> Option<PgWireResult<T>> {
        let denied = self.session.column_denial(error).await?;
        let recorded = self
            .session
            .record_statement(&statement.to_string(), None, None, Some(&denied))
            .await;
        Some(Err(sql_error(recorded.err().unwrap_or(denied))))
    }

    async fn write(&self, statement: &Statement) -> PgWireResult<Response> {
        let result: QueryResult = self
            .session
            .sql(&statement.to_string())
            .await
            .map_err(sql_error)?;
        if let Some(message) = &result.message {
            return Ok(Response::Execution(tag_for(message)));
        }
        let frame = self
            .session
            .context()
            .read_batches(result.batches)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        Ok(Response::Query(
            encode_dataframe(frame, &Format::UnifiedText, None).await?,
        ))
    }
}

#[async_trait]
impl QueryHook for CarelakeHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Err(e) = self.refresh().await {
            return Some(Err(e));
        }
        match self.answer(statement, client).await {
            Answer::Here(result) => Some(result),
            Answer::ByService => None,
            Answer::Read => {
                // Plan once here so that the session's rules see the plan; the service plans
                // again on the same context.
                let planned = plan(session_context, statement).await;
                match planned {
                    Ok(plan) => self.check_read(statement, &plan).await.err().map(Err),
                    Err(e) => self.column_denial(statement, &e).await,
                }
            }
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if let Err(e) = self.refresh().await {
            return Some(Err(e));
        }
        match route(statement) {
            Route::Read => {
                // Planned here, as the service would (it then uses this plan): so that a
                // column the user was not granted is a refusal (42501), not an unknown one.
                let planned = plan(session_context, statement).await;
                return Some(match planned {
                    Ok(plan) => Ok(plan),
                    Err(e) => match self.column_denial(statement, &e).await {
                        Some(denied) => denied,
                        None => Err(PgWireError::ApiError(Box::new(e))),
                    },
                });
            }
            Route::Control if sets_engine_option(statement) => {
                return Some(Err(engine_option_refused()));
            }
            Route::Control => return None,
            Route::Session => {}
        }
        if has_parameters(statement) {
            return Some(Err(sql_error(carelake_sql::Error::Unsupported(
                "parameters in writes over the Postgres protocol; give the values in the statement"
                    .into(),
            ))));
        }
        // Run at execute time by the session; described as returning no rows.
        Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::empty()),
        })))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match self.answer(statement, client).await {
            Answer::Here(result) => Some(result),
            Answer::ByService => None,
            Answer::Read => self.check_read(statement, plan).await.err().map(Err),
        }
    }
}

/// See [`CarelakeHook::answer`].
enum Answer {
    /// Answered by the hook.
    Here(PgWireResult<Response>),
    /// Left to datafusion-postgres (SET, SHOW, transactions).
    ByService,
    /// A read: its plan is checked by the caller.
    Read,
}

/// The refusal of `SET` of an engine option over the network.
fn engine_option_refused() -> PgWireError {
    sql_error(carelake_sql::Error::PermissionDenied(
        "SET of engine options is for the lake's owner on the command line".into(),
    ))
}

/// Plans a read as the service would, so that the session's rules see the plan.
async fn plan(
    session_context: &SessionContext,
    statement: &Statement,
) -> datafusion::error::Result<LogicalPlan> {
    session_context
        .state()
        .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
        .await
}

/// Sets the connection's statement timeout (the metadata datafusion-postgres reads).
fn set_statement_timeout(client: &mut dyn HookClient, timeout: Duration) -> Response {
    client.metadata_mut().insert(
        "statement_timeout_ms".to_string(),
        timeout.as_millis().to_string(),
    );
    Response::Execution(Tag::new("SET"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn a_client_can_lower_the_statement_timeout_but_not_lift_it() {
        let max = Duration::from_secs(300);
        let parse = |sql: &str| {
            let statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                sql,
            )
            .unwrap()
            .pop()
            .unwrap();
            statement_timeout(&statement, max)
        };
        assert_eq!(parse("SET statement_timeout = 0"), Some(max));
        assert_eq!(parse("SET statement_timeout TO '0'"), Some(max));
        assert_eq!(
            parse("SET statement_timeout = '5000ms'"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse("SET SESSION statement_timeout = '2s'"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse("SET statement_timeout = '10min'"), Some(max));
        assert_eq!(parse("SET statement_timeout = 999999999"), Some(max));
        assert_eq!(parse("SET statement_timeout TO DEFAULT"), Some(max));
        assert_eq!(parse("SET search_path = raw"), None);
    }

    #[test]
    fn tags_follow_what_the_session_did() {
        let t = |m: &str| format!("{:?}", tag_for(m));
        assert_eq!(
            t("INSERT 3"),
            format!("{:?}", Tag::new("INSERT").with_oid(0).with_rows(3))
        );
        assert_eq!(
            t("DELETE 2"),
            format!("{:?}", Tag::new("DELETE").with_rows(2))
        );
        assert_eq!(
            t("MERGE inserted 1, updated 2, deleted 0"),
            format!("{:?}", Tag::new("MERGE").with_rows(3))
        );
        assert_eq!(
            t("CREATE TABLE 5 rows"),
            format!("{:?}", Tag::new("CREATE TABLE"))
        );
        assert_eq!(t("DROP VIEW"), format!("{:?}", Tag::new("DROP VIEW")));
    }
}
