//! Text rows to typed columns: the CSV and NDJSON row readers that both passes of a load share,
//! the classification of each value (numbers, booleans, the many ways dates and times are
//! written), the per-column statistics from which one type per column is inferred, and the
//! conversion of rows into Arrow batches of those types.
//!
//! ```
//! use carelake_rows::infer::{ColumnStats, ColumnType};
//! use carelake_rows::value::classify;
//!
//! let mut stats = ColumnStats::default();
//! for v in ["17.11.2022", "01.02.2023", ""] {
//!     stats.observe(classify(v));
//! }
//! assert!(matches!(stats.infer(), ColumnType::Date(_)));
//! ```
//!
//! Its own crate (Arrow, `csv` and `serde_json`, not the lake) so that the readers and the
//! inference can be fuzzed on their own (`crates/rows/fuzz`).

mod batch;
pub mod infer;
mod read;
pub mod value;

pub use batch::{
    BATCH_ROWS, BatchBuilder, Cell, LINEAGE_COLUMNS, fits, lineage_fields, parse_cell,
};
pub use infer::{ColumnStats, ColumnType, InferredColumn};
pub use read::{
    MAX_FIELD_BYTES, MAX_LINE_BYTES, Reject, RowSink, binary_preview, classify_json, json_text,
    looks_binary, normalize_header, read_csv, read_ndjson,
};
