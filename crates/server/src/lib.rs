//! carelake's network listeners: the HTTP API (queries, catalog, streaming ingest, health,
//! metrics), the PostgreSQL wire protocol for psql, drivers and BI tools, and the MLLP listener that takes HL7 v2 messages from
//! interface engines and EHRs over TCP, stores each durably in the lake exactly once and only
//! then acknowledges it.
//!
//! ```no_run
//! # async fn run() -> carelake_server::Result<()> {
//! use carelake_common::Principal;
//! use carelake_stream::Hl7Store;
//! use carelake_lake::Lake;
//! use carelake_server::{MllpConfig, MllpServer};
//!
//! let lake = Lake::open("./carelake-data").await?;
//! let store = Hl7Store::open(lake, Principal::local_admin()).await?;
//! let server = MllpServer::bind(MllpConfig::default(), store).await?;
//! server.run(std::future::pending()).await
//! # }
//! ```

mod error;
mod http;
mod mllp;
mod pg;
mod setup;
mod signin;
mod tls;

pub use error::{Error, Result};
pub use http::{DEFAULT_HTTP_ADDR, HttpConfig, HttpServer};
pub use mllp::{DEFAULT_MLLP_PORT, MllpConfig, MllpServer, PeerRange};
pub use pg::{DEFAULT_PG_ADDR, PgConfig, PgServer};
pub use setup::SessionSetup;
pub use signin::{MAX_DELAY, Refusal, SignIn, SignInConfig};
pub use tls::TlsConfig;
