//! The pipeline runs page.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::html;

use super::AppState;
use super::html::{cells, page, table};
use super::{UiUser, headers_of, numeric_columns, run};

/// The routes of these pages.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/runs", get(runs))
}

async fn runs(State(state): State<Arc<AppState>>, UiUser(user): UiUser) -> Response {
    let sql = "SELECT run_id, model, target, materialization, status, attempts, rows_in, rows_out, \
                      round((to_unixtime(finished_at) - to_unixtime(started_at)), 2) AS seconds, \
                      started_at, principal, error \
               FROM system.runs ORDER BY started_at DESC, model LIMIT 300";
    let body = match run(&state, &user, sql).await {
        Ok(result) => {
            let mut rows = cells(&result.batches);
            // The run id is long; its first part tells runs apart.
            for row in &mut rows {
                if let Some(id) = row.first_mut() {
                    id.truncate(8);
                }
            }
            html! {
                h1 { "Pipeline runs" }
                p.muted { "The last 300 model runs, newest first." }
                (table(&headers_of(&result), &rows, &numeric_columns(&result)))
            }
        }
        Err(_) => html! {
            h1 { "Pipeline runs" }
            p.muted { "No pipeline has run on this lake yet (" code { "carelake run" } ")." }
        },
    };
    Html(page("Pipeline runs", "/runs", Some(&user.name), body)).into_response()
}
