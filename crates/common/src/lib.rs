//! Small types shared by every carelake crate: the lake's zones, qualified table names and the
//! acting [`Principal`] that every query and write carries.
//!
//! ```
//! use carelake_common::{TableName, Zone};
//! let name: TableName = "raw.claims".parse().unwrap();
//! assert_eq!(name.zone, Zone::Raw);
//! assert_eq!(name.to_string(), "raw.claims");
//! ```

mod error;
pub mod metrics;
mod name;
mod principal;
mod redact;
pub mod testdata;

pub use error::{Error, Result};
pub use name::{TableName, Zone, normalize_identifier};
pub use principal::{Interface, Origin, Principal};
pub use redact::redact_literals;
