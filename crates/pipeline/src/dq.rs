//! Data quality as a built-in model, in the spirit of OHDSI's Data Quality Dashboard: each run
//! checks the input tables and appends one row per check to `<zone>.dq_results`.
//!
//! - completeness: NULLs per column; key columns (the models' unique keys, `*_key`)
//!   must have none, other columns are reported with no threshold;
//! - validity: rows with a reason in a `*_invalid_reason` column (5% threshold);
//! - uniqueness: rows sharing a model's unique key (the current versions of an scd2 model);
//!   none allowed;
//! - plausibility: rows with an `implausible_reason` (1%), and lengths of stay outside 0–365
//!   days (none allowed).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::TableName;
use carelake_sql::Session;
use chrono::Utc;

use crate::error::{Error, Result};
use crate::project::{Builtin, Materialization, Model};
use crate::sql_text::quote;

struct Check {
    table: String,
    column: String,
    check: &'static str,
    rows: i64,
    violating: i64,
    threshold_pct: Option<f64>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "checked_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("check_name", DataType::Utf8, false),
        Field::new("rows_checked", DataType::Int64, false),
        Field::new("rows_violating", DataType::Int64, false),
        Field::new("pct_violating", DataType::Float64, false),
        Field::new("threshold_pct", DataType::Float64, true),
        Field::new("status", DataType::Utf8, false),
    ]))
}

fn ints(result: &carelake_sql::QueryResult) -> Result<Vec<i64>> {
    let Some(batch) = result.batches.first() else {
        return Ok(Vec::new());
    };
    (0..batch.num_columns())
        .map(|c| {
            let column = arrow::compute::cast(batch.column(c), &DataType::Int64)?;
            Ok(column.as_any().downcast_ref::<Int64Array>().map_or(0, |a| {
                if a.is_empty() || a.is_null(0) {
                    0
                } else {
                    a.value(0)
                }
            }))
        })
        .collect()
}

/// Runs the checks; returns the rows checked and the checks written.
pub(crate) async fn run(session: &Session, model: &Model, models: &[Model]) -> Result<(u64, u64)> {
    let Some(Builtin::Dq { inputs }) = &model.builtin else {
        return Err(Error::Model {
            model: model.name.clone(),
            reason: "not the dq model".into(),
        });
    };
    let mut checks = Vec::new();
    let mut rows_in = 0u64;
    for table in inputs {
        // An input from an optional feed that was never loaded has nothing to check.
        if !crate::materialize::table_exists(session, table).await? {
            continue;
        }
        let table_sql = crate::sql_text::table(table);
        let columns: Vec<(String, DataType)> = session
            .context()
            .sql(&format!("SELECT * FROM {table_sql} LIMIT 0"))
            .await?
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let writer = models.iter().find(|m| m.outputs().contains(table));
        let keys: Vec<String> = writer.map(|m| m.unique_key.clone()).unwrap_or_default();
        // One scan: the row count, non-NULLs per column, reasons and range violations.
        let mut exprs = vec!["count(*)".to_string()];
        for (name, _) in &columns {
            exprs.push(format!("count({})", quote(name)));
        }
        let los = columns.iter().any(|(n, _)| n == "length_of_stay_days");
        if los {
            exprs.push(
                "sum(CASE WHEN length_of_stay_days < 0 OR length_of_stay_days > 365 THEN 1 ELSE 0 END)"
                    .into(),
            );
        }
        let counts = ints(
            &session
                .sql(&format!("SELECT {} FROM {table_sql}", exprs.join(", ")))
                .await?,
        )?;
        let rows = counts.first().copied().unwrap_or(0);
        rows_in += rows.max(0) as u64;
        for (i, (name, _)) in columns.iter().enumerate() {
            let non_null = counts.get(i + 1).copied().unwrap_or(0);
            let is_key = keys.contains(name) || name.ends_with("_key");
            if name.ends_with("_invalid_reason") || name == "implausible_reason" {
                let validity = name.ends_with("_invalid_reason");
                checks.push(Check {
                    table: table.to_string(),
                    column: name.trim_end_matches("_invalid_reason").to_string(),
                    check: if validity { "validity" } else { "plausibility" },
                    rows,
                    violating: non_null,
                    threshold_pct: Some(if validity { 5.0 } else { 1.0 }),
                });
                continue;
            }
            // Columns of a closed SCD2 version's end are NULL by design.
            if name == "effective_to" {
                continue;
            }
            checks.push(Check {
                table: table.to_string(),
                column: name.clone(),
                check: "completeness",
                rows,
                violating: rows - non_null,
                threshold_pct: is_key.then_some(0.0),
            });
        }
        if los {
            checks.push(Check {
                table: table.to_string(),
                column: "length_of_stay_days".into(),
                check: "plausibility",
                rows,
                violating: counts.last().copied().unwrap_or(0),
                threshold_pct: Some(0.0),
            });
        }
        if !keys.is_empty() {
            let key_list = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
            let current = if writer.is_some_and(|m| m.materialization == Materialization::Scd2) {
                " WHERE is_current"
            } else {
                ""
            };
            let duplicated = ints(
                &session
                    .sql(&format!(
                        "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {table_sql}{current} GROUP BY {key_list} HAVING count(*) > 1) AS d"
                    ))
                    .await?,
            )?;
            checks.push(Check {
                table: table.to_string(),
                column: keys.join(", "),
                check: "uniqueness",
                rows,
                violating: duplicated.first().copied().unwrap_or(0),
                threshold_pct: Some(0.0),
            });
        }
    }

    let now = Utc::now().timestamp_micros();
    let pct = |c: &Check| {
        if c.rows > 0 {
            100.0 * c.violating as f64 / c.rows as f64
        } else {
            0.0
        }
    };
    let fresh = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMicrosecondArray::from(vec![now; checks.len()]).with_timezone("UTC"))
                as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                checks.iter().map(|c| c.table.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                checks.iter().map(|c| c.column.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                checks.iter().map(|c| c.check),
            )),
            Arc::new(Int64Array::from_iter_values(checks.iter().map(|c| c.rows))),
            Arc::new(Int64Array::from_iter_values(
                checks.iter().map(|c| c.violating),
            )),
            Arc::new(Float64Array::from_iter_values(checks.iter().map(pct))),
            Arc::new(Float64Array::from_iter(
                checks.iter().map(|c| c.threshold_pct),
            )),
            Arc::new(StringArray::from_iter_values(checks.iter().map(
                |c| match c.threshold_pct {
                    Some(t) if pct(c) > t => "fail",
                    _ => "pass",
                },
            ))),
        ],
    )?;
    // Earlier runs' results stay: the table is a history.
    let target = TableName {
        zone: model.target.zone,
        name: "dq_results".into(),
    };
    let mut batches = Vec::new();
    if let Ok(previous) = session
        .sql(&format!(
            "SELECT * FROM {}.{}",
            target.zone,
            quote(&target.name)
        ))
        .await
    {
        for batch in previous.batches {
            let columns = schema()
                .fields()
                .iter()
                .map(|f| {
                    let column = batch.column_by_name(f.name()).ok_or_else(|| Error::Model {
                        model: model.name.clone(),
                        reason: format!("{target} lacks column {}", f.name()),
                    })?;
                    Ok(arrow::compute::cast(column, f.data_type())?)
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            batches.push(RecordBatch::try_new(schema(), columns)?);
        }
    }
    let written = checks.len() as u64;
    batches.push(fresh);
    session
        .replace_table(
            &target,
            schema(),
            batches,
            "dq",
            inputs.clone(),
            Some("Data quality checks, one row per check per run (completeness, validity, uniqueness, plausibility).".into()),
        )
        .await?;
    Ok((rows_in, written))
}
