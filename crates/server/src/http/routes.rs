//! The HTTP API's router and middleware (browser protections, body deadlines, request counts)
//! and its health endpoints; the API's handlers are in `api.rs`, the answers' encodings (shared
//! with the UI) in `encode.rs`, the Prometheus text in `metrics.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::api::{fhir, ingest, query, table, tables, token};
use super::metrics::metrics;
use super::{ApiError, AppState};

/// Every route: health, metrics, the API and the web UI, behind the middleware.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    // The metrics recorder, before anything is recorded.
    super::metrics::prometheus();
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/query", post(query))
        .route("/api/v1/tables", get(tables))
        .route("/api/v1/tables/{name}", get(table))
        .route("/api/v1/tokens", post(token))
        .route("/api/v1/ingest/{stream}", post(ingest))
        .route("/api/v1/fhir", post(fhir))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(super::ui::router())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            body_deadline,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            guard_browsers,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), count))
        .with_state(state)
}

/// Browser protections on every response, and no cross-site writes to the API:
/// `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` (with `no-referrer`, browsers send `Origin: null` on their own forms), no framing; UI pages are
/// not cached and carry a Content-Security-Policy that allows only this origin's style sheet
/// and images (the pages have no scripts); HSTS under TLS or `--secure-cookies`.
async fn guard_browsers(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    if api && request.method() != axum::http::Method::GET && super::cross_site(request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused: call the API from a client, not from another site's page",
        )
        .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !api {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    if state.config.tls.is_some() || state.config.secure_cookies {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Reads a request's body within [`HttpConfig::body_timeout`](super::HttpConfig) (a client
/// sending it a byte at a time is cut off with 408) and at most the body limit (413).
async fn body_deadline(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let limit = state.config.max_body_bytes;
    match tokio::time::timeout(state.config.body_timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                state.config.body_timeout.as_secs()
            ),
        )
        .into_response(),
        Ok(Err(_)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {} bytes or was cut off", limit),
        )
        .into_response(),
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
    }
}

/// Counts every request by route and status for `/metrics`.
async fn count(State(_state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<super::Peer>>()
        .map(|c| c.0.0);
    let interface = if request.uri().path().starts_with("/api/") {
        carelake_common::Interface::Http
    } else {
        carelake_common::Interface::Ui
    };
    let started = Instant::now();
    let response = super::REQUEST_ORIGIN
        .scope((peer, interface), next.run(request))
        .await;
    super::metrics::request(&route, response.status(), started.elapsed());
    response
}

/// The OpenAPI 3 document of this API.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.ingest.stats();
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response();
    }
    match state.lake.catalog().list().await {
        Ok(_) => (
            StatusCode::OK,
            format!("ready ({} streamed events pending)\n", stats.pending),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the lake cannot be read\n").into_response(),
    }
}
