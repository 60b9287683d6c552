//! Change data capture: a change feed (rows with an operation column, I/U/D, and a commit
//! timestamp) applied to a curated table in commit order with MERGE. The feed itself is loaded
//! first into a raw table like any file (exactly once, with lineage); then every load of the
//! feed not yet applied is. Per key the latest change wins, and a change older than what the
//! table already holds for its key is ignored, so feeds may arrive out of order or twice.
//!
//! What has been applied is recorded on the target: an application transaction
//! (`carelake-cdc:<feed table>`) whose version is the feed's version applied up to, committed
//! after the MERGE. A process stopped between the two (a crash) leaves the watermark behind, and
//! the next apply takes those loads again with the newer ones: applying the latest change per
//! key a second time gives the same table, so this is safe.

use carelake_common::TableName;
use carelake_lake::{Provenance, TableWrite, TimeTravel, WriteMode};
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
    /// Changes applied (the rows of the feed's loads not applied before).
    pub changes: u64,
    /// Rows in the target afterwards.
    pub rows: u64,
    /// Whether the target was created by this load.
    pub created: bool,
}

/// The application-transaction id that records, on the target, the feed version applied.
fn watermark_id(changes: &TableName) -> String {
    format!("carelake-cdc:{changes}")
}

/// Applies every load of `spec.changes` not yet applied to `spec.target`.
pub async fn apply(session: &Session, spec: &CdcSpec) -> Result<CdcSummary> {
    let lake = session.lake();
    let Some(feed) = lake
        .load_delta(&lake.table_url(&spec.changes)?, TimeTravel::Latest)
        .await?
    else {
        return Err(Error::Model {
            model: spec.target.to_string(),
            reason: format!("the change feed {} does not exist", spec.changes),
        });
    };
    let feed_version = feed.version().map_or(0, |v| v as i64);
    let target_url = lake.table_url(&spec.target)?;
    let target = lake.load_delta(&target_url, TimeTravel::Latest).await?;
    let applied_to = match &target {
        Some(t) => carelake_lake::app_version(t, &watermark_id(&spec.changes)).await?,
        None => None,
    };
    if applied_to == Some(feed_version) {
        return Ok(CdcSummary {
            changes: 0,
            rows: count_of(
                &session
                    .sql(&format!("SELECT count(*) FROM {}", table(&spec.target)))
                    .await?,
            ),
            created: false,
        });
    }
    // The feed pinned at the version read, so that a load committed meanwhile waits for the
    // next apply (the watermark says this version).
    let pinned =
        |version: i64| format!("{}.\"{}@v{version}\"", spec.changes.zone, spec.changes.name);
    let changes_sql = match applied_to {
        // The loads after the watermark.
        Some(applied) => format!(
            "(SELECT * FROM {} WHERE _load_id NOT IN (SELECT DISTINCT _load_id FROM {}))",
            pinned(feed_version),
            pinned(applied)
        ),
        // No watermark (a new target, or one made before watermarks or by a stopped apply):
        // the whole feed, whose latest change per key is the table's state.
        None => pinned(feed_version),
    };
    let target_sql = table(&spec.target);
    let feed_columns =
        crate::sql_text::query_columns(session, &format!("SELECT * FROM {changes_sql} AS f"))
            .await?;
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
    // The latest change per key among those applied, with its operation as one letter.
    let latest = format!(
        "SELECT {kept_list}, CASE upper(substr(CAST({op} AS VARCHAR), 1, 1)) WHEN 'D' THEN 'D' ELSE 'U' END AS _cdc_op FROM ( \
             SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC, _loaded_at DESC, _source_line DESC) AS _cdc_rank \
             FROM {changes_sql} AS f) AS ranked WHERE _cdc_rank = 1"
    );
    let changes = count_of(
        &session
            .sql(&format!("SELECT count(*) FROM {changes_sql} AS f"))
            .await?,
    );
    let exists = target.is_some();
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
    record_watermark(session, spec, feed_version).await?;
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

/// Commits the watermark on the target: a commit with only the application transaction.
async fn record_watermark(session: &Session, spec: &CdcSpec, feed_version: i64) -> Result<()> {
    let lake = session.lake();
    let target = lake
        .load_delta(&lake.table_url(&spec.target)?, TimeTravel::Latest)
        .await?
        .ok_or_else(|| Error::Model {
            model: spec.target.to_string(),
            reason: "the target vanished while the changes were applied".into(),
        })?;
    // The table's version moves: the catalog follows, as after any other write.
    let provenance = Provenance::new(
        format!("CDC apply of {}", spec.changes),
        session.principal().name.clone(),
    );
    TableWrite::new(spec.target.clone(), WriteMode::Append, provenance)
        .transaction(watermark_id(&spec.changes), feed_version)
        .actions(lake, &target, Vec::new(), false)
        .await?;
    Ok(())
}
