//! The runner: order, reruns, incremental merges, retries and failures.

use carelake_pipeline::ModelStatus;
use proptest::prelude::*;

use crate::support::Fixture;

const ENCOUNTERS_HEADER: &str = "encounter_id,mrn,status,charge\n";

fn status_of(summary: &carelake_pipeline::RunSummary, model: &str) -> ModelStatus {
    summary
        .outcomes
        .iter()
        .find(|o| o.model == model)
        .unwrap_or_else(|| panic!("{model} not in the run"))
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_in_order_and_a_rerun_without_new_input_changes_nothing() {
    let mut f = Fixture::new().await;
    f.load(
        "raw.encounters",
        &format!("{ENCOUNTERS_HEADER}1,M1,done,10.5\n2,M1,done,20\n3,M2,open,5\n"),
    )
    .await;
    let project = f.project(
        "p",
        &[
            (
                "analytics/charges_by_patient.sql",
                "-- description: Charges per patient.\nSELECT mrn, sum(charge) AS total FROM curated.encounters GROUP BY mrn",
            ),
            (
                "curated/encounters.sql",
                "SELECT encounter_id, mrn, status, charge FROM raw.encounters WHERE status = 'done'",
            ),
            (
                "analytics/open_view.sql",
                "-- materialized: view\nSELECT * FROM raw.encounters WHERE status = 'open'",
            ),
        ],
    );
    let first = f.run(&project, &[]).await;
    assert!(first.ok(), "{first:?}");
    let order: Vec<&str> = first.outcomes.iter().map(|o| o.model.as_str()).collect();
    let pos = |m: &str| order.iter().position(|o| *o == m).unwrap();
    assert!(pos("encounters") < pos("charges_by_patient"), "{order:?}");
    assert_eq!(
        f.rows("SELECT mrn, total FROM analytics.charges_by_patient")
            .await,
        ["M1|30.5"]
    );
    assert_eq!(
        f.scalar("SELECT count(*) FROM analytics.open_view").await,
        "1"
    );
    let versions = (
        f.version("curated.encounters").await,
        f.version("analytics.charges_by_patient").await,
    );

    let again = f.run(&project, &[]).await;
    assert!(
        again
            .outcomes
            .iter()
            .all(|o| o.status == ModelStatus::UpToDate),
        "{again:?}"
    );
    assert_eq!(
        versions,
        (
            f.version("curated.encounters").await,
            f.version("analytics.charges_by_patient").await
        ),
        "a rerun without new input wrote nothing"
    );
    // Every model of both runs is in the history.
    assert_eq!(f.scalar("SELECT count(*) FROM system.runs").await, "6");
    assert_eq!(
        f.scalar("SELECT count(DISTINCT run_id) FROM system.runs")
            .await,
        "2"
    );

    // New input: the models reading it run again.
    f.load(
        "raw.encounters",
        &format!("{ENCOUNTERS_HEADER}4,M2,done,1\n"),
    )
    .await;
    let third = f.run(&project, &["encounters+"]).await;
    assert_eq!(third.outcomes.len(), 2, "{third:?}");
    assert_eq!(status_of(&third, "encounters"), ModelStatus::Success);
    assert_eq!(
        f.rows("SELECT mrn, total FROM analytics.charges_by_patient")
            .await,
        ["M1|30.5", "M2|1.0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_model_stops_only_its_descendants_after_its_retries() {
    let mut f = Fixture::new().await;
    f.load(
        "raw.encounters",
        &format!("{ENCOUNTERS_HEADER}1,M1,done,1\n"),
    )
    .await;
    let project = f.project(
        "p",
        &[
            // Fails when it runs (division by zero): retried, then given up.
            (
                "curated/broken.sql",
                "-- retries: 2\nSELECT 1 / (encounter_id - 1) AS x FROM raw.encounters",
            ),
            ("analytics/after_broken.sql", "SELECT * FROM curated.broken"),
            // Does not plan: no retry can help.
            (
                "curated/typo.sql",
                "-- retries: 2\nSELECT no_such_column FROM raw.encounters",
            ),
            (
                "curated/fine.sql",
                "SELECT encounter_id FROM raw.encounters",
            ),
        ],
    );
    let summary = f.run(&project, &[]).await;
    assert!(!summary.ok());
    let broken = summary
        .outcomes
        .iter()
        .find(|o| o.model == "broken")
        .unwrap();
    assert_eq!(broken.status, ModelStatus::Failed);
    assert_eq!(broken.attempts, 3);
    assert!(
        broken.error.as_deref().unwrap().contains("Divide by zero"),
        "{broken:?}"
    );
    let typo = summary.outcomes.iter().find(|o| o.model == "typo").unwrap();
    assert_eq!((typo.status, typo.attempts), (ModelStatus::Failed, 1));
    assert!(typo.error.as_deref().unwrap().contains("no_such_column"));
    assert_eq!(status_of(&summary, "after_broken"), ModelStatus::Skipped);
    assert_eq!(status_of(&summary, "fine"), ModelStatus::Success);
    assert_eq!(
        f.rows("SELECT model, status, attempts FROM system.runs")
            .await,
        [
            "after_broken|skipped|0",
            "broken|failed|3",
            "fine|success|1",
            "typo|failed|1"
        ]
    );
}

/// The latest row of each encounter: the same SQL, run incrementally after every load and
/// merged by key, or run once over everything.
const LATEST_ENCOUNTER: &str = "SELECT encounter_id, mrn, status, charge FROM ( \
     SELECT *, row_number() OVER (PARTITION BY encounter_id ORDER BY _loaded_at DESC, _source_line DESC) AS rn \
     FROM raw.encounters) AS ranked WHERE rn = 1";

async fn incremental_equals_full(batches: Vec<Vec<(u8, u8, u8)>>) {
    let mut f = Fixture::new().await;
    let incremental = f.project(
        "inc",
        &[(
            "curated/enc_inc.sql",
            &format!(
                "-- materialized: incremental\n-- unique_key: encounter_id\n{LATEST_ENCOUNTER}"
            ),
        )],
    );
    let full = f.project("full", &[("curated/enc_full.sql", LATEST_ENCOUNTER)]);
    for batch in &batches {
        let mut csv = String::from(ENCOUNTERS_HEADER);
        for (id, status, charge) in batch {
            csv.push_str(&format!("{id},M{},s{status},{charge}\n", id % 8));
        }
        f.load("raw.encounters", &csv).await;
        let summary = f.run(&incremental, &[]).await;
        assert!(summary.ok(), "{summary:?}");
    }
    let summary = f.run(&full, &[]).await;
    assert!(summary.ok(), "{summary:?}");
    let merged = f
        .rows("SELECT encounter_id, mrn, status, charge FROM curated.enc_inc")
        .await;
    let rebuilt = f
        .rows("SELECT encounter_id, mrn, status, charge FROM curated.enc_full")
        .await;
    assert_eq!(merged, rebuilt);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]
    #[test]
    fn incremental_runs_equal_a_full_rebuild(
        batches in proptest::collection::vec(
            proptest::collection::vec((0u8..16, 0u8..3, 1u8..50), 1..6),
            1..4,
        )
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(incremental_equals_full(batches));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scd2_closes_the_old_version_when_a_row_changes() {
    let mut f = Fixture::new().await;
    let header = "person_id,address,updated_at\n";
    f.load(
        "raw.people",
        &format!("{header}P1,12 Oak Ave,2024-01-01T00:00:00\nP2,5 Elm St,2024-01-01T00:00:00\n"),
    )
    .await;
    let project = f.project(
        "p",
        &[
            (
                "curated/people.sql",
                "SELECT person_id, address FROM (SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY updated_at DESC) AS r FROM raw.people) AS x WHERE r = 1",
            ),
            (
                "analytics/dim_person.sql",
                "-- materialized: scd2\n-- unique_key: person_id\nSELECT person_id, address FROM curated.people",
            ),
        ],
    );
    assert!(f.run(&project, &[]).await.ok());
    assert_eq!(
        f.rows(
            "SELECT person_id, address, is_current, effective_to IS NULL FROM analytics.dim_person"
        )
        .await,
        ["P1|12 Oak Ave|true|true", "P2|5 Elm St|true|true"]
    );
    // P1 moves; P3 arrives.
    f.load(
        "raw.people",
        &format!("{header}P1,99 Pine Rd,2024-06-01T00:00:00\nP3,1 Main St,2024-06-01T00:00:00\n"),
    )
    .await;
    let summary = f.run(&project, &[]).await;
    assert!(summary.ok(), "{summary:?}");
    assert_eq!(
        f.rows(
            "SELECT person_id, address, is_current, effective_to IS NULL FROM analytics.dim_person"
        )
        .await,
        [
            "P1|12 Oak Ave|false|false",
            "P1|99 Pine Rd|true|true",
            "P2|5 Elm St|true|true",
            "P3|1 Main St|true|true"
        ]
    );
    // The closed version ends when the new one starts.
    assert_eq!(
        f.scalar(
            "SELECT count(*) FROM analytics.dim_person o JOIN analytics.dim_person n \
             ON o.person_id = n.person_id AND NOT o.is_current AND n.is_current \
             WHERE o.effective_to = n.effective_from"
        )
        .await,
        "1"
    );
    // Nothing new: nothing changes.
    let version = f.version("analytics.dim_person").await;
    let again = f.run(&project, &[]).await;
    assert!(
        again
            .outcomes
            .iter()
            .all(|o| o.status == ModelStatus::UpToDate)
    );
    assert_eq!(f.version("analytics.dim_person").await, version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_quality_checks_are_recorded_with_pass_or_fail() {
    let mut f = Fixture::new().await;
    f.load(
        "raw.encounters",
        &format!("{ENCOUNTERS_HEADER}1,M1,done,10\n,M2,done,5\n3,,open,1\n"),
    )
    .await;
    let project = f.project(
        "p",
        &[
            (
                "curated/enc.sql",
                "-- unique_key: encounter_id\nSELECT encounter_id, mrn, status, CASE WHEN charge > 5 THEN 'charge above 5' END AS charge_invalid_reason FROM raw.encounters",
            ),
            ("analytics/dq.sql", "-- builtin: dq\n-- input: curated.enc\n"),
        ],
    );
    let summary = f.run(&project, &[]).await;
    assert!(summary.ok(), "{summary:?}");
    assert_eq!(
        f.rows(
            "SELECT column_name, check_name, rows_violating, status FROM analytics.dq_results ORDER BY 1, 2"
        )
        .await,
        [
            "charge|validity|1|fail",
            "encounter_id|completeness|1|fail",
            "encounter_id|uniqueness|0|pass",
            "mrn|completeness|1|pass",
            "status|completeness|0|pass"
        ]
    );
    // A later run with new input appends; the history stays.
    f.load(
        "raw.encounters",
        &format!("{ENCOUNTERS_HEADER}4,M4,done,1\n"),
    )
    .await;
    assert!(f.run(&project, &[]).await.ok());
    assert_eq!(
        f.scalar("SELECT count(DISTINCT checked_at) FROM analytics.dq_results")
            .await,
        "2"
    );
}
