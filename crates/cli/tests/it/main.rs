//! Integration tests for carelake: the SQL surface (sqllogictest), the command line on the real
//! binary, bad input, concurrent writers and interoperability with an independent Delta reader.

mod cli;
mod hl7;
mod mllp;
mod concurrency;
mod interop;
mod load;
mod s3;
mod slt;
mod support;
