//! Loads of clinical message formats (HL7 v2, FHIR R4, X12 837) into fixed sets of raw tables.
//!
//! Unlike CSV, these formats carry their own structure, so each format declares its tables up
//! front (see [`crate::hl7`], [`crate::fhir`] and [`crate::x12`]) and a file becomes rows in
//! several of them. Exactly once holds per table and file: the rows one file gives one table
//! are committed together with the file's content hash as a Delta application transaction, and
//! a table that already holds that transaction takes nothing from the file again. Tables are
//! committed in the format's order, its *ledger* table last (for HL7 the message store), so a
//! load cut off half-way is completed, never doubled, by loading the same files again.
//!
//! A file the format rejects as a whole (a broken HL7 batch) or a message it cannot parse
//! goes to `raw._rejects` with the reason; a wholly rejected file's hash is recorded there too,
//! so loading it again does not quarantine it twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use carelake_common::TableName;
use carelake_lake::LoadStatus;

use crate::load::Progress;

mod format;
mod parser;
mod run;

pub use format::ClinicalFormat;
pub(crate) use parser::{
    ClinicalParser, FileParse, RoundContext, SourceFile, TableSpec, table_index,
};

/// Bytes of input parsed and committed together; larger loads commit in several rounds.
const ROUND_BYTES: u64 = 512 * 1024 * 1024;

/// What to load.
#[derive(Debug, Clone)]
pub struct ClinicalRequest {
    /// Files, folders or glob patterns.
    pub inputs: Vec<String>,
    /// The format; `None` sniffs it from the first file's content.
    pub format: Option<ClinicalFormat>,
    /// Progress callback.
    pub progress: Option<Arc<dyn Progress>>,
    /// Names recorded in `_source_file` and the load history instead of a file's local path
    /// (a watched object's URL, for a copy of it on local disk).
    pub labels: HashMap<PathBuf, String>,
}

impl ClinicalRequest {
    /// A request for these inputs with the format sniffed from their content.
    pub fn new(inputs: Vec<String>) -> Self {
        Self {
            inputs,
            format: None,
            progress: None,
            labels: HashMap::new(),
        }
    }
}

/// What a clinical load did to one table.
#[derive(Debug, Clone)]
pub struct TableOutcome {
    /// The table.
    pub table: TableName,
    /// Rows added by this load.
    pub rows_added: u64,
    /// The table's version after the load.
    pub version: Option<u64>,
}

/// What happened to one input file.
#[derive(Debug, Clone)]
pub struct ClinicalFileOutcome {
    /// The file, as given.
    pub path: String,
    /// Loaded, skipped (loaded before) or rejected as a whole.
    pub status: LoadStatus,
    /// Messages, resources or claims read from it.
    pub records: u64,
    /// Messages, resources or claims quarantined.
    pub rejected: u64,
    /// Messages already in the lake (resent HL7 messages).
    pub duplicates: u64,
    /// Decompressed bytes.
    pub bytes: u64,
}

/// The result of a clinical load.
#[derive(Debug, Clone)]
pub struct ClinicalSummary {
    /// Identifier of this load.
    pub load_id: String,
    /// The format loaded.
    pub format: ClinicalFormat,
    /// Per file.
    pub files: Vec<ClinicalFileOutcome>,
    /// Per table, in commit order.
    pub tables: Vec<TableOutcome>,
    /// Records (messages, resources, claims) read.
    pub records: u64,
    /// Records quarantined.
    pub rejected: u64,
    /// Records already in the lake.
    pub duplicates: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Files left out because their content is of no clinical format (a README beside the
    /// data), when the format was told from the content.
    pub ignored: Vec<String>,
}

/// At most 64 KB of a rejected input, for the quarantine table.
pub fn clip(text: &str) -> String {
    const MAX: usize = 64 * 1024;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}
