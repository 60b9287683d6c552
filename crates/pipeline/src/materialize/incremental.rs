//! Incremental models: the rows that changed upstream since the last run, merged on the
//! model's unique key (or appended).

use std::collections::BTreeMap;

use carelake_common::TableName;
use carelake_lake::RunRecord;
use carelake_sql::Session;

use super::count;
use super::table::build_table;
use crate::error::{Error, Result};
use crate::incremental;
use crate::project::Model;
use crate::runner::redact;
use crate::runner::{Executed, ModelStatus, RunOptions};
use crate::sql_text::{self, assignments, equal_keys, first_count, prefixed};

#[allow(clippy::too_many_arguments)]
pub(crate) async fn execute_incremental(
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
pub(crate) fn check_unique_key(model: &Model, columns: &[String]) -> Result<()> {
    match model.unique_key.iter().find(|k| !columns.contains(k)) {
        Some(key) => Err(Error::Model {
            model: model.name.clone(),
            reason: format!("unique_key column {key:?} is not in its result"),
        }),
        None => Ok(()),
    }
}
