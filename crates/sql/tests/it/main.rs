//! Integration tests of the SQL layer on a real lake, without the binary: the SQL surface as
//! sqllogictest files (`crates/sql/tests/slt/`).

mod slt;
