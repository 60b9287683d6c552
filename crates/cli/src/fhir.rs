//! `carelake fhir …`: the SQL-on-FHIR views and the conformance runner.

use std::path::PathBuf;

use anyhow::{Context, Result};
use carelake_common::Principal;
use carelake_lake::Lake;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum FhirCommand {
    /// List the SQL-on-FHIR views in force (shipped defaults and the lake's own).
    Views,
    /// Add ViewDefinition JSON files to the lake and fill their curated tables.
    AddView {
        /// ViewDefinition files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Recompute every view from the raw FHIR tables.
    Refresh,
    /// Run the SQL-on-FHIR v2 conformance suite (a folder of test JSON files) and print the
    /// pass count.
    Conformance {
        /// The suite's tests folder.
        dir: PathBuf,
        /// Fail when fewer cases pass.
        #[arg(long)]
        min: Option<usize>,
    },
}

pub(crate) async fn run(lake: &str, principal: Principal, which: FhirCommand) -> Result<()> {
    match which {
        FhirCommand::Views => {
            let lake = Lake::open(lake).await?;
            let mut rows = Vec::new();
            for view in carelake_ingest::fhir_views(&lake).await? {
                let columns: Vec<String> = view.columns().into_iter().map(|c| c.name).collect();
                rows.push(vec![
                    format!("curated.{}", view.name()),
                    view.resource().to_string(),
                    columns.join(", "),
                ]);
            }
            crate::list::print(&["table", "resource", "columns"], rows);
            Ok(())
        }
        FhirCommand::AddView { files } => {
            let lake = Lake::open(lake).await?;
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let json: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))?;
                let (table, rows) =
                    carelake_ingest::add_fhir_view(&lake, &principal, &json).await?;
                println!("View {table} added: {rows} rows.");
            }
            Ok(())
        }
        FhirCommand::Refresh => {
            let lake = Lake::open(lake).await?;
            for (table, rows) in carelake_ingest::refresh_fhir_views(&lake, &principal).await? {
                println!("{table}: {rows} rows");
            }
            Ok(())
        }
        FhirCommand::Conformance { dir, min } => {
            let report = carelake_fhir::conformance::run_suite(&dir)?;
            print!("{report}");
            println!(
                "SQL-on-FHIR v2 conformance: {}/{} passed",
                report.passed(),
                report.total()
            );
            if let Some(min) = min
                && report.passed() < min
            {
                anyhow::bail!(
                    "conformance regressed: {} passed, the recorded floor is {min}",
                    report.passed()
                );
            }
            Ok(())
        }
    }
}
