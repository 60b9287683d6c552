//! What an export is asked to do, and the report it gives back.

use carelake_common::TableName;
use serde::Serialize;

use crate::{Error, Result};

/// Which de-identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// HIPAA Safe Harbor (45 CFR 164.514(b)(2)).
    SafeHarbor,
    /// A limited data set (45 CFR 164.514(e)): direct identifiers removed, dates shifted.
    Limited,
}

impl Mode {
    /// The mode's name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SafeHarbor => "safe-harbor",
            Mode::Limited => "limited",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "safe-harbor" | "safeharbor" => Ok(Mode::SafeHarbor),
            "limited" => Ok(Mode::Limited),
            other => Err(Error::Export(format!(
                "unknown de-identification '{other}' (safe-harbor or limited)"
            ))),
        }
    }
}

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Safe Harbor or limited data set.
    pub mode: Mode,
    /// The target: a folder or `s3://…`; becomes a carelake lake.
    pub target: String,
    /// Only these tables (none: every table of the catalog).
    pub tables: Vec<TableName>,
    /// The quasi-identifiers of the k-anonymity figure (none: each table's
    /// `quasi_identifier`, ZIP and birth date columns).
    pub quasi_identifiers: Vec<String>,
    /// Replace the tables a non-empty target holds.
    pub replace: bool,
    /// Write Parquet without compression (so that the files can be checked byte by byte).
    pub uncompressed: bool,
}

/// The k-anonymity of a table over its quasi-identifiers.
#[derive(Debug, Clone, Serialize)]
pub struct KAnonymity {
    /// The columns (as exported).
    pub quasi_identifiers: Vec<String>,
    /// The smallest equivalence class (rows sharing all quasi-identifiers).
    pub k: u64,
    /// How many classes there are.
    pub classes: u64,
    /// Rows in classes smaller than `threshold`.
    pub rows_below_threshold: u64,
    /// See [`K_THRESHOLD`](super::K_THRESHOLD).
    pub threshold: u64,
}

/// What happened to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `zone.name`, the same in source and target.
    pub table: String,
    /// The source's Delta version that was read.
    pub source_version: Option<i64>,
    /// Rows exported.
    pub rows: u64,
    /// Columns left out (identifiers, free text, Safe Harbor cities).
    pub removed: Vec<String>,
    /// Columns whose values became surrogates.
    pub surrogated: Vec<String>,
    /// Columns generalised (years, ZIP3, ages capped at 90).
    pub generalised: Vec<String>,
    /// Columns moved by the per-patient offset (limited data set).
    pub shifted: Vec<String>,
    /// Columns kept as they were.
    pub kept: Vec<String>,
    /// Values for people 90 or older: ages shown as 90, birth years left out.
    pub ninety_plus: u64,
    /// Over the table's quasi-identifiers, when it has any.
    pub k_anonymity: Option<KAnonymity>,
}

/// A table that was not exported, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedTable {
    /// `zone.name`.
    pub table: String,
    /// Why (a view, an external table, the quarantine…).
    pub reason: String,
}

/// The report of one export (no values, only names and counts).
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The export's id (also in the mapping table and the audit log).
    pub export_id: String,
    /// Safe Harbor or limited.
    pub mode: Mode,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When it ended.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// The tables exported.
    pub tables: Vec<TableReport>,
    /// The tables left out.
    pub skipped: Vec<SkippedTable>,
    /// How dates and ages read in this mode.
    pub notes: Vec<String>,
}
