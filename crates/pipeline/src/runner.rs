//! Running a project: models in dependency order, in parallel where the graph allows, each with
//! retries and backoff; a failed model stops only its descendants; every model's outcome goes
//! to the run history (`system.runs`), which is also the watermark of incremental models.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carelake_common::TableName;
use carelake_lake::RunRecord;
use carelake_sql::Session;
use chrono::Utc;
use tokio::task::JoinSet;

use crate::dag::Dag;
use crate::error::{Error, Result};
use crate::materialize::execute;
use crate::project::{Materialization, Model, Project};

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

/// A model's time, for `/metrics` (model names are the project's, never data).
fn metrics_of(model: &str, status: ModelStatus, elapsed: Duration) {
    metrics::histogram!(
        carelake_common::metrics::MODEL_SECONDS,
        "model" => model.to_string(),
        "status" => status.as_str()
    )
    .record(elapsed.as_secs_f64());
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
    metrics_of(&model.name, status, started.elapsed());
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
