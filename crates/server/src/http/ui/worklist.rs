//! The care-team worklist: recent discharges at high readmission risk, and the outreach each gets.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::html::{cells, no_analytics, page, table_with};
use super::{AppState, cross_site};
use super::{UiUser, failure, has_table, headers_of, numeric_columns, refused, run};

/// The routes of these pages.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/worklist", get(worklist))
        .route("/worklist/outreach", post(record_outreach))
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
