//! `carelake audit`: read and verify the audit log.

use anyhow::Result;
use carelake_lake::{Lake, Verification};
use clap::{Args, Subcommand};

/// `carelake audit [--user U] [--since T] [--limit N] | verify`
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    which: Option<AuditCommand>,
    /// Only this principal's records.
    #[arg(long)]
    user: Option<String>,
    /// Only records from this time on (RFC 3339, or a date).
    #[arg(long)]
    since: Option<String>,
    /// At most this many records, the newest.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain; names the first record that was edited, removed or moved,
    /// and exits with 4 when there is one.
    Verify,
}

/// The audit chain is broken.
#[derive(Debug)]
pub(crate) struct Broken {
    seq: i64,
    reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the audit log is broken at record {}: {}",
            self.seq, self.reason
        )
    }
}

impl std::error::Error for Broken {}

pub(crate) fn is_verification_failure(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Broken>().is_some()
}

fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    parse_instant(text, "--since")
}

/// An instant given to `flag`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC) or a date (its start,
/// UTC).
pub(crate) fn parse_instant(text: &str, flag: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for form in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, form) {
            return Ok(t.and_utc());
        }
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("{flag} takes an RFC 3339 time, YYYY-MM-DD HH:MM:SS (UTC) or a date")
    })?;
    Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

pub(crate) async fn run(lake_location: &str, args: AuditArgs) -> Result<()> {
    let lake = Lake::open(lake_location).await?;
    match args.which {
        Some(AuditCommand::Verify) => match lake.audit_verify().await? {
            Verification::Intact { records } => {
                println!(
                    "The audit log is intact: {records} record(s), each chained to the one before."
                );
                Ok(())
            }
            Verification::Broken { seq, reason } => Err(Broken { seq, reason }.into()),
        },
        None => {
            let since = args.since.as_deref().map(parse_since).transpose()?;
            let records: Vec<_> = lake
                .audit_records()
                .await?
                .into_iter()
                .filter(|r| args.user.as_ref().is_none_or(|u| *u == r.record.principal))
                .filter(|r| since.is_none_or(|s| r.record.at >= s))
                .collect();
            let skip = records.len().saturating_sub(args.limit);
            for r in &records[skip..] {
                let rec = &r.record;
                println!(
                    "{:>6} {} {:<12} {:<8} {:<9} {:<7} {}{}{}{}",
                    r.seq,
                    rec.at.format("%Y-%m-%dT%H:%M:%SZ"),
                    rec.principal,
                    rec.interface,
                    rec.action,
                    rec.outcome,
                    rec.statement.as_deref().unwrap_or(""),
                    rec.tables
                        .as_deref()
                        .map(|t| format!("  [tables: {t}]"))
                        .unwrap_or_default(),
                    rec.policies
                        .as_deref()
                        .map(|p| format!("  [policies: {p}]"))
                        .unwrap_or_default(),
                    rec.detail
                        .as_deref()
                        .map(|d| format!("  ({d})"))
                        .unwrap_or_default(),
                );
            }
            Ok(())
        }
    }
}
