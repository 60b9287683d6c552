//! `carelake run` on the generated hospital network with the default project: the master
//! patient index against the generator's truth, the 30-day readmission flags against the
//! truth, and a rerun that changes nothing.

use std::collections::HashSet;

use crate::support::Workspace;

#[test]
fn default_project_on_generated_data_matches_the_truth() {
    let ws = Workspace::new();
    let data = ws.path("gen").to_string_lossy().into_owned();
    ws.ok(&[
        "generate",
        "--patients",
        "3000",
        "--seed",
        "5",
        "--out",
        &data,
    ]);
    for table in [
        "facilities",
        "providers",
        "patients",
        "encounters",
        "diagnoses",
        "labs",
        "claims",
        "claim_lines",
    ] {
        let file = format!("{data}/{table}.csv");
        ws.ok(&["load", &file, "--into", &format!("raw.{table}")]);
    }
    let out = ws.ok(&["run"]);
    println!("{out}");
    assert!(out.contains("Ran 18 model(s)"), "{out}");
    // Standardised codes: the generator sends valid ones; glucose also in mmol/L.
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.diagnoses WHERE icd10_invalid_reason IS NOT NULL"),
        "0"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.labs WHERE loinc_invalid_reason IS NOT NULL OR unit_invalid_reason IS NOT NULL"),
        "0"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.labs WHERE loinc_code = '2345-7' AND abs(glucose_mmol_l * 18.0156 - value) > 0.001"),
        "0"
    );

    // Data quality: checked and summarised; the generated data pass every check with a
    // threshold.
    assert!(
        out.contains("Data quality (analytics.dq_results):"),
        "{out}"
    );
    assert!(out.contains(" 0 failed."), "{out}");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM analytics.dq_results WHERE check_name = 'uniqueness' AND table_name = 'curated.encounters' AND rows_violating = 0"),
        "1"
    );
    // Claims reach their person through the encounter; the census counts every stay day.
    assert_eq!(
        ws.scalar("SELECT count(*) FROM analytics.fact_claim"),
        ws.scalar("SELECT count(DISTINCT claim_id) FROM raw.claims")
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM analytics.fact_claim WHERE person_key IS NULL"),
        "0"
    );
    assert_eq!(
        ws.scalar("SELECT sum(patients_in_house) FROM analytics.mart_census"),
        ws.scalar(
            "SELECT sum(CAST(floor(to_unixtime(discharge_time) / 86400) AS BIGINT) - CAST(floor(to_unixtime(admit_time) / 86400) AS BIGINT) + 1) \
             FROM analytics.fact_encounter WHERE encounter_class = 'inpatient'"
        )
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM analytics.dim_date WHERE date_day = DATE '2024-02-29' AND day_of_week = 4"),
        "1"
    );
    // One current dim_patient version per person.
    assert_eq!(
        ws.scalar("SELECT count(*) FROM analytics.dim_patient WHERE is_current"),
        ws.scalar("SELECT count(*) FROM curated.person")
    );
    // Persons: one per generated person.
    let people = std::fs::read_to_string(ws.path("gen/_truth/person_records.csv")).unwrap();
    let persons: HashSet<&str> = people
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2))
        .collect();
    assert_eq!(
        ws.scalar("SELECT count(*) FROM curated.person"),
        persons.len().to_string()
    );

    // Readmissions: the flagged index stays against the truth.
    let truth_text = std::fs::read_to_string(ws.path("gen/_truth/readmissions.csv")).unwrap();
    let truth: HashSet<String> = truth_text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(str::to_string)
        .collect();
    let flagged: HashSet<String> = ws
        .query("SELECT encounter_id FROM analytics.fact_encounter WHERE readmitted_30d")
        .into_iter()
        .collect();
    let correct = flagged.intersection(&truth).count();
    let index_stays: usize = ws
        .scalar("SELECT count(*) FROM analytics.fact_encounter WHERE readmitted_30d IS NOT NULL")
        .parse()
        .unwrap();
    println!(
        "30-day readmissions: {} flagged, {} in the truth, {correct} both; rate {:.2}% (truth {:.2}%) over {index_stays} index stays",
        flagged.len(),
        truth.len(),
        100.0 * flagged.len() as f64 / index_stays as f64,
        100.0 * truth.len() as f64 / index_stays as f64,
    );
    let mut extra: Vec<&String> = flagged.difference(&truth).collect();
    let mut missed: Vec<&String> = truth.difference(&flagged).collect();
    extra.sort();
    missed.sort();
    for id in extra.iter().chain(&missed) {
        println!(
            "{id}: {:?}",
            ws.query(&format!(
                "SELECT f.encounter_id, f.person_key, f.mrn, f.admit_time, f.discharge_time, f.discharge_disposition, f.days_to_next_admission, f.readmitted_30d FROM analytics.fact_encounter f \
                 WHERE f.person_key = (SELECT person_key FROM analytics.fact_encounter WHERE encounter_id = '{id}') AND f.encounter_class = 'inpatient' ORDER BY f.admit_time"
            ))
        );
    }
    assert!(
        extra.is_empty() && missed.is_empty(),
        "flagged but not in the truth: {extra:?}; in the truth but not flagged: {missed:?}"
    );

    // Nothing new: nothing runs again.
    let again = ws.ok(&["run"]);
    assert_eq!(again.matches("up to date").count(), 18, "{again}");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM system.runs WHERE status = 'up_to_date'"),
        "18"
    );
}

#[test]
fn project_init_writes_a_copy_that_runs() {
    let ws = Workspace::new();
    let dir = ws.path("proj").to_string_lossy().into_owned();
    let out = ws.ok(&["project", "init", &dir]);
    assert!(out.contains("Wrote 18 models"), "{out}");
    let show = ws.ok(&["project", "show", &dir]);
    assert!(show.contains("curated.person_xref"), "{show}");
    let err = ws.fails(&["project", "init", &dir]);
    assert!(err.contains("not overwriting"), "{err}");
}

#[test]
fn serve_schedules_needs_scheduled_models() {
    let ws = Workspace::new();
    let err = ws.fails(&["serve"]);
    assert!(err.contains("nothing to serve"), "{err}");
    let dir = ws.path("proj");
    std::fs::create_dir_all(dir.join("models/curated")).unwrap();
    std::fs::write(dir.join("models/curated/x.sql"), "SELECT 1 AS x").unwrap();
    let dir = dir.to_string_lossy().into_owned();
    let err = ws.fails(&["serve", "--schedules", "--project", &dir]);
    assert!(err.contains("has a `-- schedule:`"), "{err}");
    std::fs::write(
        ws.path("proj/models/curated/x.sql"),
        "-- schedule: every hour\nSELECT 1 AS x",
    )
    .unwrap();
    let err = ws.fails(&["serve", "--schedules", "--project", &dir]);
    assert!(err.contains("five-field cron"), "{err}");
}
