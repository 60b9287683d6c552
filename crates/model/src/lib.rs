//! Models trained in SQL (`CREATE MODEL`): the encoding of a query's columns as features, the
//! split by patient, training a logistic regression (`linfa-logistic`, with odds ratios and
//! Wald confidence intervals computed here) or gradient-boosted trees (`perpetual`, with SHAP
//! contributions), and the metrics carelake reports for both.
//!
//! ```
//! use carelake_model::metrics::auroc;
//! assert_eq!(auroc(&[0.9, 0.2, 0.6], &[true, false, false]), 1.0);
//! ```

mod error;
pub mod features;
mod gbdt;
mod linalg;
mod logistic;
pub mod metrics;
mod model;
mod nan;
pub mod split;

pub use error::{Error, Result};
pub use model::{Coefficient, Kind, Model, Options, Params, Split, TrainingSummary, train};
