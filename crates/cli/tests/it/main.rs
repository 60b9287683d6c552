//! Integration tests for carelake: the command line on the real
//! binary, bad input, concurrent writers and interoperability with an independent Delta reader.

mod alerts;
mod backup;
mod cdc;
mod cli;
mod cluster;
mod concurrency;
mod deid;
mod encryption;
mod faults;
mod fhir;
mod governance;
mod hl7;
mod http;
mod interop;
mod limits;
mod link;
mod load;
mod mllp;
mod models;
mod openapi;
mod pg;
mod pipeline;
mod s3;
mod signin;
mod support;
mod ui;
mod watch;
mod x12;
