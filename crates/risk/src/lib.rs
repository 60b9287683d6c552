//! Readmission risk scores as pure functions, each following its published table exactly; the
//! SQL layer exposes them as `charlson_index`, `charlson_categories`, `lace_score`,
//! `lace_band`, `hospital_score` and `hospital_band`.
//!
//! - [`charlson`]: the Charlson comorbidity index from ICD-10 codes by Quan's 2005 coding
//!   algorithm, with the hierarchy of the paired categories, weighted by Charlson's 1987
//!   weights or Quan's 2011 updated ones.
//! - [`lace`]: the LACE index (van Walraven et al., CMAJ 2010), 0–19.
//! - [`hospital`]: the HOSPITAL score (Donzé et al., JAMA Intern Med 2013), 0–13.
//!
//! ```
//! use carelake_risk::{charlson, lace, hospital};
//! let index = charlson::index(["I21.4", "E11.22", "E11.9"], charlson::Weights::Charlson1987);
//! assert_eq!(index, 3); // myocardial infarction 1, diabetes with complications 2
//! assert_eq!(lace::score(5.0, true, 3, 1), 4 + 3 + 3 + 1);
//! assert_eq!(hospital::band(hospital::score(11.5, false, 133.0, true, true, 3, 6.0)), hospital::Band::High);
//! ```

pub mod charlson;
pub mod hospital;
pub mod lace;
