//! carelake-fhir integration tests: the SQL-on-FHIR v2 conformance suite, the shared Synthea
//! Bundles through the default views, and arbitrary input.

mod conformance;
mod properties;
mod synthea;

pub use carelake_common::testdata::shared_data;
