//! A FHIRPath subset: enough for SQL-on-FHIR v2 views and the shipped default views.

mod eval;
mod parse;

pub use eval::{Env, Item, evaluate};
pub use parse::{BinOp, Expr, parse};
