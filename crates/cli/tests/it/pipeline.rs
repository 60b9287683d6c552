//! `carelake run` on the generated hospital network with the default project: the master
//! patient index against the generator's truth, the 30-day readmission flags against the
//! truth, and a rerun that changes nothing; the same facts from the HL7 v2, FHIR and X12 feeds
//! as from the flat files.

use std::collections::HashSet;

use crate::support::Workspace;

/// The generator's flat files the default project reads (reference files first).
pub(crate) const FLAT_FILES: [&str; 8] = [
    "facilities",
    "providers",
    "patients",
    "encounters",
    "diagnoses",
    "labs",
    "claims",
    "claim_lines",
];

/// Loads `<data>/<table>.csv` into `raw.<table>` for each table.
fn load_flat_files(ws: &Workspace, data: &str, tables: &[&str]) {
    for table in tables {
        let file = format!("{data}/{table}.csv");
        ws.ok(&["load", &file, "--into", &format!("raw.{table}")]);
    }
}

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
    load_flat_files(&ws, &data, &FLAT_FILES);
    let out = ws.ok(&["run"]);
    println!("{out}");
    assert!(out.contains("Ran 21 model(s)"), "{out}");
    // No vitals were loaded: that model waits for its feed and its descendants go on.
    assert!(out.contains("no input"), "{out}");
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

    // Right-censoring: discharges within 30 days of the data's end are marked, and the mart
    // counts only the closed windows.
    let open = ws.scalar(
        "SELECT count(*) FROM analytics.fact_encounter WHERE encounter_class = 'inpatient' AND NOT readmission_window_closed",
    );
    assert_ne!(open, "0", "no discharge in the last 30 days of data");
    assert_eq!(
        ws.scalar("SELECT sum(index_discharges) FROM analytics.mart_readmissions"),
        ws.scalar(
            "SELECT count(*) FROM analytics.fact_encounter WHERE readmitted_30d IS NOT NULL AND readmission_window_closed"
        )
    );
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM analytics.fact_encounter WHERE readmission_window_closed \
             AND discharge_time > (SELECT max(greatest(admit_time, coalesce(discharge_time, admit_time))) FROM analytics.fact_encounter) - INTERVAL '29 days'"
        ),
        "0"
    );
    // The risk table: one row per index discharge, scores within their ranges, provenance.
    assert_eq!(
        ws.scalar("SELECT count(*) FROM analytics.readmission_risk"),
        index_stays.to_string()
    );
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM analytics.readmission_risk WHERE lace_score NOT BETWEEN 0 AND 19 \
             OR hospital_score NOT BETWEEN 0 AND 13 OR lace_score IS NULL OR hospital_score IS NULL \
             OR lace_l + lace_a + lace_c + lace_e <> lace_score \
             OR hospital_h + hospital_o + hospital_s + hospital_p + hospital_i + hospital_a + hospital_l <> hospital_score"
        ),
        "0"
    );
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM analytics.readmission_risk WHERE charlson_index > 0 AND coalesce(cardinality(charlson_codes), 0) = 0"
        ),
        "0"
    );
    assert_ne!(
        ws.scalar("SELECT count(hemoglobin_observed_at) FROM analytics.readmission_risk"),
        "0",
        "no hemoglobin result reached a stay"
    );

    // Nothing new: nothing runs again.
    let again = ws.ok(&["run"]);
    assert_eq!(again.matches("up to date").count(), 20, "{again}");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM system.runs WHERE status = 'up_to_date'"),
        "20"
    );
}

#[test]
fn project_init_writes_a_copy_that_runs() {
    let ws = Workspace::new();
    let dir = ws.path("proj").to_string_lossy().into_owned();
    let out = ws.ok(&["project", "init", &dir]);
    assert!(out.contains("Wrote 21 models"), "{out}");
    let show = ws.ok(&["project", "show", &dir]);
    assert!(show.contains("curated.person_xref"), "{show}");
    let err = ws.fails(&["project", "init", &dir]);
    assert!(err.contains("not overwriting"), "{err}");
}

#[test]
fn serve_schedules_needs_scheduled_models() {
    let ws = Workspace::new();
    let err = ws.fails(&["serve", "--http-listen", "off", "--pg-listen", "off"]);
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

/// The facts a lake holds, as text to compare between lakes.
fn facts(ws: &Workspace) -> Vec<(&'static str, Vec<String>)> {
    [
        (
            "encounters by class and facility",
            "SELECT encounter_class, facility_id, count(*), count(discharge_time), count(attending_npi), \
                    count(principal_diagnosis), count(DISTINCT person_key) \
             FROM analytics.fact_encounter GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        (
            "30-day readmissions",
            "SELECT encounter_id, days_to_next_admission FROM analytics.fact_encounter \
             WHERE readmitted_30d ORDER BY encounter_id",
        ),
        (
            "length of stay",
            // In minutes: means of floats summed in another order may round apart.
            "SELECT facility_id, to_char(discharge_time, '%Y-%m'), count(*), \
                    CAST(round(sum(length_of_stay_days) * 1440) AS BIGINT) \
             FROM analytics.fact_encounter WHERE encounter_class = 'inpatient' GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        (
            "census",
            "SELECT count(*), sum(patients_in_house) FROM analytics.mart_census",
        ),
        (
            "diagnoses",
            "SELECT d.encounter_id, d.icd10_code, d.is_primary FROM curated.diagnoses d \
             ORDER BY 1, 2",
        ),
        (
            "labs",
            "SELECT encounter_id, loinc_code, CAST(observed_at AS VARCHAR), round(value, 3), unit, ref_low, ref_high, abnormal_flag \
             FROM analytics.fact_observation WHERE category = 'laboratory' AND person_key IS NOT NULL ORDER BY 1, 2, 3",
        ),
        (
            "claims",
            // An 837 names no encounter: the model finds it (the person's encounter that day
            // with the claim's principal diagnosis).
            "SELECT claim_id, encounter_id, facility_id, round(total_charge, 2), principal_diagnosis, service_from \
             FROM analytics.fact_claim WHERE person_key IS NOT NULL ORDER BY 1",
        ),
        (
            "claim lines",
            "SELECT claim_id, line_no, cpt_code, units, round(charge, 2) FROM analytics.fact_claim_line ORDER BY 1, 2",
        ),
        (
            "persons with encounters",
            "SELECT count(DISTINCT person_key) FROM analytics.fact_encounter",
        ),
    ]
    .into_iter()
    .map(|(what, sql)| {
        // Rows equal in the ORDER BY columns come in any order.
        let mut rows = ws.query(sql);
        rows.sort();
        (what, rows)
    })
    .collect()
}

#[test]
fn clinical_feeds_give_the_facts_the_flat_files_give() {
    // Lake A: the flat files. Lake B: the same hospitals as they send them (HL7 v2 from
    // MERIDIAN, FHIR from CASCADE, X12 837 claims), with only the reference files.
    let flat = Workspace::new();
    let data = flat.path("gen").to_string_lossy().into_owned();
    flat.ok(&[
        "generate",
        "--patients",
        "1500",
        "--seed",
        "11",
        "--out",
        &data,
    ]);
    load_flat_files(&flat, &data, &FLAT_FILES);
    let out = flat.ok(&["run"]);
    assert!(out.contains(" 0 failed."), "{out}");

    let clinical = Workspace::new();
    load_flat_files(&clinical, &data, &FLAT_FILES[..2]);
    for feed in ["hl7", "fhir", "x12"] {
        clinical.ok(&["load", &format!("{data}/{feed}")]);
    }
    let out = clinical.ok(&["run"]);
    println!("{out}");
    assert!(out.contains(" 0 failed."), "{out}");
    assert_eq!(
        clinical.scalar("SELECT count(*) FROM system.tables WHERE table_name IN ('raw.patients', 'raw.encounters', 'raw.claims')"),
        "0"
    );
    // Every feed is there, and every 837 claim found its person and its encounter.
    assert_eq!(
        clinical.query("SELECT DISTINCT feed FROM curated.encounters ORDER BY 1"),
        ["fhir", "hl7"]
    );
    assert_eq!(
        clinical.scalar("SELECT count(*) FROM analytics.fact_claim WHERE feed = 'x12' AND (person_key IS NULL OR encounter_id IS NULL)"),
        "0"
    );
    assert_eq!(
        clinical.scalar("SELECT count(*) FROM analytics.fact_claim"),
        flat.scalar("SELECT count(*) FROM analytics.fact_claim")
    );
    for ((what, a), (_, b)) in facts(&flat).into_iter().zip(facts(&clinical)) {
        assert!(!a.is_empty(), "{what}: no rows");
        if a != b {
            let only_a: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
            let only_b: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
            panic!(
                "{what} differ ({} rows from the flat files, {} from the clinical feeds): \
                 flat files only {only_a:?}; clinical feeds only {only_b:?}",
                a.len(),
                b.len()
            );
        }
    }
    // Loading the flat files as well changes no fact: a record in two feeds counts once.
    load_flat_files(&clinical, &data, &FLAT_FILES[2..]);
    let out = clinical.ok(&["run"]);
    assert!(out.contains(" 0 failed."), "{out}");
    for ((what, a), (_, b)) in facts(&flat).into_iter().zip(facts(&clinical)) {
        assert_eq!(a, b, "{what}, with every feed loaded");
    }
}
