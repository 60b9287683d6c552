//! Query results as HTTP answers: JSON, CSV or Arrow IPC by `Accept`, cut at the row limit
//! (used by the API and the UI's downloads).

use arrow::array::RecordBatch;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use carelake_sql::QueryResult;
use serde_json::{Value, json};

use super::ApiError;

/// Media type of Arrow IPC streams.
pub(super) const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The batches cut to `limit` rows; whether any were cut.
pub(super) fn truncate(batches: &[RecordBatch], limit: usize) -> (Vec<RecordBatch>, bool) {
    let mut out = Vec::new();
    let mut left = limit;
    for batch in batches {
        if left == 0 {
            return (out, true);
        }
        if batch.num_rows() > left {
            out.push(batch.slice(0, left));
            return (out, true);
        }
        left -= batch.num_rows();
        out.push(batch.clone());
    }
    (out, false)
}

pub(super) fn json_rows(batches: &[RecordBatch]) -> Result<Vec<u8>, ApiError> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    writer
        .finish()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let rows = writer.into_inner();
    Ok(if rows.is_empty() {
        b"[]".to_vec()
    } else {
        rows
    })
}

pub(super) fn respond(
    result: &QueryResult,
    accept: &str,
    max_rows: usize,
    elapsed_ms: f64,
) -> Result<Response, ApiError> {
    let (batches, truncated) = truncate(&result.batches, max_rows);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut response = if accept.contains("text/csv") {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(Vec::new());
        if batches.is_empty() {
            writer
                .write(&RecordBatch::new_empty(std::sync::Arc::clone(
                    &result.schema,
                )))
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        for batch in &batches {
            writer
                .write(batch)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            writer.into_inner(),
        )
            .into_response()
    } else if accept.contains(ARROW_STREAM) {
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(Vec::new(), result.schema.as_ref())
                .map_err(|e| ApiError::internal(e.to_string()))?;
        for batch in &batches {
            writer
                .write(batch)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        writer
            .finish()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        (
            [(header::CONTENT_TYPE, ARROW_STREAM)],
            writer
                .into_inner()
                .map_err(|e| ApiError::internal(e.to_string()))?,
        )
            .into_response()
    } else {
        let columns: Vec<Value> = result
            .schema
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
            .collect();
        let mut body = format!(
            "{{\"columns\":{},\"row_count\":{rows},\"truncated\":{truncated},\"elapsed_ms\":{elapsed_ms:.1},",
            Value::Array(columns)
        )
        .into_bytes();
        if let Some(message) = &result.message {
            body.extend_from_slice(
                format!("\"message\":{},", Value::String(message.clone())).as_bytes(),
            );
        }
        body.extend_from_slice(b"\"rows\":");
        body.extend(json_rows(&batches)?);
        body.push(b'}');
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    if truncated {
        response
            .headers_mut()
            .insert("x-carelake-truncated", HeaderValue::from_static("true"));
    }
    Ok(response)
}
