//! Standardisation of clinical codes and units, as pure functions the SQL layer exposes:
//! ICD-10-CM and CPT/HCPCS format checks and normalisation, LOINC check digits, UCUM unit
//! names and conversions (temperatures, weights, lengths, pressures, and mass ↔ molar
//! concentrations for glucose, creatinine, cholesterol and urea nitrogen), phone numbers, ZIP
//! codes, administrative sex, and local wall-clock times to UTC. Every check answers why a value is invalid, so that curated
//! tables flag values with a reason instead of dropping them.
//!
//! ```
//! use carelake_standard::{icd10, loinc, ucum};
//! assert_eq!(icd10::normalize("e119").unwrap(), "E11.9");
//! assert!(loinc::check("2345-7").is_ok());
//! assert_eq!(ucum::convert(98.6, "[degF]", "Cel", None).unwrap().round(), 37.0);
//! ```

pub mod contact;
pub mod cpt;
pub mod icd10;
pub mod loinc;
pub mod time;
pub mod ucum;
