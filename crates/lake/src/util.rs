use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;

use crate::{Error, Lake, Result, TimeTravel};

/// Reads every row of a (small) Delta table, such as the catalog.
pub async fn read_table(table: &DeltaTable) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    Ok(ctx.read_table(provider)?.collect().await?)
}

/// Reads some columns of every row of a Delta table.
pub async fn read_columns(table: &DeltaTable, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    Ok(ctx
        .read_table(provider)?
        .select_columns(columns)?
        .collect()
        .await?)
}

/// Rows in the table's current version, from the Delta log's file statistics (no data is read).
/// `None` when some file was written without statistics.
pub fn row_count(table: &DeltaTable) -> Option<i64> {
    let snapshot = table.snapshot().ok()?;
    let mut total = 0i64;
    for file in snapshot.log_data().iter() {
        total += file.num_records()? as i64;
    }
    Some(total)
}

/// Appends batches to a Delta table in one commit (a blind append: it never conflicts with
/// other appends, and Delta retries the commit when another writer got there first).
pub async fn append_batches(table: DeltaTable, batches: Vec<RecordBatch>) -> Result<DeltaTable> {
    Ok(table
        .write(batches)
        .with_save_mode(SaveMode::Append)
        .await?)
}

/// Appends a batch to one of the lake's own tables under `_carelake/` (which must exist).
pub(crate) async fn append_to_system_table(
    lake: &Lake,
    name: &str,
    batch: RecordBatch,
) -> Result<()> {
    let table = lake
        .load_delta(&lake.system_table_url(name)?, TimeTravel::Latest)
        .await?
        .ok_or_else(|| Error::LakeNotFound(lake.display_location().to_string()))?;
    append_batches(table, vec![batch]).await?;
    Ok(())
}

/// A text column of `records`, one value (or NULL) each.
pub(crate) fn text_column<R>(records: &[R], f: impl Fn(&R) -> Option<String>) -> ArrayRef {
    Arc::new(records.iter().map(f).collect::<arrow::array::StringArray>())
}

/// A 64-bit integer column of `records`.
pub(crate) fn int_column<R>(records: &[R], f: impl Fn(&R) -> i64) -> ArrayRef {
    Arc::new(arrow::array::Int64Array::from_iter_values(
        records.iter().map(f),
    ))
}

/// A UTC timestamp column (microseconds) of `records`.
pub(crate) fn time_column<R>(
    records: &[R],
    f: impl Fn(&R) -> chrono::DateTime<chrono::Utc>,
) -> ArrayRef {
    Arc::new(
        arrow::array::TimestampMicrosecondArray::from(
            records
                .iter()
                .map(|r| f(r).timestamp_micros())
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC"),
    )
}
