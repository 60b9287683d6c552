//! The surrogate mapping of an export, kept in the source lake's `_carelake/deid_map`.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_lake::{Lake, TimeTravel};

use super::MAPPING_TABLE;
use super::options::Mode;
use crate::tags::lake_folder;
use crate::transform::{self, Surrogates};
use crate::{Error, Result};

static MAPPING_SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("export_id", DataType::Utf8, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("original", DataType::Utf8, false),
        Field::new("surrogate", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
});

/// Appends the surrogates made since the last call to the source's mapping table.
pub(super) async fn write_mapping(
    source: &Lake,
    export_id: &str,
    mode: Mode,
    surrogates: &mut Surrogates,
) -> Result<()> {
    if surrogates.pending.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(&mut surrogates.pending);
    let now = chrono::Utc::now().timestamp_micros();
    let n = rows.len();
    let batch = RecordBatch::try_new(
        Arc::clone(&MAPPING_SCHEMA),
        vec![
            Arc::new(StringArray::from(vec![export_id; n])),
            Arc::new(StringArray::from(vec![mode.as_str(); n])),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.0.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.1.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.2.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        ],
    )?;
    let url = lake_folder(source, MAPPING_TABLE)?;
    let table = match source.load_delta(&url, TimeTravel::Latest).await? {
        Some(t) => t,
        None => source.delta_handle(&url)?,
    };
    carelake_lake::append_batches(table, vec![batch]).await?;
    Ok(())
}

/// The mapping rows of one export, as (domain, original, surrogate) — for the lake owner
/// re-identifying a record under an agreement, and for tests.
pub async fn mapping(source: &Lake, export_id: &str) -> Result<Vec<(String, String, String)>> {
    let url = lake_folder(source, MAPPING_TABLE)?;
    let Some(table) = source.load_delta(&url, TimeTravel::Latest).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for batch in carelake_lake::read_table(&table).await? {
        let col = |c: &str| -> Result<StringArray> {
            transform::as_text(
                batch
                    .column_by_name(c)
                    .ok_or_else(|| Error::Export(format!("the mapping table has no {c}")))?,
            )
        };
        let (id, domain, original, surrogate) = (
            col("export_id")?,
            col("domain")?,
            col("original")?,
            col("surrogate")?,
        );
        for i in 0..batch.num_rows() {
            if id.is_valid(i) && id.value(i) == export_id {
                out.push((
                    domain.value(i).to_string(),
                    original.value(i).to_string(),
                    surrogate.value(i).to_string(),
                ));
            }
        }
    }
    Ok(out)
}
