//! `carelake backup`, `carelake restore` and `carelake check`: commands of the lake's owner
//! (they read and write the lake's files directly; no network interface offers them).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use carelake_common::Principal;
use carelake_lake::{AuditRecord, BackupManifest, Lake};
use clap::Args;

/// `carelake backup --to LOCATION [--list]`
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Where backups go: a local folder or s3://bucket/prefix (outside the lake). A backup
    /// stores only what the backups already there lack.
    #[arg(long, value_name = "LOCATION")]
    to: String,
    /// List the backups at --to instead of taking one.
    #[arg(long)]
    list: bool,
}

/// `carelake restore --from LOCATION [--as-of T]`
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup location (as given to `carelake backup --to`).
    #[arg(long, value_name = "LOCATION")]
    from: String,
    /// Restore the newest backup taken at or before this instant (RFC 3339, `YYYY-MM-DD
    /// HH:MM:SS` in UTC, or a date), or the backup of this id; the newest without it.
    #[arg(long, value_name = "TIME|ID")]
    as_of: Option<String>,
}

/// `carelake check [--full] [--backup LOCATION]`
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Decode every page of every data file, not only the footers.
    #[arg(long)]
    full: bool,
    /// Check the backups at this location instead of the lake: every content they refer to is
    /// there and matches its SHA-256.
    #[arg(long, value_name = "LOCATION")]
    backup: Option<String>,
}

/// `carelake check` found something wrong (exit code 4, as a broken audit chain).
#[derive(Debug)]
pub(crate) struct CheckFailed(usize);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the check found {} problem(s)", self.0)
    }
}

impl std::error::Error for CheckFailed {}

/// Whether `e` is a failed check.
pub(crate) fn is_check_failure(e: &anyhow::Error) -> bool {
    e.downcast_ref::<CheckFailed>().is_some()
}

pub(crate) async fn backup(lake_location: &str, args: BackupArgs) -> Result<()> {
    if args.list {
        let backups = carelake_lake::list_backups(&args.to).await?;
        if backups.is_empty() {
            println!("No backups at {}.", args.to);
        }
        for b in &backups {
            println!(
                "{}  {} tables  {} files  {}{}",
                b.id,
                b.tables.len(),
                b.files.len(),
                size(b.files.iter().map(|f| f.size).sum()),
                if b.encrypted { "  encrypted" } else { "" }
            );
        }
        return Ok(());
    }
    let lake = Lake::open(lake_location).await?;
    let started = Instant::now();
    let report = lake.backup(&args.to).await?;
    let elapsed = started.elapsed();
    let m = &report.manifest;
    let total: u64 = m.files.iter().map(|f| f.size).sum();
    let mut record = AuditRecord::new(Principal::local_admin().name, "cli", "backup");
    record.statement = Some("carelake backup".into());
    record.detail = Some(format!(
        "backup {} of {} tables, {} files",
        m.id,
        m.tables.len(),
        m.files.len()
    ));
    lake.audit_append(vec![record]).await?;
    println!(
        "Backup {} taken: {} tables at {}, {} files ({}); read {} files ({}), stored {} new, in \
         {:.1} s.",
        m.id,
        m.tables.len(),
        m.point.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        m.files.len(),
        size(total),
        report.files_read,
        size(report.bytes_read),
        size(report.bytes_written),
        elapsed.as_secs_f64()
    );
    Ok(())
}

pub(crate) async fn restore(lake_location: &str, args: RestoreArgs) -> Result<()> {
    let as_of = match args.as_of.as_deref() {
        None => None,
        Some(text) => Some(match by_id(&args.from, text).await? {
            Some(manifest) => manifest.point,
            None => crate::audit::parse_instant(text, "--as-of")?,
        }),
    };
    let started = Instant::now();
    let report = carelake_lake::restore(&args.from, lake_location, as_of).await?;
    let m = &report.manifest;
    println!(
        "Restored backup {} ({} tables, {} files, {}) into {lake_location} in {:.1} s.",
        m.id,
        m.tables.len(),
        m.files.len(),
        size(report.bytes),
        started.elapsed().as_secs_f64()
    );
    let lake = match Lake::open(lake_location).await {
        Ok(lake) => lake,
        Err(carelake_lake::Error::KeyRequired(_)) => {
            println!(
                "The lake is encrypted: open it with the master key it had when the backup was \
                 taken, and run `carelake check` on it."
            );
            return Ok(());
        }
        Err(e) => return Err(e).context("opening the restored lake"),
    };
    let report = lake.check(false).await?;
    for table in m.tables.iter() {
        let found = report.tables.iter().find(|t| t.path == table.path);
        if found.and_then(|t| t.version) != Some(table.version) {
            bail!(
                "the restored {} is not at version {} as backed up",
                table.path,
                table.version
            );
        }
    }
    print_problems(&report.problems, &report.warnings);
    if !report.is_sound() {
        return Err(CheckFailed(report.problems.len()).into());
    }
    let mut record = AuditRecord::new(Principal::local_admin().name, "cli", "restore");
    record.statement = Some("carelake restore".into());
    record.detail = Some(format!("restored backup {}", m.id));
    lake.audit_append(vec![record]).await?;
    println!("Checked: every table opens and every file is in place.");
    Ok(())
}

/// The backup at `location` whose id is `id`, if `id` is one.
async fn by_id(location: &str, id: &str) -> Result<Option<BackupManifest>> {
    if !id.contains('T') || !id.ends_with('Z') || id.contains(':') {
        return Ok(None);
    }
    let backups = carelake_lake::list_backups(location).await?;
    Ok(backups.into_iter().find(|b| b.id == id))
}

pub(crate) async fn check(lake_location: &str, args: CheckArgs) -> Result<()> {
    let started = Instant::now();
    if let Some(location) = &args.backup {
        let check = carelake_lake::check_backup(location).await?;
        for (id, path, what) in &check.problems {
            println!("problem: backup {id}: {path}: {what}");
        }
        println!(
            "{} backups, {} distinct files ({}) read and hashed in {:.1} s: {}.",
            check.backups,
            check.blobs,
            size(check.bytes),
            started.elapsed().as_secs_f64(),
            if check.problems.is_empty() {
                "all sound".to_string()
            } else {
                format!("{} problem(s)", check.problems.len())
            }
        );
        if !check.problems.is_empty() {
            return Err(CheckFailed(check.problems.len()).into());
        }
        return Ok(());
    }
    let lake = Lake::open(lake_location).await?;
    let report = lake.check(args.full).await?;
    print_problems(&report.problems, &report.warnings);
    let files: usize = report.tables.iter().map(|t| t.files).sum();
    let bytes: u64 = report.tables.iter().map(|t| t.bytes).sum();
    println!(
        "{} tables, {} data files ({}) checked{} in {:.1} s; audit chain: {}; {}.",
        report.tables.len(),
        files,
        size(bytes),
        if args.full { " page by page" } else { "" },
        started.elapsed().as_secs_f64(),
        match report.audit_records {
            Some(n) => format!("{n} records intact"),
            None => "see above".to_string(),
        },
        if report.is_sound() {
            "sound".to_string()
        } else {
            format!("{} problem(s)", report.problems.len())
        }
    );
    if !report.is_sound() {
        return Err(CheckFailed(report.problems.len()).into());
    }
    Ok(())
}

fn print_problems(problems: &[carelake_lake::Problem], warnings: &[carelake_lake::Problem]) {
    for (label, list) in [("problem", problems), ("warning", warnings)] {
        for p in list {
            match &p.file {
                Some(file) => println!("{label}: {}: {file}: {}", p.place, p.what),
                None => println!("{label}: {}: {}", p.place, p.what),
            }
        }
    }
}

/// Bytes for people: `12.3 MB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
