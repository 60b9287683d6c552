//! One Postgres connection: its sign-in, its user's [`Session`], and the hook that sends writes
//! through the session and passes every read plan through [`Session::authorize`].

use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use carelake_common::redact_literals;
use carelake_lake::User;
use carelake_sql::{QueryResult, Session};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr, Statement, Value, visit_expressions};
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::Sink;
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use super::Shared;
use super::auth::ScramStartup;

/// The catalog name the zones live under (as in [`Session`]).
const CATALOG: &str = "carelake";
/// How stale a connection's view of the catalog may be.
const REFRESH_AFTER: Duration = Duration::from_secs(1);

/// The handlers of one connection.
pub(crate) struct Connection {
    pub(crate) startup: Arc<ScramStartup>,
    pub(crate) query: Arc<QueryHandler>,
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>, require_tls: bool) -> Self {
        let query = Arc::new(QueryHandler::new());
        Self {
            startup: Arc::new(ScramStartup::new(shared, Arc::clone(&query), require_tls)),
            query,
        }
    }
}

/// What a connection runs queries with before sign-in: nothing (pgwire passes no query to the
/// handlers before the start-up handler has finished), but the handler types need one.
static SIGNED_OUT: LazyLock<Arc<DfSessionService>> =
    LazyLock::new(|| Arc::new(DfSessionService::new(Arc::new(SessionContext::new()))));

/// When a connection last finished a statement, and how many it is running.
#[derive(Debug)]
pub(crate) struct Activity {
    last: std::sync::Mutex<Instant>,
    running: std::sync::atomic::AtomicUsize,
}

/// Counts a statement as running until dropped.
struct Running<'a>(&'a Activity);

impl Activity {
    fn start(&self) -> Running<'_> {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Running(self)
    }

    /// How long the connection has been idle (zero while a statement runs).
    fn idle_for(&self) -> Duration {
        if self.running.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Completes once the connection has run no statement for `timeout` (never without one).
pub(crate) async fn idle(activity: Arc<Activity>, timeout: Option<Duration>) {
    let Some(timeout) = timeout.filter(|t| !t.is_zero()) else {
        return std::future::pending().await;
    };
    let tick = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        if activity.idle_for() >= timeout {
            return;
        }
    }
}

/// The connection's query handler: `datafusion-postgres`'s service over the signed-in user's
/// own session.
pub(crate) struct QueryHandler {
    inner: RwLock<Arc<DfSessionService>>,
    activity: Arc<Activity>,
}

impl QueryHandler {
    fn new() -> Self {
        Self {
            inner: RwLock::new(Arc::clone(&SIGNED_OUT)),
            activity: Arc::new(Activity {
                last: std::sync::Mutex::new(Instant::now()),
                running: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// The connection's activity, for its idle timeout.
    pub(crate) fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    fn current(&self) -> Arc<DfSessionService> {
        Arc::clone(&self.inner.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Opens `user`'s session with `pg_catalog` and serves this connection from it.
    pub(crate) async fn sign_in(
        &self,
        shared: &Shared,
        user: &User,
        peer: String,
    ) -> carelake_sql::Result<()> {
        let session = Session::open_with(
            shared.lake.clone(),
            user.principal(),
            carelake_common::Origin::network(carelake_common::Interface::Postgres, Some(peer)),
            carelake_sql::FileAccess::from_env(),
        )
        .await?;
        if let Some(setup) = &shared.config.session_setup {
            setup.apply(&session).map_err(|reason| {
                tracing::error!(%reason, "session setup failed");
                carelake_sql::Error::Unsupported("the server could not prepare the session".into())
            })?;
        }
        setup_pg_catalog(session.context(), CATALOG, EmptyContextProvider)
            .map_err(|e| carelake_sql::Error::DataFusion(*e))?;
        // The catalog registers its own `session_user` ("postgres"): carelake's answers.
        session.register_identity_functions();
        let context = Arc::new(session.context().clone());
        let hook = CarelakeHook {
            session: Arc::new(session),
            refreshed: tokio::sync::Mutex::new(Instant::now()),
            sign_in: Arc::clone(&shared.sign_in),
            user: user.name.clone(),
            signed_in_at: chrono::Utc::now(),
            max_statement_timeout: shared.config.statement_timeout,
        };
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(hook),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(DfSessionService::new_with_hooks(context, hooks));
        Ok(())
    }
}

/// Counts a statement run over Postgres and records its time when dropped (also when the
/// client went away half-way).
struct QueryTimer(Instant);

impl QueryTimer {
    fn start() -> Self {
        ::metrics::counter!(carelake_common::metrics::QUERIES, "interface" => "postgres")
            .increment(1);
        Self(Instant::now())
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        carelake_common::metrics::record_seconds(
            carelake_common::metrics::QUERY_SECONDS,
            "interface",
            "postgres",
            self.0.elapsed(),
        );
    }
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _running = self.activity.start();
        let _timer = QueryTimer::start();
        SimpleQueryHandler::do_query(self.current().as_ref(), client, query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = <DfSessionService as ExtendedQueryHandler>::QueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.current().query_parser()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _running = self.activity.start();
        let _timer = QueryTimer::start();
        ExtendedQueryHandler::do_query(self.current().as_ref(), client, portal, max_rows).await
    }
}

/// carelake's rules for a connection's statements.
struct CarelakeHook {
    session: Arc<Session>,
    refreshed: tokio::sync::Mutex<Instant>,
    sign_in: Arc<crate::SignIn>,
    user: String,
    signed_in_at: chrono::DateTime<chrono::Utc>,
    /// The server's longest statement timeout (clients may only lower it).
    max_statement_timeout: Duration,
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

fn sql_error(error: carelake_sql::Error) -> PgWireError {
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
        if let Some(timeout) = statement_timeout(statement, self.max_statement_timeout) {
            return Some(Ok(set_statement_timeout(client, timeout)));
        }
        match route(statement) {
            Route::Session => Some(self.write(statement).await),
            Route::Control if sets_engine_option(statement) => {
                Some(Err(sql_error(carelake_sql::Error::PermissionDenied(
                    "SET of engine options is for the lake's owner on the command line".into(),
                ))))
            }
            Route::Control => None,
            Route::Read => {
                // Plan once here so that the session's rules see the plan; the service plans
                // again on the same context.
                let planned = session_context
                    .state()
                    .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
                    .await;
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
                let planned = session_context
                    .state()
                    .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
                    .await;
                return Some(match planned {
                    Ok(plan) => Ok(plan),
                    Err(e) => match self.column_denial(statement, &e).await {
                        Some(denied) => denied,
                        None => Err(PgWireError::ApiError(Box::new(e))),
                    },
                });
            }
            Route::Control if sets_engine_option(statement) => {
                return Some(Err(sql_error(carelake_sql::Error::PermissionDenied(
                    "SET of engine options is for the lake's owner on the command line".into(),
                ))));
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
        if let Some(timeout) = statement_timeout(statement, self.max_statement_timeout) {
            return Some(Ok(set_statement_timeout(client, timeout)));
        }
        match route(statement) {
            Route::Session => Some(self.write(statement).await),
            Route::Control if sets_engine_option(statement) => {
                Some(Err(sql_error(carelake_sql::Error::PermissionDenied(
                    "SET of engine options is for the lake's owner on the command line".into(),
                ))))
            }
            Route::Control => None,
            Route::Read => self.check_read(statement, plan).await.err().map(Err),
        }
    }
}

/// Sets the connection's statement timeout (the metadata datafusion-postgres reads).
fn set_statement_timeout(client: &mut dyn HookClient, timeout: Duration) -> Response {
    client.metadata_mut().insert(
        "statement_timeout_ms".to_string(),
        timeout.as_millis().to_string(),
    );
    Response::Execution(Tag::new("SET"))
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

#[cfg(test)]
mod tests {
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
