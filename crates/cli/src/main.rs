//! The `carelake` command line: init a lake, load files, run SQL, generate synthetic data, run
//! the demo and the benchmarks.

mod alert;
mod audit;
mod backup;
mod bench;
mod bench_catalog;
mod bench_cluster;
mod bench_compare;
mod bench_http;
mod bench_soak;
mod cert;
mod cluster;
mod config;
mod demo;
mod export;
mod fhir;
mod key;
mod link;
mod list;
mod output;
mod pipeline;
mod progress;
mod repl;
mod serve;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use carelake_common::{Principal, TableName};
use carelake_ingest::{ClinicalFormat, ClinicalRequest, Format, LoadRequest, Loader};
use carelake_lake::{Lake, LoadStatus};
use carelake_sql::Session;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::output::OutputFormat;

/// mimalloc rather than the system allocator: glibc's per-thread arenas keep what a large load
/// or query freed (the 200k-patient demo held gigabytes after its loads were done), mimalloc
/// hands freed pages back and is faster for Arrow's many short-lived buffers. DataFusion's
/// own command line makes the same choice. Built without transparent huge pages (`no_thp`):
/// with them each new 2 MB page is zeroed on first touch, which tripled a short query's
/// resident memory (180 MB → 730 MB for twenty small statements) and made most of its time
/// system time. The `system-allocator` feature keeps the system's, for heap profilers.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// carelake: a self-hosted clinical data lakehouse.
#[derive(Debug, Parser)]
#[command(name = "carelake", version, about, propagate_version = true)]
struct Cli {
    /// The lake: a local folder or s3://bucket/prefix.
    #[arg(
        long,
        global = true,
        env = "CARELAKE_LAKE",
        default_value = "./carelake-data"
    )]
    lake: String,
    /// Log level (error, warn, info, debug, trace); logs go to standard error.
    #[arg(long, global = true, env = "CARELAKE_LOG", default_value = "warn")]
    log: String,
    /// The master key of an encrypted lake: a file holding 64 hex digits (or base64, or 32
    /// raw bytes). `CARELAKE_KEY` may hold the key itself.
    #[arg(long, global = true, env = "CARELAKE_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// A command printing the master key (a KMS or vault client), run when a lake is opened.
    #[arg(
        long,
        global = true,
        env = "CARELAKE_KEY_COMMAND",
        conflicts_with = "key_file"
    )]
    key_command: Option<String>,
    /// A configuration file (TOML) with defaults for the global and the server's options, which
    /// CARELAKE_* variables and flags override; without it ./carelake.toml when there is one
    /// (docs/carelake.example.toml lists every setting).
    #[arg(long, global = true, env = "CARELAKE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a lake (zones raw, curated, analytics and the catalog). Safe to run again.
    Init {
        /// Encrypt every file of the new lake (AES-256-GCM) under the master key given with
        /// --key-file (made when the file is missing), --key-command or CARELAKE_KEY.
        #[arg(long)]
        encrypt: bool,
    },
    /// Write a self-signed TLS certificate and key for trials (cert.pem, key.pem).
    Cert(cert::CertArgs),
    /// The master key of an encrypted lake: rotate it, or make a new key file.
    Key {
        #[command(subcommand)]
        which: key::KeyCommand,
    },
    /// Load files, folders or globs into the lake, exactly once per file content.
    ///
    /// CSV, NDJSON and Parquet go into the table given with --into. Clinical files go into
    /// their own raw tables, their format told from the content: HL7 v2 into raw.hl7_messages
    /// and the typed raw.hl7_* tables; FHIR Bundles and bulk NDJSON into raw.fhir_TYPE,
    /// flattened by the SQL-on-FHIR views into curated.fhir_*; X12 837 claims into raw.x12_claims
    /// and raw.x12_claim_lines.
    Load {
        /// Files, folders or glob patterns (quote globs).
        #[arg(required = true)]
        inputs: Vec<String>,
        /// Target table for tabular files, e.g. raw.claims.
        #[arg(long)]
        into: Option<String>,
        /// Input format: csv, ndjson, parquet, hl7, fhir, x12; auto tells it from the files.
        #[arg(long, default_value = "auto")]
        format: String,
        /// Fail the whole load, committing nothing, when more than this share of rows is
        /// rejected (0.01 = 1%).
        #[arg(long)]
        max_reject_ratio: Option<f64>,
        /// Description recorded in the catalog.
        #[arg(long)]
        description: Option<String>,
        /// The files are a change feed: load them into raw.NAME_changes, then apply the
        /// changes in commit order to the --into table (curated.NAME) with MERGE: inserts,
        /// updates and deletes by --key.
        #[arg(long, requires = "into", requires = "key")]
        cdc: bool,
        /// Key columns of a change feed (comma-separated).
        #[arg(long, value_delimiter = ',')]
        key: Vec<String>,
        /// The change feed's operation column (I, U or D).
        #[arg(long, default_value = "op")]
        op_column: String,
        /// The change feed's commit timestamp (or sequence) column.
        #[arg(long, default_value = "commit_ts")]
        ts_column: String,
    },
    /// Run SQL; without a query, start an interactive shell.
    Sql {
        /// SQL statements separated by ';'. Use '-' to read them from standard input.
        query: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Write the result to this file instead of standard output (required for parquet).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Run as this lake user, under their grants, row policies and masks (to see what
        /// they see); without it the command line acts as the lake's owner.
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        /// Run read queries on the Ballista cluster whose scheduler is at this URL
        /// (http://host:port); writes, DDL and system tables stay here.
        #[arg(long, value_name = "URL", env = "CARELAKE_CLUSTER")]
        cluster: Option<String>,
    },
    /// Run carelake's Ballista scheduler or an executor (see docs/SCALE.md).
    Cluster(cluster::ClusterArgs),
    /// The audit log: every sign-in, statement, export, grant, policy and user change, as a
    /// hash chain; `verify` recomputes it.
    Audit(audit::AuditArgs),
    /// Take a consistent backup of the whole lake (every table at one point, the catalog, users
    /// and keys included) into a folder or bucket prefix, storing only what earlier backups
    /// there lack; --list shows them.
    Backup(backup::BackupArgs),
    /// Rebuild a lake (--lake, an empty folder or prefix) from a backup, checking every file's
    /// hash, then check it.
    Restore(backup::RestoreArgs),
    /// Check the lake: every table's log opens, every file is there with the recorded size and
    /// row count, the catalog matches the tables and the audit chain is whole; exits with 4
    /// when something is wrong. With --backup, check a backup's files against their hashes.
    Check(backup::CheckArgs),
    /// Alert rules (made with CREATE ALERT in SQL): run one now, or show its webhook key.
    Alert(alert::AlertArgs),
    /// List the catalog: tables, views, row counts and lineage.
    Tables,
    /// Export tables de-identified (HIPAA Safe Harbor or a limited data set) into another
    /// lake, following the column roles (`carelake tags`); the surrogate mapping stays here.
    Export(export::ExportArgs),
    /// Tag a column with its de-identification role (or --remove the tag).
    Tag(export::TagArgs),
    /// Show the de-identification role of every column: explicit tags and defaults.
    Tags(export::TagsArgs),
    /// Generate a deterministic synthetic hospital network as CSV and NDJSON files.
    Generate {
        /// Number of patients (people).
        #[arg(long, default_value_t = 20_000)]
        patients: u64,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder.
        #[arg(long, default_value = "./carelake-synthetic")]
        out: PathBuf,
    },
    /// Generate data, load it into a fresh lake, print the hospital KPIs, then serve the lake
    /// (web UI, HTTP API, Postgres wire protocol on loopback) until interrupted.
    Demo {
        /// Number of patients.
        #[arg(long, default_value_t = 20_000)]
        patients: u64,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where the generated files go.
        #[arg(long, default_value = "./carelake-demo")]
        data: PathBuf,
        /// Stop after the KPIs instead of serving (for scripts and CI).
        #[arg(long)]
        no_serve: bool,
    },
    /// Serve the lake until interrupted: the HTTP API (queries, catalog, streaming ingest,
    /// health, metrics), and on request the MLLP listener for HL7 v2 and the pipeline's
    /// schedules. Listens on loopback unless told otherwise.
    Serve(Box<serve::ServeArgs>),
    /// Link person records in CSV files with the master patient index's linker: one file is
    /// deduplicated, two are linked to each other. Writes pairs.csv (scored pairs to link or
    /// review), clusters.csv (a person key per record) and model.csv (m, u and weights).
    Link(link::LinkArgs),
    /// Manage the lake's users (who may sign in to `carelake serve`).
    User {
        #[command(subcommand)]
        which: users::UserCommand,
    },
    /// List and revoke bearer tokens and web UI sessions.
    Token {
        #[command(subcommand)]
        which: users::TokenCommand,
    },
    /// Run the curation pipeline: SQL models (and the master patient index) in dependency
    /// order, incremental where they can be; every model recorded in system.runs.
    Run(pipeline::RunArgs),
    /// Pipeline projects: copy the default one to change it, or list a project's models.
    Project {
        #[command(subcommand)]
        which: pipeline::ProjectCommand,
    },
    /// FHIR: list, add and refresh the SQL-on-FHIR views; run the conformance suite.
    Fhir {
        #[command(subcommand)]
        which: fhir::FhirCommand,
    },
    /// Benchmarks printing throughput and query times.
    Bench {
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = match config::matches(Cli::command(), std::env::args_os().collect()) {
        Ok(matches) => Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = &cli.key_file {
        carelake_lake::set_key_source(carelake_lake::KeySource::File(file.clone()));
    } else if let Some(command) = &cli.key_command {
        carelake_lake::set_key_source(carelake_lake::KeySource::Command(command.clone()));
    }
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{},datafusion=error,deltalake_core=error,deltalake_aws=error",
        cli.log
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if let Some(file) = &cli.config {
        tracing::debug!(file = %file.display(), "Configuration file named.");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if audit::is_verification_failure(&e) || backup::is_check_failure(&e) => {
            eprintln!("error: {e}");
            ExitCode::from(4)
        }
        Err(e) => {
            // One line: the chain of causes, no backtrace.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message.push_str(": ");
                    message.push_str(&text);
                }
            }
            eprintln!("error: {}", message.replace('\n', " "));
            // A refusal (a privilege missing) and a failure worth retrying (a service
            // unavailable, a lost race with another writer: sysexits' EX_TEMPFAIL) are told
            // apart from other failures.
            match e.chain().find_map(carelake_sql::ErrorKind::in_chain) {
                Some(carelake_sql::ErrorKind::Denied) => ExitCode::from(3),
                Some(kind) if kind.is_retryable() => ExitCode::from(75),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let principal = Principal::local_admin();
    if !matches!(cli.command, Command::Serve(_)) {
        // The command's sessions share a memory pool, so that DataFusion's sorts and
        // aggregations spill to disk beyond it rather than the process growing without bound
        // (`serve` sets its own, per session too).
        let memory = serve::memory_budget(None);
        carelake_sql::limit_memory(memory as usize, memory as usize);
    }
    match cli.command {
        Command::Init { encrypt } => {
            let source = if encrypt {
                Some(key::source_for_new_lake(cli.key_file.as_deref())?)
            } else {
                None
            };
            let lake = Lake::init_with(&cli.lake, source).await?;
            println!(
                "Lake ready at {} (zones raw, curated, analytics{}).",
                lake.display_location(),
                if lake.is_encrypted() {
                    "; encrypted"
                } else {
                    ""
                }
            );
            users::ensure_first_user(&lake).await?;
            Ok(())
        }
        Command::Key { which } => key::run(&cli.lake, which).await,
        Command::Cert(args) => cert::run(&args),
        Command::Load {
            inputs,
            into,
            format,
            max_reject_ratio,
            description,
            cdc,
            key,
            op_column,
            ts_column,
        } => {
            let lake = Lake::open(&cli.lake).await?;
            if cdc {
                let target: TableName = into.as_deref().unwrap_or_default().parse()?;
                return load_cdc(lake, principal, inputs, target, key, op_column, ts_column).await;
            }
            if let Some(clinical) = clinical_format(&inputs, &format, into.is_some())? {
                let mut request = ClinicalRequest::new(inputs);
                // Told from the content unless given: then files of no clinical format are
                // left out rather than rejected.
                request.format = (format != "auto").then_some(clinical);
                request.progress = progress::LoadProgress::for_terminal();
                let summary = Loader::new(lake.clone(), principal)
                    .load_clinical(request)
                    .await?;
                print_clinical_summary(&summary);
                refresh_on_load_views(&lake).await;
                return Ok(());
            }
            let into = into.context(
                "tabular files need a target table: --into raw.<name> (HL7 v2, FHIR and X12 files go to their own tables)",
            )?;
            let table: TableName = into.parse()?;
            let mut request = LoadRequest::new(inputs, table);
            request.format = match format.as_str() {
                "auto" => None,
                other => Some(other.parse::<Format>().map_err(anyhow::Error::msg)?),
            };
            request.max_reject_ratio = max_reject_ratio;
            request.description = description;
            request.progress = progress::LoadProgress::for_terminal();
            let summary = Loader::new(lake.clone(), principal).load(request).await?;
            print_load_summary(&summary);
            refresh_on_load_views(&lake).await;
            Ok(())
        }
        Command::Fhir { which } => fhir::run(&cli.lake, principal, which).await,
        Command::Run(args) => pipeline::run(&cli.lake, principal, args).await,
        Command::Project { which } => pipeline::project(which),
        Command::Link(args) => tokio::task::spawn_blocking(move || link::run(args)).await?,
        Command::User { which } => users::run(&cli.lake, principal, which).await,
        Command::Token { which } => users::tokens(&cli.lake, principal, which).await,
        Command::Serve(args) => serve::run(&cli.lake, principal, *args).await,
        Command::Cluster(args) => cluster::run(&cli.lake, args).await,
        Command::Audit(args) => audit::run(&cli.lake, args).await,
        Command::Backup(args) => backup::backup(&cli.lake, args).await,
        Command::Restore(args) => backup::restore(&cli.lake, args).await,
        Command::Check(args) => backup::check(&cli.lake, args).await,
        Command::Alert(args) => alert::run(&cli.lake, args).await,
        Command::Export(args) => export::export(&cli.lake, principal, args).await,
        Command::Tag(args) => export::tag(&cli.lake, principal, args).await,
        Command::Tags(args) => export::tags(&cli.lake, args).await,
        Command::Sql {
            query,
            format,
            output,
            as_user,
            cluster,
        } => {
            let lake = Lake::open(&cli.lake).await?;
            let session = match as_user {
                None => Session::open(lake.clone(), principal).await?,
                Some(name) => {
                    let user = lake
                        .users()
                        .get(&name)
                        .await?
                        .with_context(|| format!("no user {name}"))?;
                    Session::open_with(
                        lake.clone(),
                        user.principal(),
                        carelake_common::Origin {
                            interface: carelake_common::Interface::Cli,
                            peer: None,
                            local: false,
                        },
                        carelake_sql::FileAccess::from_env(),
                    )
                    .await?
                }
            };
            cluster::attach(&session, &lake, cluster.as_deref())?;
            match query {
                None => repl::run(&session).await,
                Some(q) => {
                    let sql = if q == "-" {
                        std::io::read_to_string(std::io::stdin())
                            .context("reading SQL from standard input")?
                    } else {
                        q
                    };
                    let results = session.sql_all(&sql).await?;
                    for result in &results {
                        output::print_result(result, format, output.as_deref())?;
                    }
                    Ok(())
                }
            }
        }
        Command::Tables => {
            let lake = Lake::open(&cli.lake).await?;
            let session = Session::open(lake, principal).await?;
            let result = session
                .sql("SELECT table_name, kind, row_count, table_version AS version, owner, upstream, description FROM system.tables ORDER BY table_name")
                .await?;
            output::print_result(&result, OutputFormat::Table, None)
        }
        Command::Generate {
            patients,
            seed,
            out,
        } => {
            let started = std::time::Instant::now();
            let summary = carelake_generate::generate(&carelake_generate::GeneratorConfig {
                patients,
                seed,
                out: out.clone(),
                flat_only: false,
            })?;
            println!(
                "Generated {} people ({} patient records), {} encounters ({} inpatient, {} followed by a 30-day readmission), {} rows, {:.1} MB in {:.1}s into {}",
                summary.people,
                summary.patient_records,
                summary.encounters,
                summary.inpatient_stays,
                summary.readmissions,
                summary.rows,
                summary.bytes as f64 / 1e6,
                started.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
        Command::Demo {
            patients,
            seed,
            data,
            no_serve,
        } => demo::run(&cli.lake, patients, seed, &data, principal, !no_serve).await,
        Command::Bench { which } => bench::run(which, principal).await,
    }
}

/// `carelake load --cdc`: the feed into raw.NAME_changes, then its changes into the target.
async fn load_cdc(
    lake: Lake,
    principal: Principal,
    inputs: Vec<String>,
    target: TableName,
    keys: Vec<String>,
    op_column: String,
    ts_column: String,
) -> Result<()> {
    if target.zone == carelake_common::Zone::Raw {
        anyhow::bail!(
            "changes apply to a curated or analytics table; raw.{}_changes keeps the feed",
            target.name
        );
    }
    let changes = TableName::new(
        carelake_common::Zone::Raw,
        format!("{}_changes", target.name),
    )?;
    let mut request = LoadRequest::new(inputs, changes.clone());
    request.progress = progress::LoadProgress::for_terminal();
    let summary = Loader::new(lake.clone(), principal.clone())
        .load(request)
        .await?;
    print_load_summary(&summary);
    // Every load of the feed not yet applied (also one a stopped run loaded but did not apply).
    let session = Session::open(lake, principal).await?;
    let applied = carelake_pipeline::cdc::apply(
        &session,
        &carelake_pipeline::cdc::CdcSpec {
            changes,
            target: target.clone(),
            keys,
            op_column,
            ts_column,
        },
    )
    .await?;
    if applied.changes == 0 && !applied.created {
        println!("No new changes for {target}.");
        return Ok(());
    }
    println!(
        "Applied {} change(s) to {target}{}: {} rows now.",
        applied.changes,
        if applied.created { " (created)" } else { "" },
        applied.rows
    );
    Ok(())
}

/// A listening address: `host:port`, `:port` or a bare port (on loopback).
pub(crate) fn parse_listen_addr(text: &str) -> Result<std::net::SocketAddr> {
    use std::net::{SocketAddr, ToSocketAddrs};
    let text = text.trim();
    if let Ok(port) = text.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.to_socket_addrs()
        .with_context(|| format!("'{text}' is not a listening address (host:port)"))?
        .next()
        .with_context(|| format!("'{text}' resolves to no address"))
}

/// After a load: the `REFRESH ON LOAD` materialized views over the tables that changed.
async fn refresh_on_load_views(lake: &Lake) {
    for (name, result) in
        carelake_sql::refresh_due_materialized_views(lake, chrono::Utc::now(), true).await
    {
        match result {
            Ok(carelake_sql::Refreshed::Rows(rows)) => {
                println!("Refreshed the materialized view {name} ({rows} rows).");
            }
            Ok(carelake_sql::Refreshed::UpToDate) => {}
            Err(e) => eprintln!("warning: refreshing the materialized view {name}: {e}"),
        }
    }
}

/// The clinical format of a load: named with --format, or sniffed from the first file when
/// no target table is given.
fn clinical_format(
    inputs: &[String],
    format: &str,
    has_target: bool,
) -> Result<Option<ClinicalFormat>> {
    if let Ok(clinical) = format.parse::<ClinicalFormat>() {
        return Ok(Some(clinical));
    }
    if format != "auto" || has_target {
        return Ok(None);
    }
    let files = carelake_ingest::expand_inputs(inputs)?;
    Ok(ClinicalFormat::sniff_first(&files)?)
}

fn print_clinical_summary(summary: &carelake_ingest::ClinicalSummary) {
    let mut loaded = 0;
    for file in &summary.files {
        match file.status {
            LoadStatus::Skipped => {
                println!("Skipped {}: this content was already loaded.", file.path)
            }
            LoadStatus::Failed => {
                println!("Rejected {}: see raw._rejects for the reason.", file.path)
            }
            _ => loaded += 1,
        }
    }
    if !summary.ignored.is_empty() {
        println!(
            "Ignored {} file(s) of no clinical format: {}",
            summary.ignored.len(),
            summary.ignored.join(", ")
        );
    }
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let what = match summary.format {
        ClinicalFormat::Hl7 => "messages",
        ClinicalFormat::Fhir => "resources",
        ClinicalFormat::X12 => "claims",
    };
    println!(
        "Loaded {} {what} from {loaded} file(s) in {secs:.2}s ({:.0} {what}/s, {:.1} MB/s); {} rejected{}, {} already in the lake.",
        summary.records,
        summary.records as f64 / secs,
        summary.bytes as f64 / 1e6 / secs,
        summary.rejected,
        if summary.rejected > 0 {
            " (see raw._rejects)"
        } else {
            ""
        },
        summary.duplicates,
    );
    for table in &summary.tables {
        println!(
            "  {:<32} +{} rows (version {})",
            table.table.to_string(),
            table.rows_added,
            table.version.map(|v| v.to_string()).unwrap_or_default()
        );
    }
}

fn print_load_summary(summary: &carelake_ingest::LoadSummary) {
    let skipped: Vec<_> = summary
        .files
        .iter()
        .filter(|f| f.status == LoadStatus::Skipped)
        .collect();
    for file in &skipped {
        println!(
            "Skipped {}: this content was already loaded into {}.",
            file.path, summary.table
        );
    }
    let loaded = summary.files.len() - skipped.len();
    if loaded == 0 {
        println!("Nothing new to load into {}.", summary.table);
        return;
    }
    for change in &summary.schema_changes {
        println!("Schema: {change}.");
    }
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    println!(
        "Loaded {} rows from {} file(s) into {} (version {}); {} rejected{} in {:.2}s ({:.0} rows/s, {:.1} MB/s).",
        summary.rows_loaded,
        loaded,
        summary.table,
        summary
            .table_version
            .map(|v| v.to_string())
            .unwrap_or_default(),
        summary.rows_rejected,
        if summary.rows_rejected > 0 {
            " (see raw._rejects)"
        } else {
            ""
        },
        secs,
        summary.rows_loaded as f64 / secs,
        summary.bytes as f64 / 1e6 / secs,
    );
}
