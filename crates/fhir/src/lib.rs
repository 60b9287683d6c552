//! FHIR R4 for carelake: reading Bundles and bulk-export NDJSON, a FHIRPath subset, and the
//! SQL-on-FHIR v2 ViewDefinition engine that flattens resources into rows, with the default
//! views carelake ships and a runner for the SQL-on-FHIR conformance suite.

mod bundle;
pub mod conformance;
mod defaults;
mod error;
pub mod fhirpath;
mod view;

pub use bundle::{BundleEntry, ResourceMeta, is_resource_type, read_bundle, read_ndjson_line};
pub use defaults::default_views;
pub use error::{Error, Result};
pub use view::{ColumnSpec, ViewDefinition};
