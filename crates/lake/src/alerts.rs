//! Alert rules and their deliveries. Rules are an append-only Delta table of events at
//! `<lake>/_carelake/alerts` (saved, dropped, ran), folded in time order; every delivery
//! attempt (and every row held back by suppression) is a row of
//! `<lake>/_carelake/alert_deliveries`, which `system.alert_deliveries` shows and from which
//! suppression is decided.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::util::create_system_table;
use crate::util::{
    SystemBatch, append_events, append_to_system_table, int_column, read_events, read_table,
    text_at, text_column, time_column,
};
use crate::{Error, Lake, Result, TimeTravel};

static DELIVERIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("at", ts, false),
        Field::new("alert", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("alert_key", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("attempt", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("response_code", DataType::Int64, true),
        Field::new("detail", DataType::Utf8, true),
    ]))
});

/// Where an alert goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// An HTTP POST of the alert as JSON, signed with HMAC-SHA256.
    Webhook {
        /// The URL.
        url: String,
    },
    /// A Slack-compatible incoming webhook (`{"text": …}`).
    Slack {
        /// The URL.
        url: String,
    },
    /// Email over SMTP.
    Email {
        /// The recipients.
        to: Vec<String>,
        /// The SMTP server as a URL: `smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
        /// `smtps://host:465`.
        via: String,
    },
}

impl Channel {
    /// `webhook`, `slack` or `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } => "slack",
            Channel::Email { .. } => "email",
        }
    }

    /// Where it goes, without credentials (for listings).
    pub fn target(&self) -> String {
        let strip = |u: &str| match url::Url::parse(u) {
            Ok(mut url) => {
                let _ = url.set_password(None);
                let _ = url.set_username("");
                url.set_query(None);
                url.to_string()
            }
            Err(_) => "(invalid URL)".into(),
        };
        match self {
            Channel::Webhook { url } | Channel::Slack { url } => strip(url),
            Channel::Email { to, via } => format!("{} via {}", to.join(", "), strip(via)),
        }
    }
}

/// An alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// The rule's name (lower case).
    pub name: String,
    /// Who created it: the query runs as them.
    pub owner: String,
    /// Whether the owner is the lake's local owner (the command line without `--as`), whose
    /// roles are not in the users table.
    pub owner_local: bool,
    /// The query; each row is an alert.
    pub query: String,
    /// How often it runs under `carelake serve --schedules`.
    pub every_seconds: u64,
    /// Where alerts go.
    pub channel: Channel,
    /// An alert sent for a key is not sent again for this long.
    pub suppress_seconds: Option<u64>,
    /// The columns that make a row's key (none: the whole row).
    pub per: Vec<String>,
    /// Outreach outcomes after which a key is not alerted again (empty: none).
    pub until_outcomes: Vec<String>,
    /// Delivery attempts after the first.
    pub retries: u32,
    /// The wait before the first retry; each further one waits twice as long.
    pub backoff_ms: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A change to the alert rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AlertEvent {
    /// A rule was created or replaced.
    Saved(AlertRule),
    /// A rule was dropped.
    Dropped {
        /// The rule.
        name: String,
    },
    /// A rule ran (for the schedule).
    Ran {
        /// The rule.
        name: String,
        /// When (the run's clock).
        at: DateTime<Utc>,
    },
}

/// One delivery attempt, or a row held back.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// When (the run's clock).
    pub at: DateTime<Utc>,
    /// The rule.
    pub alert: String,
    /// The run it belongs to.
    pub run_id: String,
    /// The row's key (a JSON array of the key columns' values).
    pub key: String,
    /// `webhook`, `slack`, `email`.
    pub channel: String,
    /// 1 for the first try (0 for a row held back).
    pub attempt: i64,
    /// `sent`, `failed` (will be retried), `dead_letter` (the last try failed),
    /// `suppressed` (sent within the window), `completed` (an outreach closed it).
    pub status: String,
    /// The HTTP status or SMTP reply code.
    pub response_code: Option<i64>,
    /// Why it failed (no row data).
    pub detail: Option<String>,
}

/// A rule with its last run.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleState {
    /// The rule.
    pub rule: AlertRule,
    /// Its last run.
    pub last_run: Option<DateTime<Utc>>,
}

/// The alerts of a lake.
#[derive(Debug, Clone)]
pub struct AlertStore {
    lake: Lake,
}

impl AlertStore {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// The deliveries table's URL, for SQL access.
    pub fn deliveries_url(&self) -> Result<url::Url> {
        self.lake.system_table_url("alert_deliveries")
    }

    /// Appends an event.
    pub async fn record(&self, event: &AlertEvent, by: &Principal) -> Result<()> {
        append_events(
            &self.lake,
            "alerts",
            "carelake alert rules",
            std::slice::from_ref(event),
            by,
            Error::Alerts,
        )
        .await
    }

    /// The rules in force, by name, with their last runs.
    pub async fn rules(&self) -> Result<BTreeMap<String, RuleState>> {
        let mut rules = BTreeMap::new();
        let events: Vec<AlertEvent> = read_events(&self.lake, "alerts", Error::Alerts).await?;
        for event in events {
            match event {
                AlertEvent::Saved(rule) => {
                    rules.insert(
                        rule.name.clone(),
                        RuleState {
                            rule,
                            last_run: None,
                        },
                    );
                }
                AlertEvent::Dropped { name } => {
                    rules.remove(&name);
                }
                AlertEvent::Ran { name, at } => {
                    if let Some(state) = rules.get_mut(&name) {
                        state.last_run = Some(state.last_run.map_or(at, |l| l.max(at)));
                    }
                }
            }
        }
        Ok(rules)
    }

    /// Appends delivery records in one commit.
    pub async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        create_system_table(
            &self.lake,
            "alert_deliveries",
            &DELIVERIES_SCHEMA,
            "carelake alert deliveries: every attempt and every row held back",
        )
        .await?;
        let batch = RecordBatch::try_new(
            Arc::clone(&DELIVERIES_SCHEMA),
            vec![
                time_column(deliveries, |d| d.at),
                text_column(deliveries, |d| Some(d.alert.clone())),
                text_column(deliveries, |d| Some(d.run_id.clone())),
                text_column(deliveries, |d| Some(d.key.clone())),
                text_column(deliveries, |d| Some(d.channel.clone())),
                int_column(deliveries, |d| d.attempt),
                text_column(deliveries, |d| Some(d.status.clone())),
                Arc::new(
                    deliveries
                        .iter()
                        .map(|d| d.response_code)
                        .collect::<arrow::array::Int64Array>(),
                ),
                text_column(deliveries, |d| d.detail.clone()),
            ],
        )?;
        append_to_system_table(&self.lake, "alert_deliveries", batch).await
    }

    /// Every delivery of `alert` (with status and time), oldest first.
    pub async fn deliveries(&self, alert: &str) -> Result<Vec<Delivery>> {
        let Some(table) = self
            .lake
            .load_delta(&self.deliveries_url()?, TimeTravel::Latest)
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for batch in read_table(&table).await? {
            let batch = SystemBatch::new(&batch, "alert_deliveries", Error::Alerts);
            let at = batch.time("at")?;
            let (alert_col, run_id, key) = (
                batch.text("alert")?,
                batch.text("run_id")?,
                batch.text("alert_key")?,
            );
            let (channel, status, detail) = (
                batch.text("channel")?,
                batch.text("status")?,
                batch.text("detail")?,
            );
            let (attempt, code) = (batch.int("attempt")?, batch.int("response_code")?);
            for i in 0..batch.num_rows() {
                if text_at(&alert_col, i).as_deref() != Some(alert) {
                    continue;
                }
                out.push(Delivery {
                    at: DateTime::from_timestamp_micros(at.value(i)).unwrap_or_default(),
                    alert: alert.to_string(),
                    run_id: text_at(&run_id, i).unwrap_or_default(),
                    key: text_at(&key, i).unwrap_or_default(),
                    channel: text_at(&channel, i).unwrap_or_default(),
                    attempt: attempt.value(i),
                    status: text_at(&status, i).unwrap_or_default(),
                    response_code: (!code.is_null(i)).then(|| code.value(i)),
                    detail: text_at(&detail, i),
                });
            }
        }
        out.sort_by_key(|d| (d.at, d.attempt));
        Ok(out)
    }
}
