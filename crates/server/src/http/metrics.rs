//! `GET /metrics`: every metric recorded through the `metrics` facade (request counts, latency
//! histograms of queries, ingest, MLLP groups, loads and pipeline models; names in
//! [`carelake_common::metrics`]) in the Prometheus text format, and the streaming ingest's
//! counters and gauges as of the scrape.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use carelake_common::metrics as names;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::AppState;

/// The process's Prometheus recorder, installed as the global `metrics` recorder on first use
/// (by the server, before it records anything), with latency buckets for every histogram and
/// a thread that keeps the histograms drained between scrapes.
pub(super) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(names::LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "Latency buckets refused; histograms become summaries.");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("Another metrics recorder is installed; /metrics shows only the ingest counters.");
        }
        names::describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "No metrics upkeep thread; histograms are drained at scrapes only.");
        }
        handle
    })
}

/// Counts an answered request and its time, by the route's template (never the raw path).
pub(crate) fn request(route: &str, status: StatusCode, elapsed: Duration) {
    ::metrics::counter!(
        names::HTTP_REQUESTS,
        "route" => route.to_string(),
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    ::metrics::histogram!(names::HTTP_SECONDS, "route" => route.to_string())
        .record(elapsed.as_secs_f64());
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let handle = prometheus();
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
            "carelake_result_cache_hits_total",
            "Queries of any interface answered from the result cache.",
            carelake_sql::result_cache_hits(),
        ),
    ] {
        ::metrics::describe_counter!(name, help);
        ::metrics::counter!(name).absolute(value);
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
        (
            "carelake_footer_cache_bytes",
            "Parquet footers the process's sessions share, in bytes.",
            carelake_sql::footer_cache_bytes() as u64,
        ),
    ] {
        ::metrics::describe_gauge!(name, help);
        ::metrics::gauge!(name).set(value as f64);
    }
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
