//! Alert rules in SQL:
//!
//! ```sql
//! CREATE [OR REPLACE] ALERT high_risk AS
//!     SELECT person_key, encounter_id, facility_id, lace_score FROM analytics.worklist_readmission_risk WHERE risk = 'high'
//!   EVERY '15 minutes'
//!   NOTIFY WEBHOOK 'https://care.example.org/hooks/carelake'   -- or SLACK 'https://hooks…'
//!                                                              -- or EMAIL 'a@x.org, b@x.org' VIA 'smtp://mail:25'
//!   [SUPPRESS FOR '24 hours' PER (person_key, encounter_id)]
//!   [UNTIL OUTREACH IN ('reached', 'declined')]
//!   [OPTIONS (retries = 4, backoff = '2s')];
//! DROP ALERT [IF EXISTS] high_risk;
//! SHOW ALERTS;
//! ```
//!
//! The rule is checked as its creator when it is created (the query must plan under their
//! grants), and runs as its owner (`carelake alert run`, `carelake serve --schedules`).
//! Creating one takes CREATE on the analytics zone; the message carries only the columns
//! the query selects.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use carelake_lake::{AlertEvent, AlertRule, Channel, Privilege};
use datafusion::logical_expr::LogicalPlan;

use crate::session::Touched;
use crate::statement::split_outside_quotes;
use crate::{Error, QueryResult, Result, Session};

/// An alert statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AlertStatement {
    Create {
        or_replace: bool,
        rule: Box<AlertRule>,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
    Show,
}

/// A duration as people write it: `'15 minutes'`, `'24 hours'`, `'2s'`, `'100ms'`, `'1 day'`.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| Error::Syntax(format!("{text:?} is not a duration such as '15 minutes'")))?;
    let seconds = match unit.trim() {
        "ms" | "millisecond" | "milliseconds" => value / 1000.0,
        "s" | "sec" | "secs" | "second" | "seconds" => value,
        "m" | "min" | "mins" | "minute" | "minutes" => value * 60.0,
        "h" | "hour" | "hours" => value * 3600.0,
        "d" | "day" | "days" => value * 86400.0,
        _ => {
            return Err(Error::Syntax(format!(
                "{text:?}: the unit is ms, seconds, minutes, hours or days"
            )));
        }
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(Error::Syntax(format!("{text:?} is not a duration")));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// The byte offset of `keyword` as a whole word outside quotes and parentheses, from `from`.
fn find_keyword(sql: &str, from: usize, keyword: &str) -> Option<usize> {
    let bytes = sql.as_bytes();
    let (mut depth, mut quote) = (0usize, None::<u8>);
    let mut i = from;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'\'' | b'"' => quote = Some(c),
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ if depth == 0
                    && sql[i..]
                        .get(..keyword.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
                    && (i == 0
                        || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_')
                    && bytes
                        .get(i + keyword.len())
                        .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_') =>
                {
                    return Some(i);
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

fn quoted(token: Option<&String>, what: &str) -> Result<String> {
    token
        .filter(|t| t.starts_with('\''))
        .map(|t| t[1..].to_string())
        .ok_or_else(|| Error::Syntax(format!("expected {what} in quotes")))
}

fn word(tokens: &[String], i: usize) -> String {
    tokens
        .get(i)
        .map(|t| t.to_ascii_uppercase())
        .unwrap_or_default()
}

/// A parenthesised list of names or quoted strings at `tokens[i]` (`(`); the values and the
/// index after `)`.
fn list(tokens: &[String], mut i: usize, what: &str) -> Result<(Vec<String>, usize)> {
    if tokens.get(i).map(String::as_str) != Some("(") {
        return Err(Error::Syntax(format!("expected ( before {what}")));
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        match tokens.get(i).map(String::as_str) {
            None => return Err(Error::Syntax(format!("unclosed list of {what}"))),
            Some(")") => return Ok((out, i + 1)),
            Some(",") => {}
            Some(t) => out.push(
                t.strip_prefix('\'')
                    .unwrap_or(t)
                    .replace('"', "")
                    .to_ascii_lowercase(),
            ),
        }
        i += 1;
    }
}

/// Recognises an alert statement; `None` for anything else.
pub(crate) fn parse_alert(sql: &str) -> Result<Option<AlertStatement>> {
    let sql = sql.trim().trim_end_matches(';').trim();
    let head: Vec<String> = sql
        .split_whitespace()
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    match head.as_slice() {
        ["SHOW", "ALERTS", ..] => {
            if head.len() > 2 {
                return Err(Error::Syntax("SHOW ALERTS takes nothing more".into()));
            }
            return Ok(Some(AlertStatement::Show));
        }
        ["DROP", "ALERT", ..] => {
            let tokens = crate::statement::tokenize(sql)?;
            let if_exists = word(&tokens, 2) == "IF" && word(&tokens, 3) == "EXISTS";
            let at = if if_exists { 4 } else { 2 };
            let name = tokens
                .get(at)
                .ok_or_else(|| Error::Syntax("expected an alert name".into()))?
                .to_ascii_lowercase();
            carelake_lake::check_role_name(&name).map_err(|e| Error::Syntax(e.to_string()))?;
            if tokens.len() > at + 1 {
                return Err(Error::Syntax(
                    "unexpected text after DROP ALERT name".into(),
                ));
            }
            return Ok(Some(AlertStatement::Drop { name, if_exists }));
        }
        ["CREATE", "ALERT", ..] | ["CREATE", "OR", "REPLACE", "ALERT"] => {}
        _ => return Ok(None),
    }
    let or_replace = head[1] == "OR";
    let as_at = find_keyword(sql, 0, "AS")
        .ok_or_else(|| Error::Syntax("expected CREATE ALERT name AS query EVERY …".into()))?;
    let name_tokens = crate::statement::tokenize(&sql[..as_at])?;
    let name = name_tokens
        .last()
        .filter(|_| name_tokens.len() == if or_replace { 5 } else { 3 })
        .ok_or_else(|| Error::Syntax("expected CREATE ALERT name AS …".into()))?
        .to_ascii_lowercase();
    carelake_lake::check_role_name(&name).map_err(|e| Error::Syntax(format!("alert {e}")))?;
    let every_at = find_keyword(sql, as_at + 2, "EVERY").ok_or_else(|| {
        Error::Syntax("expected EVERY '<interval>' after the alert's query".into())
    })?;
    let mut query = sql[as_at + 2..every_at].trim();
    if query.starts_with('(') && query.ends_with(')') {
        query = query[1..query.len() - 1].trim();
    }
    if query.is_empty() {
        return Err(Error::Syntax("the alert has no query".into()));
    }
    let tokens = crate::statement::tokenize(&sql[every_at..])?;
    let every = parse_duration(&quoted(tokens.get(1), "the interval after EVERY")?)?;
    if every.as_secs() < 60 {
        return Err(Error::Syntax("EVERY is a minute or more".into()));
    }
    let mut i = 2;
    if word(&tokens, i) != "NOTIFY" {
        return Err(Error::Syntax(
            "expected NOTIFY WEBHOOK | SLACK | EMAIL".into(),
        ));
    }
    let channel = match word(&tokens, i + 1).as_str() {
        "WEBHOOK" | "SLACK" => {
            let url = quoted(tokens.get(i + 2), "the URL")?;
            check_url(&url, &["http", "https"])?;
            i += 3;
            if word(&tokens, i - 2) == "SLACK" {
                Channel::Slack { url }
            } else {
                Channel::Webhook { url }
            }
        }
        "EMAIL" => {
            let to: Vec<String> = quoted(tokens.get(i + 2), "the recipients")?
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
            if to.is_empty() || to.iter().any(|a| !a.contains('@')) {
                return Err(Error::Syntax(
                    "EMAIL names addresses such as 'team@hospital.org'".into(),
                ));
            }
            if word(&tokens, i + 3) != "VIA" {
                return Err(Error::Syntax(
                    "expected EMAIL '<to>' VIA 'smtp://host:port'".into(),
                ));
            }
            let via = quoted(tokens.get(i + 4), "the SMTP server URL")?;
            check_url(&via, &["smtp", "smtps"])?;
            i += 5;
            Channel::Email { to, via }
        }
        other => {
            return Err(Error::Syntax(format!(
                "unknown channel {other:?}: WEBHOOK, SLACK or EMAIL"
            )));
        }
    };
    let mut rule = AlertRule {
        name,
        owner: String::new(),
        owner_local: false,
        query: query.to_string(),
        every_seconds: every.as_secs(),
        channel,
        suppress_seconds: None,
        per: Vec::new(),
        until_outcomes: Vec::new(),
        retries: 3,
        backoff_ms: 2000,
        created_at: chrono::Utc::now(),
    };
    while i < tokens.len() {
        match word(&tokens, i).as_str() {
            "SUPPRESS" => {
                if word(&tokens, i + 1) != "FOR" {
                    return Err(Error::Syntax("expected SUPPRESS FOR '<duration>'".into()));
                }
                rule.suppress_seconds =
                    Some(parse_duration(&quoted(tokens.get(i + 2), "the duration")?)?.as_secs());
                i += 3;
                if word(&tokens, i) == "PER" {
                    let (per, next) = list(&tokens, i + 1, "key columns")?;
                    rule.per = per;
                    i = next;
                }
            }
            "UNTIL" => {
                if word(&tokens, i + 1) != "OUTREACH" || word(&tokens, i + 2) != "IN" {
                    return Err(Error::Syntax(
                        "expected UNTIL OUTREACH IN ('reached', …)".into(),
                    ));
                }
                let (outcomes, next) = list(&tokens, i + 3, "outreach outcomes")?;
                rule.until_outcomes = outcomes;
                i = next;
            }
            "OPTIONS" => {
                let start = sql[every_at..]
                    .to_ascii_uppercase()
                    .rfind("OPTIONS")
                    .map(|p| every_at + p + "OPTIONS".len())
                    .unwrap_or(sql.len());
                let inner = sql[start..].trim();
                let inner = inner
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(')'))
                    .ok_or_else(|| {
                        Error::Syntax("expected OPTIONS (key = value, …) last".into())
                    })?;
                for part in split_outside_quotes(inner, ',') {
                    let (key, value) = part.split_once('=').ok_or_else(|| {
                        Error::Syntax(format!("alert option {part:?}: key = value"))
                    })?;
                    let value = value.trim().trim_matches('\'');
                    match key.trim().to_ascii_lowercase().as_str() {
                        "retries" => {
                            rule.retries =
                                value.parse().ok().filter(|r| *r <= 10).ok_or_else(|| {
                                    Error::Syntax("retries is a whole number up to 10".into())
                                })?
                        }
                        "backoff" => rule.backoff_ms = parse_duration(value)?.as_millis() as u64,
                        other => {
                            return Err(Error::Syntax(format!(
                                "unknown alert option {other} (known: retries, backoff)"
                            )));
                        }
                    }
                }
                i = tokens.len();
            }
            other => {
                return Err(Error::Syntax(format!(
                    "unexpected {other:?} in CREATE ALERT (SUPPRESS FOR, UNTIL OUTREACH IN, OPTIONS)"
                )));
            }
        }
    }
    Ok(Some(AlertStatement::Create {
        or_replace,
        rule: Box::new(rule),
    }))
}

fn check_url(text: &str, schemes: &[&str]) -> Result<()> {
    let url = url::Url::parse(text)
        .map_err(|_| Error::Syntax("the channel's URL cannot be parsed".into()))?;
    if !schemes.contains(&url.scheme()) || url.host_str().is_none() {
        return Err(Error::Syntax(format!(
            "the channel's URL must be {} with a host",
            schemes.join(" or ")
        )));
    }
    Ok(())
}

fn text(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// A duration in words for listings.
fn words(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s % 86400 == 0 && s > 0 => (s / 86400, "day"),
        s if s % 3600 == 0 && s > 0 => (s / 3600, "hour"),
        s if s % 60 == 0 && s > 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

impl Session {
    /// The alert rules this principal may see: every rule for an admin, their own otherwise.
    pub(crate) async fn visible_alerts(&self) -> Result<Vec<carelake_lake::RuleState>> {
        let rules = self.guard.rules();
        Ok(self
            .lake
            .alerts()
            .rules()
            .await?
            .into_values()
            .filter(|s| rules.admin || s.rule.owner == rules.user)
            .collect())
    }

    /// The rules as rows, for `SHOW ALERTS` and `system.alerts`.
    pub(crate) fn alert_rows(states: &[carelake_lake::RuleState]) -> Result<RecordBatchResult> {
        let col = |f: &dyn Fn(&carelake_lake::RuleState) -> Option<String>| {
            text(states.iter().map(f).collect())
        };
        let columns = vec![
            ("name", col(&|s| Some(s.rule.name.clone()))),
            ("owner", col(&|s| Some(s.rule.owner.clone()))),
            ("every", col(&|s| Some(words(s.rule.every_seconds)))),
            ("channel", col(&|s| Some(s.rule.channel.kind().to_string()))),
            ("target", col(&|s| Some(s.rule.channel.target()))),
            ("suppress_for", col(&|s| s.rule.suppress_seconds.map(words))),
            ("per", col(&|s| Some(s.rule.per.join(", ")))),
            (
                "until_outreach",
                col(&|s| Some(s.rule.until_outcomes.join(", "))),
            ),
            ("retries", col(&|s| Some(s.rule.retries.to_string()))),
            ("query", col(&|s| Some(s.rule.query.clone()))),
            ("created_at", col(&|s| Some(s.rule.created_at.to_rfc3339()))),
            ("last_run", col(&|s| s.last_run.map(|t| t.to_rfc3339()))),
        ];
        let schema = Arc::new(arrow::datatypes::Schema::new(
            columns
                .iter()
                .map(|(n, _)| {
                    arrow::datatypes::Field::new(*n, arrow::datatypes::DataType::Utf8, true)
                })
                .collect::<Vec<_>>(),
        ));
        let batch = arrow::array::RecordBatch::try_new(
            Arc::clone(&schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )?;
        Ok(RecordBatchResult { schema, batch })
    }

    pub(crate) async fn alert_statement(
        &self,
        statement: AlertStatement,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.action = Some("alert");
        let rules = self.guard.rules();
        let store = self.lake.alerts();
        match statement {
            AlertStatement::Show => {
                let rows = Self::alert_rows(&self.visible_alerts().await?)?;
                Ok(QueryResult {
                    schema: rows.schema,
                    batches: vec![rows.batch],
                    message: None,
                })
            }
            AlertStatement::Drop { name, if_exists } => {
                let existing = store.rules().await?.remove(&name);
                match existing {
                    Some(s) if rules.admin || s.rule.owner == rules.user => {
                        store
                            .record(&AlertEvent::Dropped { name }, &self.principal)
                            .await?;
                        self.refresh().await?;
                        Ok(QueryResult::message("DROP ALERT"))
                    }
                    Some(_) => Err(Error::PermissionDenied(format!(
                        "dropping alert {name}: only its owner or an admin"
                    ))),
                    None if if_exists => Ok(QueryResult::message("DROP ALERT")),
                    None => Err(Error::Syntax(format!("no alert {name}"))),
                }
            }
            AlertStatement::Create { or_replace, rule } => {
                let mut rule = *rule;
                if !rules.allows_on(Privilege::Create, "analytics", &rule.name) {
                    return Err(Error::PermissionDenied(
                        "CREATE ALERT takes CREATE on the analytics zone".into(),
                    ));
                }
                if let Some(existing) = store.rules().await?.get(&rule.name) {
                    if !or_replace {
                        return Err(Error::Syntax(format!(
                            "alert {} exists: CREATE OR REPLACE ALERT changes it",
                            rule.name
                        )));
                    }
                    if !(rules.admin || existing.rule.owner == rules.user) {
                        return Err(Error::PermissionDenied(format!(
                            "replacing alert {}: only its owner or an admin",
                            rule.name
                        )));
                    }
                }
                // The query must plan as its creator, and name the key columns.
                let plan = self.ctx.state().create_logical_plan(&rule.query).await?;
                if matches!(
                    plan,
                    LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Copy(_)
                ) {
                    return Err(Error::Syntax("an alert's query is a SELECT".into()));
                }
                self.authorize(&plan)?;
                if let Ok(optimized) = self.ctx.state().optimize(&plan) {
                    touched.read(&optimized);
                }
                let columns: Vec<String> = plan
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().to_ascii_lowercase())
                    .collect();
                for key in &rule.per {
                    if !columns.contains(key) {
                        return Err(Error::Syntax(format!(
                            "PER names {key}, which the alert's query does not select"
                        )));
                    }
                }
                if !rule.until_outcomes.is_empty() && !columns.iter().any(|c| c == "person_key") {
                    return Err(Error::Syntax(
                        "UNTIL OUTREACH matches outreach by person: the query must select person_key"
                            .into(),
                    ));
                }
                rule.owner = self.principal.name.clone();
                rule.owner_local = self.origin.local;
                rule.created_at = chrono::Utc::now();
                store
                    .record(&AlertEvent::Saved(rule), &self.principal)
                    .await?;
                self.refresh().await?;
                Ok(QueryResult::message("CREATE ALERT"))
            }
        }
    }
}

/// One batch and its schema.
pub(crate) struct RecordBatchResult {
    pub(crate) schema: arrow::datatypes::SchemaRef,
    pub(crate) batch: arrow::array::RecordBatch,
}

/// Options of the alert parser, for tests.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_alert() {
        let Some(AlertStatement::Create { or_replace, rule }) = parse_alert(
            "CREATE OR REPLACE ALERT high_risk AS SELECT person_key, x FROM analytics.w WHERE risk = 'high' AND note <> 'every' \
             EVERY '15 minutes' NOTIFY WEBHOOK 'https://h.example/x?a=1' SUPPRESS FOR '24 hours' PER (person_key) \
             UNTIL OUTREACH IN ('reached', 'declined') OPTIONS (retries = 2, backoff = '100ms')",
        )
        .unwrap() else {
            panic!()
        };
        assert!(or_replace);
        assert_eq!(rule.name, "high_risk");
        assert_eq!(
            rule.query,
            "SELECT person_key, x FROM analytics.w WHERE risk = 'high' AND note <> 'every'"
        );
        assert_eq!(rule.every_seconds, 900);
        assert_eq!(rule.suppress_seconds, Some(86400));
        assert_eq!(rule.per, ["person_key"]);
        assert_eq!(rule.until_outcomes, ["reached", "declined"]);
        assert_eq!((rule.retries, rule.backoff_ms), (2, 100));
        assert_eq!(rule.channel.target(), "https://h.example/x");
    }

    #[test]
    fn channels_and_mistakes() {
        let Some(AlertStatement::Create { rule, .. }) = parse_alert(
            "CREATE ALERT a AS (SELECT 1 AS n) EVERY '1 hour' NOTIFY EMAIL 'a@x.org, b@x.org' VIA 'smtp://u:secret@mail:25'",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            rule.channel,
            Channel::Email {
                to: vec!["a@x.org".into(), "b@x.org".into()],
                via: "smtp://u:secret@mail:25".into()
            }
        );
        assert!(!rule.channel.target().contains("secret"));
        assert!(matches!(
            parse_alert("CREATE ALERT s AS SELECT 1 EVERY '5 minutes' NOTIFY SLACK 'https://hooks.example/T1'")
                .unwrap(),
            Some(AlertStatement::Create { rule, .. }) if matches!(rule.channel, Channel::Slack { .. })
        ));
        assert_eq!(
            parse_alert("SHOW ALERTS").unwrap(),
            Some(AlertStatement::Show)
        );
        assert_eq!(
            parse_alert("DROP ALERT IF EXISTS a").unwrap(),
            Some(AlertStatement::Drop {
                name: "a".into(),
                if_exists: true
            })
        );
        assert_eq!(parse_alert("CREATE TABLE t AS SELECT 1").unwrap(), None);
        for bad in [
            "CREATE ALERT a AS SELECT 1 EVERY '10 seconds' NOTIFY WEBHOOK 'https://h/x'",
            "CREATE ALERT a AS SELECT 1 EVERY '1 hour' NOTIFY WEBHOOK 'file:///etc/passwd'",
            "CREATE ALERT a AS SELECT 1 EVERY '1 hour' NOTIFY PAGER 'x'",
            "CREATE ALERT a AS SELECT 1 NOTIFY WEBHOOK 'https://h/x'",
            "CREATE ALERT a AS SELECT 1 EVERY '1 hour' NOTIFY WEBHOOK 'https://h/x' SUPPRESS '1 day'",
            "CREATE ALERT a AS SELECT 1 EVERY '1 hour' NOTIFY EMAIL 'nobody' VIA 'smtp://m'",
        ] {
            assert!(parse_alert(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms").unwrap().as_millis(), 100);
        assert_eq!(parse_duration("2 s").unwrap().as_secs(), 2);
        assert_eq!(parse_duration("1 day").unwrap().as_secs(), 86400);
        assert!(parse_duration("soon").is_err());
    }
}
