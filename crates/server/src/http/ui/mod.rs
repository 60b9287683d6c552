//! The web UI: server-rendered pages with SVG charts, no build step, nothing fetched from
//! elsewhere. Overview (admissions, 30-day readmission trend, census and length of stay by
//! facility), Worklist (recent discharges at high readmission risk), Catalog (tables, columns,
//! lineage, rows), SQL (an editor with a result grid and CSV download) and Pipeline runs.
//!
//! Sign-in is a form that sets a session cookie (`HttpOnly`, `SameSite=Strict`) holding a token
//! of the same kind as `POST /api/v1/tokens` gives; every page runs its queries in the signed-in
//! user's own session. Forms that change something are accepted only from this origin.

mod html;
mod svg;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use carelake_lake::User;
use carelake_sql::QueryResult;
use maud::{Markup, html};
use serde::Deserialize;

use super::{AppState, cross_site};
use html::{cells, page, table, table_with};

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
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/worklist", get(worklist))
        .route("/worklist/outreach", post(record_outreach))
        .route("/catalog", get(catalog))
        .route("/catalog/{name}", get(catalog_table))
        .route("/sql", get(sql_form).post(sql_run))
        .route("/sql/csv", post(sql_csv))
        .route("/runs", get(runs))
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

#[derive(Deserialize)]
struct LoginQuery {
    failed: Option<String>,
}

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    let error = match q.failed.as_deref() {
        None => None,
        Some("wait") => {
            Some("Too many failed sign-ins: wait a little, or ask an admin to unlock the account.")
        }
        Some("busy") => Some("The server is busy: try again shortly."),
        Some(_) => Some("Wrong user name or password."),
    };
    let body = html! {
        form.login.card method="post" action="/login" {
            h1 { "Sign in" }
            @if let Some(error) = error {
                p.error { (error) }
            }
            label for="user" { "User" }
            input id="user" name="user" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            div.actions { button type="submit" { "Sign in" } }
        }
    };
    Html(page("Sign in", "", None, body)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if cross_site(&headers) {
        return refused();
    }
    let (interface, peer) = super::request_origin();
    let user = state
        .sign_in
        .password(&form.user, &form.password, interface, peer.map(|p| p.ip()))
        .await;
    let user = match user {
        Ok(user) => user,
        Err(crate::signin::Refusal::Throttled(_) | crate::signin::Refusal::Locked) => {
            return Redirect::to("/login?failed=wait").into_response();
        }
        Err(crate::signin::Refusal::Busy) => {
            return Redirect::to("/login?failed=busy").into_response();
        }
        Err(_) => return Redirect::to("/login?failed=1").into_response(),
    };
    let token = match state
        .sign_in
        .issue(&user, carelake_lake::TokenKind::Ui)
        .await
    {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(error = %e, "A UI session could not be issued.");
            return Redirect::to("/login?failed=busy").into_response();
        }
    };
    let secure = if cookie_name(&state) == SECURE_COOKIE {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        cookie_name(&state),
        state.sign_in.config().token_lifetime.as_secs()
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return refused();
    }
    if let Some(token) = cookie_token(&state, &headers)
        && let Ok(user) = state
            .sign_in
            .bearer(&token, carelake_lake::TokenKind::Ui)
            .await
        && let Err(e) = state.sign_in.revoke(&token, &user).await
    {
        tracing::error!(error = %e, "A UI session could not be revoked.");
    }
    let mut response = Redirect::to("/login").into_response();
    let secure = if cookie_name(&state) == SECURE_COOKIE {
        "; Secure"
    } else {
        ""
    };
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}",
        cookie_name(&state)
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn kpi(label: &str, value: &str) -> Markup {
    html! {
        div.kpi {
            div.value { (value) }
            div.label { (label) }
        }
    }
}

fn card(title: &str, note: &str, content: Markup) -> Markup {
    html! {
        section.card {
            h2 { (title) }
            p.muted { (note) }
            (content)
        }
    }
}

/// A page of `title` saying there is nothing to show until the pipeline has run.
fn no_analytics(title: &str) -> Markup {
    html! {
        h1 { (title) }
        p.muted {
            "No analytics tables yet. Load data and run the pipeline ("
            code { "carelake run" }
            "), or start with "
            code { "carelake demo" }
            "."
        }
    }
}

async fn overview(State(state): State<Arc<AppState>>, UiUser(user): UiUser) -> Response {
    if !has_table(&state, &user, "analytics.fact_encounter").await {
        return Html(page(
            "Overview",
            "/",
            Some(&user.name),
            no_analytics("Overview"),
        ))
        .into_response();
    }
    let queries = [
        // KPIs over all inpatient stays.
        "SELECT count(*) AS admissions, count(DISTINCT person_key) AS patients, \
                round(avg(length_of_stay_days), 2) AS mean_los, \
                round(100.0 * sum(CASE WHEN readmitted_30d AND readmission_window_closed THEN 1 ELSE 0 END) \
                      / nullif(count(CASE WHEN readmission_window_closed THEN readmitted_30d END), 0), 1) AS readmission_pct \
         FROM analytics.fact_encounter WHERE encounter_class = 'inpatient'",
        // Admissions per month, the last 24 months of data.
        "SELECT month, admissions FROM (SELECT to_char(admit_time, '%Y-%m') AS month, count(*) AS admissions \
         FROM analytics.fact_encounter WHERE encounter_class = 'inpatient' GROUP BY 1 ORDER BY 1 DESC LIMIT 24) ORDER BY month",
        // 30-day readmission rate by discharge month.
        "SELECT discharge_month, round(100.0 * sum(readmissions_30d) / sum(index_discharges), 1) AS rate \
         FROM analytics.mart_readmissions GROUP BY 1 ORDER BY 1 DESC LIMIT 24",
        // Mean daily census by facility over the last 30 days of data.
        "SELECT facility_id, round(avg(patients_in_house), 1) AS census FROM analytics.mart_census \
         WHERE census_date > (SELECT max(census_date) FROM analytics.mart_census) - INTERVAL '30 days' \
         GROUP BY 1 ORDER BY 1",
        // Mean length of stay by facility.
        "SELECT facility_id, round(sum(mean_los_days * stays) / sum(stays), 2) AS los \
         FROM analytics.mart_length_of_stay GROUP BY 1 ORDER BY 1",
    ];
    let mut results = Vec::new();
    for sql in queries {
        match run(&state, &user, sql).await {
            Ok(r) => results.push(r),
            Err(e) => return failure("Overview", "/", &user, &e),
        }
    }
    let kpis = cells(&results[0].batches)
        .into_iter()
        .next()
        .unwrap_or_default();
    let value = |i: usize| kpis.get(i).cloned().unwrap_or_default();
    let mut trend = pairs(&results[2]);
    trend.reverse();
    let risk = risk_panel(&state, &user).await;
    let body = html! {
        h1 { "Overview" }
        div.kpis {
            (kpi("inpatient admissions", &value(0)))
            (kpi("patients admitted", &value(1)))
            (kpi("mean length of stay (days)", &value(2)))
            (kpi("30-day readmission rate (%, closed windows)", &value(3)))
        }
        div.cards {
            (card(
                "Admissions",
                "Inpatient admissions per month (last 24 months of data).",
                svg::bars("Admissions per month", &pairs(&results[1]), ""),
            ))
            (card(
                "30-day readmission rate",
                "Share of index discharges readmitted within 30 days, by discharge month. Discharges in the last 30 days of data are left out: their 30-day window has not closed.",
                svg::line("30-day readmission rate by month", &trend, "%"),
            ))
            (card(
                "Census by facility",
                "Mean patients in house per day, last 30 days of data.",
                svg::bars("Census by facility", &pairs(&results[3]), ""),
            ))
            (card(
                "Length of stay by facility",
                "Mean inpatient length of stay in days.",
                svg::bars("Length of stay by facility", &pairs(&results[4]), ""),
            ))
        }
        @if let Some(risk) = risk { (risk) }
    };
    Html(page("Overview", "/", Some(&user.name), body)).into_response()
}

/// The risk panel: discharges by LACE score, and the observed 30-day readmission rate by LACE
/// score (a calibration view of the index), over closed 30-day windows.
async fn risk_panel(state: &AppState, user: &User) -> Option<Markup> {
    const TABLE: &str = "analytics.readmission_risk";
    if !has_table(state, user, TABLE).await {
        return None;
    }
    let distribution = format!(
        "SELECT CAST(lace_score AS VARCHAR), count(*) FROM {TABLE} \
         WHERE readmission_window_closed GROUP BY lace_score ORDER BY lace_score"
    );
    let observed = format!(
        "SELECT CAST(lace_score AS VARCHAR), round(100.0 * avg(CASE WHEN readmitted_30d THEN 1.0 ELSE 0.0 END), 1) \
         FROM {TABLE} WHERE readmission_window_closed GROUP BY lace_score ORDER BY lace_score"
    );
    let hospital = format!(
        "SELECT CAST(hospital_score AS VARCHAR), round(100.0 * avg(CASE WHEN readmitted_30d THEN 1.0 ELSE 0.0 END), 1) \
         FROM {TABLE} WHERE readmission_window_closed GROUP BY hospital_score ORDER BY hospital_score"
    );
    let (Ok(distribution), Ok(observed), Ok(hospital)) = (
        run(state, user, &distribution).await,
        run(state, user, &observed).await,
        run(state, user, &hospital).await,
    ) else {
        return None;
    };
    Some(html! {
        h2 { "Readmission risk" }
        div.cards {
            (card(
                "Discharges by LACE score",
                "Index discharges whose 30-day window has closed, by LACE index (0-19).",
                svg::bars("Discharges by LACE score", &pairs(&distribution), ""),
            ))
            (card(
                "Observed readmission rate by LACE score",
                "Calibration: the share readmitted within 30 days at each LACE score; a useful score rises left to right.",
                svg::bars("Readmission rate by LACE score", &pairs(&observed), "%"),
            ))
            (card(
                "Observed readmission rate by HOSPITAL score",
                "The same for the HOSPITAL score (0-13; 7 or more is high risk).",
                svg::bars("Readmission rate by HOSPITAL score", &pairs(&hospital), "%"),
            ))
        }
    })
}

#[derive(Deserialize)]
struct WorklistQuery {
    risk: Option<String>,
}

async fn worklist(
    State(state): State<Arc<AppState>>,
    UiUser(user): UiUser,
    Query(q): Query<WorklistQuery>,
) -> Response {
    const VIEW: &str = "analytics.worklist_readmission_risk";
    if !has_table(&state, &user, VIEW).await {
        return Html(page(
            "Worklist",
            "/worklist",
            Some(&user.name),
            no_analytics("Worklist"),
        ))
        .into_response();
    }
    let all = q.risk.as_deref() == Some("all");
    let filter = if all { "" } else { "WHERE w.risk = 'high'" };
    let columns = "w.person_key, w.encounter_id, w.last_name, w.first_name, w.birth_date, w.phone, w.facility_id, \
                   CAST(w.discharge_time AS DATE) AS discharged, w.length_of_stay_days AS los_days, \
                   w.principal_diagnosis, w.charlson_index, w.ed_visits_6m, w.admissions_12m, \
                   w.lace_score, w.hospital_score, w.risk";
    let order = "ORDER BY w.lace_score + w.hospital_score DESC, w.discharge_time DESC LIMIT 500";
    // With the last outreach for the person, where the principal may read the outreach log.
    let with_outreach = format!(
        "SELECT {columns}, o.outcome AS last_outreach, o.recorded_at AS outreach_at FROM {VIEW} w \
         LEFT JOIN (SELECT CAST(person_key AS VARCHAR) AS person_key, \
                           last_value(outcome ORDER BY recorded_at) AS outcome, max(recorded_at) AS recorded_at \
                    FROM raw.outreach_events GROUP BY 1) o ON o.person_key = CAST(w.person_key AS VARCHAR) \
         {filter} {order}"
    );
    let without = format!(
        "SELECT {columns}, CAST(NULL AS VARCHAR) AS last_outreach, CAST(NULL AS VARCHAR) AS outreach_at \
         FROM {VIEW} w {filter} {order}"
    );
    let counts =
        format!("SELECT count(*), sum(CASE WHEN risk = 'high' THEN 1 ELSE 0 END) FROM {VIEW}");
    let result = match run(&state, &user, &with_outreach).await {
        Ok(r) => Ok(r),
        Err(_) => run(&state, &user, &without).await,
    };
    let (result, counts) = match (result, run(&state, &user, &counts).await) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(e), _) | (_, Err(e)) => return failure("Worklist", "/worklist", &user, &e),
    };
    let counts = cells(&counts.batches)
        .into_iter()
        .next()
        .unwrap_or_default();
    let toggle = if all {
        html! { a href="/worklist" { "Show high risk only" } }
    } else {
        html! { a href="/worklist?risk=all" { "Show every recent discharge" } }
    };
    let mut headers = headers_of(&result);
    // person_key and encounter_id identify the row for the form; they are not shown.
    headers.drain(..2);
    headers.push("record outreach".into());
    let numeric: Vec<bool> = {
        let mut n = numeric_columns(&result);
        n.drain(..2.min(n.len()));
        n.push(false);
        n
    };
    let mut keys = Vec::new();
    let rows: Vec<Vec<String>> = cells(&result.batches)
        .into_iter()
        .map(|mut row| {
            let person = row.remove(0);
            let encounter = row.remove(0);
            keys.push((person, encounter));
            row
        })
        .collect();
    let form = |i: usize| {
        let (person, encounter) = &keys[i];
        outreach_form(person, encounter)
    };
    let body = html! {
        h1 { "Worklist" }
        p.muted {
            "Patients to contact: inpatients discharged in the last 30 days of data who are not back yet, by readmission risk: LACE (10 or more is high) and HOSPITAL (7 or more is high). "
            (counts.first().map_or("0", String::as_str)) " recent discharges, "
            (counts.get(1).map_or("0", String::as_str)) " at high risk. "
            (toggle)
        }
        (table_with(&headers, &rows, &numeric, &form))
        p.muted {
            "From the view " a href={ "/catalog/" (VIEW) } { (VIEW) }
            " over " a href="/catalog/analytics.readmission_risk" { "analytics.readmission_risk" }
            ", which has each score's components and inputs. An outcome recorded here goes to raw.outreach_events (through the streaming ingest) and stops further alerts for the patient where an alert says so."
        }
    };
    Html(page("Worklist", "/worklist", Some(&user.name), body)).into_response()
}

/// The outcomes a care coordinator records.
const OUTCOMES: [(&str, &str); 4] = [
    ("reached", "Reached"),
    ("left_message", "Left message"),
    ("declined", "Declined"),
    ("readmitted", "Readmitted"),
];

fn outreach_form(person: &str, encounter: &str) -> Markup {
    html! {
        form method="post" action="/worklist/outreach" class="outreach" {
            input type="hidden" name="person_key" value=(person);
            input type="hidden" name="encounter_id" value=(encounter);
            select name="outcome" aria-label="outcome" {
                @for (value, label) in OUTCOMES {
                    option value=(value) { (label) }
                }
            }
            button type="submit" class="secondary" { "Record" }
        }
    }
}

#[derive(Deserialize)]
struct OutreachForm {
    person_key: String,
    encounter_id: String,
    outcome: String,
}

/// `POST /worklist/outreach`: an outreach outcome for a patient on the principal's worklist,
/// appended to the `outreach_events` stream (write-ahead log, then `raw.outreach_events`).
async fn record_outreach(
    State(state): State<Arc<AppState>>,
    UiUser(user): UiUser,
    headers: HeaderMap,
    Form(form): Form<OutreachForm>,
) -> Response {
    if cross_site(&headers) {
        return refused();
    }
    const VIEW: &str = "analytics.worklist_readmission_risk";
    if !OUTCOMES.iter().any(|(v, _)| *v == form.outcome) {
        return failure("Worklist", "/worklist", &user, "unknown outcome");
    }
    let session = match state.session(&user).await {
        Ok(s) => s,
        Err(e) => return failure("Worklist", "/worklist", &user, e.message()),
    };
    let table = match carelake_stream::stream_table("outreach_events") {
        Ok(t) => t,
        Err(e) => return failure("Worklist", "/worklist", &user, &e.to_string()),
    };
    if let Err(e) = session.authorize_write(&table) {
        return failure("Worklist", "/worklist", &user, &e.to_string());
    }
    // Only a patient on this principal's worklist (their row policies decide which).
    let quote = |s: &str| s.replace('\'', "''");
    let check = format!(
        "SELECT count(*) FROM {VIEW} WHERE CAST(person_key AS VARCHAR) = '{}' AND CAST(encounter_id AS VARCHAR) = '{}'",
        quote(&form.person_key),
        quote(&form.encounter_id)
    );
    match run(&state, &user, &check).await {
        Ok(r)
            if cells(&r.batches)
                .first()
                .and_then(|row| row.first())
                .is_some_and(|c| c != "0") => {}
        Ok(_) => {
            return failure(
                "Worklist",
                "/worklist",
                &user,
                "that discharge is not on your worklist",
            );
        }
        Err(e) => return failure("Worklist", "/worklist", &user, &e),
    }
    let event = serde_json::json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "person_key": form.person_key,
        "encounter_id": form.encounter_id,
        "outcome": form.outcome,
        "recorded_by": user.name,
        "recorded_at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let Some(event) = carelake_stream::StreamEvent::parse(&event) else {
        return failure(
            "Worklist",
            "/worklist",
            &user,
            "the event could not be built",
        );
    };
    if let Err(e) = session
        .record_action("ingest", std::slice::from_ref(&table), Some(1), None)
        .await
    {
        return failure("Worklist", "/worklist", &user, &e.to_string());
    }
    match state.ingest.append("outreach_events", vec![event]).await {
        Ok(_) => Redirect::to("/worklist?recorded=1").into_response(),
        Err(e) => failure("Worklist", "/worklist", &user, &e.to_string()),
    }
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
    let mut response = match super::encode::respond(&result, "text/csv", state.config.max_rows, 0.0)
    {
        Ok(response) => response,
        Err(e) => return failure("SQL", "/sql", &user, e.message()),
    };
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"carelake-query.csv\""),
    );
    response
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
