//! Probabilistic record linkage for carelake's master patient index.
//!
//! Records from any number of sources (EHRs, lab systems, claims rosters, a user's file) are
//! normalised ([`Field::normalize`]), paired by blocking rules ([`default_rules`]), compared
//! field by field into agreement levels (Jaro-Winkler, edit distance, dates, Double Metaphone,
//! nicknames), and scored by a Fellegi–Sunter model whose u probabilities come from the data
//! and whose m probabilities are estimated by EM, with term-frequency adjustment for names and
//! places. Linked pairs are clustered transitively into persons with a stable `person_key`
//! ([`cluster`]), and each person gets a golden record by survivorship rules
//! ([`golden_records`]).
//!
//! Nothing here depends on the rest of carelake; the curation pipeline feeds it rows from the
//! lake and writes the results back.
//!
//! ```
//! use carelake_link::{Field, LinkConfig, RecordSet, cluster, link};
//!
//! let fields = [Field::FirstName, Field::LastName, Field::BirthDate, Field::Zip];
//! let mut records = RecordSet::builder(&fields);
//! records.push("ehr", "1", "", &["William", "Smith", "1980-03-07", "97201"]).unwrap();
//! records.push("lab", "A", "", &["Bill", "Smith", "1980-03-07", "97201"]).unwrap();
//! records.push("lab", "B", "", &["Maria", "Lopez", "1975-11-02", "10001"]).unwrap();
//! let records = records.build().unwrap();
//! let linkage = link(&records, &LinkConfig::default()).unwrap();
//! let persons = cluster(&records, linkage.links().map(|p| (p.a, p.b)), &Default::default());
//! assert!(persons.len() <= 3);
//! ```

mod block;
mod cluster;
mod compare;
mod error;
mod eval;
mod field;
mod golden;
mod input;
mod linker;
mod model;
mod nickname;
mod records;
mod similarity;

pub use block::{BlockingRule, BlockingStats, KeyPart, LinkMode, default_rules};
pub use cluster::{Clustering, cluster};
pub use compare::Comparison;
pub use error::{Error, Result};
pub use eval::{Accuracy, pairs_within};
pub use field::Field;
pub use golden::{GoldenRecord, Survivorship, SurvivorshipRules, golden_records};
pub use input::{CsvInput, read_csv};
pub use linker::{LinkConfig, Linkage, ScoredPair, Timings, link};
pub use model::{ComparisonParams, LevelParams, Model, TrainingSession};
pub use records::{RecordSet, RecordSetBuilder};
