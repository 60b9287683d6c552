//! The lake: an object store (a local folder or an S3-compatible bucket) holding Delta tables in
//! three zones (`raw`, `curated`, `analytics`), and the catalog that describes them.
//!
//! Everything carelake knows about a lake lives inside it: the tables under `<lake>/<zone>/<table>/`
//! and the catalog and load history as Delta tables under `<lake>/_carelake/`. A lake folder or
//! bucket is therefore complete and portable, and any Delta reader (Spark, Trino, Python
//! `deltalake`) can read its tables.
//!
//! ```ignore
//! let lake = Lake::init("./carelake-data").await?;
//! let entries = lake.catalog().list().await?;
//! ```

/// `Debug` and `Display` for an object store that wraps `self.inner`: `Label(<inner>)`, as
/// object_store's own wrappers print themselves.
macro_rules! wrapper_display {
    ($store:ty, $label:literal) => {
        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($label, "({})"), self.inner)
            }
        }

        impl std::fmt::Display for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($label, "({})"), self.inner)
            }
        }
    };
}

mod alerts;
mod app_txn;
mod audit;
mod backup;
mod catalog;
mod check;
mod commit;
mod compact;
pub mod crypt;
mod error;
pub mod faults;
mod files;
mod governance;
mod history;
mod lake;
mod listing;
mod matviews;
mod models;
pub mod roles;
mod runs;
pub mod scram;
mod scrub;
mod snapshots;
mod tokens;
mod users;
mod util;
mod watch;

pub use alerts::{AlertEvent, AlertRule, AlertStore, Channel, Delivery, RuleState};
pub use audit::{AuditLog, AuditRecord, ChainedRecord, Verification, audit_schema, verify_chain};
pub use backup::{
    BackedUpFile, BackedUpTable, BackupCheck, BackupManifest, BackupReport, RestoreReport,
    check_backup, list_backups, restore,
};
pub use catalog::{COALESCE_EVERY, Catalog, CatalogEntry, CatalogEvent, EntryKind};
pub use check::{CheckReport, Problem, TableCheck};
pub use commit::{
    COMMIT_RETRIES, Provenance, TableWrite, WriteInput, WriteMode, commit_properties,
};
pub use compact::{AutoCompact, TIER_BASE, TIER_FACTOR, clean_logs_when_due};
pub use crypt::{KeySource, MasterKey};
pub use error::{Error, Result};
pub use files::create_private_dir;
pub use governance::{
    AUDITOR_ROLE, BUILTIN_ROLES, Governance, GovernanceEvent, GovernanceStore, Grant, MaskPolicy,
    Privilege, RowPolicy, Securable, check_role_name,
};
pub use history::{LoadHistory, LoadRecord, LoadStatus};
pub use lake::{ENCRYPTED_SCHEME, Lake, TimeTravel, key_source, landing_store, set_key_source};
pub use matviews::{MatView, MatViewEvent, MatViewState, MatViewStore, Refresh};
pub use models::{ModelEvent, ModelStore, StoredModel};
pub use runs::{RunHistory, RunRecord};
pub use scram::ScramVerifier;
pub use tokens::{IssuedToken, TokenInfo, TokenKind, TokenStore, token_hash, token_id};
pub use users::{
    ADMIN_ROLE, Argon2Permit, FIRST_USER, MIN_PASSWORD_LEN, User, UserStore, argon2_permit,
    check_user_password, check_user_password_with, generate_password, hash_password,
    verify_bounded, verify_password,
};
pub use util::{app_version, append_batches, read_columns, read_table, row_count};
pub use watch::{WatchStore, WatchedFile};
