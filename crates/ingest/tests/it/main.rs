//! Integration tests of bulk loading on a real lake, without the binary: rejects, exactly-once,
//! quarantine, compression, schema evolution, and writers racing on one table. (The CLI crate
//! keeps the tests of what the `carelake load` command prints, and of separate processes.)

mod concurrency;
mod load;
mod support;
