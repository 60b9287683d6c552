//! One run of a rule: query as the owner, hold back what suppression and outreach say, deliver
//! the rest with retries, record every attempt.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use carelake_common::{Interface, Origin, Principal};
use carelake_lake::{AlertEvent, AlertRule, Delivery, Lake};
use carelake_sql::{FileAccess, Session};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::deliver::{Alert, Sender, webhook_secret};
use crate::{Error, Result};

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows the query returned.
    pub rows: usize,
    /// Alerts delivered.
    pub sent: usize,
    /// Rows held back: alerted within the suppression window.
    pub suppressed: usize,
    /// Rows held back: an outreach outcome the rule names closed the key.
    pub completed: usize,
    /// Failed attempts that were retried.
    pub retried: usize,
    /// Alerts whose last attempt failed.
    pub dead_letter: usize,
}

/// The rows of a query result as JSON objects.
fn rows_as_json(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>> {
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::json::writer::LineDelimitedWriter::new(&mut buffer);
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    let mut out = Vec::new();
    for line in buffer.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(line) {
            out.push(map);
        }
    }
    Ok(out)
}

/// The session a rule's query runs in: its owner's, on carelake's own interface.
async fn owner_session(lake: &Lake, rule: &AlertRule) -> Result<Session> {
    let (principal, local) = if rule.owner_local {
        (
            Principal::new(rule.owner.clone(), vec!["admin".into()]),
            true,
        )
    } else {
        (Principal::new(rule.owner.clone(), Vec::new()), false)
    };
    let origin = Origin {
        interface: Interface::Internal,
        peer: None,
        local,
    };
    Ok(Session::open_with(lake.clone(), principal, origin, FileAccess::default()).await?)
}

/// Outreach outcomes per person (`raw.outreach_events`), read by carelake itself to decide
/// suppression; none of it is sent.
async fn outreach(lake: &Lake) -> Result<HashMap<String, Vec<(String, DateTime<Utc>)>>> {
    let session = Session::open(lake.clone(), Principal::system()).await?;
    let mut out: HashMap<String, Vec<(String, DateTime<Utc>)>> = HashMap::new();
    let result = match session
        .sql(
            "SELECT CAST(person_key AS VARCHAR) AS person_key, lower(outcome) AS outcome, \
                    CAST(recorded_at AS TIMESTAMP) AS recorded_at \
             FROM raw.outreach_events WHERE person_key IS NOT NULL AND outcome IS NOT NULL",
        )
        .await
    {
        Ok(r) => r,
        // No outreach recorded yet.
        Err(_) => return Ok(out),
    };
    for batch in &result.batches {
        let person = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let person = person.as_string::<i32>();
        let outcome = arrow::compute::cast(batch.column(1), &DataType::Utf8)?;
        let outcome = outcome.as_string::<i32>();
        let at = arrow::compute::cast(
            batch.column(2),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )?;
        let at = at.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            if person.is_null(i) || outcome.is_null(i) || at.is_null(i) {
                continue;
            }
            if let Some(t) = DateTime::from_timestamp_micros(at.value(i)) {
                out.entry(person.value(i).to_string())
                    .or_default()
                    .push((outcome.value(i).to_string(), t));
            }
        }
    }
    Ok(out)
}

fn key_of(rule: &AlertRule, row: &Map<String, Value>) -> Value {
    if rule.per.is_empty() {
        return Value::Object(row.clone());
    }
    Value::Array(
        rule.per
            .iter()
            .map(|c| {
                row.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(c))
                    .map_or(Value::Null, |(_, v)| v.clone())
            })
            .collect(),
    )
}

/// Runs the rule `name` once at `now` (the clock suppression and the records use).
pub async fn run_alert(lake: &Lake, name: &str, now: DateTime<Utc>) -> Result<Report> {
    let store = lake.alerts();
    let rule = store
        .rules()
        .await?
        .remove(name)
        .ok_or_else(|| Error::NotFound(name.to_string()))?
        .rule;
    let session = owner_session(lake, &rule).await?;
    let result = session.sql(&rule.query).await?;
    let rows = rows_as_json(&result.batches)?;
    let history = store.deliveries(name).await?;
    let mut first_sent: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut last_sent: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for d in history.iter().filter(|d| d.status == "sent") {
        first_sent.entry(d.key.clone()).or_insert(d.at);
        let last = last_sent.entry(d.key.clone()).or_insert(d.at);
        *last = (*last).max(d.at);
    }
    let outreach = if rule.until_outcomes.is_empty() {
        HashMap::new()
    } else {
        outreach(lake).await?
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    let sender = Sender::new(webhook_secret(&lake.secret().await?, &rule.name));
    let mut report = Report {
        rows: rows.len(),
        ..Report::default()
    };
    let mut records = Vec::new();
    let record =
        |key: &str, attempt: i64, status: &str, code: Option<i64>, detail: Option<String>| {
            Delivery {
                at: now,
                alert: rule.name.clone(),
                run_id: run_id.clone(),
                key: key.to_string(),
                channel: rule.channel.kind().to_string(),
                attempt,
                status: status.to_string(),
                response_code: code,
                detail,
            }
        };
    let mut seen_this_run = std::collections::BTreeSet::new();
    for row in &rows {
        let key = key_of(&rule, row);
        let key_text = key.to_string();
        if !seen_this_run.insert(key_text.clone()) {
            // One alert per key per run.
            continue;
        }
        if let Some(window) = rule.suppress_seconds
            && last_sent
                .get(&key_text)
                .is_some_and(|at| now - *at < chrono::Duration::seconds(window as i64))
        {
            report.suppressed += 1;
            records.push(record(&key_text, 0, "suppressed", None, None));
            continue;
        }
        if !rule.until_outcomes.is_empty() {
            let person = row
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("person_key"))
                .map(|(_, v)| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            let since = first_sent.get(&key_text).copied().unwrap_or(
                now - chrono::Duration::seconds(rule.suppress_seconds.unwrap_or(86_400) as i64),
            );
            let closed = person.and_then(|p| outreach.get(&p)).is_some_and(|events| {
                events
                    .iter()
                    .any(|(outcome, at)| *at >= since && rule.until_outcomes.contains(outcome))
            });
            if closed {
                report.completed += 1;
                records.push(record(&key_text, 0, "completed", None, None));
                continue;
            }
        }
        let alert = Alert {
            name: &rule.name,
            run_id: &run_id,
            fired_at: now,
            key: &key,
            row,
        };
        let tries = i64::from(rule.retries) + 1;
        for attempt in 1..=tries {
            let outcome = sender.send(&rule.channel, &alert).await;
            if outcome.delivered {
                report.sent += 1;
                records.push(record(&key_text, attempt, "sent", outcome.code, None));
                break;
            }
            if attempt == tries {
                report.dead_letter += 1;
                records.push(record(
                    &key_text,
                    attempt,
                    "dead_letter",
                    outcome.code,
                    outcome.detail,
                ));
                break;
            }
            report.retried += 1;
            records.push(record(
                &key_text,
                attempt,
                "failed",
                outcome.code,
                outcome.detail,
            ));
            let wait = rule
                .backoff_ms
                .saturating_mul(1u64 << (attempt - 1).min(16));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
    store.record_deliveries(&records).await?;
    store
        .record(
            &AlertEvent::Ran {
                name: rule.name.clone(),
                at: now,
            },
            &Principal::system(),
        )
        .await?;
    tracing::info!(
        alert = %rule.name,
        rows = report.rows,
        sent = report.sent,
        suppressed = report.suppressed,
        completed = report.completed,
        dead_letter = report.dead_letter,
        "Alert ran."
    );
    Ok(report)
}

/// Runs every rule whose interval has passed since its last run (or that never ran).
pub async fn run_due(lake: &Lake, now: DateTime<Utc>) -> Vec<(String, Result<Report>)> {
    let rules = match lake.alerts().rules().await {
        Ok(r) => r,
        Err(e) => return vec![(String::new(), Err(e.into()))],
    };
    let mut out = Vec::new();
    for (name, state) in rules {
        let due = state.last_run.is_none_or(|last| {
            now - last >= chrono::Duration::seconds(state.rule.every_seconds as i64)
        });
        if due {
            let result = run_alert(lake, &name, now).await;
            out.push((name, result));
        }
    }
    out
}
