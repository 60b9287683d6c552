//! carelake-x12 integration tests: the shared imsweb files, a generated claim checked field by
//! field, and arbitrary input.

mod properties;
mod samples;

pub use carelake_common::testdata::shared_data;
