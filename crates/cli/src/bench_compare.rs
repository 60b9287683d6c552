//! `carelake bench compare`: the KPI and star-schema queries in carelake and in DuckDB, side by
//! side in one run, on the same Parquet files.
//!
//! The lake is generated and loaded as in `bench query`; DuckDB (from PyPI, run by
//! `scripts/bench_duckdb.py`) reads exactly the files each table's current Delta version lists.
//! Each query runs warm several times on both sides; the answers are compared (rows sorted,
//! numbers rounded to six significant digits, timestamps as ISO text) and the ratio
//! carelake/DuckDB of the median times is printed per query with the geometric mean.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use carelake_common::{Principal, TableName};
use carelake_sql::Session;

#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// Patients to generate.
    #[arg(long, default_value_t = 100_000)]
    patients: u64,
    /// Timed runs per query and side (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The Python with DuckDB (`scripts/bench-compare.sh` makes one).
    #[arg(long, env = "CARELAKE_PYTHON", default_value = "python3")]
    python: String,
    /// Working folder (a fresh one under the system temp folder by default, removed at the
    /// end; a folder given here is kept).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Query the lake a previous run left in `--dir` instead of generating and loading again
    /// (for tuning: the same files, run after run).
    #[arg(long, requires = "dir")]
    reuse: bool,
    /// An engine option for carelake's session, `name=value` (for example
    /// `datafusion.execution.target_partitions=4`), set before the queries run; repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// The tables the queries read.
const TABLES: &[&str] = &[
    "raw.encounters",
    "raw.facilities",
    "raw.providers",
    "raw.payers",
    "raw.claims",
];

/// The queries, in SQL that DataFusion and DuckDB read alike.
pub(crate) const QUERIES: &[(&str, &str)] = &[
    (
        "admissions per month",
        "SELECT date_trunc('month', admit_time) AS month, count(DISTINCT encounter_id) AS admissions \
         FROM raw.encounters WHERE encounter_class = 'inpatient' GROUP BY 1 ORDER BY 1",
    ),
    (
        "30-day readmissions by facility",
        "WITH inpatient AS (
            SELECT DISTINCT encounter_id, source_system, mrn, facility_id, admit_time, discharge_time
            FROM raw.encounters WHERE encounter_class = 'inpatient'),
         ordered AS (
            SELECT *, lead(admit_time) OVER (PARTITION BY source_system, mrn ORDER BY admit_time, encounter_id) AS next_admit
            FROM inpatient)
         SELECT facility_id, count(*) AS discharges,
                sum(CASE WHEN next_admit <= discharge_time + INTERVAL '30 days' THEN 1 ELSE 0 END) AS readmitted
         FROM ordered GROUP BY facility_id ORDER BY facility_id",
    ),
    (
        "average length of stay by facility",
        "SELECT f.name AS facility, count(*) AS stays,
                avg(date_part('epoch', e.discharge_time) - date_part('epoch', e.admit_time)) / 86400.0 AS alos_days
         FROM raw.encounters e JOIN raw.facilities f ON f.facility_id = e.facility_id
         WHERE e.encounter_class = 'inpatient' AND e.discharge_time IS NOT NULL
         GROUP BY f.name ORDER BY f.name",
    ),
    (
        "inpatient census by day",
        "WITH stays AS (
            SELECT DISTINCT encounter_id, CAST(admit_time AS DATE) AS admit_day, CAST(discharge_time AS DATE) AS discharge_day
            FROM raw.encounters WHERE encounter_class = 'inpatient' AND discharge_time IS NOT NULL),
         days AS (SELECT DISTINCT admit_day AS day FROM stays)
         SELECT d.day, count(*) AS census
         FROM days d JOIN stays s ON s.admit_day <= d.day AND s.discharge_day > d.day
         GROUP BY d.day ORDER BY d.day",
    ),
    (
        "claims by facility and payer (3-way join)",
        "SELECT f.name AS facility, p.name AS payer, count(*) AS claims, sum(c.total_charge) AS charges
         FROM raw.claims c
         JOIN raw.encounters e ON e.encounter_id = c.encounter_id
         JOIN raw.facilities f ON f.facility_id = e.facility_id
         JOIN raw.payers p ON p.payer_id = c.payer_id
         GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    (
        "top 10 providers by encounters",
        "SELECT e.attending_npi, pr.last_name, count(*) AS encounters
         FROM raw.encounters e JOIN raw.providers pr ON pr.npi = e.attending_npi
         GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 10",
    ),
    (
        "distinct persons by class",
        "SELECT encounter_class, count(DISTINCT mrn) AS persons FROM raw.encounters GROUP BY 1 ORDER BY 1",
    ),
    (
        "days between visits (window)",
        "SELECT encounter_class, count(gap_days) AS gaps, avg(gap_days) AS avg_gap_days FROM (
            SELECT encounter_class,
                   (date_part('epoch', admit_time)
                    - date_part('epoch', lag(admit_time) OVER (PARTITION BY source_system, mrn ORDER BY admit_time, encounter_id))) / 86400.0 AS gap_days
            FROM raw.encounters) t
         GROUP BY 1 ORDER BY 1",
    ),
];

pub(crate) async fn run(args: CompareArgs, principal: Principal) -> Result<()> {
    let lake_dir = args.dir.as_ref().map(|d| d.join("lake"));
    let (dir, lake) = match lake_dir.filter(|l| args.reuse && l.join("_carelake").is_dir()) {
        Some(lake_dir) => {
            println!("bench compare: reusing the lake in {}", lake_dir.display());
            let lake = carelake_lake::Lake::open(&lake_dir.to_string_lossy()).await?;
            (lake_dir, lake)
        }
        None => {
            let dir = crate::bench::work_dir(args.dir.clone(), "compare")?;
            let lake =
                crate::bench::generate_and_load(&dir, args.patients, &principal, "bench compare")
                    .await?;
            (dir, lake)
        }
    };
    let mut tables = BTreeMap::new();
    for table in TABLES {
        let name: TableName = table.parse()?;
        let delta = lake.open_table(&name).await?;
        let files = delta
            .get_file_uris()?
            .map(|uri| match url::Url::parse(&uri) {
                Ok(url) if url.scheme() == "file" => url
                    .to_file_path()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or(uri),
                _ => uri,
            })
            .collect::<Vec<_>>();
        tables.insert(table.to_string(), files);
    }
    let manifest = serde_json::json!({
        "tables": tables,
        "queries": QUERIES,
        "runs": args.runs.max(1),
        "threads": std::thread::available_parallelism().map_or(2, |n| n.get()),
    });
    let session = Session::open(lake, principal).await?;
    for option in &args.set {
        let Some((name, value)) = option.split_once('=') else {
            bail!("--set takes NAME=VALUE, not {option:?}");
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            bail!("--set: {name:?} is not an engine option name");
        }
        session
            .sql(&format!("SET {name} = '{}'", value.replace('\'', "''")))
            .await
            .with_context(|| format!("--set {name}"))?;
        println!("bench compare: carelake with {name} = {value}");
    }
    let mut ours = Vec::new();
    for (title, sql) in QUERIES {
        let rows = rows_of(&session.sql(sql).await?.batches)?;
        let mut times = Vec::new();
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            session.sql(sql).await?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        ours.push((title, median(times), rows));
    }
    let script = script("bench_duckdb.py");
    let mut child = Command::new(&args.python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} {}", args.python, script.display()))?;
    child
        .stdin
        .take()
        .context("DuckDB's standard input")?
        .write_all(manifest.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("DuckDB's side failed (scripts/bench-compare.sh installs DuckDB)");
    }
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "bench compare: {} patients, carelake vs DuckDB {} on the same Parquet files, median of {} warm runs",
        args.patients,
        theirs["duckdb"].as_str().unwrap_or("?"),
        args.runs.max(1)
    );
    let mut log_sum = 0.0;
    let mut differ = Vec::new();
    for (title, ours_ms, our_rows) in &ours {
        let q = &theirs["queries"][**title];
        let times: Vec<f64> = q["times_ms"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        let duck_ms = median(times);
        let mut duck_rows: Vec<Vec<String>> = q["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        row.as_array()
                            .map(|r| r.iter().map(json_value).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        duck_rows.sort();
        let same = &duck_rows == our_rows;
        if !same {
            differ.push(title.to_string());
        }
        let ratio = ours_ms / duck_ms.max(1e-3);
        log_sum += ratio.ln();
        println!(
            "bench compare: {title:<44} carelake {ours_ms:>9.1} ms  DuckDB {duck_ms:>9.1} ms  ratio {ratio:>6.2}  {} rows {}",
            our_rows.len(),
            if same { "equal" } else { "DIFFER" }
        );
    }
    println!(
        "bench compare: geometric mean of carelake/DuckDB: {:.2}",
        (log_sum / ours.len() as f64).exp()
    );
    if args.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    if !differ.is_empty() {
        bail!("answers differ from DuckDB's: {}", differ.join(", "));
    }
    Ok(())
}

/// A peer's side of a benchmark in `scripts/`: beside the sources this binary was built from,
/// else under the working folder.
pub(crate) fn script(name: &str) -> PathBuf {
    let built_from = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name);
    if built_from.is_file() {
        built_from
    } else {
        PathBuf::from("scripts").join(name)
    }
}

pub(crate) fn median(mut times: Vec<f64>) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A number rounded to six significant digits, as text both sides share.
fn number(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    format!("{x:.5e}")
}

/// Timestamps as `YYYY-MM-DDTHH:MM:SS`, without a zone or a zero fraction.
fn text(s: &str) -> String {
    let mut s = s
        .trim_end_matches('Z')
        .trim_end_matches("+00:00")
        .to_string();
    if s.len() >= 19 && s.as_bytes().get(10) == Some(&b' ') {
        s.replace_range(10..11, "T");
    }
    if s.len() > 19 && s.as_bytes().get(19) == Some(&b'.') && s[20..].bytes().all(|b| b == b'0') {
        s.truncate(19);
    }
    s
}

fn json_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        serde_json::Value::String(s) => text(s),
        other => other.to_string(),
    }
}

/// Rows as normalised text, sorted.
pub(crate) fn rows_of(batches: &[arrow::array::RecordBatch]) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<String>> = batch
            .columns()
            .iter()
            .map(column_text)
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    rows.sort();
    Ok(rows)
}

fn column_text(array: &ArrayRef) -> Result<Vec<String>> {
    let numeric = array.data_type().is_numeric();
    let cast = if numeric {
        arrow::compute::cast(array, &DataType::Float64)?
    } else {
        arrow::compute::cast(array, &DataType::Utf8)?
    };
    Ok((0..cast.len())
        .map(|i| {
            if cast.is_null(i) {
                "NULL".to_string()
            } else if numeric {
                number(
                    cast.as_primitive::<arrow::datatypes::Float64Type>()
                        .value(i),
                )
            } else {
                text(cast.as_string::<i32>().value(i))
            }
        })
        .collect())
}
