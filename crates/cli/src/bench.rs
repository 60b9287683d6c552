//! Benchmarks: load throughput on a claims CSV, parse and load throughput of the clinical feeds
//! (HL7 v2, FHIR, X12), KPI query times on generated data, and the policy layer's overhead on
//! them.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use carelake_common::{Principal, TableName};
use carelake_ingest::{ClinicalFormat, ClinicalRequest, LoadRequest, Loader};
use carelake_lake::Lake;
use carelake_sql::Session;
use clap::Subcommand;

use crate::demo::{RAW_KPI_QUERIES, load_generated};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Load a generated claims CSV and print rows/s and MB/s.
    Load {
        /// Rows in the claims file.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Loads timed (each into a fresh lake; the median is compared).
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// A Python with pyarrow: pyarrow's CSV → Parquet of the same file is timed side by
        /// side, interleaved with carelake's loads, and the ratio printed.
        #[arg(long)]
        python: Option<String>,
        /// Working folder (a fresh one under the system temp folder by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Generate the HL7 v2, FHIR and X12 feeds of a synthetic network; time parsing alone and
    /// the load into Delta for each.
    Clinical {
        /// Patients to generate.
        #[arg(long, default_value_t = 20_000)]
        patients: u64,
        /// Working folder (a fresh one under the system temp folder by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Load-test the HTTP API on loopback: streamed events (events/s, latency percentiles,
    /// every acknowledged event in the lake once), then queries.
    Http(crate::bench_http::HttpBenchArgs),
    /// The whole server under a steady mixed load for N minutes: streamed events, MLLP,
    /// queries over HTTP and Postgres and a scheduled model at once; prints throughput,
    /// latency percentiles and the server's memory per minute, and checks that every
    /// acknowledged event and message is in the lake once.
    Soak(crate::bench_soak::SoakArgs),
    /// Catalog refresh as the catalog grows: a cold open, a refresh with nothing new, a
    /// refresh after another process's commit, and a fold of every event, at each size.
    Catalog(crate::bench_catalog::CatalogBenchArgs),
    /// The KPI and star-schema queries in carelake and in DuckDB side by side, on the same
    /// Parquet files; prints the carelake/DuckDB ratio per query and the geometric mean, and
    /// fails when an answer differs.
    Compare(crate::bench_compare::CompareArgs),
    /// The same queries on one process and on a Ballista cluster of one and of two
    /// executors (in this process, on loopback), side by side; answers compared.
    Cluster(crate::bench_cluster::ClusterBenchArgs),
    /// Time the KPI queries as an administrator and as a user behind a row policy and two
    /// masks, side by side, and print the policy layer's overhead.
    Governance {
        /// Patients to generate.
        #[arg(long, default_value_t = 100_000)]
        patients: u64,
        /// Runs per query and side.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Working folder (a fresh one under the system temp folder by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The cost of encryption at rest, side by side in one run: the same claims CSV and the
    /// same generated patients loaded into a plain and an encrypted lake, then the KPI queries
    /// on both, interleaved; prints times and the encrypted/plain ratios.
    Encryption {
        /// Rows in the claims file.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Patients to generate for the query side.
        #[arg(long, default_value_t = 20_000)]
        patients: u64,
        /// Runs per query and side.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Working folder (a fresh one under the system temp folder by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Generate and load patients, then time the KPI queries.
    Query {
        /// Patients to generate.
        #[arg(long, default_value_t = 100_000)]
        patients: u64,
        /// Runs per query.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Working folder (a fresh one under the system temp folder by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub(crate) fn work_dir(dir: Option<PathBuf>, name: &str) -> Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("carelake-bench-{name}-{}", std::process::id()))
    });
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Generates `patients` into `<dir>/data` (seed 42; the flat files alone when `flat_only`);
/// returns the folder, the summary and when generation started.
fn generate_into(
    dir: &std::path::Path,
    patients: u64,
    flat_only: bool,
) -> Result<(PathBuf, carelake_generate::GenerateSummary, Instant)> {
    let data = dir.join("data");
    let started = Instant::now();
    let summary = carelake_generate::generate(&carelake_generate::GeneratorConfig {
        patients,
        seed: 42,
        out: data.clone(),
        flat_only,
    })?;
    Ok((data, summary, started))
}

/// Generates `patients` into `dir` and loads them into a new lake there, printing both steps.
pub(crate) async fn generate_and_load(
    dir: &std::path::Path,
    patients: u64,
    principal: &Principal,
    what: &str,
) -> Result<Lake> {
    let (data, summary, started) = generate_into(dir, patients, true)?;
    println!(
        "{what}: generated {patients} patients, {} rows, {:.1} MB in {:.1}s",
        summary.rows,
        summary.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let lake = Lake::init(&dir.join("lake").to_string_lossy()).await?;
    let (rows, bytes, secs) = load_generated(&lake, &data, principal, true).await?;
    println!(
        "{what}: loaded {rows} rows, {:.1} MB in {secs:.1}s = {:.0} rows/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        rows as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    Ok(lake)
}

/// A claims CSV of `rows` rows, deterministic.
fn write_claims(path: &std::path::Path, rows: u64) -> Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        w,
        "claim_id,member_id,payer_id,billing_npi,service_from,service_to,principal_dx,place_of_service,total_charge,claim_status"
    )?;
    let dx = [
        "I10", "E11.9", "J18.9", "I50.23", "N39.0", "R07.9", "Z00.00", "J44.1",
    ];
    let payers = ["PAY-MCR", "PAY-MCD", "PAY-BCB", "PAY-AET", "PAY-UHC"];
    let status = ["PAID", "PAID", "PAID", "DENIED", "PENDING"];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let day = x % 730;
        let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()
            + chrono::Duration::days(day as i64);
        let to = date + chrono::Duration::days((x >> 20) as i64 % 6);
        writeln!(
            w,
            "CLM{i:010},MBR{:09},{},{:010},{date},{to},{},{},{}.{:02},{}",
            (x >> 8) % 1_000_000_000,
            payers[(x >> 3) as usize % payers.len()],
            1_000_000_000 + (x >> 11) % 8_999_999_999,
            dx[(x >> 5) as usize % dx.len()],
            [11, 21, 22, 23][(x >> 9) as usize % 4],
            50 + (x >> 13) % 25_000,
            (x >> 17) % 100,
            status[(x >> 7) as usize % status.len()],
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

pub(crate) async fn run(which: BenchCommand, principal: Principal) -> Result<()> {
    // Warm runs time the engine: an answer from the result cache would time a lookup.
    carelake_sql::set_result_cache_bytes(0);
    match which {
        BenchCommand::Load {
            rows,
            runs,
            python,
            dir,
        } => load(rows, runs, python, dir, principal).await,
        BenchCommand::Clinical { patients, dir } => clinical(patients, dir, principal).await,
        BenchCommand::Encryption {
            rows,
            patients,
            runs,
            dir,
        } => encryption(rows, patients, runs, dir, principal).await,
        BenchCommand::Governance {
            patients,
            runs,
            dir,
        } => governance(patients, runs, dir, principal).await,
        BenchCommand::Http(args) => crate::bench_http::run(args, principal).await,
        BenchCommand::Catalog(args) => crate::bench_catalog::run(args).await,
        BenchCommand::Soak(args) => crate::bench_soak::run(args).await,
        BenchCommand::Compare(args) => crate::bench_compare::run(args, principal).await,
        BenchCommand::Cluster(args) => crate::bench_cluster::run(args, principal).await,
        BenchCommand::Query {
            patients,
            runs,
            dir,
        } => {
            let dir = work_dir(dir, "query")?;
            let lake = generate_and_load(&dir, patients, &principal, "bench query").await?;
            let session = Session::open(lake, principal).await?;
            for (title, sql) in RAW_KPI_QUERIES {
                let mut times = Vec::new();
                for _ in 0..runs.max(1) {
                    let started = Instant::now();
                    session.sql(sql).await?;
                    times.push(started.elapsed().as_secs_f64() * 1e3);
                }
                times.sort_by(f64::total_cmp);
                println!(
                    "bench query: {title:<48} min {:>8.1} ms  median {:>8.1} ms",
                    times[0],
                    times[times.len() / 2]
                );
            }
            std::fs::remove_dir_all(&dir).ok();
            Ok(())
        }
    }
}

/// `bench load`: the claims CSV into Delta, `runs` times, each into a fresh lake; with a
/// Python, pyarrow's CSV → Parquet of the same file interleaved with them.
async fn load(
    rows: u64,
    runs: usize,
    python: Option<String>,
    dir: Option<PathBuf>,
    principal: Principal,
) -> Result<()> {
    let dir = work_dir(dir, "load")?;
    let file = dir.join("claims.csv");
    let started = Instant::now();
    let size = write_claims(&file, rows)?;
    let mb = size as f64 / 1e6;
    println!(
        "bench load: wrote {rows} rows, {mb:.1} MB of claims CSV in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut pyarrow_version = String::new();
    for run in 0..runs.max(1) {
        let lake_dir = dir.join(format!("lake-{run}"));
        let lake = Lake::init(&lake_dir.to_string_lossy()).await?;
        let started = Instant::now();
        let summary = Loader::new(lake, principal.clone())
            .load(LoadRequest::new(
                vec![file.to_string_lossy().into_owned()],
                TableName::new(carelake_common::Zone::Raw, "claims")?,
            ))
            .await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "bench load: carelake CSV → Delta {} rows, {mb:.1} MB in {secs:.2}s = {:.0} rows/s, {:.1} MB/s ({} rejected)",
            summary.rows_loaded,
            summary.rows_loaded as f64 / secs,
            mb / secs,
            summary.rows_rejected
        );
        ours.push(secs);
        std::fs::remove_dir_all(&lake_dir).ok();
        if let Some(python) = &python {
            let (version, secs) = pyarrow_once(python, &file, &dir.join("pyarrow"), rows)?;
            println!(
                "bench load: pyarrow {version} CSV → Parquet {rows} rows in {secs:.2}s = {:.0} rows/s, {:.1} MB/s",
                rows as f64 / secs,
                mb / secs
            );
            pyarrow_version = version;
            theirs.push(secs);
        }
    }
    if python.is_some() {
        let (ours, theirs) = (
            crate::bench_compare::median(ours),
            crate::bench_compare::median(theirs),
        );
        println!(
            "bench load: median carelake {ours:.2}s, pyarrow {pyarrow_version} {theirs:.2}s: carelake/pyarrow {:.2}",
            ours / theirs
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// One run of `scripts/bench_pyarrow.py` on `file`: pyarrow's version and the seconds taken.
fn pyarrow_once(
    python: &str,
    file: &std::path::Path,
    out: &std::path::Path,
    rows: u64,
) -> Result<(String, f64)> {
    let script = crate::bench_compare::script("bench_pyarrow.py");
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(file)
        .arg(out)
        .arg("1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        anyhow::bail!("pyarrow's side failed (scripts/bench-compare.sh installs pyarrow)");
    }
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    if answer["rows"].as_u64() != Some(rows) {
        anyhow::bail!("pyarrow read {} rows, not {rows}", answer["rows"]);
    }
    let secs = answer["seconds"][0].as_f64().context("pyarrow's time")?;
    Ok((answer["pyarrow"].as_str().unwrap_or("?").to_string(), secs))
}

/// Parses a generated feed without writing anything; returns records parsed.
fn parse_only(format: ClinicalFormat, files: &[PathBuf]) -> Result<u64> {
    let views = carelake_fhir::default_views();
    let mut records = 0u64;
    for file in files {
        let bytes = std::fs::read(file)?;
        match format {
            ClinicalFormat::Hl7 => {
                let text = String::from_utf8_lossy(&bytes);
                let batch = carelake_hl7::split_batch(&text)?;
                for item in batch.messages {
                    let message = carelake_hl7::Message::parse(item.text)?;
                    std::hint::black_box(message.extract());
                    records += 1;
                }
            }
            ClinicalFormat::Fhir => {
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let resource = carelake_fhir::read_ndjson_line(std::str::from_utf8(line)?)?;
                    let kind = resource.get("resourceType").and_then(|t| t.as_str());
                    for view in views.iter().filter(|v| Some(v.resource()) == kind) {
                        std::hint::black_box(view.evaluate(&resource)?);
                    }
                    records += 1;
                }
            }
            ClinicalFormat::X12 => {
                records += carelake_x12::parse_837(&bytes)?.claims.len() as u64;
            }
        }
    }
    Ok(records)
}

async fn clinical(patients: u64, dir: Option<PathBuf>, principal: Principal) -> Result<()> {
    let dir = work_dir(dir, "clinical")?;
    let (data, summary, started) = generate_into(&dir, patients, false)?;
    println!(
        "bench clinical: generated {patients} patients in {:.1}s: {} HL7 v2 messages, {} FHIR resources, {} X12 claims",
        started.elapsed().as_secs_f64(),
        summary.clinical.hl7_messages,
        summary.clinical.fhir_resources,
        summary.clinical.x12_claims
    );
    let lake = Lake::init(&dir.join("lake").to_string_lossy()).await?;
    let loader = Loader::new(lake, principal);
    for (folder, format, unit) in [
        ("hl7", ClinicalFormat::Hl7, "messages"),
        ("fhir", ClinicalFormat::Fhir, "resources"),
        ("x12", ClinicalFormat::X12, "claims"),
    ] {
        let files =
            carelake_ingest::expand_inputs(&[data.join(folder).to_string_lossy().into_owned()])?;
        let bytes: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let started = Instant::now();
        let parsed = parse_only(format, &files)?;
        let parse_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut request =
            ClinicalRequest::new(vec![data.join(folder).to_string_lossy().into_owned()]);
        request.format = Some(format);
        let loaded = loader.load_clinical(request).await?;
        let load_secs = started.elapsed().as_secs_f64();
        println!(
            "bench clinical: {folder:<4} {parsed} {unit}, {:.1} MB: parse {:.0} {unit}/s ({:.1} MB/s); \
             load into Delta {:.0} {unit}/s ({:.1} MB/s, {} rejected); load/parse time {:.1}x",
            bytes as f64 / 1e6,
            parsed as f64 / parse_secs,
            bytes as f64 / 1e6 / parse_secs,
            loaded.records as f64 / load_secs,
            bytes as f64 / 1e6 / load_secs,
            loaded.rejected,
            load_secs / parse_secs
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// The roles, users and policies `bench governance` reads through: a row policy that every
/// row passes (so every side does the same work) for both roles, and for `bench_masked` two
/// masks on columns the KPI queries group, join and count by.
const BENCH_POLICIES: &str = "CREATE ROLE bench_rows;
CREATE ROLE bench_masked;
GRANT SELECT ON raw.encounters TO bench_rows;
GRANT SELECT ON raw.facilities TO bench_rows;
GRANT SELECT ON raw.encounters TO bench_masked;
GRANT SELECT ON raw.facilities TO bench_masked;
CREATE ROW POLICY bench_network ON raw.encounters FOR bench_rows USING (current_user_attr('facility') = '*' OR facility_id = current_user_attr('facility'));
CREATE ROW POLICY bench_network_masked ON raw.encounters FOR bench_masked USING (current_user_attr('facility') = '*' OR facility_id = current_user_attr('facility'));
CREATE MASKING POLICY bench_mrn ON raw.encounters (mrn) FOR bench_masked USING (pseudonym(mrn));
CREATE MASKING POLICY bench_encounter_id ON raw.encounters (encounter_id) FOR bench_masked USING (pseudonym(encounter_id));
GRANT bench_rows TO bench_rows;
GRANT bench_masked TO bench_masked;
ALTER USER bench_rows SET facility = '*';
ALTER USER bench_masked SET facility = '*'";

/// The KPI queries as an administrator, as a user behind a row policy, and as one behind the
/// row policy and two masks, runs interleaved so that every side sees the same machine;
/// prints medians, their ratios, and whether every side got the same answer.
async fn governance(
    patients: u64,
    runs: usize,
    dir: Option<PathBuf>,
    principal: Principal,
) -> Result<()> {
    let dir = work_dir(dir, "governance")?;
    let lake = generate_and_load(&dir, patients, &principal, "bench governance").await?;
    let admin = Session::open(lake.clone(), principal.clone()).await?;
    for user in ["bench_rows", "bench_masked"] {
        lake.users()
            .create(user, &carelake_lake::generate_password(), &[], &principal)
            .await?;
    }
    admin.sql_all(BENCH_POLICIES).await?;
    let mut sessions = vec![("admin", admin)];
    for (label, user) in [("row policy", "bench_rows"), ("+2 masks", "bench_masked")] {
        let user = lake
            .users()
            .get(user)
            .await?
            .context("the bench user was not created")?;
        let session = Session::open_with(
            lake.clone(),
            user.principal(),
            carelake_common::Origin {
                interface: carelake_common::Interface::Cli,
                peer: None,
                local: false,
            },
            carelake_sql::FileAccess::default(),
        )
        .await?;
        sessions.push((label, session));
    }
    let mut totals = vec![0.0; sessions.len()];
    for (title, sql) in RAW_KPI_QUERIES {
        let mut times = vec![Vec::new(); sessions.len()];
        let mut answers = vec![String::new(); sessions.len()];
        for _ in 0..runs.max(1) {
            for (i, (_, session)) in sessions.iter().enumerate() {
                let started = Instant::now();
                let result = session.sql(sql).await?;
                times[i].push(started.elapsed().as_secs_f64() * 1e3);
                answers[i] =
                    arrow::util::pretty::pretty_format_batches(&result.batches)?.to_string();
            }
        }
        let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
        let mut line = format!("bench governance: {title:<48}");
        for (i, (label, _)) in sessions.iter().enumerate() {
            totals[i] += medians[i];
            line.push_str(&format!("  {label} {:>7.1} ms", medians[i]));
            if i > 0 {
                line.push_str(&format!(" (x{:.2})", medians[i] / medians[0]));
            }
        }
        let same = answers.iter().all(|a| *a == answers[0]);
        line.push_str(if same {
            "  same answer"
        } else {
            "  DIFFERENT ANSWER"
        });
        println!("{line}");
    }
    let mut line = format!(
        "bench governance: {:<48}",
        "all KPI queries (sum of medians)"
    );
    for (i, (label, _)) in sessions.iter().enumerate() {
        line.push_str(&format!("  {label} {:>7.1} ms", totals[i]));
        if i > 0 {
            line.push_str(&format!(
                " ({:+.1}%)",
                (totals[i] / totals[0] - 1.0) * 100.0
            ));
        }
    }
    println!("{line}  (goal: under +10%)");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `bench encryption`: plain and encrypted lakes side by side.
async fn encryption(
    rows: u64,
    patients: u64,
    runs: usize,
    dir: Option<PathBuf>,
    principal: Principal,
) -> Result<()> {
    let dir = work_dir(dir, "encryption")?;
    let key = carelake_lake::KeySource::Value(carelake_lake::MasterKey::generate()?.to_hex());
    let file = dir.join("claims.csv");
    let size = write_claims(&file, rows)?;
    let (data, summary, _) = generate_into(&dir, patients, true)?;
    println!(
        "bench encryption: {rows} claims rows ({:.1} MB CSV); {patients} patients ({} rows)",
        size as f64 / 1e6,
        summary.rows
    );
    let mut lakes = Vec::new();
    let mut load_secs = Vec::new();
    for (side, source) in [("plain", None), ("encrypted", Some(key.clone()))] {
        let lake = Lake::init_with(&dir.join(side).to_string_lossy(), source).await?;
        let started = Instant::now();
        let loaded = Loader::new(lake.clone(), principal.clone())
            .load(LoadRequest::new(
                vec![file.to_string_lossy().into_owned()],
                TableName::new(carelake_common::Zone::Raw, "claims_bench")?,
            ))
            .await?;
        let claims_secs = started.elapsed().as_secs_f64();
        let (loaded_rows, _, generated_secs) =
            load_generated(&lake, &data, &principal, true).await?;
        println!(
            "bench encryption: {side:<9} load claims {} rows in {claims_secs:.2}s ({:.0} rows/s); \
             generated tables {loaded_rows} rows in {generated_secs:.2}s",
            loaded.rows_loaded,
            loaded.rows_loaded as f64 / claims_secs
        );
        load_secs.push((claims_secs, generated_secs));
        lakes.push(Session::open(lake, principal.clone()).await?);
    }
    println!(
        "bench encryption: load time encrypted/plain: claims {:.2}x, generated tables {:.2}x",
        load_secs[1].0 / load_secs[0].0,
        load_secs[1].1 / load_secs[0].1
    );
    let mut ratios = Vec::new();
    for (title, sql) in RAW_KPI_QUERIES {
        let mut times = [Vec::new(), Vec::new()];
        let mut answers = [String::new(), String::new()];
        for _ in 0..runs.max(1) {
            for (i, session) in lakes.iter().enumerate() {
                let started = Instant::now();
                let result = session.sql(sql).await?;
                times[i].push(started.elapsed().as_secs_f64() * 1e3);
                answers[i] = format!("{result:?}");
            }
        }
        for t in &mut times {
            t.sort_by(f64::total_cmp);
        }
        let (plain, encrypted) = (times[0][times[0].len() / 2], times[1][times[1].len() / 2]);
        ratios.push(encrypted / plain);
        println!(
            "bench encryption: {title:<48} plain {plain:>8.1} ms  encrypted {encrypted:>8.1} ms  {:.2}x{}",
            encrypted / plain,
            if answers[0] == answers[1] {
                ""
            } else {
                "  (answers differ!)"
            }
        );
    }
    let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64).exp();
    println!("bench encryption: query time encrypted/plain, geometric mean {geomean:.2}x");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
