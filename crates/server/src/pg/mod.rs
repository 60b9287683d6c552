//! The PostgreSQL wire protocol, for psql, BI tools and database drivers.
//!
//! Built on `pgwire` and `datafusion-postgres`, but not on the latter's one-call `serve`: that
//! shares one `SessionContext` among all connections and serves in the clear when TLS set-up
//! fails. Here every connection signs in as a lake user with SCRAM-SHA-256 and then gets its
//! own [`Session`](carelake_sql::Session) for that user, so that what the session enforces for
//! its principal applies over this protocol as everywhere else; a configured certificate that
//! cannot be loaded stops the server from starting, and with TLS configured a client that does
//! not use it is turned away.
//!
//! Reads (with parameters, prepared statements and portals) are planned and encoded by
//! `datafusion-postgres` on the session's own context, after [`Session::authorize`] has passed
//! their plan; writes and DDL (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `CREATE TABLE`,
//! `CREATE VIEW`, `DROP`) run through [`Session::sql`], which keeps the catalog and lineage.
//! `pg_catalog` and `information_schema` answer the metadata queries of psql's `\d`, JDBC and
//! BI tools.
//!
//! [`Session::authorize`]: carelake_sql::Session::authorize
//! [`Session::sql`]: carelake_sql::Session::sql

mod auth;
mod conn;
mod errors;
mod hook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use carelake_lake::Lake;
use pgwire::api::PgWireServerHandlers;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::tls::TlsConfig;
use crate::{Error, Result};

/// Default address of the Postgres wire protocol listener.
pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";

/// Settings of the Postgres listener.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Certificate and key; when set, every client must use TLS.
    pub tls: Option<TlsConfig>,
    /// Most connections at once; more are refused.
    pub max_connections: usize,
    /// Longest a statement may run unless the client sets `statement_timeout` itself.
    pub statement_timeout: Duration,
    /// A signed-in connection with no statement for this long is closed (`None`: never).
    /// Sign-in itself must finish within 60 seconds (pgwire's start-up timeout).
    pub idle_timeout: Option<Duration>,
    /// The sign-in state to share with the other listeners of the process (one is made with
    /// [`SignInConfig`](crate::SignInConfig)'s defaults when `None`).
    pub sign_in: Option<Arc<crate::SignIn>>,
    /// Run on every session this listener opens (see [`SessionSetup`](crate::SessionSetup)).
    pub session_setup: Option<crate::SessionSetup>,
}

impl PgConfig {
    /// Defaults at `addr`: no TLS, 64 connections, 5-minute statements.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            max_connections: 64,
            statement_timeout: Duration::from_secs(300),
            idle_timeout: Some(Duration::from_secs(3600)),
            sign_in: None,
            session_setup: None,
        }
    }
}

/// What all connections share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) lake: Lake,
    pub(crate) config: PgConfig,
    /// Secret for the made-up salts shown to unknown user names, so that a name cannot be
    /// probed by its salt changing between attempts.
    pub(crate) mock_secret: [u8; 32],
    /// Back-off, lock-out, revocation and the audit of sign-ins.
    pub(crate) sign_in: Arc<crate::SignIn>,
}

/// A bound Postgres listener; [`PgServer::run`] serves it.
pub struct PgServer {
    listener: TcpListener,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("addr", &self.shared.config.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PgServer {
    /// Loads the certificate (when configured) and binds the address. Fails, rather than
    /// serving unencrypted, when the certificate cannot be used.
    pub async fn bind(config: PgConfig, lake: Lake) -> Result<Self> {
        let tls = config.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr.to_string(),
                source,
            })?;
        let mut mock_secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut mock_secret)
            .map_err(|_| Error::Tls("no random numbers available".into()))?;
        let sign_in = config
            .sign_in
            .clone()
            .unwrap_or_else(|| crate::SignIn::new(lake.clone(), crate::SignInConfig::default()));
        Ok(Self {
            listener,
            tls,
            shared: Arc::new(Shared {
                lake,
                config,
                mock_secret,
                sign_in,
            }),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::Accept)
    }

    /// Whether clients must use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves connections until `shutdown` completes; connections in progress end with the
    /// process.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let limit = Arc::new(Semaphore::new(self.shared.config.max_connections.max(1)));
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accepting a Postgres connection failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                tracing::warn!(%peer, "Postgres connection refused: too many connections.");
                drop(socket);
                continue;
            };
            let _ = socket.set_nodelay(true);
            let handlers = conn::Connection::new(Arc::clone(&self.shared), self.tls.is_some());
            let tls = self.tls.clone();
            let activity = handlers.query.activity();
            let idle_timeout = self.shared.config.idle_timeout;
            tokio::spawn(async move {
                tokio::select! {
                    ended = pgwire::tokio::process_socket(socket, tls, handlers) => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, error = %e, "Postgres connection ended with an error.");
                        }
                    }
                    () = conn::idle(activity, idle_timeout) => {
                        tracing::info!(%peer, "Postgres connection closed: idle too long.");
                    }
                }
                drop(permit);
            });
        }
    }
}

// `process_socket` takes the handlers by value; one `Connection` serves one socket.
impl PgWireServerHandlers for conn::Connection {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.query)
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.query)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn error_handler(&self) -> Arc<impl pgwire::api::ErrorHandler> {
        Arc::new(errors::ErrorRewriter)
    }
}
