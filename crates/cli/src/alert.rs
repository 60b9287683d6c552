//! `carelake alert`: run an alert rule once, or show the key its webhooks are signed with.

use anyhow::{Context, Result};
use carelake_lake::Lake;
use clap::{Args, Subcommand};

/// `carelake alert run NAME [--now T] | secret NAME`
#[derive(Debug, Args)]
pub(crate) struct AlertArgs {
    #[command(subcommand)]
    which: AlertCommand,
}

#[derive(Debug, Subcommand)]
enum AlertCommand {
    /// Run a rule once (as its owner): deliver what is due, hold back what is suppressed, and
    /// print the counts.
    Run {
        /// The rule (SHOW ALERTS lists them).
        name: String,
        /// The time the run takes as now (RFC 3339), for suppression windows and the records;
        /// the clock's time without it.
        #[arg(long)]
        now: Option<String>,
    },
    /// Print the key the rule's webhook requests are signed with (hex), for the receiver to
    /// check `X-Carelake-Signature: sha256=HMAC(key, timestamp + "." + body)`.
    Secret {
        /// The rule.
        name: String,
    },
}

pub(crate) async fn run(lake_location: &str, args: AlertArgs) -> Result<()> {
    let lake = Lake::open(lake_location).await?;
    match args.which {
        AlertCommand::Run { name, now } => {
            let now = match now {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .context("--now takes an RFC 3339 time, e.g. 2026-12-01T08:00:00Z")?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let report = carelake_alert::run_alert(&lake, &name.to_ascii_lowercase(), now).await?;
            println!(
                "Alert {name}: {} row(s); {} sent, {} suppressed, {} closed by outreach, {} retried attempt(s), {} dead-lettered.",
                report.rows,
                report.sent,
                report.suppressed,
                report.completed,
                report.retried,
                report.dead_letter
            );
            Ok(())
        }
        AlertCommand::Secret { name } => {
            let name = name.to_ascii_lowercase();
            if !lake.alerts().rules().await?.contains_key(&name) {
                anyhow::bail!("no alert {name}");
            }
            println!(
                "{}",
                hex::encode(carelake_alert::webhook_secret(&lake.secret().await?, &name))
            );
            Ok(())
        }
    }
}
