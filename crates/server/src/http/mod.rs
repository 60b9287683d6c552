//! The HTTP API (axum): SQL queries with results as JSON, CSV or Arrow IPC, the catalog, durable
//! streaming ingest, health and Prometheus metrics. Every route but the health checks needs a
//! lake user (HTTP Basic or a bearer token); each user's queries run in that user's own
//! [`Session`], so that what the session enforces for its principal applies here as on the
//! command line.

mod api;
mod auth;
mod encode;
mod listen;
mod metrics;
mod routes;
mod ui;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carelake_lake::Lake;
use carelake_sql::Session;
use carelake_stream::StreamIngest;

use crate::{Error, Result};

/// Default address of the HTTP API.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Most rows a query returns; more are cut off and the response says so.
    pub max_rows: usize,
    /// Longest a query may run.
    pub query_timeout: Duration,
    /// Largest request body (queries and ingest).
    pub max_body_bytes: usize,
    /// Most events in one ingest request.
    pub max_events: usize,
    /// Most queries running at once over HTTP and the web UI; more wait up to
    /// [`HttpConfig::queue_timeout`], then get 503.
    pub max_concurrent_queries: usize,
    /// How long a query waits for a turn.
    pub queue_timeout: Duration,
    /// Most connections at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Mark the UI's cookie `Secure` (named `__Host-…`) and send HSTS although this server
    /// speaks plain HTTP: for a TLS proxy in front of it.
    pub secure_cookies: bool,
    /// Where FHIR bodies posted to `/api/v1/fhir` are kept (the loader's input files).
    pub spool_dir: std::path::PathBuf,
    /// Certificate and key: HTTPS only when set.
    pub tls: Option<crate::TlsConfig>,
    /// The sign-in state to share with the other listeners of the process (one is made with
    /// [`SignInConfig`](crate::SignInConfig)'s defaults when `None`).
    pub sign_in: Option<Arc<crate::SignIn>>,
    /// Run on every session this listener opens (see [`SessionSetup`](crate::SessionSetup)).
    pub session_setup: Option<crate::SessionSetup>,
}

impl HttpConfig {
    /// Defaults at `addr`: 100,000 rows, 60 s, 16 MiB bodies, 100,000 events per request,
    /// 16 queries at once (waiting up to 10 s for a turn), 1,024 connections, 10 s for the
    /// headers and 60 s for the body of a request, FHIR bodies spooled to `spool_dir`.
    pub fn new(addr: SocketAddr, spool_dir: impl Into<std::path::PathBuf>) -> Self {
        Self {
            addr,
            max_rows: 100_000,
            query_timeout: Duration::from_secs(60),
            max_body_bytes: 16 << 20,
            max_events: 100_000,
            max_concurrent_queries: 16,
            queue_timeout: Duration::from_secs(10),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            secure_cookies: false,
            spool_dir: spool_dir.into(),
            tls: None,
            sign_in: None,
            session_setup: None,
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) lake: Lake,
    pub(crate) config: HttpConfig,
    pub(crate) sign_in: Arc<crate::SignIn>,
    pub(crate) sessions: tokio::sync::Mutex<HashMap<SessionKey, Arc<UserSession>>>,
    pub(crate) ingest: StreamIngest,
    pub(crate) ready: AtomicBool,
    /// Turns for running queries ([`HttpConfig::max_concurrent_queries`]).
    pub(crate) query_turns: tokio::sync::Semaphore,
}

/// Sessions are kept per user, interface (API or UI) and peer address, so that each audit
/// record names where its statement came from.
pub(crate) type SessionKey = (String, carelake_common::Interface, Option<std::net::IpAddr>);

tokio::task_local! {
    /// The peer and interface of the request being served (set by the router's layer).
    pub(crate) static REQUEST_ORIGIN: (Option<SocketAddr>, carelake_common::Interface);
}

/// The interface and peer address of the current request.
pub(crate) fn request_origin() -> (carelake_common::Interface, Option<SocketAddr>) {
    REQUEST_ORIGIN
        .try_with(|(peer, interface)| (*interface, *peer))
        .unwrap_or((carelake_common::Interface::Http, None))
}

/// The peer address of a connection, for `ConnectInfo` (over TCP and over TLS).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// Whether a request comes from another site: a browser's `Sec-Fetch-Site` says so, or its
/// `Origin` names another host. Browsers send one of them with every cross-site POST (forms,
/// `fetch`), so refusing these stops cross-site request forgery with a session cookie or with
/// Basic credentials a browser remembers; clients that are not browsers send neither.
pub(crate) fn cross_site(headers: &axum::http::HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return true;
    }
    if let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) {
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        return origin_host != host;
    }
    false
}

/// A user's session and when its catalog was last read.
pub(crate) struct UserSession {
    session: Arc<Session>,
    refreshed: tokio::sync::Mutex<Option<std::time::Instant>>,
    used: std::sync::Mutex<std::time::Instant>,
}

impl UserSession {
    fn idle(&self) -> Duration {
        self.used.lock().map_or(Duration::ZERO, |at| at.elapsed())
    }
}

/// A session unused this long is closed when another is opened (each holds a DataFusion
/// context; users come and go, and peers' addresses change).
const SESSION_IDLE: Duration = Duration::from_secs(15 * 60);

/// At most this many sessions are kept; beyond it the longest idle ones not running a
/// statement are closed first.
const MAX_SESSIONS: usize = 512;

/// Closes the sessions idle past [`SESSION_IDLE`], and beyond [`MAX_SESSIONS`] the longest idle
/// ones, leaving any a request holds.
fn prune_sessions(sessions: &mut HashMap<SessionKey, Arc<UserSession>>) {
    let free =
        |s: &Arc<UserSession>| Arc::strong_count(s) == 1 && Arc::strong_count(&s.session) == 1;
    sessions.retain(|_, s| !(free(s) && s.idle() >= SESSION_IDLE));
    if sessions.len() >= MAX_SESSIONS {
        let mut idle: Vec<(Duration, SessionKey)> = sessions
            .iter()
            .filter(|(_, s)| free(s))
            .map(|(k, s)| (s.idle(), k.clone()))
            .collect();
        idle.sort_by_key(|(idle, _)| std::cmp::Reverse(*idle));
        for (_, key) in idle.into_iter().take(sessions.len() + 1 - MAX_SESSIONS) {
            sessions.remove(&key);
        }
    }
}

/// How stale a session's view of the catalog may be (tables and views made by others).
const REFRESH_AFTER: Duration = Duration::from_secs(1);

impl AppState {
    /// The user's session, opened on first use; its catalog is read again when it is more
    /// than a second old, one refresh at a time.
    pub(crate) async fn session(
        &self,
        user: &carelake_lake::User,
    ) -> Result<Arc<Session>, ApiError> {
        let (interface, peer) = request_origin();
        let key: SessionKey = (user.name.clone(), interface, peer.map(|p| p.ip()));
        let entry = {
            let mut sessions = self.sessions.lock().await;
            match sessions.get(&key) {
                Some(s) => Arc::clone(s),
                None => {
                    prune_sessions(&mut sessions);
                    let session = Session::open_with(
                        self.lake.clone(),
                        user.principal(),
                        carelake_common::Origin::network(
                            interface,
                            peer.map(|p| p.ip().to_string()),
                        ),
                        carelake_sql::FileAccess::from_env(),
                    )
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                    if let Some(setup) = &self.config.session_setup {
                        setup.apply(&session).map_err(|reason| {
                            tracing::error!(%reason, "session setup failed");
                            ApiError::internal("the server could not prepare the session")
                        })?;
                    }
                    let entry = Arc::new(UserSession {
                        session: Arc::new(session),
                        refreshed: tokio::sync::Mutex::new(Some(std::time::Instant::now())),
                        used: std::sync::Mutex::new(std::time::Instant::now()),
                    });
                    sessions.insert(key, Arc::clone(&entry));
                    entry
                }
            }
        };
        if let Ok(mut used) = entry.used.lock() {
            *used = std::time::Instant::now();
        }
        let mut refreshed = entry.refreshed.lock().await;
        if refreshed.is_none_or(|at| at.elapsed() > REFRESH_AFTER) {
            entry
                .session
                .refresh()
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            *refreshed = Some(std::time::Instant::now());
        }
        Ok(Arc::clone(&entry.session))
    }
}

impl AppState {
    /// Runs a script for `user` as one of the bounded number of queries at once, within the
    /// query timeout, every query's result cut at `max_rows + 1` rows inside its plan.
    pub(crate) async fn run_sql(
        &self,
        user: &carelake_lake::User,
        sql: &str,
        max_rows: usize,
    ) -> Result<Vec<carelake_sql::QueryResult>, ApiError> {
        let session = self.session(user).await?;
        let _turn = tokio::time::timeout(self.config.queue_timeout, self.query_turns.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many queries are running: try again shortly",
                );
                e.retry_after = Some(1);
                e
            })?;
        ::metrics::counter!(carelake_common::metrics::QUERIES, "interface" => "http").increment(1);
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(
            self.config.query_timeout,
            session.sql_all_limited(sql, max_rows),
        )
        .await;
        carelake_common::metrics::record_seconds(
            carelake_common::metrics::QUERY_SECONDS,
            "interface",
            "http",
            started.elapsed(),
        );
        result
            .map_err(|_| {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the query ran longer than {} s",
                        self.config.query_timeout.as_secs()
                    ),
                )
            })?
            .map_err(ApiError::from_sql)
    }
}

/// An error answered as `{"error": "…"}` with its status. The message has its quoted
/// literals blanked: an engine error may quote a value from a patient table.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// Seconds for a `Retry-After` header (429 and 503).
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: carelake_common::redact_literals(&message.into()),
            retry_after: None,
        }
    }
    /// The message (literals blanked).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
    /// A statement's error, answered by its kind: 400 for a wrong statement or one that needs
    /// more than a limit allows, 403 for a missing privilege, 409 for a lost race with another
    /// writer, 503 with `Retry-After` when a service the statement needs is unavailable, 500
    /// for a fault of ours.
    pub(crate) fn from_sql(error: carelake_sql::Error) -> Self {
        use carelake_sql::ErrorKind;
        let kind = error.kind();
        let status = match kind {
            ErrorKind::Invalid | ErrorKind::Exhausted => StatusCode::BAD_REQUEST,
            ErrorKind::Denied => StatusCode::FORBIDDEN,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => return Self::internal(error.to_string()),
        };
        let mut answer = Self::new(status, error.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answer.retry_after = Some(5);
        }
        answer
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %carelake_common::redact_literals(&message), "Request failed.");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"carelake\", charset=\"UTF-8\""),
            );
        }
        auth::with_retry_after(response, self.retry_after)
    }
}

/// The HTTP API, bound and ready to serve.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.local_addr())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("lake", &self.lake.display_location())
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Binds the address; streamed events go through `ingest`.
    /// Fails, rather than serving in the clear, when a configured certificate cannot be used.
    pub async fn bind(config: HttpConfig, lake: Lake, ingest: StreamIngest) -> Result<Self> {
        let tls = config
            .tls
            .as_ref()
            .map(crate::TlsConfig::acceptor)
            .transpose()?;
        // A backlog of 1,024 (tokio's `bind` asks for 128): a burst of connections waits for
        // the accept loop instead of being reset by the kernel.
        let bind = || -> std::io::Result<tokio::net::TcpListener> {
            let socket = if config.addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(config.addr)?;
            socket.listen(1024)
        };
        let listener = bind().map_err(|source| Error::Bind {
            addr: config.addr.to_string(),
            source,
        })?;
        let sign_in = config
            .sign_in
            .clone()
            .unwrap_or_else(|| crate::SignIn::new(lake.clone(), crate::SignInConfig::default()));
        let config_turns = config.max_concurrent_queries.max(1);
        let state = Arc::new(AppState {
            lake,
            config,
            sign_in,
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            ingest,
            ready: AtomicBool::new(true),
            query_turns: tokio::sync::Semaphore::new(config_turns),
        });
        Ok(Self {
            listener,
            tls,
            state,
        })
    }

    /// Whether the server speaks HTTPS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then flushes the streamed events.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let state = Arc::clone(&self.state);
        let router = routes::router(Arc::clone(&self.state));
        listen::serve(self.listener, self.tls, router, &state.config, shutdown).await;
        state.ready.store(false, Ordering::Relaxed);
        state.ingest.shutdown().await?;
        Ok(())
    }
}
