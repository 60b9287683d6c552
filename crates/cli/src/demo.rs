//! `carelake demo`: generate a hospital network, load it into the lake, print the KPIs.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use carelake_common::{Principal, TableName};
use carelake_ingest::{ClinicalRequest, LoadRequest, Loader};
use carelake_lake::Lake;
use carelake_server::{DEFAULT_HTTP_ADDR, DEFAULT_PG_ADDR};
use carelake_sql::Session;

use crate::output::{OutputFormat, print_result};

/// The generated files and the raw tables they load into.
pub(crate) const DEMO_TABLES: &[(&str, &str, &str)] = &[
    (
        "facilities.csv",
        "facilities",
        "Hospitals and clinics of the network",
    ),
    (
        "providers.csv",
        "providers",
        "Clinicians with NPI and specialty",
    ),
    ("payers.csv", "payers", "Insurers and self-pay"),
    (
        "patients.csv",
        "patients",
        "Patient registrations per EHR system, with late updates",
    ),
    (
        "encounters.csv",
        "encounters",
        "Inpatient, emergency and outpatient encounters",
    ),
    (
        "diagnoses.csv",
        "diagnoses",
        "ICD-10-CM diagnoses per encounter",
    ),
    (
        "procedures.csv",
        "procedures",
        "CPT procedures per encounter",
    ),
    (
        "labs.csv",
        "labs",
        "LOINC lab results with units and reference ranges",
    ),
    (
        "claims.csv",
        "claims",
        "Claims with payer, charges and status",
    ),
    ("claim_lines.csv", "claim_lines", "Claim service lines"),
    (
        "vitals.ndjson",
        "vitals",
        "Bedside monitor vital signs (device events)",
    ),
    (
        "outreach_notes.ndjson",
        "outreach_notes",
        "Care-team outreach notes after discharge",
    ),
];

/// The KPI queries of the demo, on the star schema the default pipeline builds: (title, SQL).
pub(crate) const KPI_QUERIES: &[(&str, &str)] = &[
    (
        "Inpatient admissions per month",
        "SELECT to_char(admit_time, '%Y-%m') AS month, count(*) AS admissions
         FROM analytics.fact_encounter WHERE encounter_class = 'inpatient'
         GROUP BY 1 ORDER BY 1",
    ),
    (
        "30-day readmission rate by facility (one person across systems, via the patient index; discharges whose 30-day window has not closed left out)",
        "SELECT f.name AS facility,
                count(*) AS index_discharges,
                sum(CASE WHEN e.readmitted_30d THEN 1 ELSE 0 END) AS readmitted_30d,
                round(100.0 * sum(CASE WHEN e.readmitted_30d THEN 1 ELSE 0 END) / count(*), 1) AS rate_pct
         FROM analytics.fact_encounter e JOIN raw.facilities f ON f.facility_id = e.facility_id
         WHERE e.readmitted_30d IS NOT NULL AND e.readmission_window_closed
         GROUP BY ROLLUP (f.name) ORDER BY f.name NULLS LAST",
    ),
    (
        "Average length of stay by facility (days)",
        "SELECT f.name AS facility, count(*) AS stays, round(avg(e.length_of_stay_days), 2) AS avg_los_days
         FROM analytics.fact_encounter e JOIN raw.facilities f ON f.facility_id = e.facility_id
         WHERE e.encounter_class = 'inpatient'
         GROUP BY f.name ORDER BY f.name",
    ),
];

/// KPI queries on the raw tables alone (for `carelake bench query`, which measures SQL over
/// loaded data without the pipeline): (title, SQL).
pub(crate) const RAW_KPI_QUERIES: &[(&str, &str)] = &[
    (
        "Inpatient admissions per month",
        "WITH inpatient AS (
            SELECT DISTINCT encounter_id, admit_time FROM raw.encounters WHERE encounter_class = 'inpatient')
         SELECT to_char(admit_time, '%Y-%m') AS month, count(*) AS admissions
         FROM inpatient GROUP BY 1 ORDER BY 1",
    ),
    (
        "30-day readmission rate (same system and MRN)",
        "WITH inpatient AS (
            SELECT DISTINCT encounter_id, source_system, mrn, facility_id, admit_time, discharge_time
            FROM raw.encounters WHERE encounter_class = 'inpatient'),
         ordered AS (
            SELECT *, lead(admit_time) OVER (PARTITION BY source_system, mrn ORDER BY admit_time) AS next_admit
            FROM inpatient)
         SELECT f.name AS facility,
                count(*) AS discharges,
                sum(CASE WHEN o.next_admit <= o.discharge_time + INTERVAL '30 days' THEN 1 ELSE 0 END) AS readmitted_30d,
                round(100.0 * sum(CASE WHEN o.next_admit <= o.discharge_time + INTERVAL '30 days' THEN 1 ELSE 0 END) / count(*), 1) AS rate_pct
         FROM ordered o JOIN raw.facilities f ON f.facility_id = o.facility_id
         WHERE o.discharge_time <= (SELECT max(discharge_time) FROM inpatient) - INTERVAL '30 days'
         GROUP BY ROLLUP (f.name) ORDER BY f.name NULLS LAST",
    ),
    (
        "Average length of stay by facility (days)",
        "WITH inpatient AS (
            SELECT DISTINCT encounter_id, facility_id, admit_time, discharge_time
            FROM raw.encounters WHERE encounter_class = 'inpatient')
         SELECT f.name AS facility, count(*) AS stays,
                round(avg((to_unixtime(i.discharge_time) - to_unixtime(i.admit_time)) / 86400.0), 2) AS avg_los_days
         FROM inpatient i JOIN raw.facilities f ON f.facility_id = i.facility_id
         GROUP BY f.name ORDER BY f.name",
    ),
];

pub(crate) async fn load_generated(
    lake: &Lake,
    dir: &Path,
    principal: &Principal,
    quiet: bool,
) -> Result<(u64, u64, f64)> {
    let loader = Loader::new(lake.clone(), principal.clone());
    let (mut rows, mut bytes, mut secs) = (0, 0, 0.0);
    for (file, table, description) in DEMO_TABLES {
        let mut request = LoadRequest::new(
            vec![dir.join(file).to_string_lossy().into_owned()],
            TableName::new(carelake_common::Zone::Raw, *table)?,
        );
        request.description = Some((*description).to_string());
        let summary = loader
            .load(request)
            .await
            .with_context(|| format!("loading {file}"))?;
        rows += summary.rows_loaded;
        bytes += summary.bytes;
        secs += summary.elapsed.as_secs_f64();
        if !quiet {
            if summary.rows_loaded == 0
                && summary
                    .files
                    .iter()
                    .all(|f| f.status == carelake_lake::LoadStatus::Skipped)
            {
                println!("  raw.{table:<15} already loaded");
            } else {
                println!(
                    "  raw.{table:<15} {:>10} rows  {:>6.2}s{}",
                    summary.rows_loaded,
                    summary.elapsed.as_secs_f64(),
                    if summary.rows_rejected > 0 {
                        format!("  ({} rejected)", summary.rows_rejected)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok((rows, bytes, secs))
}

/// The generated clinical feeds: folder, what it is.
const CLINICAL_FEEDS: &[(&str, &str)] = &[
    ("hl7", "HL7 v2 ADT/ORU feed of the MERIDIAN EHR"),
    ("fhir", "FHIR R4 bulk export of the CASCADE EHR"),
    ("x12", "X12 837P claims"),
];

/// Loads the generated HL7 v2, FHIR and X12 files into their raw tables (and the FHIR views).
pub(crate) async fn load_clinical_feeds(
    lake: &Lake,
    dir: &Path,
    principal: &Principal,
    quiet: bool,
) -> Result<()> {
    let loader = Loader::new(lake.clone(), principal.clone());
    for (folder, what) in CLINICAL_FEEDS {
        let path = dir.join(folder);
        if !path.is_dir() {
            continue;
        }
        let summary = loader
            .load_clinical(ClinicalRequest::new(vec![
                path.to_string_lossy().into_owned(),
            ]))
            .await
            .with_context(|| format!("loading the {what}"))?;
        if !quiet {
            let tables: Vec<String> = summary
                .tables
                .iter()
                .filter(|t| t.rows_added > 0)
                .map(|t| t.table.to_string())
                .collect();
            println!(
                "  {what:<42} {:>8} {} in {:.2}s{}{}",
                summary.records,
                match summary.format {
                    carelake_ingest::ClinicalFormat::Hl7 => "messages",
                    carelake_ingest::ClinicalFormat::Fhir => "resources",
                    carelake_ingest::ClinicalFormat::X12 => "claims",
                },
                summary.elapsed.as_secs_f64(),
                if summary.rejected > 0 {
                    format!(" ({} rejected)", summary.rejected)
                } else {
                    String::new()
                },
                if tables.is_empty() {
                    " (already loaded)".to_string()
                } else {
                    format!(" -> {} tables", tables.len())
                }
            );
        }
    }
    Ok(())
}

pub(crate) async fn run(
    lake_location: &str,
    patients: u64,
    seed: u64,
    data: &Path,
    principal: Principal,
    serve: bool,
) -> Result<()> {
    let total = Instant::now();
    println!("carelake demo: a synthetic hospital network of {patients} patients (seed {seed}).\n");
    if data.join("_truth").is_dir() {
        std::fs::remove_dir_all(data).with_context(|| format!("clearing {}", data.display()))?;
    }
    let started = Instant::now();
    let summary = carelake_generate::generate(&carelake_generate::GeneratorConfig {
        patients,
        seed,
        out: data.to_path_buf(),
        flat_only: false,
    })?;
    println!(
        "1. Generated {} encounters ({} inpatient) and {} rows in {:.1}s into {}",
        summary.encounters,
        summary.inpatient_stays,
        summary.rows,
        started.elapsed().as_secs_f64(),
        data.display()
    );
    println!(
        "   and {} HL7 v2 messages, {} FHIR resources, {} X12 837P claims",
        summary.clinical.hl7_messages, summary.clinical.fhir_resources, summary.clinical.x12_claims
    );
    let lake = Lake::init(lake_location).await?;
    println!("2. Lake ready at {}", lake.display_location());
    crate::users::ensure_first_user(&lake).await?;
    println!("3. Loading into the raw zone (Delta tables, exactly once per file):");
    let (rows, bytes, secs) = load_generated(&lake, data, &principal, false).await?;
    if rows > 0 {
        println!(
            "   {rows} rows, {:.1} MB in {secs:.1}s ({:.0} rows/s)",
            bytes as f64 / 1e6,
            rows as f64 / secs.max(1e-9)
        );
    }
    println!("   Clinical feeds (the same patients and encounters as the hospitals send them):");
    load_clinical_feeds(&lake, data, &principal, false).await?;
    println!(
        "\n4. Curating: the default pipeline project (patient index, encounters, star schema):"
    );
    let session = Arc::new(Session::open(lake, principal.clone()).await?);
    let project = Arc::new(carelake_pipeline::Project::default_project()?);
    let run = carelake_pipeline::run(
        Arc::clone(&session),
        Arc::clone(&project),
        &carelake_pipeline::RunOptions::default(),
    )
    .await?;
    crate::pipeline::print_summary(&project, &run);
    crate::pipeline::print_data_quality(&session, &run).await?;
    if !run.ok() {
        anyhow::bail!("the pipeline did not complete: see the failed models above");
    }
    let persons = session
        .sql(
            // One flag per source system rather than count(DISTINCT source) per person:
            // DataFusion gives each group of a string DISTINCT its own hash set and buffer
            // (8.9 GB for 200,000 persons; this form needs a few hundred MB).
            "SELECT count(*) AS persons, \
                    sum(meridian * cascade) AS in_both_ehrs, \
                    sum(payer_records) AS with_claims_records \
             FROM (SELECT person_key, \
                          max(CASE WHEN source = 'MERIDIAN' THEN 1 ELSE 0 END) AS meridian, \
                          max(CASE WHEN source = 'CASCADE' THEN 1 ELSE 0 END) AS cascade, \
                          max(CASE WHEN source LIKE 'PAY-%' THEN 1 ELSE 0 END) AS payer_records \
                   FROM curated.person_xref GROUP BY person_key) AS p",
        )
        .await?;
    println!(
        "   Patient index (curated.person): persons, persons known to both EHR systems, and persons\n   \
         whose claims (X12 837 patients, by payer member id) were linked to them:"
    );
    print_result(&persons, OutputFormat::Table, None)?;
    example_roles(&session).await?;
    println!("\n5. Hospital KPIs (from analytics.fact_encounter)");
    for (title, sql) in KPI_QUERIES {
        let started = Instant::now();
        let result = session
            .sql(sql)
            .await
            .with_context(|| format!("KPI '{title}'"))?;
        println!(
            "\n{title} ({:.0} ms)",
            started.elapsed().as_secs_f64() * 1e3
        );
        print_result(&result, OutputFormat::Table, None)?;
    }
    let truth_rate = if summary.inpatient_stays > 0 {
        100.0 * summary.readmissions as f64 / summary.inpatient_stays as f64
    } else {
        0.0
    };
    println!(
        "\nGround truth from the generator: {:.1}% of inpatient stays were followed by a readmission within 30 days.",
        truth_rate
    );
    risk_and_alerts(&session).await?;
    println!(
        "\nDone in {:.1}s. Go on with:\n  carelake tables\n  carelake sql \"SELECT encounter_class, count(*) FROM raw.encounters GROUP BY 1\"\n  carelake sql            (interactive shell)\n  carelake load your-files/*.csv --into raw.my_table",
        total.elapsed().as_secs_f64()
    );
    if lake_location != "./carelake-data" {
        println!("  (add --lake {lake_location} to each command)");
    }
    if !serve {
        return Ok(());
    }
    let (pg_host, pg_port) = DEFAULT_PG_ADDR
        .rsplit_once(':')
        .unwrap_or((DEFAULT_PG_ADDR, ""));
    println!(
        "\n8. Serving the lake (sign in as {} with the password shown when the lake was made, or CARELAKE_PASSWORD):\n   \
         web UI  http://{DEFAULT_HTTP_ADDR}/\n   \
         psql    PGPASSWORD=... psql \"host={} port={} user={} dbname=carelake\"",
        carelake_lake::FIRST_USER,
        pg_host,
        pg_port,
        carelake_lake::FIRST_USER,
    );
    crate::serve::run(
        lake_location,
        principal,
        crate::serve::ServeArgs::defaults(),
    )
    .await
}

/// The tables a facility-scoped clinician reads, each with its `facility_id`.
const FACILITY_TABLES: [&str; 6] = [
    "analytics.fact_encounter",
    "analytics.readmission_risk",
    "analytics.mart_census",
    "analytics.mart_length_of_stay",
    "analytics.mart_readmissions",
    "analytics.dim_facility",
];

/// Example roles and users, made once per lake: an analyst who sees the analytics zone with
/// identifiers masked, a clinician who sees one facility's rows, and an auditor who reads the
/// audit log. Passwords come from CARELAKE_ANALYST_PASSWORD, CARELAKE_CLINICIAN_PASSWORD and
/// CARELAKE_AUDITOR_PASSWORD, or are generated and shown once.
async fn example_roles(session: &Session) -> Result<()> {
    let lake = session.lake();
    let governance = lake.governance().load().await?;
    if governance.role_exists("analyst") {
        return Ok(());
    }
    let facility = session
        .sql("SELECT facility_id FROM analytics.fact_encounter WHERE encounter_class = 'inpatient' GROUP BY facility_id ORDER BY count(*) DESC, facility_id LIMIT 1")
        .await?;
    let facility = facility
        .batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                .ok()
                .and_then(|a| {
                    a.as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .map(|s| s.value(0).to_string())
                })
        })
        .context("the demo has no facility")?;
    let mut script = vec![
        "CREATE ROLE analyst".to_string(),
        "CREATE ROLE clinician".to_string(),
        "GRANT SELECT ON analytics.* TO analyst".to_string(),
        "CREATE MASKING POLICY analyst_mrn ON analytics.fact_encounter (mrn) FOR analyst USING (pseudonym(mrn))".to_string(),
        "CREATE MASKING POLICY analyst_first_name ON analytics.dim_patient (first_name) FOR analyst USING (mask_full(first_name))".to_string(),
        "CREATE MASKING POLICY analyst_last_name ON analytics.dim_patient (last_name) FOR analyst USING (mask_full(last_name))".to_string(),
        "CREATE MASKING POLICY analyst_birth_date ON analytics.dim_patient (birth_date) FOR analyst USING (year_only(birth_date))".to_string(),
        "CREATE MASKING POLICY analyst_street ON analytics.dim_patient (street) FOR analyst USING (mask_full(street))".to_string(),
        "CREATE MASKING POLICY analyst_street_number ON analytics.dim_patient (street_number) FOR analyst USING (mask_full(street_number))".to_string(),
        "CREATE MASKING POLICY analyst_zip ON analytics.dim_patient (zip) FOR analyst USING (zip3(zip))".to_string(),
        "CREATE MASKING POLICY analyst_phone ON analytics.dim_patient (phone) FOR analyst USING (mask_last4(phone))".to_string(),
        // Tables with row policies show a role only the rows one of its policies allows.
        "CREATE ROW POLICY analyst_dim_patient ON analytics.dim_patient FOR analyst USING (true)".to_string(),
        "GRANT SELECT ON analytics.worklist_readmission_risk TO clinician".to_string(),
        "GRANT SELECT ON analytics.dim_patient TO clinician".to_string(),
        "CREATE ROW POLICY clinician_dim_patient ON analytics.dim_patient FOR clinician USING (person_key IN (SELECT person_key FROM analytics.fact_encounter WHERE facility_id = current_user_attr('facility')))".to_string(),
        // The worklist's outreach form: the clinician records outcomes (the table is made by
        // the first one; reading it back needs a grant and a row policy once it exists).
        "GRANT INSERT ON raw.outreach_events TO clinician".to_string(),
    ];
    for table in FACILITY_TABLES {
        let short = table.trim_start_matches("analytics.");
        script.push(format!("GRANT SELECT ON {table} TO clinician"));
        script.push(format!(
            "CREATE ROW POLICY clinician_{short} ON {table} FOR clinician USING (facility_id = current_user_attr('facility'))"
        ));
        script.push(format!(
            "CREATE ROW POLICY analyst_{short} ON {table} FOR analyst USING (true)"
        ));
    }
    session.sql_all(&script.join(";\n")).await?;
    let users = lake.users();
    let admin = session.principal();
    println!("   Example roles (see the README's tour; passwords shown only this once):");
    for (name, role, env, what) in [
        (
            "analyst",
            "analyst",
            "CARELAKE_ANALYST_PASSWORD",
            "the analytics zone, identifiers masked".to_string(),
        ),
        (
            "clinician",
            "clinician",
            "CARELAKE_CLINICIAN_PASSWORD",
            format!("facility {facility}'s rows only"),
        ),
        (
            "auditor",
            carelake_lake::AUDITOR_ROLE,
            "CARELAKE_AUDITOR_PASSWORD",
            "system.audit only".to_string(),
        ),
    ] {
        if users.get(name).await?.is_some() {
            continue;
        }
        let (password, generated) = match std::env::var(env) {
            Ok(p) if !p.is_empty() => (p, false),
            _ => (carelake_lake::generate_password(), true),
        };
        users
            .create(name, &password, &[role.to_string()], admin)
            .await?;
        if name == "clinician" {
            lake.governance()
                .record(
                    &[carelake_lake::GovernanceEvent::SetAttribute {
                        user: name.into(),
                        key: "facility".into(),
                        value: Some(facility.clone()),
                    }],
                    admin,
                )
                .await?;
        }
        let shown = if generated {
            password.clone()
        } else {
            format!("(from {env})")
        };
        println!("     {name:<10} {shown:<26} ({what})");
    }
    Ok(())
}

/// The inputs the demo's readmission models learn from (columns of analytics.readmission_risk).
const RISK_FEATURES: &str = "age_years, length_of_stay_days, emergent, ed_visits_6m, admissions_12m, \
     charlson_index, diagnosis_count, hemoglobin_g_dl, sodium_mmol_l, oncology, had_procedure";

/// The seed and held-out share of the demo's models (and of the scores' AUROC beside them).
const SPLIT_SEED: u64 = 42;
const TEST_FRACTION: f64 = 0.3;

/// Step 6 and 7: the scores and two trained models side by side on the same held-out people,
/// then an alert to a webhook sink the demo runs, fired and then suppressed.
async fn risk_and_alerts(session: &Session) -> Result<()> {
    use arrow::array::Array;
    println!(
        "\n6. Readmission risk (analytics.readmission_risk): LACE and HOSPITAL scores, and models trained in SQL"
    );
    let training = format!(
        "SELECT CAST(person_key AS VARCHAR) AS person_key, {RISK_FEATURES}, readmitted_30d \
         FROM analytics.readmission_risk WHERE readmission_window_closed"
    );
    let mut models = Vec::new();
    for kind in ["logistic", "gbdt"] {
        let started = Instant::now();
        let result = session
            .sql(&format!(
                "CREATE OR REPLACE MODEL readmission_{kind} FROM ({training}) TARGET readmitted_30d TYPE {kind} \
                 OPTIONS (split_by = 'person_key', seed = {SPLIT_SEED}, test_fraction = {TEST_FRACTION}, threshold = 0.2)"
            ))
            .await
            .with_context(|| format!("training the {kind} model"))?;
        let wall = started.elapsed().as_secs_f64();
        let value = |name: &str| -> Option<f64> {
            let batch = result.batches.first()?;
            let column = batch.column_by_name(name)?;
            let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Float64).ok()?;
            column
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .filter(|a| !a.is_empty() && !a.is_null(0))
                .map(|a| a.value(0))
        };
        models.push((
            kind,
            value("test_auroc").unwrap_or(f64::NAN),
            value("test_rows").unwrap_or(0.0),
            value("fit_seconds").unwrap_or(f64::NAN),
            wall,
        ));
    }
    // The scores on the same held-out people as the models.
    let rows = session
        .sql(
            "SELECT CAST(person_key AS VARCHAR) AS person_key, CAST(lace_score AS DOUBLE) AS lace, \
                    CAST(hospital_score AS DOUBLE) AS hospital, readmitted_30d \
             FROM analytics.readmission_risk WHERE readmission_window_closed",
        )
        .await?;
    let (mut lace, mut hospital, mut outcome) = (Vec::new(), Vec::new(), Vec::new());
    for batch in &rows.batches {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::DataType;
        let person = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let person = person.as_string::<i32>();
        let l = arrow::compute::cast(batch.column(1), &DataType::Float64)?;
        let l = l.as_primitive::<arrow::datatypes::Float64Type>();
        let h = arrow::compute::cast(batch.column(2), &DataType::Float64)?;
        let h = h.as_primitive::<arrow::datatypes::Float64Type>();
        let y = arrow::compute::cast(batch.column(3), &DataType::Boolean)?;
        let y = y.as_boolean();
        for i in 0..batch.num_rows() {
            if person.is_null(i)
                || y.is_null(i)
                || !carelake_model::split::in_test(
                    SPLIT_SEED,
                    person.value(i).as_bytes(),
                    TEST_FRACTION,
                )
            {
                continue;
            }
            lace.push(if l.is_null(i) { f64::NAN } else { l.value(i) });
            hospital.push(if h.is_null(i) { f64::NAN } else { h.value(i) });
            outcome.push(y.value(i));
        }
    }
    let auroc = |scores: &[f64]| carelake_model::metrics::evaluate(scores, &outcome, 0.5).auroc;
    println!(
        "   30-day readmission, held-out people (a {:.0}% split by person_key, seed {SPLIT_SEED}), {} index discharges:",
        TEST_FRACTION * 100.0,
        outcome.len()
    );
    println!(
        "   {:<24} {:>7} {:>12} {:>10}",
        "predictor", "AUROC", "published", "fit (s)"
    );
    println!(
        "   {:<24} {:>7.3} {:>12} {:>10}",
        "LACE index",
        auroc(&lace),
        "0.68",
        "-"
    );
    println!(
        "   {:<24} {:>7.3} {:>12} {:>10}",
        "HOSPITAL score",
        auroc(&hospital),
        "0.72",
        "-"
    );
    for (kind, test_auroc, _rows, fit, wall) in &models {
        println!(
            "   {:<24} {:>7.3} {:>12} {:>10.2}",
            format!("{kind} (CREATE MODEL)"),
            test_auroc,
            "-",
            fit
        );
        tracing::debug!(kind, wall, "model trained");
    }
    println!(
        "   (The generator makes readmissions depend on age and chronic conditions only, so LACE's\n   \
         length of stay and emergency visits carry no signal here; see docs/RISK.md.)\n   \
         Use them: SHOW MODELS; EXPLAIN MODEL readmission_logistic;\n   \
         SELECT predict_proba('readmission_gbdt', {RISK_FEATURES}) FROM analytics.readmission_risk LIMIT 5"
    );

    println!(
        "\n7. Alerts: high-risk discharges to a webhook the demo listens on (signed with HMAC-SHA256)"
    );
    let (url, received) = webhook_sink().await?;
    session
        .sql(&format!(
            "CREATE OR REPLACE ALERT high_risk_discharges AS \
             SELECT person_key, encounter_id, facility_id, lace_score, hospital_score, risk \
             FROM analytics.worklist_readmission_risk WHERE risk = 'high' \
             EVERY '15 minutes' NOTIFY WEBHOOK '{url}' \
             SUPPRESS FOR '24 hours' PER (person_key, encounter_id) \
             UNTIL OUTREACH IN ('reached', 'declined', 'readmitted') \
             OPTIONS (retries = 1, backoff = '200ms')"
        ))
        .await?;
    let lake = session.lake();
    let now = chrono::Utc::now();
    let first = carelake_alert::run_alert(lake, "high_risk_discharges", now).await?;
    let again = carelake_alert::run_alert(
        lake,
        "high_risk_discharges",
        now + chrono::Duration::hours(1),
    )
    .await?;
    println!(
        "   run now:      {} high-risk discharge(s); {} alert(s) sent, {} suppressed (alerted in the last 24 h), {} closed by outreach, {} dead-lettered",
        first.rows, first.sent, first.suppressed, first.completed, first.dead_letter
    );
    println!(
        "   run +1 hour:  {} sent, {} suppressed",
        again.sent, again.suppressed
    );
    println!(
        "   the sink received {} signed request(s); every attempt is in system.alert_deliveries",
        received.load(std::sync::atomic::Ordering::SeqCst)
    );
    // The sink lives only as long as the demo: the rule would dead-letter after it.
    session.sql("DROP ALERT high_risk_discharges").await?;
    Ok(())
}

/// A webhook receiver on loopback that answers 204 and counts the requests.
async fn webhook_sink() -> Result<(String, Arc<std::sync::atomic::AtomicUsize>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/carelake-demo", listener.local_addr()?);
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                // Headers, then as much body as they announce.
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buffer.len() >= end + 4 + length {
                        break;
                    }
                }
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    Ok((url, count))
}
