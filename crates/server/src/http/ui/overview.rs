//! The overview page: KPIs, the admissions and readmission trend, census and length of stay by facility, and the risk panel.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use carelake_lake::User;
use maud::{Markup, html};

use super::AppState;
use super::html::{card, cells, kpi, no_analytics, page};
use super::svg;
use super::{UiUser, failure, has_table, pairs, run};

/// The routes of these pages.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", get(overview))
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
