//! Running a project: models in dependency order, in parallel where the graph allows, each with
//! retries and backoff; a failed model stops only its descendants; every model's outcome goes
//! to the run history (`system.runs`), which is also the watermark of incremental models.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carelake_common::TableName;
use carelake_lake::{EntryKind, RunRecord, TimeTravel};
use carelake_sql::Session;
use chrono::Utc;
use tokio::task::JoinSet;

use crate::dag::Dag;
use crate::dq;
use crate::error::{Error, Result};
use crate::incremental;
use crate::mpi;
use crate::project::{Materialization, Model, Project};
use crate::sql_text::{self, assignments, equal_keys, first_count, prefixed, quote};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Selectors (`model`, `model+`, `+model`); empty runs everything.
    pub select: Vec<String>,
    /// Models running at once.
    pub concurrency: usize,
    /// Wait before the first retry; doubled for each further retry.
    pub backoff: Duration,
    /// Rebuild every selected model in full, even when nothing changed.
    pub full_refresh: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            select: Vec::new(),
            concurrency: 2,
            backoff: Duration::from_secs(1),
            full_refresh: false,
        }
    }
}

/// What happened to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    /// It ran and wrote its result.
    Success,
    /// Nothing it reads changed since its last success: nothing was written.
    UpToDate,
    /// Every attempt failed.
    Failed,
    /// A model it reads failed in this run.
    Skipped,
    /// A table it cannot do without is optional and does not exist yet: nothing was run.
    NoInput,
}

impl ModelStatus {
    /// The status as stored in the run history.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Success => "success",
            ModelStatus::UpToDate => "up_to_date",
            ModelStatus::Failed => "failed",
            ModelStatus::Skipped => "skipped",
            ModelStatus::NoInput => "no_input",
        }
    }
}

/// One model's outcome.
#[derive(Debug, Clone)]
pub struct ModelOutcome {
    /// The model.
    pub model: String,
    /// What it writes.
    pub target: String,
    /// How.
    pub materialization: Materialization,
    /// What happened.
    pub status: ModelStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Rows read (new rows for an incremental model).
    pub rows_in: u64,
    /// Rows in the target afterwards.
    pub rows_out: u64,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// Time taken.
    pub elapsed: Duration,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run's id in `system.runs`.
    pub run_id: String,
    /// Per selected model, in run order.
    pub outcomes: Vec<ModelOutcome>,
    /// Time taken.
    pub elapsed: Duration,
}

impl RunSummary {
    /// Whether every selected model succeeded or was up to date.
    pub fn ok(&self) -> bool {
        self.outcomes.iter().all(|o| {
            matches!(
                o.status,
                ModelStatus::Success | ModelStatus::UpToDate | ModelStatus::NoInput
            )
        })
    }
}

/// What executing a model produced.
pub(crate) struct Executed {
    pub(crate) status: ModelStatus,
    pub(crate) rows_in: u64,
    pub(crate) rows_out: u64,
    pub(crate) upstream_versions: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    NotSelected,
    Waiting,
    Running,
    Done(ModelStatus),
}

/// Runs the selected models of `project` against the session's lake.
pub async fn run(
    session: Arc<Session>,
    project: Arc<Project>,
    options: &RunOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    let dag = Arc::new(Dag::build(&project)?);
    let selected = dag.select(&project, &options.select)?;
    let history = session.lake().run_history();
    let last: Arc<HashMap<String, RunRecord>> = Arc::new(
        history
            .last_successes()
            .await?
            .into_iter()
            .map(|r| (r.model.clone(), r))
            .collect(),
    );
    let run_id = uuid::Uuid::new_v4().to_string();
    let n = project.models.len();
    let mut state: Vec<State> = selected
        .iter()
        .map(|s| {
            if *s {
                State::Waiting
            } else {
                State::NotSelected
            }
        })
        .collect();
    let mut outcomes: Vec<Option<(ModelOutcome, RunRecord)>> = vec![None; n];
    let mut running = JoinSet::new();
    let concurrency = options.concurrency.max(1);
    loop {
        // Start every model whose selected upstream models all ended well.
        for &i in &dag.order {
            if running.len() >= concurrency {
                break;
            }
            if state[i] != State::Waiting {
                continue;
            }
            let ready = dag.upstream[i].iter().all(|u| {
                matches!(
                    state[*u],
                    State::NotSelected
                        | State::Done(ModelStatus::Success)
                        | State::Done(ModelStatus::UpToDate)
                        | State::Done(ModelStatus::NoInput)
                )
            });
            if !ready {
                continue;
            }
            state[i] = State::Running;
            let session = Arc::clone(&session);
            let project = Arc::clone(&project);
            let dag = Arc::clone(&dag);
            let last = Arc::clone(&last);
            let options = options.clone();
            let run_id = run_id.clone();
            running.spawn(async move {
                let outcome = run_model(
                    &session,
                    &project.models,
                    &project.models[i],
                    &dag.inputs[i],
                    &last,
                    &options,
                    &run_id,
                )
                .await;
                (i, outcome)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, (outcome, record)) = joined.map_err(|e| Error::Model {
            model: "?".into(),
            reason: format!("a model task stopped: {e}"),
        })?;
        state[i] = State::Done(outcome.status);
        if outcome.status == ModelStatus::Failed {
            let failed = project.models[i].name.clone();
            for d in dag.descendants(i) {
                if state[d] == State::Waiting {
                    state[d] = State::Done(ModelStatus::Skipped);
                    let model = &project.models[d];
                    let now = Utc::now();
                    let outcome = ModelOutcome {
                        model: model.name.clone(),
                        target: targets(model),
                        materialization: model.materialization,
                        status: ModelStatus::Skipped,
                        attempts: 0,
                        rows_in: 0,
                        rows_out: 0,
                        error: Some(format!("upstream model {failed} failed")),
                        elapsed: Duration::ZERO,
                    };
                    let record = record_of(
                        &outcome,
                        model,
                        &run_id,
                        String::from("{}"),
                        session.principal().name.clone(),
                        now,
                        now,
                    );
                    outcomes[d] = Some((outcome, record));
                }
            }
        }
        outcomes[i] = Some((outcome, record));
    }
    let mut ordered = Vec::new();
    let mut records = Vec::new();
    for &i in &dag.order {
        if let Some((outcome, record)) = outcomes[i].take() {
            ordered.push(outcome);
            records.push(record);
        }
    }
    history.record(&records).await?;
    session.refresh().await?;
    Ok(RunSummary {
        run_id,
        outcomes: ordered,
        elapsed: started.elapsed(),
    })
}

fn targets(model: &Model) -> String {
    model
        .outputs()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn record_of(
    outcome: &ModelOutcome,
    model: &Model,
    run_id: &str,
    upstream_versions: String,
    principal: String,
    started_at: chrono::DateTime<Utc>,
    finished_at: chrono::DateTime<Utc>,
) -> RunRecord {
    RunRecord {
        run_id: run_id.to_string(),
        model: model.name.clone(),
        target: targets(model),
        materialization: model.materialization.as_str().to_string(),
        status: outcome.status.as_str().to_string(),
        attempts: i64::from(outcome.attempts),
        rows_in: outcome.rows_in as i64,
        rows_out: outcome.rows_out as i64,
        error: outcome.error.clone(),
        upstream_versions,
        definition_sha256: model.definition_sha256.clone(),
        principal,
        started_at,
        finished_at,
    }
}

/// An engine error with its quoted literals blanked (it goes to logs, the terminal and
/// `system.runs`).
pub(crate) fn redact(message: &str) -> String {
    carelake_common::redact_literals(message)
}

/// Errors no retry can cure: the model's SQL does not plan against the tables it reads.
fn is_permanent(error: &Error) -> bool {
    let text = error.to_string();
    [
        "Error during planning",
        "Schema error",
        "SQL error",
        "syntax",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Runs one model with its retries.
async fn run_model(
    session: &Session,
    models: &[Model],
    model: &Model,
    inputs: &[TableName],
    last: &HashMap<String, RunRecord>,
    options: &RunOptions,
    run_id: &str,
) -> (ModelOutcome, RunRecord) {
    let started = Instant::now();
    let started_at = Utc::now();
    let mut attempts = 0;
    let mut backoff = options.backoff;
    let result = loop {
        attempts += 1;
        match execute(
            session,
            models,
            model,
            inputs,
            last.get(&model.name),
            options,
        )
        .await
        {
            Ok(executed) => break Ok(executed),
            Err(e) if attempts > model.retries || is_permanent(&e) => break Err(e),
            Err(e) => {
                tracing::warn!(model = %model.name, attempt = attempts, error = %redact(&e.to_string()), "Model failed; retrying.");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    };
    let (status, rows_in, rows_out, error, upstream) = match result {
        Ok(e) => (e.status, e.rows_in, e.rows_out, None, e.upstream_versions),
        Err(e) => (
            ModelStatus::Failed,
            0,
            0,
            Some(redact(&e.to_string())),
            "{}".into(),
        ),
    };
    let outcome = ModelOutcome {
        model: model.name.clone(),
        target: targets(model),
        materialization: model.materialization,
        status,
        attempts,
        rows_in,
        rows_out,
        error,
        elapsed: started.elapsed(),
    };
    let record = record_of(
        &outcome,
        model,
        run_id,
        upstream,
        session.principal().name.clone(),
        started_at,
        Utc::now(),
    );
    (outcome, record)
}

/// The Delta version of each input that is a table (views have none), and the rows the
/// catalog counts in them.
async fn input_versions(
    session: &Session,
    inputs: &[TableName],
) -> Result<(BTreeMap<String, i64>, u64)> {
    let lake = session.lake();
    let mut versions = BTreeMap::new();
    let mut rows = 0u64;
    for input in inputs {
        let url = lake.table_url(input)?;
        if let Some(table) = lake.load_delta(&url, TimeTravel::Latest).await? {
            if let Some(v) = table.version() {
                versions.insert(input.to_string(), v as i64);
            }
            rows += carelake_lake::row_count(&table).unwrap_or(0).max(0) as u64;
        }
    }
    Ok((versions, rows))
}

/// Whether a table or view exists.
pub(crate) async fn table_exists(session: &Session, table: &TableName) -> Result<bool> {
    if let Some(entry) = session.lake().catalog().get(table).await?
        && entry.kind == EntryKind::View
    {
        return Ok(true);
    }
    let url = session.lake().table_url(table)?;
    Ok(session
        .lake()
        .load_delta(&url, TimeTravel::Latest)
        .await?
        .is_some())
}

/// Whether every table or view the model writes exists.
async fn outputs_exist(session: &Session, model: &Model) -> Result<bool> {
    let catalog = session.lake().catalog();
    for output in model.outputs() {
        match catalog.get(&output).await? {
            Some(entry) if entry.kind == EntryKind::View => {}
            Some(_) => {
                let url = session.lake().table_url(&output)?;
                if session
                    .lake()
                    .load_delta(&url, TimeTravel::Latest)
                    .await?
                    .is_none()
                {
                    return Ok(false);
                }
            }
            None => return Ok(false),
        }
    }
    Ok(true)
}

async fn count(session: &Session, table: &TableName) -> Result<u64> {
    let result = session
        .sql(&format!(
            "SELECT count(*) FROM {}.\"{}\"",
            table.zone, table.name
        ))
        .await?;
    Ok(first_count(&result))
}

/// Builds a model's table in full from its query.
async fn build_table(
    session: &Session,
    model: &Model,
    rows_in: u64,
    upstream_versions: String,
) -> Result<Executed> {
    let target = &model.target;
    session
        .sql(&format!(
            "CREATE OR REPLACE TABLE {} AS {}",
            sql_text::table(target),
            model.sql
        ))
        .await?;
    Ok(Executed {
        status: ModelStatus::Success,
        rows_in,
        rows_out: count(session, target).await?,
        upstream_versions,
    })
}

/// One attempt at a model.
async fn execute(
    session: &Session,
    models: &[Model],
    model: &Model,
    inputs: &[TableName],
    last: Option<&RunRecord>,
    options: &RunOptions,
) -> Result<Executed> {
    let mut missing = Vec::new();
    for table in &model.optional {
        if !table_exists(session, table).await? {
            missing.push(table.clone());
        }
    }
    let pruned;
    let model = if missing.is_empty() || model.builtin.is_some() {
        model
    } else {
        let sql =
            incremental::without_missing(&model.sql, &missing).map_err(|reason| Error::Model {
                model: model.name.clone(),
                reason,
            })?;
        let Some(sql) = sql else {
            tracing::info!(model = %model.name, missing = ?missing.iter().map(ToString::to_string).collect::<Vec<_>>(), "An optional input does not exist yet; the model is not run.");
            return Ok(Executed {
                status: ModelStatus::NoInput,
                rows_in: 0,
                rows_out: 0,
                upstream_versions: last
                    .map_or_else(|| "{}".into(), |l| l.upstream_versions.clone()),
            });
        };
        let mut m = model.clone();
        m.sql = sql;
        pruned = m;
        &pruned
    };
    let (versions, rows_in) = input_versions(session, inputs).await?;
    let upstream_versions = serde_json::to_string(&versions).unwrap_or_else(|_| "{}".into());
    let unchanged_definition = last.is_some_and(|l| l.definition_sha256 == model.definition_sha256);
    let exists = outputs_exist(session, model).await?;
    let up_to_date = !options.full_refresh
        && exists
        && unchanged_definition
        && last.is_some_and(|l| l.upstream_versions == upstream_versions);
    let target = &model.target;
    let target_sql = sql_text::table(target);
    if up_to_date {
        return Ok(Executed {
            status: ModelStatus::UpToDate,
            rows_in: 0,
            rows_out: last.map_or(0, |l| l.rows_out.max(0) as u64),
            upstream_versions,
        });
    }
    match model.materialization {
        Materialization::View => {
            session
                .sql(&format!(
                    "CREATE OR REPLACE VIEW {target_sql} AS {}",
                    model.sql
                ))
                .await?;
            Ok(Executed {
                status: ModelStatus::Success,
                rows_in,
                rows_out: 0,
                upstream_versions,
            })
        }
        Materialization::Table => build_table(session, model, rows_in, upstream_versions).await,
        Materialization::Scd2 => {
            execute_scd2(session, model, exists, rows_in, upstream_versions).await
        }
        Materialization::Incremental => {
            execute_incremental(
                session, model, inputs, last, options, exists, versions, rows_in,
            )
            .await
        }
        Materialization::Builtin => {
            let (rows_in, rows_out) = match &model.builtin {
                Some(crate::project::Builtin::Dq { .. }) => dq::run(session, model, models).await?,
                _ => mpi::run(session, model).await?,
            };
            Ok(Executed {
                status: ModelStatus::Success,
                rows_in,
                rows_out,
                upstream_versions,
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute_incremental(
    session: &Session,
    model: &Model,
    inputs: &[TableName],
    last: Option<&RunRecord>,
    options: &RunOptions,
    exists: bool,
    versions: BTreeMap<String, i64>,
    rows_in: u64,
) -> Result<Executed> {
    let model_error = |reason: String| Error::Model {
        model: model.name.clone(),
        reason,
    };
    let driving: Vec<TableName> = match (model.incremental_on.as_slice(), inputs) {
        ([], [only]) => vec![only.clone()],
        ([], _) => {
            return Err(model_error(
                "it reads several tables: name those whose loads drive it with `-- incremental_on: zone.table, …`"
                    .into(),
            ));
        }
        // Optional tables that do not exist are not read (their branches are left out).
        (on, _) => on
            .iter()
            .filter(|t| versions.contains_key(&t.to_string()))
            .cloned()
            .collect(),
    };
    let upstream_versions = serde_json::to_string(&versions).unwrap_or_else(|_| "{}".into());
    let target = &model.target;
    let target_sql = sql_text::table(target);
    let previous: Option<BTreeMap<String, i64>> = last
        .filter(|l| l.definition_sha256 == model.definition_sha256)
        .and_then(|l| serde_json::from_str::<BTreeMap<String, i64>>(&l.upstream_versions).ok())
        .filter(|_| exists && !options.full_refresh);
    let Some(previous) =
        previous.filter(|p| driving.iter().any(|d| p.contains_key(&d.to_string())))
    else {
        tracing::info!(model = %model.name, "Building an incremental model in full (first run, changed definition or full refresh).");
        return build_table(session, model, rows_in, upstream_versions).await;
    };
    // Each driving table read last time is cut to its newer loads; one that appeared since
    // is read whole.
    let watermarks: Vec<(TableName, i64)> = driving
        .iter()
        .filter_map(|d| previous.get(&d.to_string()).map(|v| (d.clone(), *v)))
        .collect();
    let changed = driving
        .iter()
        .any(|d| previous.get(&d.to_string()) != versions.get(&d.to_string()));
    if !changed {
        return Ok(Executed {
            status: ModelStatus::UpToDate,
            rows_in: 0,
            rows_out: count(session, target).await?,
            upstream_versions,
        });
    }
    let source = incremental::rewrite(&model.sql, &watermarks).map_err(model_error)?;
    let new_rows = session
        .sql(&format!("SELECT count(*) FROM ({source}) AS new_rows"))
        .await;
    let new_rows = match new_rows {
        Ok(result) => first_count(&result),
        Err(e) => {
            // A version read last time is gone (vacuumed): rebuild in full; merging by
            // the unique key makes this the same result.
            tracing::warn!(model = %model.name, error = %redact(&e.to_string()), "Watermark unreadable; rebuilding in full.");
            return build_table(session, model, rows_in, upstream_versions).await;
        }
    };
    if new_rows == 0 {
        return Ok(Executed {
            status: ModelStatus::UpToDate,
            rows_in: 0,
            rows_out: count(session, target).await?,
            upstream_versions,
        });
    }
    let columns = sql_text::query_columns(session, &source).await?;
    check_unique_key(model, &columns)?;
    let on = equal_keys("t", "s", &model.unique_key);
    let set = assignments(&columns);
    let names = sql_text::columns(&columns);
    let values = prefixed("s", &columns);
    session
        .sql(&format!(
            "MERGE INTO {target_sql} AS t USING ({source}) AS s ON {on} \
             WHEN MATCHED THEN UPDATE SET {set} \
             WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
        ))
        .await?;
    Ok(Executed {
        status: ModelStatus::Success,
        rows_in: new_rows,
        rows_out: count(session, target).await?,
        upstream_versions,
    })
}

/// Every unique key column must be in the model's result.
fn check_unique_key(model: &Model, columns: &[String]) -> Result<()> {
    match model.unique_key.iter().find(|k| !columns.contains(k)) {
        Some(key) => Err(Error::Model {
            model: model.name.clone(),
            reason: format!("unique_key column {key:?} is not in its result"),
        }),
        None => Ok(()),
    }
}

/// The timestamp type of `effective_from` and `effective_to`.
const SCD2_TIMESTAMP: &str = "'Timestamp(Microsecond, Some(\"UTC\"))'";

/// A type-2 slowly changing dimension: versions closed and opened by comparing each key's
/// current row with the query's row (a hash of all its columns).
async fn execute_scd2(
    session: &Session,
    model: &Model,
    exists: bool,
    rows_in: u64,
    upstream_versions: String,
) -> Result<Executed> {
    let target = &model.target;
    let target_sql = sql_text::table(target);
    let columns = sql_text::query_columns(session, &model.sql).await?;
    check_unique_key(model, &columns)?;
    for reserved in ["effective_from", "effective_to", "is_current", "row_hash"] {
        if columns.iter().any(|c| c == reserved) {
            return Err(Error::Model {
                model: model.name.clone(),
                reason: format!("{reserved} is added by scd2; the query cannot have it"),
            });
        }
    }
    let now = format!(
        "arrow_cast('{}', {SCD2_TIMESTAMP})",
        Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    let no_time = format!("arrow_cast(NULL, {SCD2_TIMESTAMP})");
    let hash = format!(
        "md5(concat_ws('|', {}))",
        columns
            .iter()
            .map(|c| format!("coalesce(CAST(s.{} AS VARCHAR), '(null)')", quote(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let new_version = format!(
        "SELECT s.*, {hash} AS row_hash, {now} AS effective_from, {no_time} AS effective_to, true AS is_current FROM ({}) AS s",
        model.sql
    );
    if !exists {
        session
            .sql(&format!(
                "CREATE OR REPLACE TABLE {target_sql} AS {new_version}"
            ))
            .await?;
    } else {
        let on = equal_keys("t", "s", &model.unique_key);
        // Close the current version of every key whose row changed.
        session
            .sql(&format!(
                "MERGE INTO {target_sql} AS t USING (SELECT s.*, {hash} AS row_hash FROM ({}) AS s) AS s \
                 ON {on} AND t.is_current = true \
                 WHEN MATCHED AND t.row_hash <> s.row_hash THEN UPDATE SET effective_to = {now}, is_current = false",
                model.sql
            ))
            .await?;
        // Open a version for every key without a current one (new keys and those just closed).
        let current = equal_keys("c", "s", &model.unique_key);
        session
            .sql(&format!(
                "INSERT INTO {target_sql} {new_version} WHERE NOT EXISTS (SELECT 1 FROM {target_sql} AS c WHERE c.is_current = true AND {current})"
            ))
            .await?;
    }
    Ok(Executed {
        status: ModelStatus::Success,
        rows_in,
        rows_out: count(session, target).await?,
        upstream_versions,
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn quoted_values_are_blanked() {
        assert_eq!(
            redact("Cast error: Cannot cast string 'Smith, John' to value of Int64 type"),
            "Cast error: Cannot cast string '…' to value of Int64 type"
        );
        assert_eq!(
            redact("No field named no_such_column."),
            "No field named no_such_column."
        );
    }
}
