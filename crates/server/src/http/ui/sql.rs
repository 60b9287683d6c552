//! The SQL page: an editor, a result grid and the CSV download.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use carelake_lake::User;
use maud::{Markup, html};
use serde::Deserialize;

use super::html::{cells, page, table};
use super::{AppState, cross_site};
use super::{GRID_ROWS, UiUser, failure, headers_of, numeric_columns, refused, run};

/// The routes of these pages.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sql", get(sql_form).post(sql_run))
        .route("/sql/csv", post(sql_csv))
}

#[derive(Deserialize)]
struct SqlQuery {
    q: Option<String>,
}

fn sql_page(user: &User, sql: &str, result: Markup) -> Response {
    let body = html! {
        h1 { "SQL" }
        form method="post" action="/sql" id="sql-form" {
            textarea name="q" id="sql" spellcheck="false" placeholder="SELECT * FROM analytics.mart_readmissions LIMIT 20" { (sql) }
            div.actions {
                button type="submit" id="run" { "Run" }
                button type="submit" formaction="/sql/csv" class="secondary" id="csv" { "Download CSV" }
                span.muted { "Tables: raw, curated and analytics zones; system.tables, system.loads, system.runs." }
            }
        }
        (result)
    };
    Html(page("SQL", "/sql", Some(&user.name), body)).into_response()
}

/// The editor; `?q=` fills it in without running anything.
async fn sql_form(UiUser(user): UiUser, Query(q): Query<SqlQuery>) -> Response {
    sql_page(&user, q.q.as_deref().unwrap_or(""), html! {})
}

#[derive(Deserialize)]
struct SqlForm {
    q: String,
}

async fn sql_run(
    State(state): State<Arc<AppState>>,
    UiUser(user): UiUser,
    headers: HeaderMap,
    Form(form): Form<SqlForm>,
) -> Response {
    if cross_site(&headers) {
        return refused();
    }
    let started = std::time::Instant::now();
    let result = match state.run_sql(&user, &form.q, GRID_ROWS).await {
        Err(e) => Err(e.message().to_string()),
        Ok(mut all) => all.pop().ok_or_else(|| "no statement given".to_string()),
    };
    let shown = match result {
        Err(e) => html! {
            p.error id="sql-error" { (carelake_common::redact_literals(&e)) }
        },
        Ok(result) => {
            if let Some(message) = &result.message {
                html! { p id="sql-message" { (message) } }
            } else {
                let rows = cells(&result.batches);
                let total = rows.len();
                let shown: Vec<Vec<String>> = rows.into_iter().take(GRID_ROWS).collect();
                let count = if total > GRID_ROWS {
                    format!("More than {GRID_ROWS}")
                } else {
                    total.to_string()
                };
                let cut = if total > GRID_ROWS {
                    format!(
                        "; the first {GRID_ROWS} are shown, the CSV has up to {}",
                        state.config.max_rows
                    )
                } else {
                    String::new()
                };
                let ms = format!("{:.0}", started.elapsed().as_secs_f64() * 1000.0);
                html! {
                    p.muted id="sql-summary" { (count) " rows in " (ms) " ms" (cut) "." }
                    (table(&headers_of(&result), &shown, &numeric_columns(&result)))
                }
            }
        }
    };
    sql_page(&user, &form.q, shown)
}

async fn sql_csv(
    State(state): State<Arc<AppState>>,
    UiUser(user): UiUser,
    headers: HeaderMap,
    Form(form): Form<SqlForm>,
) -> Response {
    if cross_site(&headers) {
        return refused();
    }
    let result = match run(&state, &user, &form.q).await {
        Ok(r) => r,
        Err(e) => return failure("SQL", "/sql", &user, &e),
    };
    // The API's CSV writer, with the API's row limit.
    let mut response =
        match crate::http::encode::respond(&result, "text/csv", state.config.max_rows, 0.0) {
            Ok(response) => response,
            Err(e) => return failure("SQL", "/sql", &user, e.message()),
        };
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"carelake-query.csv\""),
    );
    response
}
