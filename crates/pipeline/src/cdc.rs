//! Change data capture: a change feed (rows with an operation column, I/U/D, and a commit
//! timestamp) applied to a curated table in commit order with MERGE. The feed itself is loaded
//! first into a raw table like any file (exactly once, with lineage); only the rows of that load
//! are applied. Per key the latest change wins, and a change older than what the table already
//! holds for its key is ignored, so feeds may arrive out of order or twice.

use carelake_common::TableName;
use carelake_lake::TimeTravel;
use carelake_sql::Session;

use crate::error::{Error, Result};
use crate::sql_text::{
    assignments, columns, equal_keys, first_count as count_of, prefixed, quote, table,
};

/// How to apply a feed.
#[derive(Debug, Clone)]
pub struct CdcSpec {
    /// The raw table the feed was loaded into.
    pub changes: TableName,
    /// The table the changes are applied to.
    pub target: TableName,
    /// Key columns.
    pub keys: Vec<String>,
    /// The operation column: I (insert), U (update), D (delete); other spellings (insert,
    /// update, delete, c, r) are understood.
    pub op_column: String,
    /// The commit timestamp column (or a monotonically increasing sequence).
    pub ts_column: String,
}

/// What applying did.
#[derive(Debug, Clone, Default)]
pub struct CdcSummary {
    /// Changes in the load.
    pub changes: u64,
    /// Rows in the target afterwards.
    pub rows: u64,
    /// Whether the target was created by this load.
    pub created: bool,
}

/// Applies the changes of load `load_id` in `spec.changes` to `spec.target`.
pub async fn apply(session: &Session, spec: &CdcSpec, load_id: &str) -> Result<CdcSummary> {
    let changes_sql = table(&spec.changes);
    let target_sql = table(&spec.target);
    let feed_columns =
        crate::sql_text::query_columns(session, &format!("SELECT * FROM {changes_sql}")).await?;
    let missing: Vec<&String> = spec
        .keys
        .iter()
        .chain([&spec.op_column, &spec.ts_column])
        .filter(|c| !feed_columns.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Model {
            model: spec.target.to_string(),
            reason: format!("the change feed has no column {missing:?}"),
        });
    }
    // The target keeps the data columns and the commit timestamp; the operation and the
    // load's lineage stay in the raw feed.
    let lineage = ["_source_file", "_source_line", "_load_id", "_loaded_at"];
    let kept: Vec<&String> = feed_columns
        .iter()
        .filter(|c| **c != spec.op_column && !lineage.contains(&c.as_str()))
        .collect();
    let kept_list = columns(&kept);
    let keys = columns(&spec.keys);
    let op = quote(&spec.op_column);
    let ts = quote(&spec.ts_column);
    let load = load_id.replace('\'', "''");
    // The latest change per key in this load, with its operation as one letter.
    let latest = format!(
        "SELECT {kept_list}, CASE upper(substr(CAST({op} AS VARCHAR), 1, 1)) WHEN 'D' THEN 'D' ELSE 'U' END AS _cdc_op FROM ( \
             SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC, _source_line DESC) AS _cdc_rank \
             FROM {changes_sql} WHERE _load_id = '{load}') AS ranked WHERE _cdc_rank = 1"
    );
    let changes = count_of(
        &session
            .sql(&format!(
                "SELECT count(*) FROM {changes_sql} WHERE _load_id = '{load}'"
            ))
            .await?,
    );
    let url = session.lake().table_url(&spec.target)?;
    let exists = session
        .lake()
        .load_delta(&url, TimeTravel::Latest)
        .await?
        .is_some();
    if !exists {
        session
            .sql(&format!(
                "CREATE TABLE {target_sql} AS SELECT {kept_list} FROM ({latest}) AS l WHERE _cdc_op <> 'D'"
            ))
            .await?;
    } else if changes > 0 {
        let on = equal_keys("t", "s", &spec.keys);
        let set = assignments(&kept);
        let values = prefixed("s", &kept);
        session
            .sql(&format!(
                "MERGE INTO {target_sql} AS t USING ({latest}) AS s ON {on} \
                 WHEN MATCHED AND s._cdc_op = 'D' AND s.{ts} >= t.{ts} THEN DELETE \
                 WHEN MATCHED AND s._cdc_op <> 'D' AND s.{ts} >= t.{ts} THEN UPDATE SET {set} \
                 WHEN NOT MATCHED AND s._cdc_op <> 'D' THEN INSERT ({kept_list}) VALUES ({values})"
            ))
            .await?;
    }
    let rows = count_of(
        &session
            .sql(&format!("SELECT count(*) FROM {target_sql}"))
            .await?,
    );
    Ok(CdcSummary {
        changes,
        rows,
        created: !exists,
    })
}
