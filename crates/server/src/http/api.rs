//! The API's handlers: queries, the catalog, tokens, streamed events and FHIR uploads.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carelake_stream::StreamEvent;
use serde_json::{Value, json};

use super::auth::{Authed, PasswordAuthed};
use super::encode::{json_rows, respond};
use super::{ApiError, AppState};

/// The SQL of a query request: `{"sql": "…"}` or the body as text.
pub(super) fn query_text(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Option<usize>), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        let sql = value
            .get("sql")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("the body needs a \"sql\" string"))?;
        let max_rows = value
            .get("max_rows")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        Ok((sql.to_string(), max_rows))
    } else {
        let sql =
            std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the SQL is not UTF-8"))?;
        Ok((sql.to_string(), None))
    }
}

/// `POST /api/v1/query`: SQL in, rows out (JSON, CSV or Arrow IPC by `Accept`).
pub(super) async fn query(
    State(state): State<Arc<AppState>>,
    Authed(user): Authed,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (sql, max_rows) = query_text(&headers, &body)?;
    if sql.trim().is_empty() {
        return Err(ApiError::bad_request("no SQL given"));
    }
    let max_rows = max_rows
        .unwrap_or(state.config.max_rows)
        .min(state.config.max_rows);
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let started = Instant::now();
    let results = state.run_sql(&user, &sql, max_rows).await?;
    let Some(last) = results.last() else {
        return Err(ApiError::bad_request("no statement given"));
    };
    respond(
        last,
        &accept,
        max_rows,
        started.elapsed().as_secs_f64() * 1000.0,
    )
}

pub(super) async fn rows_of(
    state: &AppState,
    user: &carelake_lake::User,
    sql: &str,
) -> Result<Value, ApiError> {
    let session = state.session(user).await?;
    let result = session.sql(sql).await.map_err(ApiError::from_sql)?;
    serde_json::from_slice(&json_rows(&result.batches)?)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /api/v1/tables`: every table and view with its kind, rows, version, owner, upstream
/// tables and description.
pub(super) async fn tables(
    State(state): State<Arc<AppState>>,
    Authed(user): Authed,
) -> Result<Response, ApiError> {
    let rows = rows_of(
        &state,
        &user,
        "SELECT table_name, kind, row_count, table_version AS version, owner, upstream, description \
         FROM system.tables ORDER BY table_name",
    )
    .await?;
    Ok(axum::Json(json!({ "tables": rows })).into_response())
}

/// `GET /api/v1/tables/{zone.name}`: columns, lineage (upstream and downstream) and rows.
pub(super) async fn table(
    State(state): State<Arc<AppState>>,
    Authed(user): Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name: carelake_common::TableName = name
        .parse()
        .map_err(|e: carelake_common::Error| ApiError::bad_request(e.to_string()))?;
    let quoted = name.to_string().replace('\'', "''");
    let entry = rows_of(
        &state,
        &user,
        &format!(
            "SELECT table_name, kind, row_count, table_version AS version, owner, source, upstream, description, updated_at \
             FROM system.tables WHERE table_name = '{quoted}'"
        ),
    )
    .await?;
    let Some(entry) = entry.as_array().and_then(|a| a.first()).cloned() else {
        return Err(ApiError::not_found(format!("no table {name}")));
    };
    let columns = rows_of(
        &state,
        &user,
        &format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_schema = '{}' AND table_name = '{}' ORDER BY ordinal_position",
            name.zone,
            name.name.replace('\'', "''")
        ),
    )
    .await?;
    let downstream = rows_of(
        &state,
        &user,
        &format!(
            "SELECT table_name FROM system.tables WHERE array_has(string_to_array(upstream, ', '), '{quoted}') ORDER BY table_name"
        ),
    )
    .await
    .unwrap_or(Value::Array(Vec::new()));
    let downstream: Vec<Value> = downstream
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.get("table_name").cloned())
                .collect()
        })
        .unwrap_or_default();
    Ok(axum::Json(json!({
        "table": entry,
        "columns": columns,
        "downstream": downstream,
    }))
    .into_response())
}

/// `POST /api/v1/tokens`: a bearer token for a user signing in with their password (never
/// against another token, so that a token cannot renew itself).
pub(super) async fn token(
    State(state): State<Arc<AppState>>,
    PasswordAuthed(user): PasswordAuthed,
) -> Result<Response, ApiError> {
    let token = state
        .sign_in
        .issue(&user, carelake_lake::TokenKind::Api)
        .await?;
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(state.sign_in.config().token_lifetime).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "token_type": "Bearer",
            "user": user.name,
            "expires_at": expires.to_rfc3339(),
        })),
    )
        .into_response())
}

/// The events of an ingest body: one JSON object, an array of objects, or NDJSON (one object
/// per line). Any event that is not an object refuses the whole body.
pub(super) fn events_of(
    headers: &HeaderMap,
    body: &[u8],
    max_events: usize,
) -> Result<Vec<StreamEvent>, ApiError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ndjson = content_type.contains("ndjson") || content_type.contains("jsonl");
    let trimmed = text.trim_start();
    let mut events = Vec::new();
    if !ndjson && trimmed.starts_with('[') {
        let values: Vec<Box<serde_json::value::RawValue>> = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("the body is not a JSON array: {e}")))?;
        for (i, v) in values.into_iter().enumerate() {
            let event = StreamEvent::parse(v.get()).ok_or_else(|| {
                ApiError::bad_request(format!("element {} is not a JSON object", i + 1))
            })?;
            events.push(event);
        }
    } else if let Some(event) = (!ndjson).then(|| StreamEvent::parse(text)).flatten() {
        events.push(event);
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event = StreamEvent::parse(line).ok_or_else(|| {
                ApiError::bad_request(format!("line {} is not a JSON object", i + 1))
            })?;
            events.push(event);
        }
    }
    if events.is_empty() {
        return Err(ApiError::bad_request("no events in the body"));
    }
    if events.len() > max_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} events; at most {max_events} per request", events.len()),
        ));
    }
    Ok(events)
}

/// `POST /api/v1/ingest/{stream}`: events appended to the write-ahead log and fsynced before
/// the 202; they reach `raw.<stream>` at the next flush.
pub(super) async fn ingest(
    State(state): State<Arc<AppState>>,
    Authed(user): Authed,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let table =
        carelake_stream::stream_table(&stream).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let session = state.session(&user).await?;
    session
        .authorize_write(&table)
        .map_err(ApiError::from_sql)?;
    let events = events_of(&headers, &body, state.config.max_events)?;
    session
        .record_action(
            "ingest",
            std::slice::from_ref(&table),
            Some(events.len() as i64),
            None,
        )
        .await
        .map_err(ApiError::from_sql)?;
    let accepted = state
        .ingest
        .append(&stream, events)
        .await
        .map_err(|e| match e {
            carelake_ingest::Error::StreamClosed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
            }
            backlog @ carelake_ingest::Error::Backlog(..) => {
                let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, backlog.to_string());
                e.retry_after = Some(5);
                e
            }
            other => ApiError::internal(other.to_string()),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "stream": stream,
            "accepted": accepted.accepted,
            "duplicates": accepted.duplicates,
            "first_seq": accepted.first_seq,
        })),
    )
        .into_response())
}

/// The FHIR content of a request: a Bundle as sent, or resources as NDJSON (one per line).
pub(super) fn fhir_content(body: &[u8]) -> Result<(Vec<u8>, &'static str, usize), ApiError> {
    let is_resource = |v: &Value| {
        v.get("resourceType")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    };
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if !is_resource(&value) {
            return Err(ApiError::bad_request(
                "not a FHIR resource: a JSON object with a resourceType is expected",
            ));
        }
        if value.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            let entries = value
                .get("entry")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            return Ok((body.to_vec(), "json", entries));
        }
        let mut line = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
        line.push(b'\n');
        return Ok((line, "ndjson", 1));
    }
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if is_resource(&v) => count += 1,
            Ok(_) => {
                return Err(ApiError::bad_request(format!(
                    "line {}: not a FHIR resource (no resourceType)",
                    i + 1
                )));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "line {}: not JSON ({e})",
                    i + 1
                )));
            }
        }
    }
    if count == 0 {
        return Err(ApiError::bad_request("no FHIR resource given"));
    }
    Ok((body.to_vec(), "ndjson", count))
}

/// `POST /api/v1/fhir`: a FHIR resource, a Bundle, or NDJSON of resources, loaded like `carelake
/// load` loads FHIR files (raw.fhir_resources with versions and deletions, the curated views)
/// before the response. The body waits in the spool folder for the load and is removed after
/// it; the load history knows bodies by their SHA-256, so the same body sent again loads once.
pub(super) async fn fhir(
    State(state): State<Arc<AppState>>,
    Authed(user): Authed,
    body: Bytes,
) -> Result<Response, ApiError> {
    let session = state.session(&user).await?;
    let fhir_table: carelake_common::TableName = "raw.fhir_resources"
        .parse()
        .map_err(|e: carelake_common::Error| ApiError::internal(e.to_string()))?;
    session
        .authorize_write(&fhir_table)
        .map_err(ApiError::from_sql)?;
    let (content, extension, resources) = fhir_content(&body)?;
    session
        .record_action(
            "ingest",
            std::slice::from_ref(&fhir_table),
            Some(resources as i64),
            None,
        )
        .await
        .map_err(ApiError::from_sql)?;
    // The loader reads files: the body waits in the spool folder (owner-only) for the load
    // and is removed after it, loaded or not. Its name is a random id, never its content's
    // hash (a hash of a small body can be guessed); the load history knows the body by its
    // content, so the same body sent again loads once.
    let dir = state.config.spool_dir.join("fhir");
    let path = dir.join(format!("{}.{extension}", uuid::Uuid::new_v4().simple()));
    let write = {
        let (dir, path, content) = (dir.clone(), path.clone(), content.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            carelake_lake::create_private_dir(&dir)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            file.write_all(&content)?;
            file.sync_all()
        })
    };
    write
        .await
        .map_err(|e| ApiError::internal(format!("spooling the request: {e}")))?
        .map_err(|e| ApiError::internal(format!("spooling the request: {e}")))?;
    let loader = carelake_ingest::Loader::new(state.lake.clone(), user.principal());
    let mut request =
        carelake_ingest::ClinicalRequest::new(vec![path.to_string_lossy().into_owned()]);
    request.format = Some(carelake_ingest::ClinicalFormat::Fhir);
    let summary = loader.load_clinical(request).await;
    if let Err(e) = tokio::fs::remove_file(&path).await {
        tracing::warn!(error = %e, "Could not remove a spooled FHIR body.");
    }
    let summary = summary.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let status = summary
        .files
        .first()
        .map_or("loaded", |f| f.status.as_str());
    let tables: Vec<Value> = summary
        .tables
        .iter()
        .map(|t| json!({ "table": t.table.to_string(), "rows_added": t.rows_added }))
        .collect();
    Ok(axum::Json(json!({
        "load_id": summary.load_id,
        "status": status,
        "resources": resources,
        "rejected": summary.rejected,
        "duplicates": summary.duplicates,
        "tables": tables,
    }))
    .into_response())
}
