//! `carelake export --deidentify …`, `carelake tag` and `carelake tags`: de-identified
//! exports and the column roles they follow. Local commands of the lake's owner; nothing of
//! this is reachable from the network.

use anyhow::{Context, Result};
use carelake_common::{Principal, TableName};
use carelake_deid::{ColumnRole, ExportOptions, Mode, TagStore};
use carelake_lake::{EntryKind, Lake};
use clap::Args;

/// `carelake export --deidentify safe-harbor|limited --to TARGET …`
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// safe-harbor (HIPAA 164.514(b)(2): identifiers removed, keys surrogated, dates to
    /// years, ZIP3, 90+) or limited (a limited data set: identifiers removed, keys
    /// surrogated, dates shifted per patient, ZIP, city and ages kept).
    #[arg(long, value_name = "MODE")]
    deidentify: String,
    /// The target: a folder or s3://bucket/prefix outside the source lake; it becomes a
    /// carelake lake holding the exported tables.
    #[arg(long, value_name = "LAKE")]
    to: String,
    /// Only these tables (comma-separated zone.name); default every table.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// The columns of the k-anonymity figure (comma-separated); default each table's
    /// quasi_identifier, ZIP and birth date columns.
    #[arg(long, value_delimiter = ',')]
    quasi_identifiers: Vec<String>,
    /// Replace the tables the target already holds.
    #[arg(long)]
    replace: bool,
    /// Write Parquet files without compression (to check them byte by byte).
    #[arg(long)]
    uncompressed: bool,
}

/// `carelake tag TABLE COLUMN ROLE` / `carelake tag --remove TABLE COLUMN`
#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// zone.name
    table: String,
    /// The column.
    column: String,
    /// identifier, free_text, key, date, birth_date, age, zip, city, quasi_identifier, keep.
    #[arg(required_unless_present = "remove")]
    role: Option<String>,
    /// Remove the explicit tag (the default role applies again).
    #[arg(long, conflicts_with = "role")]
    remove: bool,
}

/// `carelake tags [TABLE]`
#[derive(Debug, Args)]
pub(crate) struct TagsArgs {
    /// Only this table (zone.name).
    table: Option<String>,
}

pub(crate) async fn export(lake: &str, principal: Principal, args: ExportArgs) -> Result<()> {
    let source = Lake::open(lake).await?;
    let options = ExportOptions {
        mode: args.deidentify.parse::<Mode>()?,
        target: args.to,
        tables: args
            .tables
            .iter()
            .map(|t| t.parse::<TableName>())
            .collect::<Result<_, _>>()?,
        quasi_identifiers: args.quasi_identifiers,
        replace: args.replace,
        uncompressed: args.uncompressed,
    };
    let report = carelake_deid::export(&source, &options, &principal).await?;
    println!(
        "De-identified export {} ({}) to {}:",
        report.export_id,
        report.mode.as_str(),
        options.target
    );
    println!(
        "{:<36} {:>9} {:>7} {:>10} {:>11} {:>7} {:>5} {:>5} {:>4} {:>9}",
        "table",
        "rows",
        "removed",
        "surrogated",
        "generalised",
        "shifted",
        "kept",
        "90+",
        "k",
        "rows<k=5"
    );
    for t in &report.tables {
        let (k, below) = t
            .k_anonymity
            .as_ref()
            .map(|k| (k.k.to_string(), k.rows_below_threshold.to_string()))
            .unwrap_or_else(|| ("-".into(), "-".into()));
        println!(
            "{:<36} {:>9} {:>7} {:>10} {:>11} {:>7} {:>5} {:>5} {:>4} {:>9}",
            t.table,
            t.rows,
            t.removed.len(),
            t.surrogated.len(),
            t.generalised.len(),
            t.shifted.len(),
            t.kept.len(),
            t.ninety_plus,
            k,
            below
        );
    }
    for s in &report.skipped {
        println!("Skipped {}: {}.", s.table, s.reason);
    }
    for note in &report.notes {
        println!("Note: {note}.");
    }
    println!(
        "Report: _carelake/{} in the target; surrogate mapping kept in the source lake ({}).",
        carelake_deid::REPORT_FILE,
        carelake_deid::MAPPING_TABLE
    );
    Ok(())
}

pub(crate) async fn tag(lake: &str, principal: Principal, args: TagArgs) -> Result<()> {
    let lake = Lake::open(lake).await?;
    let table: TableName = args.table.parse()?;
    let tags = TagStore::new(lake);
    if args.remove {
        if tags.remove(&table, &args.column, &principal).await? {
            println!("Removed the tag of {table}.{}.", args.column);
        } else {
            println!("{table}.{} had no tag.", args.column);
        }
        return Ok(());
    }
    let role: ColumnRole = args.role.context("a role is needed")?.parse()?;
    tags.set(&table, &args.column, role, &principal).await?;
    println!("Tagged {table}.{} as {role}.", args.column);
    Ok(())
}

pub(crate) async fn tags(lake: &str, args: TagsArgs) -> Result<()> {
    let lake = Lake::open(lake).await?;
    let only: Option<TableName> = args.table.as_deref().map(str::parse).transpose()?;
    let explicit = TagStore::new(lake.clone()).explicit().await?;
    let mut rows = Vec::new();
    for entry in lake.catalog().list().await? {
        if entry.kind != EntryKind::Table || only.as_ref().is_some_and(|t| *t != entry.name) {
            continue;
        }
        let Some(delta) = lake
            .open_table_at(&entry.name, carelake_lake::TimeTravel::Latest)
            .await?
        else {
            continue;
        };
        let schema = delta.snapshot()?.snapshot().arrow_schema();
        for role in TagStore::effective(&entry.name, &schema, &explicit) {
            rows.push(vec![
                entry.name.to_string(),
                role.column,
                role.role.as_str().to_string(),
                if role.explicit { "explicit" } else { "default" }.to_string(),
            ]);
        }
    }
    crate::list::print(&["table", "column", "role", "source"], rows);
    Ok(())
}
