use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::Schema;
use datafusion::prelude::SessionContext;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};

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

/// The version of application `app_id`'s last transaction recorded in the table (Delta's
/// `txn` action: a load's file hash, a stream's sequence number, a watermark), if any;
/// brought up to date from the commits since this process last asked (see `app_txn`).
pub async fn app_version(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    crate::app_txn::app_version(table, app_id).await
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
    let written = table
        .write(batches)
        .with_save_mode(SaveMode::Append)
        .with_commit_properties(crate::commit_properties(Vec::new(), Vec::new()))
        .await?;
    crate::clean_logs_when_due(&written).await;
    Ok(written)
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

/// One batch of a lake's own table, read by column name as the type it was written with:
/// readers may hand strings back as views and timestamps in other units, so every column is
/// cast. A missing column is an error of the table's kind (`fail`), naming the table.
pub(crate) struct SystemBatch<'a> {
    batch: &'a RecordBatch,
    table: &'a str,
    fail: fn(String) -> Error,
}

impl<'a> SystemBatch<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, table: &'a str, fail: fn(String) -> Error) -> Self {
        Self { batch, table, fail }
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn cast(&self, name: &str, to: &arrow::datatypes::DataType) -> Result<ArrayRef> {
        let array = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| (self.fail)(format!("the {} table has no column {name}", self.table)))?;
        Ok(arrow::compute::cast(array, to)?)
    }

    /// A text column.
    pub(crate) fn text(&self, name: &str) -> Result<arrow::array::StringArray> {
        use arrow::array::AsArray;
        Ok(self
            .cast(name, &arrow::datatypes::DataType::Utf8)?
            .as_string::<i32>()
            .clone())
    }

    /// A 64-bit integer column.
    pub(crate) fn int(&self, name: &str) -> Result<arrow::array::Int64Array> {
        use arrow::array::AsArray;
        Ok(self
            .cast(name, &arrow::datatypes::DataType::Int64)?
            .as_primitive::<arrow::datatypes::Int64Type>()
            .clone())
    }

    /// A UTC timestamp column, in microseconds.
    pub(crate) fn time(&self, name: &str) -> Result<arrow::array::TimestampMicrosecondArray> {
        use arrow::array::AsArray;
        use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
        Ok(self
            .cast(
                name,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?
            .as_primitive::<TimestampMicrosecondType>()
            .clone())
    }
}

/// Row `i` of a text column, `None` where it is NULL.
pub(crate) fn text_at(column: &arrow::array::StringArray, i: usize) -> Option<String> {
    use arrow::array::Array;
    (!column.is_null(i)).then(|| column.value(i).to_string())
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

/// The schema of the lake's event tables (governance, models, alerts): when, the event as
/// JSON, and who.
pub(crate) static EVENTS_SCHEMA: std::sync::LazyLock<arrow::datatypes::SchemaRef> =
    std::sync::LazyLock::new(|| {
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        Arc::new(Schema::new(vec![
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("event", DataType::Utf8, false),
            Field::new("by", DataType::Utf8, false),
        ]))
    });

/// Appends `events` to the event table `_carelake/<name>` (made on first use) in one commit,
/// a microsecond apart so that they keep their order; `fail` words an encoding error.
pub(crate) async fn append_events<E: serde::Serialize>(
    lake: &Lake,
    name: &str,
    comment: &str,
    events: &[E],
    by: &carelake_common::Principal,
    fail: fn(String) -> Error,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    crate::util::create_system_table(lake, name, &EVENTS_SCHEMA, comment).await?;
    let now = chrono::Utc::now();
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok((
                now + chrono::Duration::microseconds(i as i64),
                serde_json::to_string(e).map_err(|e| fail(format!("encoding an event: {e}")))?,
            ))
        })
        .collect::<Result<_>>()?;
    let batch = RecordBatch::try_new(
        Arc::clone(&EVENTS_SCHEMA),
        vec![
            time_column(&rows, |r| r.0),
            text_column(&rows, |r| Some(r.1.clone())),
            text_column(&rows, |_| Some(by.name.clone())),
        ],
    )?;
    append_to_system_table(lake, name, batch).await
}

/// Every event of `_carelake/<name>` in time order (none when the table does not exist yet).
pub(crate) async fn read_events<E: serde::de::DeserializeOwned>(
    lake: &Lake,
    name: &str,
    fail: fn(String) -> Error,
) -> Result<Vec<E>> {
    use arrow::array::Array;
    let url = lake.system_table_url(name)?;
    let Some(table) = lake.load_delta(&url, TimeTravel::Latest).await? else {
        return Ok(Vec::new());
    };
    let mut events: Vec<(i64, E)> = Vec::new();
    for batch in read_table(&table).await? {
        let batch = SystemBatch::new(&batch, name, fail);
        let (at, text) = (batch.time("at")?, batch.text("event")?);
        for i in 0..batch.num_rows() {
            if text.is_null(i) {
                continue;
            }
            let event = serde_json::from_str::<E>(text.value(i)).map_err(|e| {
                fail(format!(
                    "an unreadable {name} event (written by a newer carelake?): {e}"
                ))
            })?;
            events.push((at.value(i), event));
        }
    }
    events.sort_by_key(|(at, _)| *at);
    Ok(events.into_iter().map(|(_, e)| e).collect())
}

/// Creates a carelake system table under `_carelake/` unless it exists; tolerates a concurrent
/// creator.
pub(crate) async fn create_system_table(
    lake: &Lake,
    name: &str,
    schema: &Schema,
    comment: &str,
) -> Result<()> {
    let url = lake.system_table_url(name)?;
    if lake.load_delta(&url, TimeTravel::Latest).await?.is_some() {
        return Ok(());
    }
    let kernel_schema: StructType = schema.try_into_kernel()?;
    let handle = lake.delta_handle(&url)?;
    let created = handle
        .create()
        .with_table_name(name)
        .with_comment(comment)
        .with_columns(kernel_schema.fields().cloned())
        .await;
    match created {
        Ok(_) => Ok(()),
        // Another process created it between our check and our commit.
        Err(DeltaTableError::VersionAlreadyExists(_)) => Ok(()),
        Err(e) if lake.load_delta(&url, TimeTravel::Latest).await?.is_some() => {
            tracing::debug!(error = %e, "System table created concurrently.");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
