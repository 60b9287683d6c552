//! A deterministic synthetic hospital network: facilities, providers, payers, patients known to
//! one or two EHR systems (with the typos, nicknames and moves that make identity resolution
//! hard), encounters with realistic 30-day readmissions, diagnoses, procedures, labs, device
//! vitals, claims and care-team outreach notes, plus the ground truth under `_truth/`.
//!
//! The same seed and patient count always produce the same files. Patients are generated one at
//! a time and written straight to disk, so memory stays flat at any size.
//!
//! ```no_run
//! let summary = carelake_generate::generate(&carelake_generate::GeneratorConfig {
//!     patients: 1_000,
//!     seed: 42,
//!     out: "synthetic".into(),
//!     flat_only: false,
//! })
//! .unwrap();
//! println!("{} encounters", summary.encounters);
//! ```

mod clinical;
mod error;
mod identity;
mod network;
mod outputs;
mod person;
mod reference;

pub use clinical::ClinicalCounts;
pub use error::{Error, Result};
pub use network::{GenerateSummary, GeneratorConfig, generate, generate_people};
