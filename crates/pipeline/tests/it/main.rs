//! Integration tests of the pipeline runner on a real lake: dependency order, reruns that change
//! nothing, incremental merges equal to full rebuilds, retries and failure isolation, and the
//! master patient index model.

mod mpi;
mod runner;
mod support;
