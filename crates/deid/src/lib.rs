//! De-identified export of a carelake lake (HIPAA Safe Harbor, 45 CFR 164.514(b)(2), or a
//! limited data set, 164.514(e)), and the column roles it reads.
//!
//! Every column has a role ([`ColumnRole`]): explicit tags kept in the lake
//! (`_carelake/column_tags`, [`TagStore`]) override a protective default ([`default_role`]).
//! [`export`] reads the chosen tables batch by batch, removes identifiers and free text,
//! replaces keys with random surrogates (the same in every table of the export; the mapping
//! stays in the source lake's `_carelake/deid_map`, which no SQL session reaches), turns
//! dates into years or shifts them per patient, generalises ZIP codes, birth dates and ages,
//! and writes a new lake with a report (`_carelake/deid_report.json`).
//!
//! ```ignore
//! let options = ExportOptions { mode: Mode::SafeHarbor, target: "./export".into(), ..};
//! let report = carelake_deid::export(&lake, &options, &Principal::local_admin()).await?;
//! ```

mod error;
mod export;
mod tags;
mod transform;

use carelake_lake::roles;
pub use carelake_lake::roles::{ColumnRole, ROLES, default_role, key_domain};
pub use error::{Error, Result};
pub use export::{
    ExportOptions, ExportReport, K_THRESHOLD, KAnonymity, MAPPING_TABLE, Mode, REPORT_FILE,
    SkippedTable, TableReport, export, mapping,
};
pub use tags::{EffectiveRole, TagStore};
pub use transform::RESTRICTED_ZIP3;
