//! `GET /metrics`: the server's counters in the Prometheus text format.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP carelake_http_requests_total HTTP requests by route and status."
    );
    let _ = writeln!(out, "# TYPE carelake_http_requests_total counter");
    let requests = state.metrics.requests();
    for ((route, status), (n, _)) in &requests {
        let _ = writeln!(
            out,
            "carelake_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP carelake_http_request_seconds_total Time spent answering, by route and status."
    );
    let _ = writeln!(out, "# TYPE carelake_http_request_seconds_total counter");
    for ((route, status), (_, seconds)) in &requests {
        let _ = writeln!(
            out,
            "carelake_http_request_seconds_total{{route=\"{route}\",status=\"{status}\"}} {seconds:.6}"
        );
    }
    let stats = state.ingest.stats();
    for (name, help, value) in [
        (
            "carelake_ingest_accepted_total",
            "Streamed events acknowledged.",
            stats.accepted,
        ),
        (
            "carelake_ingest_duplicates_total",
            "Streamed events dropped as duplicates of an event id.",
            stats.duplicates,
        ),
        (
            "carelake_ingest_flushed_total",
            "Streamed events written to the lake.",
            stats.flushed,
        ),
        (
            "carelake_ingest_rejected_total",
            "Streamed events quarantined in raw._rejects.",
            stats.rejected,
        ),
        (
            "carelake_ingest_flushes_total",
            "Flushes of streamed events.",
            stats.flushes,
        ),
        (
            "carelake_queries_total",
            "SQL queries run over HTTP.",
            state.metrics.queries.load(Ordering::Relaxed),
        ),
        (
            "carelake_result_cache_hits_total",
            "Queries of any interface answered from the result cache.",
            carelake_sql::result_cache_hits(),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    for (name, help, value) in [
        (
            "carelake_ingest_pending_events",
            "Acknowledged events not yet in the lake.",
            stats.pending,
        ),
        (
            "carelake_ingest_pending_bytes",
            "Their bytes.",
            stats.pending_bytes,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
