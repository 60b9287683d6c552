//! The quarantine: rows a load could not take, appended to `raw._rejects` with why.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use carelake_common::{Principal, TableName, Zone};
use carelake_lake::{CatalogEvent, Lake, TimeTravel};
use chrono::Utc;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

use crate::Result;
use crate::infer::timestamp_type;
use crate::rows::Reject;

use super::*;

/// Appends rejected rows to `raw._rejects`; `transactions` (application ids) are recorded in the
/// same commit.
pub(crate) async fn quarantine(
    lake: &Lake,
    principal: &Principal,
    target: &str,
    load_id: &str,
    rejects: Vec<(String, Reject)>,
    transactions: Vec<String>,
) -> Result<()> {
    let name = TableName::new(Zone::Raw, REJECTS_TABLE)?;
    let url = lake.table_url(&name)?;
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
    let existing = lake.load_delta(&url, TimeTravel::Latest).await?;
    let created = existing.is_none();
    let table = match existing {
        Some(t) => t,
        None => lake.delta_handle(&url)?,
    };
    let table = table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transactions(
                    transactions
                        .into_iter()
                        .map(|id| Transaction::new(id, 1))
                        .collect(),
                )
                .with_max_retries(15),
        )
        .await?;
    let mut event = CatalogEvent::written(name, &table);
    if created {
        event.description =
            Some("Rows rejected by loads, with file, line, reason and raw text".into());
        event.owner = Some(principal.name.clone());
        event.source = Some("carelake loader".into());
    }
    lake.catalog().record(&[event]).await?;
    Ok(())
}
