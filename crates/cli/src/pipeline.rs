//! `carelake run` and `carelake project init`: the curation pipeline from the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use carelake_common::Principal;
use carelake_lake::Lake;
use carelake_pipeline::{ModelStatus, Project, RunOptions, RunSummary};
use carelake_sql::Session;
use clap::{Args, Subcommand};

/// Arguments of `carelake run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The project folder (with models/); without it, the built-in default project.
    #[arg(long)]
    project: Option<PathBuf>,
    /// Models to run: NAME, NAME+ (and what reads it), +NAME (and what it reads). Repeatable.
    #[arg(long, short = 's')]
    select: Vec<String>,
    /// Rebuild every selected model in full, even when nothing it reads changed.
    #[arg(long)]
    full_refresh: bool,
    /// Models running at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
}

/// `carelake project …`
#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCommand {
    /// Write the default project's models into DIR/models to copy and change.
    Init {
        /// The project folder.
        dir: PathBuf,
    },
    /// List a project's models in run order with their targets and materialisations.
    Show {
        /// The project folder; without it, the built-in default project.
        dir: Option<PathBuf>,
    },
}

pub(crate) fn load_project(dir: Option<&PathBuf>) -> Result<Project> {
    Ok(match dir {
        Some(dir) => Project::load(dir)?,
        None => Project::default_project()?,
    })
}

pub(crate) async fn run(lake: &str, principal: Principal, args: RunArgs) -> Result<()> {
    let project = Arc::new(load_project(args.project.as_ref())?);
    let lake = Lake::open(lake).await?;
    let session = Arc::new(Session::open(lake, principal).await?);
    let summary = carelake_pipeline::run(
        Arc::clone(&session),
        Arc::clone(&project),
        &RunOptions {
            select: args.select,
            concurrency: args.concurrency,
            backoff: Duration::from_secs(1),
            full_refresh: args.full_refresh,
        },
    )
    .await?;
    print_summary(&project, &summary);
    print_data_quality(&session, &summary).await?;
    if !summary.ok() {
        anyhow::bail!("the run did not complete: see the failed models above and system.runs");
    }
    Ok(())
}

pub(crate) fn print_summary(project: &Project, summary: &RunSummary) {
    println!(
        "Ran {} model(s) of {} in {:.1}s (run {}):",
        summary.outcomes.len(),
        project.origin,
        summary.elapsed.as_secs_f64(),
        summary.run_id
    );
    let width = summary
        .outcomes
        .iter()
        .map(|o| o.model.len())
        .max()
        .unwrap_or(0)
        .max(22);
    for o in &summary.outcomes {
        let status = match o.status {
            ModelStatus::Success => "ok",
            ModelStatus::UpToDate => "up to date",
            ModelStatus::Failed => "FAILED",
            ModelStatus::Skipped => "skipped",
            ModelStatus::NoInput => "no input",
        };
        let rows = match o.status {
            ModelStatus::Success => format!("{} in, {} rows", o.rows_in, o.rows_out),
            ModelStatus::UpToDate => format!("{} rows", o.rows_out),
            _ => String::new(),
        };
        println!(
            "  {:<width$} {:<12} {:<11} {:>7.2}s  {rows}",
            o.model,
            o.materialization.as_str(),
            status,
            o.elapsed.as_secs_f64()
        );
        if let Some(error) = &o.error {
            println!(
                "      {}{}",
                error.replace('\n', " "),
                if o.attempts > 1 {
                    format!(" (after {} attempts)", o.attempts)
                } else {
                    String::new()
                }
            );
        }
    }
}

pub(crate) fn project(which: ProjectCommand) -> Result<()> {
    match which {
        ProjectCommand::Init { dir } => {
            let written = Project::write_default(&dir)?;
            println!(
                "Wrote {} models into {}. Run them with: carelake run --project {}",
                written.len(),
                dir.join("models").display(),
                dir.display()
            );
            Ok(())
        }
        ProjectCommand::Show { dir } => {
            let project = load_project(dir.as_ref())?;
            let dag = carelake_pipeline::Dag::build(&project)?;
            println!(
                "{} ({} models, in run order):",
                project.origin,
                project.models.len()
            );
            let mut rows = Vec::new();
            for i in &dag.order {
                let m = &project.models[*i];
                let reads: Vec<String> = dag.inputs[*i].iter().map(ToString::to_string).collect();
                let outputs: Vec<String> = m.outputs().iter().map(ToString::to_string).collect();
                rows.push(vec![
                    m.name.clone(),
                    m.materialization.as_str().to_string(),
                    outputs.join(", "),
                    reads.join(", "),
                ]);
            }
            crate::list::print(&["model", "materialization", "writes", "reads"], rows);
            Ok(())
        }
    }
}

/// The latest data quality results, when the run checked any: counts and the failed checks.
pub(crate) async fn print_data_quality(session: &Session, summary: &RunSummary) -> Result<()> {
    let Some(dq) = summary
        .outcomes
        .iter()
        .find(|o| o.target.ends_with(".dq_results") && o.status == ModelStatus::Success)
    else {
        return Ok(());
    };
    let table = dq.target.as_str();
    let result = session
        .sql(&format!(
            "SELECT table_name, column_name, check_name, rows_violating, round(pct_violating, 2) AS pct, threshold_pct, status \
             FROM {table} WHERE checked_at = (SELECT max(checked_at) FROM {table}) \
             ORDER BY status, table_name, column_name, check_name"
        ))
        .await?;
    let rows = crate::output::rows_as_strings(&result);
    let failed: Vec<&Vec<String>> = rows.iter().filter(|r| r[6] == "fail").collect();
    println!(
        "Data quality ({table}): {} checks, {} passed, {} failed.",
        rows.len(),
        rows.len() - failed.len(),
        failed.len()
    );
    for r in failed {
        println!(
            "  FAILED {} {} {}: {} rows ({}%, threshold {}%)",
            r[0], r[1], r[2], r[3], r[4], r[5]
        );
    }
    Ok(())
}

/// Runs the models whose schedule falls due, and what reads them, checking every 15 seconds,
/// until aborted. A run that fails is reported and the schedule goes on.
pub(crate) async fn run_schedules(session: Arc<Session>, project: Arc<Project>) {
    let mut last = chrono::Utc::now();
    loop {
        tokio::time::sleep(Duration::from_secs(15)).await;
        let now = chrono::Utc::now();
        let due = project.due(last, now);
        last = now;
        if due.is_empty() {
            continue;
        }
        tracing::info!(models = ?due, "Scheduled models due.");
        match carelake_pipeline::run(
            Arc::clone(&session),
            Arc::clone(&project),
            &RunOptions {
                select: due.iter().map(|m| format!("{m}+")).collect(),
                ..RunOptions::default()
            },
        )
        .await
        {
            Ok(summary) => print_summary(&project, &summary),
            Err(e) => eprintln!("error: scheduled run: {e}"),
        }
    }
}
