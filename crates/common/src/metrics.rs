//! carelake's metrics: their names, help texts and labels, in one place. The crate that does
//! the work records through the `metrics` facade (a no-op until a recorder is installed);
//! `carelake serve` installs the Prometheus recorder and `/metrics` renders it.
//!
//! Labels carry routes, interfaces, formats, model and table names — never a value from the
//! data, a user name or a raw path (no PHI in metrics).

use std::time::Duration;

/// HTTP requests answered, by route template and status.
pub const HTTP_REQUESTS: &str = "carelake_http_requests_total";
/// Time to answer an HTTP request, by route template.
pub const HTTP_SECONDS: &str = "carelake_http_request_duration_seconds";
/// Time to run a SQL statement, by interface (`http`, `postgres`).
pub const QUERY_SECONDS: &str = "carelake_query_duration_seconds";
/// SQL statements run, by interface.
pub const QUERIES: &str = "carelake_queries_total";
/// Time from receiving streamed events to acknowledging them (in the write-ahead log).
pub const INGEST_ACK_SECONDS: &str = "carelake_ingest_ack_duration_seconds";
/// Time to flush one stream's pending events to its table.
pub const INGEST_FLUSH_SECONDS: &str = "carelake_ingest_flush_duration_seconds";
/// Time to store a group of MLLP messages (what the ACK waits for).
pub const MLLP_GROUP_SECONDS: &str = "carelake_mllp_group_duration_seconds";
/// Time to load files, by format.
pub const LOAD_SECONDS: &str = "carelake_load_duration_seconds";
/// Rows loaded from files, by format.
pub const LOAD_ROWS: &str = "carelake_load_rows_total";
/// Time to run one pipeline model (all its attempts), by model and status.
pub const MODEL_SECONDS: &str = "carelake_pipeline_model_duration_seconds";

/// The upper bounds of the latency histograms' buckets, in seconds (1 ms to 10 min).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

/// Describes every metric to the installed recorder (help text and unit).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status.");
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route."
    );
    describe_histogram!(
        QUERY_SECONDS,
        Unit::Seconds,
        "Time to run a SQL statement, by interface."
    );
    describe_counter!(QUERIES, "SQL statements run, by interface.");
    describe_histogram!(
        INGEST_ACK_SECONDS,
        Unit::Seconds,
        "Time to acknowledge streamed events (durable in the write-ahead log)."
    );
    describe_histogram!(
        INGEST_FLUSH_SECONDS,
        Unit::Seconds,
        "Time to flush a stream's pending events to its table."
    );
    describe_histogram!(
        MLLP_GROUP_SECONDS,
        Unit::Seconds,
        "Time to store a group of MLLP messages before their ACK."
    );
    describe_histogram!(
        LOAD_SECONDS,
        Unit::Seconds,
        "Time to load files, by format."
    );
    describe_counter!(LOAD_ROWS, "Rows loaded from files, by format.");
    describe_histogram!(
        MODEL_SECONDS,
        Unit::Seconds,
        "Time to run a pipeline model, by model and status."
    );
}

/// Records `elapsed` in the histogram `name` with the label `key` = `value`.
pub fn record_seconds(
    name: &'static str,
    key: &'static str,
    value: impl Into<String>,
    elapsed: Duration,
) {
    metrics::histogram!(name, key => value.into()).record(elapsed.as_secs_f64());
}

/// Adds `n` to the counter `name` with the label `key` = `value`.
pub fn count(name: &'static str, key: &'static str, value: impl Into<String>, n: u64) {
    metrics::counter!(name, key => value.into()).increment(n);
}
