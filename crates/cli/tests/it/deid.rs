//! De-identified export (`carelake export --deidentify`): a Safe Harbor export of the demo
//! lake holds none of the generated people's identifiers (checked against the generator's
//! own files, in every byte of the exported lake and through SQL), keys still join, the
//! mapping stays unreachable in the source; a limited data set shifts dates per patient.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{Workspace, all_bytes_under, python_with};

/// A demo lake of `patients` people, its generated files in `demo-data/`.
fn demo(patients: &str) -> Workspace {
    let ws = Workspace::new();
    ws.ok(&[
        "demo",
        "--no-serve",
        "--patients",
        patients,
        "--data",
        &ws.path("demo-data").to_string_lossy(),
    ]);
    ws
}

/// Runs SQL on another lake (the export), CSV rows without the header.
fn query_at(ws: &Workspace, lake: &Path, sql: &str) -> Vec<String> {
    let out = ws.ok(&[
        "--lake",
        &lake.to_string_lossy(),
        "sql",
        sql,
        "--format",
        "csv",
    ]);
    out.lines().skip(1).map(str::to_string).collect()
}

fn scalar_at(ws: &Workspace, lake: &Path, sql: &str) -> String {
    let rows = query_at(ws, lake, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0].clone()
}

/// The generated people: (column, value) of every identifier in `patients.csv`.
fn generated_identifiers(demo: &Path) -> Vec<(String, String)> {
    let mut reader = csv::Reader::from_path(demo.join("patients.csv")).expect("patients.csv");
    let headers = reader.headers().expect("header").clone();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.expect("a row");
        for (name, value) in headers.iter().zip(record.iter()) {
            let keep = matches!(
                name,
                "mrn"
                    | "first_name"
                    | "last_name"
                    | "ssn"
                    | "address"
                    | "zip"
                    | "phone"
                    | "member_id"
                    | "birth_date"
                    | "email"
            );
            if keep && !value.is_empty() {
                out.push((name.to_string(), value.to_string()));
            }
        }
    }
    assert!(out.len() > 1000, "too few identifiers read: {}", out.len());
    // Providers' names stay in an export (they are not patient identifiers); a patient who
    // shares a name with a provider is not looked for by that name.
    let mut providers = csv::Reader::from_path(demo.join("providers.csv")).expect("providers");
    let headers = providers.headers().expect("header").clone();
    let mut provider_names = std::collections::HashSet::new();
    for record in providers.records() {
        let record = record.expect("a row");
        for (name, value) in headers.iter().zip(record.iter()) {
            if name.ends_with("_name") {
                provider_names.insert(value.to_string());
            }
        }
    }
    assert!(!provider_names.is_empty());
    out.retain(|(column, value)| !(column.ends_with("_name") && provider_names.contains(value)));
    out
}

/// The forms a short or all-digit value takes as a whole Parquet or JSON value:
/// length-prefixed (Parquet's plain encoding of a string) or in quotes (the Delta log's
/// statistics, JSON).
fn whole_value_forms(value: &str) -> [Vec<u8>; 2] {
    let mut prefixed = (value.len() as u32).to_le_bytes().to_vec();
    prefixed.extend(value.as_bytes());
    [prefixed, format!("\"{value}\"").into_bytes()]
}

/// The index of a needle found in `haystack` (Rabin-Karp, all needles of a length at once).
fn first_match(haystack: &[u8], needles: &[Vec<u8>]) -> Option<usize> {
    const BASE: u64 = 1_000_003;
    let hash = |bytes: &[u8]| {
        bytes.iter().fold(0u64, |h, b| {
            h.wrapping_mul(BASE).wrapping_add(u64::from(*b))
        })
    };
    let mut by_len: BTreeMap<usize, std::collections::HashMap<u64, Vec<usize>>> = BTreeMap::new();
    for (i, n) in needles.iter().enumerate() {
        if !n.is_empty() {
            by_len
                .entry(n.len())
                .or_default()
                .entry(hash(n))
                .or_default()
                .push(i);
        }
    }
    for (len, table) in by_len {
        if haystack.len() < len {
            continue;
        }
        let top = (1..len).fold(1u64, |p, _| p.wrapping_mul(BASE));
        let mut h = hash(&haystack[..len]);
        for start in 0..=haystack.len() - len {
            if start > 0 {
                h = h
                    .wrapping_sub(u64::from(haystack[start - 1]).wrapping_mul(top))
                    .wrapping_mul(BASE)
                    .wrapping_add(u64::from(haystack[start + len - 1]));
            }
            if let Some(candidates) = table.get(&h) {
                for i in candidates {
                    if haystack[start..start + len] == needles[*i][..] {
                        return Some(*i);
                    }
                }
            }
        }
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    first_match(haystack, &[needle.to_vec()]).is_some()
}

/// Every value the export holds, through SQL: each table's rows as CSV, one process.
fn all_values(ws: &Workspace, lake: &Path) -> String {
    let tables = query_at(
        ws,
        lake,
        "SELECT table_name FROM system.tables WHERE kind = 'table' ORDER BY 1",
    );
    assert!(tables.len() > 20, "{tables:?}");
    let sql: Vec<String> = tables
        .iter()
        .map(|t| format!("SELECT * FROM {t}"))
        .collect();
    ws.ok(&[
        "--lake",
        &lake.to_string_lossy(),
        "sql",
        &sql.join("; "),
        "--format",
        "ndjson",
    ])
}

/// Every text value of NDJSON rows (list elements one by one).
fn leaf_values(ndjson: &str) -> std::collections::HashSet<String> {
    fn walk(value: &serde_json::Value, out: &mut std::collections::HashSet<String>) {
        match value {
            serde_json::Value::String(s) => {
                out.insert(s.clone());
            }
            // Numbers are left out: line numbers and counts run through the ZIP codes' range.
            serde_json::Value::Number(_) => {}
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(fields) => fields.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = std::collections::HashSet::new();
    for line in ndjson.lines().filter(|l| l.starts_with('{')) {
        let row: serde_json::Value = serde_json::from_str(line).expect("an NDJSON row");
        walk(&row, &mut out);
    }
    out
}

#[test]
fn safe_harbor_export_holds_no_identifier_of_the_generated_people() {
    let ws = demo("300");
    let lake = ws.lake();
    // A table of carelake's making does not exist for these columns: the defaults by name
    // protect them, and the restricted ZIP prefixes become 000.
    let extra = ws.write(
        "extra.csv",
        "patient_mrn,home_zip,dob,age,contact_email,score\nX1,03601,1931-01-02,95,a@example.org,1\nX2,89012,1980-05-06,40,b@example.org,2\nX3,61627,1990-07-08,33,c@example.org,3\n",
    );
    ws.ok(&["load", &extra, "--into", "raw.extra_people"]);
    let target = ws.path("export");
    let out = ws.ok(&[
        "export",
        "--deidentify",
        "safe-harbor",
        "--to",
        &target.to_string_lossy(),
        "--uncompressed",
    ]);
    assert!(out.contains("raw.patients"), "{out}");
    assert!(
        out.contains("Skipped analytics.worklist_readmission_risk: a view"),
        "{out}"
    );

    // 1. No identifier of any generated person, in any byte of the exported lake.
    let bytes = all_bytes_under(&target);
    assert!(bytes.len() > 100_000, "the export is too small");
    let values = all_values(&ws, &target);
    let fields = leaf_values(&values);
    assert!(fields.len() > 1000, "too few values read back");
    let identifiers = generated_identifiers(&ws.path("demo-data"));
    let mut checked = BTreeMap::<String, usize>::new();
    let mut in_bytes: Vec<Vec<u8>> = Vec::new();
    let mut in_bytes_column: Vec<String> = Vec::new();
    let mut in_text: Vec<Vec<u8>> = Vec::new();
    let mut in_text_column: Vec<String> = Vec::new();
    for (column, value) in &identifiers {
        let mut forms = vec![value.clone()];
        if column == "birth_date" {
            forms.push(value.replace('-', ""));
        }
        if column == "phone" {
            forms.push(value.chars().filter(char::is_ascii_digit).collect());
        }
        for form in forms {
            if form.len() < 4 {
                continue;
            }
            // Long values with letters or punctuation cannot appear by chance: any
            // occurrence counts. Short or all-digit ones are looked for as whole values.
            // Names are whole values too: a patient's "Donald" is in a provider's "McDonald".
            let distinctive = form.len() >= 6
                && !form.chars().all(|c| c.is_ascii_digit())
                && !column.ends_with("_name");
            if distinctive {
                in_bytes.push(form.clone().into_bytes());
                in_bytes_column.push(column.clone());
                in_text.push(form.clone().into_bytes());
                in_text_column.push(column.clone());
            } else {
                for whole in whole_value_forms(&form) {
                    in_bytes.push(whole);
                    in_bytes_column.push(column.clone());
                }
                assert!(
                    !fields.contains(&form),
                    "a {column} of a generated person is readable in the export"
                );
            }
            *checked.entry(column.clone()).or_default() += 1;
        }
    }
    if let Some(i) = first_match(&bytes, &in_bytes) {
        panic!(
            "a {} of a generated person is in the exported files",
            in_bytes_column[i]
        );
    }
    if let Some(i) = first_match(values.as_bytes(), &in_text) {
        panic!(
            "a {} of a generated person is readable in the export",
            in_text_column[i]
        );
    }
    for column in [
        "mrn",
        "first_name",
        "last_name",
        "ssn",
        "phone",
        "zip",
        "birth_date",
    ] {
        assert!(
            checked.get(column).copied().unwrap_or(0) > 100,
            "{column}: {checked:?}"
        );
    }
    for secret in ["a@example.org", "1931-01-02"] {
        assert!(!contains(&bytes, secret.as_bytes()), "{secret}");
        assert!(!values.contains(secret), "{secret}");
    }
    assert!(!fields.contains("X1") && first_match(&bytes, &whole_value_forms("X1")).is_none());

    // 2. Generalised values: ZIP3 (000 restricted), birth years without the 90+, ages ≤ 90,
    // dates as years.
    let zips = query_at(&ws, &target, "SELECT DISTINCT zip FROM raw.patients");
    assert!(zips.len() > 3, "{zips:?}");
    assert!(
        zips.iter().all(|z| z.is_empty() || z.len() == 3),
        "{zips:?}"
    );
    let extra = query_at(
        &ws,
        &target,
        "SELECT home_zip, dob, age, score FROM raw.extra_people ORDER BY score",
    );
    assert_eq!(extra, ["000,,90,1", "000,1980,40,2", "616,1990,33,3"]);
    let columns = query_at(
        &ws,
        &target,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'extra_people' ORDER BY 1",
    );
    assert!(!columns.iter().any(|c| c == "contact_email"), "{columns:?}");
    let this_year: i32 = chrono::Utc::now().format("%Y").to_string().parse().unwrap();
    let min_year: i32 = scalar_at(&ws, &target, "SELECT min(birth_date) FROM raw.patients")
        .parse()
        .unwrap();
    assert!(
        this_year - min_year < 90,
        "a birth year of a person 90 or older"
    );
    let old_source = ws.scalar(&format!(
        "SELECT count(*) FROM raw.patients WHERE date_part('year', birth_date) <= {}",
        this_year - 90
    ));
    assert_ne!(old_source, "0", "the demo should have people 90 or older");
    let old_target = scalar_at(
        &ws,
        &target,
        "SELECT count(*) FROM raw.patients WHERE birth_date IS NULL",
    );
    assert_eq!(old_source, old_target);
    let max_age = scalar_at(
        &ws,
        &target,
        "SELECT max(age_years) FROM analytics.readmission_risk",
    );
    assert_eq!(max_age, "90");
    let over_89 = ws.scalar("SELECT count(*) FROM analytics.readmission_risk WHERE age_years > 89");
    assert_eq!(
        scalar_at(
            &ws,
            &target,
            "SELECT count(*) FROM analytics.readmission_risk WHERE age_years = 90"
        ),
        over_89
    );
    let types = query_at(
        &ws,
        &target,
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE column_name IN ('admit_time', 'birth_date', 'measured_at', 'service_from', 'start', 'last_updated', '_loaded_at') ORDER BY 1, 2",
    );
    assert!(types.len() > 10, "{types:?}");
    assert!(types.iter().all(|t| t.ends_with(",Int32")), "{types:?}");
    let years = query_at(
        &ws,
        &target,
        "SELECT min(admit_time), max(admit_time) FROM raw.encounters",
    );
    let (low, high) = years[0].split_once(',').unwrap();
    assert!(low.parse::<i32>().unwrap() >= 1900 && high.parse::<i32>().unwrap() <= this_year);

    // 3. Surrogates still join, as they did in the source.
    for join in [
        "SELECT count(*) FROM raw.encounters e JOIN raw.patients p ON e.mrn = p.mrn",
        "SELECT count(*) FROM analytics.fact_encounter f JOIN curated.person p ON f.person_key = p.person_key",
        "SELECT count(*) FROM curated.fhir_encounter e JOIN curated.fhir_patient p ON e.patient_id = p.id",
        "SELECT count(*) FROM raw.hl7_patient_events h JOIN raw.encounters e ON h.visit_number = e.encounter_id",
    ] {
        let source = ws.scalar(join);
        assert_ne!(source, "0", "{join}");
        assert_eq!(scalar_at(&ws, &target, join), source, "{join}");
    }
    let mrns = query_at(&ws, &target, "SELECT mrn FROM raw.patients LIMIT 5");
    assert!(
        mrns.iter()
            .all(|m| m.len() == 20 && !m.starts_with('M') && !m.starts_with('C'))
    );

    // 4. Catalog, report and audit hold names and counts only.
    let description = scalar_at(
        &ws,
        &target,
        "SELECT description FROM system.tables WHERE table_name = 'raw.patients'",
    );
    assert!(
        description.contains("De-identified (safe-harbor)"),
        "{description}"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(target.join("_carelake/deid_report.json")).expect("the report"),
    )
    .unwrap();
    let patients = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "raw.patients")
        .expect("raw.patients in the report");
    assert_eq!(
        patients["rows"],
        ws.scalar("SELECT count(*) FROM raw.patients")
            .parse::<u64>()
            .unwrap()
    );
    for removed in [
        "first_name",
        "last_name",
        "ssn",
        "phone",
        "address",
        "city",
        "_source_file",
    ] {
        assert!(
            patients["removed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == removed),
            "{removed}: {patients}"
        );
    }
    assert!(
        patients["surrogated"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "mrn")
    );
    assert!(patients["ninety_plus"].as_u64().unwrap() > 0);
    let k = &patients["k_anonymity"];
    assert!(k["k"].as_u64().unwrap() >= 1, "{k}");
    assert!(
        k["quasi_identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "zip"),
        "{k}"
    );
    assert!(k["rows_below_threshold"].as_u64().is_some());
    let audit = ws.query("SELECT tables, rows, detail FROM system.audit WHERE action = 'export'");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].contains("raw.patients") && audit[0].contains("safe-harbor"));
    let export_id = report["export_id"].as_str().unwrap();
    assert!(audit[0].contains(export_id), "{audit:?}");
    for (_, value) in identifiers.iter().filter(|(c, _)| c == "mrn" || c == "ssn") {
        assert!(!audit[0].contains(value.as_str()));
    }

    // 5. The mapping is in the source under _carelake, and no SQL session reaches it.
    let mapping = Path::new(&lake).join("_carelake/deid_map/_delta_log");
    assert!(mapping.is_dir(), "the mapping table");
    ws.add_user("analyst1", "a-long-password-1", "");
    ws.add_user("admin1", "a-long-password-2", "admin");
    for user in ["analyst1", "admin1"] {
        let out = ws.run(&[
            "sql",
            &format!(
                "CREATE EXTERNAL TABLE raw.stolen STORED AS PARQUET LOCATION '{lake}/_carelake/deid_map/'"
            ),
            "--as",
            user,
        ]);
        let read = ws.run(&["sql", "SELECT count(*) FROM raw.stolen", "--as", user]);
        assert!(
            !out.status.success() || !read.status.success(),
            "{user} read the mapping"
        );
    }
    assert_eq!(
        ws.scalar("SELECT count(*) FROM system.tables WHERE table_name LIKE '%deid%'"),
        "0"
    );

    // 6. Refusals: a target inside the source, a target that already holds tables.
    let inside = format!("{lake}/exported");
    let err = ws.fails(&["export", "--deidentify", "safe-harbor", "--to", &inside]);
    assert!(err.contains("outside the source lake"), "{err}");
    let err = ws.fails(&[
        "export",
        "--deidentify",
        "safe-harbor",
        "--to",
        &target.to_string_lossy(),
    ]);
    assert!(err.contains("--replace"), "{err}");

    // 7. An explicit tag overrides the default; `carelake tags` shows which is which.
    ws.ok(&["tag", "raw.patients", "sex", "identifier"]);
    let tags = ws.ok(&["tags", "raw.patients"]);
    assert!(
        tags.lines()
            .any(|l| l.contains(" sex ") && l.contains("identifier") && l.ends_with("explicit")),
        "{tags}"
    );
    assert!(
        tags.lines()
            .any(|l| l.contains(" zip ") && l.contains("zip") && l.ends_with("default")),
        "{tags}"
    );
    ws.ok(&[
        "export",
        "--deidentify",
        "safe-harbor",
        "--to",
        &target.to_string_lossy(),
        "--tables",
        "raw.patients",
        "--replace",
    ]);
    let columns = query_at(
        &ws,
        &target,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' ORDER BY 1",
    );
    assert!(!columns.iter().any(|c| c == "sex"), "{columns:?}");
    assert!(columns.iter().any(|c| c == "zip"), "{columns:?}");
    ws.ok(&["tag", "--remove", "raw.patients", "sex"]);
    assert!(
        ws.ok(&["tags", "raw.patients"])
            .lines()
            .any(|l| l.contains(" sex ") && l.contains("quasi_identifier"))
    );

    // 8. An independent Delta reader opens the exported table.
    let Some(python) = python_with("deltalake", "safe_harbor_export python reader") else {
        return;
    };
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg("import sys, os\nfrom deltalake import DeltaTable\nt = DeltaTable(sys.argv[1]).to_pyarrow_table()\nprint(t.num_rows, ','.join(t.column_names))\nsys.stdout.flush()\nos._exit(0)")
        .arg(target.join("raw/patients"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows = ws.scalar("SELECT count(*) FROM raw.patients");
    assert!(stdout.starts_with(&format!("{rows} ")), "{stdout}");
    assert!(
        stdout.contains("mrn") && !stdout.contains("first_name"),
        "{stdout}"
    );
}

#[test]
fn limited_data_set_shifts_dates_consistently_per_patient() {
    let ws = demo("200");
    let target = ws.path("limited");
    ws.ok(&[
        "export",
        "--deidentify",
        "limited",
        "--to",
        &target.to_string_lossy(),
    ]);
    // Per patient: the number of encounters and the span from the first admission to the
    // last (in seconds) are the same; the admission times themselves moved.
    let spans = "SELECT count(*) AS n, CAST(max(to_unixtime(admit_time)) - min(to_unixtime(admit_time)) AS BIGINT) AS span FROM raw.encounters GROUP BY mrn ORDER BY n, span";
    let source = ws.query(spans);
    assert!(source.len() > 50, "{source:?}");
    assert!(
        source.iter().any(|r| !r.ends_with(",0")),
        "some patients have two visits"
    );
    assert_eq!(query_at(&ws, &target, spans), source);
    let times = "SELECT CAST(to_unixtime(admit_time) AS BIGINT) FROM raw.encounters ORDER BY 1";
    let before = ws.query(times);
    let after = query_at(&ws, &target, times);
    assert_eq!(before.len(), after.len());
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(
        moved * 10 > before.len() * 9,
        "dates were not shifted: {moved}"
    );
    // The same encounter has the same shifted dates in every table.
    let agree = scalar_at(
        &ws,
        &target,
        "SELECT count(*) FROM raw.encounters r JOIN curated.encounters c ON r.encounter_id = c.encounter_id WHERE r.admit_time = c.admit_time",
    );
    assert_eq!(agree, ws.scalar("SELECT count(*) FROM raw.encounters r JOIN curated.encounters c ON r.encounter_id = c.encounter_id"));
    assert_ne!(agree, "0");
    // A patient's birth date moves with their encounters: the age at admission is kept.
    let ages = "SELECT CAST(to_unixtime(e.admit_time) - to_unixtime(CAST(p.birth_date AS TIMESTAMP)) AS BIGINT) AS age FROM raw.encounters e JOIN raw.patients p ON e.mrn = p.mrn ORDER BY 1";
    assert_eq!(query_at(&ws, &target, ages), ws.query(ages));
    // ZIP codes and cities stay; names and SSNs go.
    let zip = scalar_at(
        &ws,
        &target,
        "SELECT min(length(CAST(zip AS VARCHAR))) FROM raw.patients",
    );
    assert_eq!(zip, "5");
    let columns = query_at(
        &ws,
        &target,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'patients' ORDER BY 1",
    );
    assert!(columns.iter().any(|c| c == "city"), "{columns:?}");
    for gone in ["first_name", "last_name", "ssn", "phone", "address"] {
        assert!(!columns.iter().any(|c| c == gone), "{gone}: {columns:?}");
    }
    let identifiers = generated_identifiers(&ws.path("demo-data"));
    let bytes = all_bytes_under(&target);
    for (column, value) in identifiers.iter().filter(|(c, _)| c == "ssn" || c == "mrn") {
        assert!(
            !contains(&bytes, value.as_bytes()),
            "a {column} in the limited export"
        );
    }
}
