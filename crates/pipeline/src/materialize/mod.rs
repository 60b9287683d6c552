//! Materialising a model, one strategy per file: a view (`view.rs`), a table rebuilt in full
//! (`table.rs`), an incremental merge of what changed upstream (`incremental.rs`) and a type-2
//! slowly changing dimension (`scd2.rs`); the built-in models (data quality, the master patient
//! index) are in `dq.rs` and `mpi.rs`. `execute` is one attempt at a model: inputs checked,
//! skipped when nothing it reads changed, then its strategy.

use std::collections::BTreeMap;

use carelake_common::TableName;
use carelake_lake::{EntryKind, RunRecord, TimeTravel};
use carelake_sql::Session;

use crate::dq;
use crate::error::{Error, Result};
use crate::mpi;
use crate::project::{Materialization, Model};
use crate::runner::{Executed, ModelStatus, RunOptions};
use crate::sql_text::{self, first_count};

mod incremental;
mod scd2;
mod table;
mod view;

/// The Delta version of each input that is a table (views have none), and the rows the
/// catalog counts in them.
pub(crate) async fn input_versions(
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
pub(crate) async fn outputs_exist(session: &Session, model: &Model) -> Result<bool> {
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

pub(crate) async fn count(session: &Session, table: &TableName) -> Result<u64> {
    let result = session
        .sql(&format!(
            "SELECT count(*) FROM {}.\"{}\"",
            table.zone, table.name
        ))
        .await?;
    Ok(first_count(&result))
}

/// One attempt at a model.
pub(crate) async fn execute(
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
        let sql = crate::incremental::without_missing(&model.sql, &missing).map_err(|reason| {
            Error::Model {
                model: model.name.clone(),
                reason,
            }
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
    let _target_sql = sql_text::table(target);
    if up_to_date {
        return Ok(Executed {
            status: ModelStatus::UpToDate,
            rows_in: 0,
            rows_out: last.map_or(0, |l| l.rows_out.max(0) as u64),
            upstream_versions,
        });
    }
    match model.materialization {
        Materialization::View => view::build_view(session, model, rows_in, upstream_versions).await,
        Materialization::Table => {
            table::build_table(session, model, rows_in, upstream_versions).await
        }
        Materialization::Scd2 => {
            scd2::execute_scd2(session, model, exists, rows_in, upstream_versions).await
        }
        Materialization::Incremental => {
            incremental::execute_incremental(
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
