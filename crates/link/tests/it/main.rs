//! Integration tests of carelake-link: FEBRL 4 accuracy, generated data against its truth,
//! properties of normalisation, comparison and clustering.

mod febrl;
mod generated;
mod properties;

pub(crate) use carelake_common::testdata::shared_data;
