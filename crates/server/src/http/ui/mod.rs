//! The web UI: server-rendered pages with SVG charts, no build step, nothing fetched from
//! elsewhere. Overview (admissions, 30-day readmission trend, census and length of stay by
//! facility), Worklist (recent discharges at high readmission risk), Catalog (tables, columns,
//! lineage, rows), SQL (an editor with a result grid and CSV download) and Pipeline runs.
//!
//! Sign-in is a form that sets a session cookie (`HttpOnly`, `SameSite=Strict`) holding a token
//! of the same kind as `POST /api/v1/tokens` gives; every page runs its queries in the signed-in
//! user's own session. Forms that change something are accepted only from this origin.

mod catalog;
mod html;
mod login;
mod overview;
mod runs;
mod sql;
mod svg;
mod worklist;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use carelake_lake::User;
use carelake_sql::QueryResult;
use maud::html;

use super::{AppState, cross_site};
use html::{cells, page};

/// The session cookie's name over plain HTTP.
const COOKIE: &str = "carelake_session";
/// Its name when it is `Secure` (under TLS or `--secure-cookies`): browsers then refuse it from
/// plain HTTP and from other hosts and paths.
const SECURE_COOKIE: &str = "__Host-carelake_session";

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.tls.is_some() || state.config.secure_cookies {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}
/// Most rows the SQL page shows (the CSV download has them all, up to the API's limit).
const GRID_ROWS: usize = 1000;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .merge(overview::routes())
        .merge(login::routes())
        .merge(worklist::routes())
        .merge(catalog::routes())
        .merge(sql::routes())
        .merge(runs::routes())
        .route("/ui/style.css", get(style))
        .route("/ui/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

/// The signed-in user of a page; without a valid cookie, a redirect to the sign-in page.
struct UiUser(User);

fn cookie_token(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let wanted = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_string())
}

impl FromRequestParts<Arc<AppState>> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let user = match cookie_token(state, &parts.headers) {
            Some(token) => state
                .sign_in
                .bearer(&token, carelake_lake::TokenKind::Ui)
                .await
                .ok(),
            None => None,
        };
        match user {
            Some(user) => Ok(UiUser(user)),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

fn refused() -> Response {
    (StatusCode::FORBIDDEN, "cross-site form refused").into_response()
}

/// A page that failed: the message (literals blanked) in the page frame.
fn failure(title: &str, current: &str, user: &User, message: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.error { (carelake_common::redact_literals(message)) }
    };
    Html(page(title, current, Some(&user.name), body)).into_response()
}

async fn run(state: &AppState, user: &User, sql: &str) -> Result<QueryResult, String> {
    state
        .run_sql(user, sql, state.config.max_rows)
        .await
        .map_err(|e| e.message().to_string())?
        .pop()
        .ok_or_else(|| "no statement given".to_string())
}

/// Whether the lake has `table` (a `zone.name`).
async fn has_table(state: &AppState, user: &User, table: &str) -> bool {
    let sql = format!(
        "SELECT 1 FROM system.tables WHERE table_name = '{}'",
        table.replace('\'', "''")
    );
    run(state, user, &sql)
        .await
        .is_ok_and(|r| r.row_count() > 0)
}

/// `(label, value)` pairs from a two-column result.
fn pairs(result: &QueryResult) -> Vec<(String, f64)> {
    cells(&result.batches)
        .into_iter()
        .filter_map(|row| {
            let value = row.get(1)?.parse::<f64>().ok()?;
            Some((row.first()?.clone(), value))
        })
        .collect()
}

fn numeric_columns(result: &QueryResult) -> Vec<bool> {
    result
        .schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric())
        .collect()
}

fn headers_of(result: &QueryResult) -> Vec<String> {
    result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::STYLE,
    )
        .into_response()
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        html::ICON,
    )
        .into_response()
}
