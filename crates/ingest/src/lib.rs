//! Bulk load: the crawler that infers one schema across a set of CSV, NDJSON or Parquet files
//! (plain, `.gz` or `.zst`), and the loader that writes them into a raw Delta table exactly once,
//! with lineage columns, schema evolution and a quarantine table for bad rows.
//!
//! ```ignore
//! let lake = Lake::open("./carelake-data").await?;
//! let request = LoadRequest::new(vec!["claims.csv".into()], "raw.claims".parse()?);
//! let summary = Loader::new(lake, Principal::local_admin()).load(request).await?;
//! println!("{} rows loaded, {} rejected", summary.rows_loaded, summary.rows_rejected);
//! ```
//!
//! A load runs in two passes over the files. The first (the crawler) hashes each file, finds
//! structurally bad rows and gathers per-column statistics from which one schema is inferred;
//! the second converts rows to Arrow and streams them into a single Delta commit. Each file's
//! content hash is recorded in that same commit as a Delta application transaction, so a file
//! is loaded at most once even when two processes race to load it.

mod clinical;
mod columns;
mod error;
mod fhir;
mod format;
mod hl7;
mod load;
mod reader;
mod staged;
mod watch;
mod x12;

pub use clinical::{
    ClinicalFileOutcome, ClinicalFormat, ClinicalRequest, ClinicalSummary, TableOutcome,
};
pub use error::{Error, Result};
// The row readers and type inference live in their own crate (fuzzed on their own); these
// names keep the paths the loader has always used.
use carelake_rows as rows;
use carelake_rows::{infer, value};
pub use clinical::clip;
pub use fhir::{
    add_view as add_fhir_view, materialize as materialize_fhir_view,
    refresh_all_views as refresh_fhir_views, views as fhir_views,
};
pub use format::Format;
pub use hl7::{
    Hl7Group, Hl7Key, Hl7Source, MESSAGES_TABLE as HL7_MESSAGES_TABLE, hl7_id_key, hl7_message_key,
    stored_hl7_keys, typed_tables as hl7_typed_tables,
};
pub use infer::{ColumnType, InferredColumn};
pub use load::{
    FileOutcome, LINEAGE_COLUMNS, LoadRequest, LoadSummary, Loader, Progress, ProgressEvent,
    REJECTS_TABLE, expand_inputs, quarantine,
};
pub use watch::{WatchSpec, WatchTarget, Watcher};
