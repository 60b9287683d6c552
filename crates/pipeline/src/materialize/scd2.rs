//! Type-2 slowly changing dimensions: a key's current version closed and a new one opened
//! when its row changes.

use carelake_sql::Session;
use chrono::Utc;

use super::count;
use super::incremental::check_unique_key;
use crate::error::{Error, Result};
use crate::project::Model;
use crate::runner::{Executed, ModelStatus};
use crate::sql_text::{self, equal_keys, quote};

/// The timestamp type of `effective_from` and `effective_to`.
pub(crate) const SCD2_TIMESTAMP: &str = "'Timestamp(Microsecond, Some(\"UTC\"))'";

/// A type-2 slowly changing dimension: versions closed and opened by comparing each key's
/// current row with the query's row (a hash of all its columns).
pub(crate) async fn execute_scd2(
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
