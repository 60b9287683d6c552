//! Public behaviour of the HL7 v2 parser on the shared sample messages and on arbitrary input.

mod properties;
mod samples;

pub(crate) use carelake_common::testdata::shared_data;
