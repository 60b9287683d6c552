//! One Postgres connection: its sign-in, its user's [`Session`], its activity (for the idle
//! timeout) and its query handlers. The hook that checks its statements is in `hook.rs`, the
//! SQLSTATE of its errors in `errors.rs`.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use carelake_lake::User;
use carelake_sql::Session;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::Sink;
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use super::Shared;
use super::auth::ScramStartup;
use super::hook::CarelakeHook;

/// The catalog name the zones live under (as in [`Session`]).
const CATALOG: &str = "carelake";

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
