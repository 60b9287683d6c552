//! A FHIRPath subset: enough for SQL-on-FHIR v2 views and the shipped default views.

mod eval;
mod functions;
mod item;
mod ops;
mod parse;

pub use eval::{Env, evaluate};
pub use item::Item;
pub use parse::{BinOp, Expr, parse};
