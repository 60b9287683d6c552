//! Materialized views: `CREATE [OR REPLACE] MATERIALIZED VIEW [IF NOT EXISTS] zone.v AS query
//! [REFRESH EVERY 'interval' | REFRESH ON LOAD]`, `REFRESH MATERIALIZED VIEW zone.v` and
//! `DROP MATERIALIZED VIEW [IF EXISTS] zone.v`.
//!
//! A materialized view is a Delta table in its zone, written like `CREATE TABLE AS` (the same
//! privileges, its owner its creator, lineage in the catalog), plus a definition in
//! `_carelake/matviews`. Every refresh runs the query again with the owner's rights (never
//! the rights of whoever asked for the refresh, so that a refresh by an admin cannot widen
//! what the view's readers see) and records the Delta version of each table it read; a
//! refresh when none of them has a new version writes nothing. `carelake serve` refreshes
//! `EVERY` views when their interval has passed and `ON LOAD` views when a table they read
//! changed ([`refresh_due`]).

use std::collections::BTreeMap;

use carelake_common::{Interface, Origin, Principal, TableName};
use carelake_lake::{Lake, MatView, MatViewEvent, MatViewState, Refresh, TimeTravel};
use chrono::{DateTime, Utc};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::session::{QueryResult, Session, Touched, tables_read};
use crate::surface::FileAccess;
use crate::{Error, Result};

/// A materialized-view statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MatViewStatement {
    Create {
        name: String,
        query: String,
        refresh: Refresh,
        or_replace: bool,
        if_not_exists: bool,
    },
    Refresh {
        name: String,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
}

/// The words of `sql` up to `n`, upper-cased.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    sql.split_whitespace()
        .take(n)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Byte offset just after the first `n` words of `sql`.
fn after_words(sql: &str, n: usize) -> usize {
    let mut offset = 0;
    let mut rest = sql;
    for _ in 0..n {
        let trimmed = rest.trim_start();
        offset += rest.len() - trimmed.len();
        let word = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        offset += word;
        rest = &trimmed[word..];
    }
    offset
}

/// Recognises the statements; `None` for anything else.
pub(crate) fn parse_matview(sql: &str) -> Result<Option<MatViewStatement>> {
    let words = leading_words(sql, 12);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    // Names as written (the words above are upper-cased).
    let word = |i: usize| {
        sql.split_whitespace()
            .nth(i)
            .unwrap_or_default()
            .to_string()
    };
    match w.as_slice() {
        ["REFRESH", "MATERIALIZED", "VIEW", _] => {
            Ok(Some(MatViewStatement::Refresh { name: word(3) }))
        }
        ["REFRESH", "MATERIALIZED", "VIEW", ..] => Err(Error::Syntax(
            "expected REFRESH MATERIALIZED VIEW zone.name".into(),
        )),
        ["DROP", "MATERIALIZED", "VIEW", "IF", "EXISTS", _] => Ok(Some(MatViewStatement::Drop {
            name: word(5),
            if_exists: true,
        })),
        ["DROP", "MATERIALIZED", "VIEW", _] => Ok(Some(MatViewStatement::Drop {
            name: word(3),
            if_exists: false,
        })),
        ["DROP", "MATERIALIZED", ..] => Err(Error::Syntax(
            "expected DROP MATERIALIZED VIEW [IF EXISTS] zone.name".into(),
        )),
        ["CREATE", rest @ ..] => {
            let (or_replace, rest) = match rest {
                ["OR", "REPLACE", rest @ ..] => (true, rest),
                _ => (false, rest),
            };
            let ["MATERIALIZED", "VIEW", rest @ ..] = rest else {
                return Ok(None);
            };
            let (if_not_exists, rest) = match rest {
                ["IF", "NOT", "EXISTS", rest @ ..] => (true, rest),
                _ => (false, rest),
            };
            let skipped = 1 + 2 * usize::from(or_replace) + 2 + 3 * usize::from(if_not_exists);
            let (Some(_), Some(&"AS")) = (rest.first(), rest.get(1)) else {
                return Err(Error::Syntax(
                    "expected CREATE MATERIALIZED VIEW zone.name AS query".into(),
                ));
            };
            let name = sql.split_whitespace().nth(skipped).unwrap_or_default();
            let body = sql[after_words(sql, skipped + 2)..].trim();
            let (query, refresh) = split_refresh(body)?;
            if query.is_empty() {
                return Err(Error::Syntax("a materialized view needs a query".into()));
            }
            Ok(Some(MatViewStatement::Create {
                name: name.to_string(),
                query: query.to_string(),
                refresh,
                or_replace,
                if_not_exists,
            }))
        }
        _ => Ok(None),
    }
}

/// The query and the trailing `REFRESH …` clause, if any.
fn split_refresh(body: &str) -> Result<(&str, Refresh)> {
    // The last `REFRESH` outside quotes and parentheses starts the clause.
    let bytes = body.as_bytes();
    let last = crate::statement::outside_quotes(body)
        .filter(|&(i, c, depth)| {
            depth == 0
                && c.eq_ignore_ascii_case(&'r')
                && body[i..]
                    .get(..7)
                    .is_some_and(|w| w.eq_ignore_ascii_case("refresh"))
                && (i == 0 || bytes[i - 1].is_ascii_whitespace() || bytes[i - 1] == b')')
                && body[i + 7..].starts_with(char::is_whitespace)
        })
        .map(|(i, _, _)| i)
        .last();
    let Some(at) = last else {
        return Ok((body, Refresh::Manual));
    };
    let clause = body[at + 7..].trim();
    let upper = clause.to_ascii_uppercase();
    let refresh = if upper == "ON LOAD" {
        Refresh::OnLoad
    } else if upper == "MANUAL" {
        Refresh::Manual
    } else if let Some(interval) = upper.strip_prefix("EVERY") {
        let interval = interval.trim();
        let quoted = interval
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .ok_or_else(|| {
                Error::Syntax("REFRESH EVERY expects an interval such as '1 hour'".into())
            })?;
        let every = crate::alert::parse_duration(quoted)?;
        if every.as_secs() < 1 {
            return Err(Error::Syntax(
                "REFRESH EVERY needs at least one second".into(),
            ));
        }
        Refresh::Every {
            seconds: every.as_secs(),
        }
    } else {
        return Err(Error::Syntax(
            "expected REFRESH EVERY 'interval', REFRESH ON LOAD or REFRESH MANUAL".into(),
        ));
    };
    Ok((body[..at].trim(), refresh))
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The rows were computed again.
    Rows(u64),
    /// No table the view reads had changed: nothing was written.
    UpToDate,
}

impl Session {
    pub(crate) async fn matview_statement(
        &self,
        statement: MatViewStatement,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.action = Some("materialized_view");
        match statement {
            MatViewStatement::Create {
                name,
                query,
                refresh,
                or_replace,
                if_not_exists,
            } => {
                let name = self.resolve_object_text(&name)?;
                touched.tables.insert(name.to_string());
                let exists = self
                    .lake
                    .load_delta(&self.lake.table_url(&name)?, TimeTravel::Latest)
                    .await?
                    .is_some()
                    || self.lake.catalog().get(&name).await?.is_some();
                if exists && !or_replace {
                    if if_not_exists {
                        return Ok(QueryResult::message("CREATE MATERIALIZED VIEW (exists)"));
                    }
                    return Err(carelake_lake::Error::TableExists(name.to_string()).into());
                }
                let view = MatView {
                    name: name.to_string(),
                    sql: query,
                    refresh,
                    owner: self.principal.name.clone(),
                    owner_local: self.origin.local,
                };
                let written = self.materialize(&view, true).await?;
                let rows = written.1;
                self.lake
                    .matviews()
                    .record(&MatViewEvent::Defined(view.clone()), &self.principal)
                    .await?;
                self.record_refresh(&view, written).await?;
                Ok(QueryResult::message(format!(
                    "CREATE MATERIALIZED VIEW {rows} rows"
                )))
            }
            MatViewStatement::Refresh { name } => {
                let name = self.resolve_object_text(&name)?;
                touched.tables.insert(name.to_string());
                self.require_owner(&name, "REFRESH")?;
                let state = self.matview(&name).await?;
                let outcome = refresh_one(&self.lake, &state, true).await?;
                self.refresh().await?;
                Ok(QueryResult::message(match outcome {
                    Refreshed::Rows(rows) => format!("REFRESH MATERIALIZED VIEW {rows} rows"),
                    Refreshed::UpToDate => {
                        "REFRESH MATERIALIZED VIEW 0 rows (up to date: no table it reads changed)"
                            .to_string()
                    }
                }))
            }
            MatViewStatement::Drop { name, if_exists } => {
                let name = self.resolve_object_text(&name)?;
                touched.tables.insert(name.to_string());
                // Asked first, so that a user who may not drop it learns nothing of it.
                self.require_owner(&name, "DROP")?;
                if !self
                    .lake
                    .matviews()
                    .list()
                    .await?
                    .contains_key(&name.to_string())
                {
                    if if_exists {
                        return Ok(QueryResult::message("DROP MATERIALIZED VIEW (absent)"));
                    }
                    return Err(Error::Syntax(format!("{name} is not a materialized view")));
                }
                // Its definition goes with its table (see `Session::drop`).
                self.drop(name, carelake_lake::EntryKind::Table, true)
                    .await?;
                Ok(QueryResult::message("DROP MATERIALIZED VIEW"))
            }
        }
    }

    fn resolve_object_text(&self, name: &str) -> Result<TableName> {
        let text = name.replace('"', "").to_ascii_lowercase();
        let qualified = if text.contains('.') {
            text
        } else {
            format!("{}.{text}", crate::session::DEFAULT_ZONE)
        };
        Ok(qualified.parse()?)
    }

    async fn matview(&self, name: &TableName) -> Result<MatViewState> {
        self.lake
            .matviews()
            .list()
            .await?
            .remove(&name.to_string())
            .ok_or_else(|| Error::Syntax(format!("{name} is not a materialized view")))
    }

    /// Computes the view's rows in this session (whose principal is the owner) and writes
    /// them as the whole table; returns the versions read and the rows written. `create`
    /// checks the privileges of `CREATE TABLE AS`.
    async fn materialize(
        &self,
        view: &MatView,
        create: bool,
    ) -> Result<(BTreeMap<String, i64>, u64)> {
        let name: TableName = view.name.parse()?;
        let ctas = format!("CREATE OR REPLACE TABLE {name} AS {}", view.sql);
        let mut statements = DFParser::parse_sql_with_dialect(&ctas, &GenericDialect {})
            .map_err(|e| Error::Syntax(e.to_string()))?;
        let statement = statements
            .pop_front()
            .filter(|_| statements.is_empty())
            .ok_or_else(|| Error::Syntax("a materialized view's query is one statement".into()))?;
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create_table)) = &plan else {
            return Err(Error::Syntax(
                "a materialized view's query must be a SELECT".into(),
            ));
        };
        if create {
            self.authorize(&plan)?;
        } else {
            self.require_owner(&name, "REFRESH")?;
        }
        let input = create_table.input.as_ref().clone();
        let upstream = tables_read(&input, self)?;
        if upstream.contains(&name) {
            return Err(Error::Syntax(format!(
                "the materialized view {name} cannot read itself"
            )));
        }
        let versions = versions_of(&self.lake, &upstream).await?;
        let existing = self
            .lake
            .load_delta(&self.lake.table_url(&name)?, TimeTravel::Latest)
            .await?;
        let rows = self
            .write_table(
                &name,
                existing,
                input,
                true,
                "materialized view",
                upstream,
                None,
            )
            .await?;
        Ok((versions, rows))
    }

    async fn record_refresh(
        &self,
        view: &MatView,
        (versions, rows): (BTreeMap<String, i64>, u64),
    ) -> Result<()> {
        self.lake
            .matviews()
            .record(
                &MatViewEvent::Refreshed {
                    name: view.name.clone(),
                    versions,
                    rows,
                    at: Utc::now(),
                },
                &self.principal,
            )
            .await?;
        Ok(())
    }
}

/// The current Delta version of each lake table in `tables`.
async fn versions_of(lake: &Lake, tables: &[TableName]) -> Result<BTreeMap<String, i64>> {
    let mut versions = BTreeMap::new();
    for table in tables {
        if let Some(delta) = lake
            .load_delta(&lake.table_url(table)?, TimeTravel::Latest)
            .await?
        {
            versions.insert(table.to_string(), delta.version().map_or(-1, |v| v as i64));
        }
    }
    Ok(versions)
}

/// A session as the view's owner, on carelake's own interface.
async fn owner_session(lake: &Lake, view: &MatView) -> Result<Session> {
    let roles = if view.owner_local {
        vec!["admin".to_string()]
    } else {
        Vec::new()
    };
    let origin = Origin {
        interface: Interface::Internal,
        peer: None,
        local: view.owner_local,
    };
    Session::open_with(
        lake.clone(),
        Principal::new(view.owner.clone(), roles),
        origin,
        FileAccess::default(),
    )
    .await
}

/// Refreshes one view as its owner; unless `force`, only when a table it reads has a new
/// version. `REFRESH MATERIALIZED VIEW` and `EVERY` views always compute again (a query may
/// depend on the time of day, as `now()` does); `ON LOAD` views only after a change.
async fn refresh_one(lake: &Lake, state: &MatViewState, force: bool) -> Result<Refreshed> {
    if !force && state.refreshed_at.is_some() {
        // Compared before any session is opened: most checks of an ON LOAD view find
        // nothing new.
        let name: TableName = state.view.name.parse()?;
        let exists = lake
            .load_delta(&lake.table_url(&name)?, TimeTravel::Latest)
            .await?
            .is_some();
        let upstream: Vec<TableName> = state
            .versions
            .keys()
            .filter_map(|t| t.parse().ok())
            .collect();
        if exists && versions_of(lake, &upstream).await? == state.versions {
            return Ok(Refreshed::UpToDate);
        }
    }
    let session = owner_session(lake, &state.view).await?;
    let written = session.materialize(&state.view, false).await?;
    let rows = written.1;
    session.record_refresh(&state.view, written).await?;
    Ok(Refreshed::Rows(rows))
}

/// Refreshes the views that are due at `now`: `EVERY` views whose interval has passed and
/// `ON LOAD` views a table of which has a new version, each as its owner; with `on_load_only`
/// (after a load) only the latter. Returns each view tried with its outcome.
pub async fn refresh_due(
    lake: &Lake,
    now: DateTime<Utc>,
    on_load_only: bool,
) -> Vec<(String, Result<Refreshed>)> {
    let views = match lake.matviews().list().await {
        Ok(views) => views,
        Err(e) => return vec![("materialized views".into(), Err(e.into()))],
    };
    let mut outcomes = Vec::new();
    for (name, state) in views {
        let due = match state.view.refresh {
            Refresh::Manual => false,
            Refresh::Every { seconds } => {
                !on_load_only
                    && state.refreshed_at.is_none_or(|at| {
                        now.signed_duration_since(at).num_seconds() >= seconds as i64
                    })
            }
            Refresh::OnLoad => true,
        };
        if !due {
            continue;
        }
        let outcome = refresh_one(
            lake,
            &state,
            matches!(state.view.refresh, Refresh::Every { .. }),
        )
        .await;
        // An up-to-date ON LOAD view is the common case: not worth a line.
        if !matches!(outcome, Ok(Refreshed::UpToDate)) {
            outcomes.push((name, outcome));
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_statements() {
        assert_eq!(
            parse_matview(
                "CREATE MATERIALIZED VIEW analytics.daily AS SELECT d, count(*) FROM raw.t GROUP BY d REFRESH EVERY '1 hour'"
            )
            .unwrap(),
            Some(MatViewStatement::Create {
                name: "analytics.daily".into(),
                query: "SELECT d, count(*) FROM raw.t GROUP BY d".into(),
                refresh: Refresh::Every { seconds: 3600 },
                or_replace: false,
                if_not_exists: false,
            })
        );
        assert_eq!(
            parse_matview(
                "create or replace materialized view if not exists a.b as select (select 1 refresh) AS x refresh on load"
            )
            .unwrap(),
            Some(MatViewStatement::Create {
                name: "a.b".into(),
                query: "select (select 1 refresh) AS x".into(),
                refresh: Refresh::OnLoad,
                or_replace: true,
                if_not_exists: true,
            })
        );
        assert!(matches!(
            parse_matview("CREATE MATERIALIZED VIEW v AS SELECT 'refresh me' AS r").unwrap(),
            Some(MatViewStatement::Create {
                refresh: Refresh::Manual,
                ..
            })
        ));
        assert_eq!(
            parse_matview("refresh materialized view analytics.daily").unwrap(),
            Some(MatViewStatement::Refresh {
                name: "analytics.daily".into()
            })
        );
        assert_eq!(
            parse_matview("DROP MATERIALIZED VIEW IF EXISTS analytics.daily").unwrap(),
            Some(MatViewStatement::Drop {
                name: "analytics.daily".into(),
                if_exists: true
            })
        );
        assert_eq!(parse_matview("CREATE VIEW v AS SELECT 1").unwrap(), None);
        assert_eq!(parse_matview("SELECT 1").unwrap(), None);
        assert!(parse_matview("CREATE MATERIALIZED VIEW v SELECT 1").is_err());
        assert!(parse_matview("CREATE MATERIALIZED VIEW v AS SELECT 1 REFRESH SOMETIMES").is_err());
        assert!(
            parse_matview("CREATE MATERIALIZED VIEW v AS SELECT 1 REFRESH EVERY '0 s'").is_err()
        );
    }
}
