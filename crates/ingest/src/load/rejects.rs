//! The quarantine: rows a load could not take, appended to `raw._rejects` with why.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use carelake_common::{Principal, TableName, Zone};
use carelake_lake::{Lake, Provenance, TableWrite, WriteMode};
use chrono::Utc;
use deltalake::kernel::Transaction;

use crate::Result;
use crate::infer::timestamp_type;
use crate::rows::Reject;

use super::REJECTS_TABLE;

/// Appends rejected rows to `raw._rejects` (each with the file it came from); `transactions`
/// (application ids) are recorded in the same commit.
pub async fn quarantine(
    lake: &Lake,
    principal: &Principal,
    target: &str,
    load_id: &str,
    rejects: Vec<(String, Reject)>,
    transactions: Vec<String>,
) -> Result<()> {
    let name = TableName::new(Zone::Raw, REJECTS_TABLE)?;
    let n = rejects.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("load_id", DataType::Utf8, true),
        Field::new("target_table", DataType::Utf8, true),
        Field::new("source_file", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("raw_text", DataType::Utf8, true),
        Field::new("rejected_at", timestamp_type(), true),
    ]));
    let now = Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![load_id; n])),
        Arc::new(StringArray::from(vec![target; n])),
        Arc::new(
            rejects
                .iter()
                .map(|(f, _)| Some(f.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|(_, r)| r.line as i64)
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Int64Array>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|(_, r)| Some(r.reason.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|(_, r)| Some(r.raw.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    let provenance = Provenance::new("carelake loader", principal.name.clone())
        .described("Rows rejected by loads, with file, line, reason and raw text");
    TableWrite::new(name, WriteMode::Append, provenance)
        .transactions(transactions.into_iter().map(|id| Transaction::new(id, 1)))
        .batches(lake, None, vec![batch])
        .await?;
    Ok(())
}
