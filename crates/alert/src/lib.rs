//! Running alert rules (`CREATE ALERT`): the query runs as the rule's owner, under their
//! grants and row policies; each row is an alert for its key; a key alerted within the
//! suppression window, or closed by an outreach outcome the rule names, is held back; the rest
//! are delivered to the rule's channel (a webhook signed with HMAC-SHA256, a Slack-compatible
//! webhook, or email over SMTP) with retries and exponential back-off, and every attempt is
//! recorded in `system.alert_deliveries` (the last failed one as `dead_letter`).
//!
//! Logs carry the rule's name and counts, never a row.

mod deliver;
mod run;

pub use deliver::{signature, webhook_secret};
pub use run::{Report, run_alert, run_due};

/// What went wrong running an alert.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such rule.
    #[error("no alert {0}")]
    NotFound(String),
    /// The query or the lake failed.
    #[error(transparent)]
    Sql(#[from] carelake_sql::Error),
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] carelake_lake::Error),
    /// Arrow failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
