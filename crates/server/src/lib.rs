//! carelake's network listeners: the HTTP API (queries, catalog, streaming ingest, health,
//! metrics), the PostgreSQL wire protocol for psql, drivers and BI tools, and the MLLP listener that takes HL7 v2 messages from
//! interface engines and EHRs over TCP, stores each durably in the lake exactly once and only
//! then acknowledges it.
//!
//! ```no_run
//! # async fn run() -> carelake_server::Result<()> {
//! use carelake_common::Principal;
//! use carelake_ingest::Hl7Store;
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
mod tls;

pub use error::{Error, Result};
pub use http::{DEFAULT_HTTP_ADDR, HttpConfig, HttpServer};
pub use mllp::{DEFAULT_MLLP_PORT, MllpConfig, MllpServer};
pub use pg::{DEFAULT_PG_ADDR, PgConfig, PgServer};
pub use tls::TlsConfig;

/// Records a sign-in (or a refused one) in the audit log. A sign-in whose record cannot be
/// written is logged, not refused: the refusal of the statements that follow covers it.
pub(crate) async fn audit_sign_in(
    lake: &carelake_lake::Lake,
    user: &str,
    interface: carelake_common::Interface,
    peer: Option<String>,
    ok: bool,
) {
    let mut record = carelake_lake::AuditRecord::new(user, interface.as_str(), "sign_in");
    record.peer = peer;
    if !ok {
        record.outcome = "denied".into();
        record.detail = Some("wrong user name or password".into());
    }
    if let Err(e) = lake.audit_append(vec![record]).await {
        tracing::error!(error = %e, "The audit record of a sign-in could not be written.");
    }
}
