//! Integration tests of the SQL layer on a real lake, without the binary: the SQL surface as
//! sqllogictest files (`crates/sql/tests/slt/`), and governance through users' own sessions.

mod governance;
mod slt;
