//! The catalog pages: every table the user may see, and one table's columns, lineage and rows.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::html;

use super::AppState;
use super::html::{cells, kpi, page, table};
use super::svg;
use super::{UiUser, failure, headers_of, numeric_columns, run};

/// The routes of these pages.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/catalog", get(catalog))
        .route("/catalog/{name}", get(catalog_table))
}

async fn catalog(State(state): State<Arc<AppState>>, UiUser(user): UiUser) -> Response {
    let sql = "SELECT table_name, kind, row_count, table_version, owner, upstream, updated_at, description \
               FROM system.tables ORDER BY table_name";
    let result = match run(&state, &user, sql).await {
        Ok(r) => r,
        Err(e) => return failure("Catalog", "/catalog", &user, &e),
    };
    let rows = cells(&result.batches);
    const NUMERIC: [bool; 8] = [false, false, true, true, false, false, false, false];
    let num = |i: usize| NUMERIC[i].then_some("num");
    let body = html! {
        h1 { "Catalog" }
        div.grid {
            table {
                thead {
                    tr {
                        @for (i, h) in ["Table", "Kind", "Rows", "Version", "Owner", "Reads", "Updated", "Description"].into_iter().enumerate() {
                            th class=[num(i)] { (h) }
                        }
                    }
                }
                tbody {
                    @for row in &rows {
                        @let get = |i: usize| row.get(i).map_or("", String::as_str);
                        tr {
                            td { a href={ "/catalog/" (get(0)) } { (get(0)) } }
                            @for i in 1..8 {
                                td class=[num(i)] { (get(i)) }
                            }
                        }
                    }
                }
            }
        }
        p.muted { (rows.len()) " tables and views." }
    };
    Html(page("Catalog", "/catalog", Some(&user.name), body)).into_response()
}

async fn catalog_table(
    State(state): State<Arc<AppState>>,
    UiUser(user): UiUser,
    Path(name): Path<String>,
) -> Response {
    let Ok(parsed) = name.parse::<carelake_common::TableName>() else {
        return failure("Catalog", "/catalog", &user, "not a table name (zone.name)");
    };
    let quoted = parsed.to_string().replace('\'', "''");
    let entry_sql = format!(
        "SELECT kind, row_count, table_version, owner, source, upstream, description, updated_at \
         FROM system.tables WHERE table_name = '{quoted}'"
    );
    let columns_sql = format!(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
         WHERE table_schema = '{}' AND table_name = '{}' ORDER BY ordinal_position",
        parsed.zone,
        parsed.name.replace('\'', "''")
    );
    let downstream_sql = format!(
        "SELECT table_name FROM system.tables \
         WHERE array_has(string_to_array(upstream, ', '), '{quoted}') ORDER BY table_name"
    );
    let (entry, columns, downstream) = match (
        run(&state, &user, &entry_sql).await,
        run(&state, &user, &columns_sql).await,
        run(&state, &user, &downstream_sql).await,
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return failure("Catalog", "/catalog", &user, &e);
        }
    };
    let Some(entry) = cells(&entry.batches).into_iter().next() else {
        let mut response = failure("Catalog", "/catalog", &user, &format!("no table {parsed}"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let get = |i: usize| entry.get(i).map_or("", String::as_str);
    let upstream: Vec<String> = get(5)
        .split(", ")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let downstream: Vec<String> = cells(&downstream.batches)
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    let title = parsed.to_string();
    let body = html! {
        h1 { (title) }
        p.muted { (get(6)) }
        div.kpis {
            (kpi("kind", get(0)))
            (kpi("rows", get(1)))
            (kpi("version", get(2)))
            (kpi("owner", get(3)))
        }
        section.card {
            h2 { "Lineage" }
            (svg::lineage(&title, &upstream, &downstream))
        }
        h2 { "Columns" }
        (table(&headers_of(&columns), &cells(&columns.batches), &numeric_columns(&columns)))
        form method="get" action="/sql" class="actions" {
            input type="hidden" name="q" value={ "SELECT * FROM " (title) " LIMIT 100" };
            button type="submit" class="secondary" { "Query it" }
        }
    };
    Html(page(&title, "/catalog", Some(&user.name), body)).into_response()
}
