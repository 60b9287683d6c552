//! Streaming ingest: events (device vitals, care-team notes, anything JSON) pushed by clients,
//! durable when acknowledged and in the lake exactly once.
//!
//! ```text
//! append(stream, events) ──► writer task: groups what is waiting, drops event ids seen before,
//!                            appends to the write-ahead log and fsyncs ──► acknowledged
//!                        ──► pending (memory) ──► flusher: every interval or size, per stream:
//!                            JSON → Arrow (the table's schema, new fields added), one Delta
//!                            commit to raw.<stream> with the highest sequence number as an
//!                            application transaction ──► log segments that reached the lake
//!                            are deleted
//! restart ──► the log is read back; records above each table's transaction version are
//!             pending again, so every acknowledged event lands once
//! ```

mod wal;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::{Principal, TableName, Zone};
use carelake_lake::{CatalogEvent, Lake, TimeTravel};

use crate::window::{WindowSet, id_digest};
use chrono::Utc;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::load::LINEAGE_COLUMNS;
use crate::rows::Reject;
use crate::{Error, Result};
use wal::{Wal, WalRecord};

/// Application id of the Delta transactions that record how far a table has taken the log.
const STREAM_APP: &str = "carelake-stream";

/// How streamed events are kept and flushed.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Folder of the write-ahead log (local disk: it is fsynced on every acknowledgement).
    pub wal_dir: PathBuf,
    /// Longest time an acknowledged event waits before it is written to the lake.
    pub flush_interval: Duration,
    /// Pending bytes that start a flush before the interval is up.
    pub flush_bytes: u64,
    /// Size at which a log segment is closed and a new one begun.
    pub segment_bytes: u64,
    /// Most bytes of acknowledged events waiting for the lake (and so in the write-ahead
    /// log); above it requests are refused with [`Error::Backlog`] until flushes catch up.
    pub max_pending_bytes: u64,
    /// Event ids remembered per stream to recognise a resend (the newest ones; a resend of an
    /// event older than that many ids is stored again).
    pub dedupe_window: usize,
}

impl StreamConfig {
    /// Defaults: flush every 5 s or at 64 MiB, 64 MiB log segments, at most 1 GiB pending,
    /// the last 1,000,000 event ids per stream remembered.
    pub fn new(wal_dir: impl Into<PathBuf>) -> Self {
        Self {
            wal_dir: wal_dir.into(),
            flush_interval: Duration::from_secs(5),
            flush_bytes: 64 << 20,
            segment_bytes: 64 << 20,
            max_pending_bytes: 1 << 30,
            dedupe_window: 1_000_000,
        }
    }
}

/// What became of the events of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Events written to the log (and so certain to reach the lake).
    pub accepted: usize,
    /// Events whose `event_id` was seen before: not stored again.
    pub duplicates: usize,
    /// Sequence number of the first accepted event.
    pub first_seq: u64,
}

/// Counters for monitoring.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Events acknowledged since start.
    pub accepted: u64,
    /// Events dropped as duplicates since start.
    pub duplicates: u64,
    /// Events written to the lake since start.
    pub flushed: u64,
    /// Events that could not be converted to their table's columns (in `raw._rejects`).
    pub rejected: u64,
    /// Flushes done.
    pub flushes: u64,
    /// Acknowledged events not yet in the lake.
    pub pending: u64,
    /// Their bytes.
    pub pending_bytes: u64,
    /// The last flush error, cleared by a successful flush.
    pub last_flush_error: Option<String>,
}

/// One event as the log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    stream: String,
    /// Microseconds since the epoch.
    received_at: i64,
    event_id: Option<String>,
    /// The event, a JSON object.
    event: String,
}

#[derive(Debug, Clone)]
struct Pending {
    seq: u64,
    envelope: Envelope,
}

/// One event for [`StreamIngest::append`]: its JSON text and its `event_id`, read in one parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The event, one JSON object.
    pub json: String,
    /// Its `event_id`, when it has one (stored once per stream).
    pub id: Option<String>,
}

impl StreamEvent {
    /// The event in `text`, or `None` when `text` is not one JSON object.
    pub fn parse(text: &str) -> Option<Self> {
        let object: serde_json::Map<String, Value> = serde_json::from_str(text).ok()?;
        Some(Self {
            id: event_id(&object),
            json: text.trim().to_string(),
        })
    }
}

struct Request {
    stream: String,
    events: Vec<StreamEvent>,
    reply: oneshot::Sender<Result<Accepted>>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<Pending>>,
    pending_bytes: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    flushed: AtomicU64,
    rejected: AtomicU64,
    flushes: AtomicU64,
    last_error: Mutex<Option<String>>,
    closed: AtomicBool,
}

/// The streaming ingest of one lake: cheap to clone, shared by every HTTP handler.
#[derive(Clone)]
pub struct StreamIngest {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    flush_now: Arc<Notify>,
    flush_lock: Arc<tokio::sync::Mutex<()>>,
    lake: Lake,
    principal: Principal,
    wal: Arc<Mutex<Wal>>,
    max_pending_bytes: u64,
}

impl std::fmt::Debug for StreamIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIngest")
            .field("lake", &self.lake.display_location())
            .finish_non_exhaustive()
    }
}

/// A stream's table: `raw.<stream>`, a lower-case name.
pub fn stream_table(stream: &str) -> Result<TableName> {
    let valid = !stream.is_empty()
        && stream.len() <= 63
        && stream
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !stream.starts_with('_');
    if !valid {
        return Err(Error::Event(format!(
            "stream names are lower-case letters, digits and '_' (not first), up to 63: {:?}",
            stream.chars().take(64).collect::<String>()
        )));
    }
    Ok(TableName::new(Zone::Raw, stream)?)
}

/// The `event_id` of an event, when it has one (a string or a number).
fn event_id(object: &serde_json::Map<String, Value>) -> Option<String> {
    match object.get("event_id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

impl StreamIngest {
    /// Opens the log, puts back what did not reach the lake before the last stop, and starts
    /// the writer and the flusher.
    pub async fn open(lake: Lake, principal: Principal, config: StreamConfig) -> Result<Self> {
        let dir = config.wal_dir.clone();
        let segment_bytes = config.segment_bytes;
        let (wal, records) = tokio::task::spawn_blocking(move || Wal::open(&dir, segment_bytes))
            .await
            .map_err(|e| Error::Worker(e.to_string()))??;
        let shared = Arc::new(Shared::default());
        let window = config.dedupe_window;
        let mut known: Known = HashMap::new();
        let mut versions: HashMap<String, i64> = HashMap::new();
        let mut replayed = 0usize;
        for WalRecord { seq, payload } in records {
            let payload = lake.unseal(&payload)?;
            let Ok(envelope) = serde_json::from_slice::<Envelope>(&payload) else {
                tracing::warn!(
                    seq,
                    "An unreadable record in the write-ahead log was skipped."
                );
                continue;
            };
            let version = match versions.get(&envelope.stream) {
                Some(v) => *v,
                None => {
                    let v = table_version(&lake, &envelope.stream).await?;
                    versions.insert(envelope.stream.clone(), v);
                    v
                }
            };
            if let Some(id) = &envelope.event_id {
                known
                    .entry(envelope.stream.clone())
                    .or_insert_with(|| WindowSet::new(window))
                    .insert(id_digest(id));
            }
            if seq as i64 > version {
                shared
                    .pending_bytes
                    .fetch_add(envelope.event.len() as u64, Ordering::Relaxed);
                shared
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Pending { seq, envelope });
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                events = replayed,
                "Acknowledged events from before the last stop are pending again."
            );
        }
        let wal = Arc::new(Mutex::new(wal));
        let (tx, rx) = mpsc::channel(1024);
        let ingest = Self {
            tx,
            shared,
            flush_now: Arc::new(Notify::new()),
            flush_lock: Arc::new(tokio::sync::Mutex::new(())),
            lake,
            principal,
            wal,
            max_pending_bytes: config.max_pending_bytes.max(1),
        };
        tokio::spawn(writer(
            ingest.clone(),
            rx,
            known,
            config.flush_bytes,
            window,
        ));
        tokio::spawn(flusher(ingest.clone(), config.flush_interval));
        if replayed > 0 {
            ingest.flush_now.notify_one();
        }
        Ok(ingest)
    }

    /// Appends events to `stream`; returns once they are in the log on disk.
    pub async fn append(&self, stream: &str, events: Vec<StreamEvent>) -> Result<Accepted> {
        stream_table(stream)?;
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(Error::StreamClosed);
        }
        let pending = self.shared.pending_bytes.load(Ordering::Relaxed);
        if pending >= self.max_pending_bytes {
            return Err(Error::Backlog(pending, self.max_pending_bytes));
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                stream: stream.to_string(),
                events,
                reply,
            })
            .await
            .map_err(|_| Error::StreamClosed)?;
        answer.await.map_err(|_| Error::StreamClosed)?
    }

    /// Writes every pending event to the lake now.
    pub async fn flush(&self) -> Result<()> {
        let _guard = self.flush_lock.lock().await;
        flush_once(self).await
    }

    /// Counters for monitoring.
    pub fn stats(&self) -> StreamStats {
        let s = &self.shared;
        StreamStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            flushed: s.flushed.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            flushes: s.flushes.load(Ordering::Relaxed),
            pending: s.pending.lock().map(|p| p.len() as u64).unwrap_or(0),
            pending_bytes: s.pending_bytes.load(Ordering::Relaxed),
            last_flush_error: s.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// Stops taking events, flushes what is pending, and returns.
    pub async fn shutdown(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.flush_now.notify_one();
        self.flush().await
    }
}

/// The highest log sequence number a stream's table has taken (0 when none).
async fn table_version(lake: &Lake, stream: &str) -> Result<i64> {
    let name = stream_table(stream)?;
    let Some(table) = lake
        .load_delta(&lake.table_url(&name)?, TimeTravel::Latest)
        .await?
    else {
        return Ok(0);
    };
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), STREAM_APP)
        .await?
        .unwrap_or(0))
}

/// The event ids remembered per stream, as digests.
type Known = HashMap<String, WindowSet<[u8; 16]>>;

/// The event ids a stream's table holds (its `event_id` column).
async fn stored_event_ids(lake: &Lake, stream: &str) -> Result<HashSet<String>> {
    let name = stream_table(stream)?;
    let Some(table) = lake
        .load_delta(&lake.table_url(&name)?, TimeTravel::Latest)
        .await?
    else {
        return Ok(HashSet::new());
    };
    let has_id = table
        .snapshot()?
        .snapshot()
        .arrow_schema()
        .field_with_name("event_id")
        .is_ok();
    if !has_id {
        return Ok(HashSet::new());
    }
    let batches = carelake_lake::read_columns(&table, &["event_id"]).await?;
    let mut ids = HashSet::new();
    for batch in batches {
        let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        if let Some(strings) = column.as_any().downcast_ref::<StringArray>() {
            ids.extend(strings.iter().flatten().map(str::to_string));
        }
    }
    Ok(ids)
}

/// Takes requests, groups those waiting, logs them with one fsync and acknowledges them.
async fn writer(
    ingest: StreamIngest,
    mut rx: mpsc::Receiver<Request>,
    mut known: Known,
    flush_bytes: u64,
    window: usize,
) {
    let mut loaded: HashSet<String> = HashSet::new();
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < 512 {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        // Event ids already in the lake, read once per stream.
        let mut failed: HashMap<String, String> = HashMap::new();
        for r in &group {
            if !loaded.contains(&r.stream) && !failed.contains_key(&r.stream) {
                match stored_event_ids(&ingest.lake, &r.stream).await {
                    Ok(ids) => {
                        known
                            .entry(r.stream.clone())
                            .or_insert_with(|| WindowSet::new(window))
                            .extend(ids.iter().map(|id| id_digest(id)));
                        loaded.insert(r.stream.clone());
                    }
                    Err(e) => {
                        failed.insert(r.stream.clone(), e.to_string());
                    }
                }
            }
        }
        let now = Utc::now().timestamp_micros();
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let mut envelopes: Vec<Envelope> = Vec::new();
        // Per request: (events logged, duplicates) or an error.
        let mut outcomes: Vec<std::result::Result<(usize, usize), String>> = Vec::new();
        let mut batch_ids: HashSet<(String, String)> = HashSet::new();
        for r in &group {
            if let Some(reason) = failed.get(&r.stream) {
                outcomes.push(Err(reason.clone()));
                continue;
            }
            let ids = known
                .entry(r.stream.clone())
                .or_insert_with(|| WindowSet::new(window));
            let (mut logged, mut duplicates) = (0, 0);
            let (mut sealed, mut taken) = (Vec::new(), Vec::new());
            let mut failure = None;
            for StreamEvent { json: text, id } in &r.events {
                if let Some(id) = id
                    && (ids.contains(&id_digest(id))
                        || !batch_ids.insert((r.stream.clone(), id.clone())))
                {
                    duplicates += 1;
                    continue;
                }
                let envelope = Envelope {
                    stream: r.stream.clone(),
                    received_at: now,
                    event_id: id.clone(),
                    event: text.clone(),
                };
                // Sealed like the lake's files when the lake is encrypted.
                let payload = serde_json::to_vec(&envelope).unwrap_or_default();
                match ingest.lake.seal(&payload) {
                    Ok(payload) => sealed.push(payload),
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
                taken.push(envelope);
                logged += 1;
            }
            match failure {
                // Nothing of the request is logged; it can be sent again.
                Some(reason) => outcomes.push(Err(reason)),
                None => {
                    payloads.extend(sealed);
                    envelopes.extend(taken);
                    outcomes.push(Ok((logged, duplicates)));
                }
            }
        }
        let first_seq = if payloads.is_empty() {
            Ok(0)
        } else {
            let wal = Arc::clone(&ingest.wal);
            tokio::task::spawn_blocking(move || {
                wal.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .append(&payloads)
            })
            .await
            .map_err(|e| Error::Worker(e.to_string()))
            .and_then(|r| r)
        };
        match first_seq {
            Ok(first_seq) => {
                let shared = &ingest.shared;
                let mut bytes = 0u64;
                {
                    let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
                    for (i, envelope) in envelopes.into_iter().enumerate() {
                        bytes += envelope.event.len() as u64;
                        if let Some(id) = &envelope.event_id {
                            known
                                .entry(envelope.stream.clone())
                                .or_insert_with(|| WindowSet::new(window))
                                .insert(id_digest(id));
                        }
                        pending.push(Pending {
                            seq: first_seq + i as u64,
                            envelope,
                        });
                    }
                }
                let total = shared.pending_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
                if total >= flush_bytes {
                    ingest.flush_now.notify_one();
                }
                let mut next = first_seq;
                for (r, outcome) in group.into_iter().zip(outcomes) {
                    let answer = match outcome {
                        Ok((logged, duplicates)) => {
                            shared.accepted.fetch_add(logged as u64, Ordering::Relaxed);
                            shared
                                .duplicates
                                .fetch_add(duplicates as u64, Ordering::Relaxed);
                            let accepted = Accepted {
                                accepted: logged,
                                duplicates,
                                first_seq: next,
                            };
                            next += logged as u64;
                            Ok(accepted)
                        }
                        Err(reason) => Err(Error::Event(reason)),
                    };
                    let _ = r.reply.send(answer);
                }
            }
            Err(e) => {
                // Nothing was acknowledged; the ids stay unknown so that a retry is taken.
                tracing::error!(error = %e, "The write-ahead log could not be written.");
                let reason = e.to_string();
                for r in group {
                    let _ = r.reply.send(Err(Error::Event(format!(
                        "the write-ahead log could not be written: {reason}"
                    ))));
                }
            }
        }
    }
}

/// Flushes every interval, or sooner when the writer asks.
async fn flusher(ingest: StreamIngest, interval: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = ingest.flush_now.notified() => {}
        }
        let result = {
            let _guard = ingest.flush_lock.lock().await;
            flush_once(&ingest).await
        };
        if let Err(e) = result {
            tracing::warn!(error = %carelake_common::redact_literals(&e.to_string()), "Flushing streamed events failed; they stay pending and are retried.");
        }
        // After shutdown, whose own flush writes whatever comes last.
        if ingest.shared.closed.load(Ordering::Relaxed) {
            break;
        }
    }
}

/// Writes what is pending, stream by stream; what fails goes back to pending.
async fn flush_once(ingest: &StreamIngest) -> Result<()> {
    let shared = &ingest.shared;
    let taken: Vec<Pending> =
        std::mem::take(&mut *shared.pending.lock().unwrap_or_else(|e| e.into_inner()));
    if taken.is_empty() {
        return Ok(());
    }
    let mut by_stream: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
    for p in taken {
        by_stream
            .entry(p.envelope.stream.clone())
            .or_default()
            .push(p);
    }
    let mut failure = None;
    let mut back: Vec<Pending> = Vec::new();
    for (stream, records) in by_stream {
        if failure.is_some() {
            back.extend(records);
            continue;
        }
        let bytes: u64 = records.iter().map(|p| p.envelope.event.len() as u64).sum();
        match write_stream(&ingest.lake, &ingest.principal, &stream, &records).await {
            Ok((written, rejected)) => {
                shared.flushed.fetch_add(written, Ordering::Relaxed);
                shared.rejected.fetch_add(rejected, Ordering::Relaxed);
                shared.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
            }
            Err(e) => {
                failure = Some(e);
                back.extend(records);
            }
        }
    }
    let lowest_pending = {
        let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !back.is_empty() {
            back.append(&mut pending);
            back.sort_by_key(|p| p.seq);
            *pending = back;
        }
        pending.iter().map(|p| p.seq).min()
    };
    shared.flushes.fetch_add(1, Ordering::Relaxed);
    match failure {
        Some(e) => {
            *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(carelake_common::redact_literals(&e.to_string()));
            Err(e)
        }
        None => {
            *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let wal = Arc::clone(&ingest.wal);
            tokio::task::spawn_blocking(move || {
                let mut wal = wal.lock().unwrap_or_else(|e| e.into_inner());
                let through = match lowest_pending {
                    Some(seq) => seq.saturating_sub(1),
                    None => u64::MAX - 1,
                };
                wal.remove_through(through)
            })
            .await
            .map_err(|e| Error::Worker(e.to_string()))?
        }
    }
}

/// The type a new column takes: nested values (and all-null ones) are kept as JSON text.
fn column_type(inferred: &DataType) -> DataType {
    match inferred {
        DataType::Struct(_) | DataType::List(_) | DataType::Null => DataType::Utf8,
        other => other.clone(),
    }
}

/// The fields of `values`, and the positions of values that cannot be typed at all (an array
/// holding both objects and numbers, say). Fields whose values disagree in type across events
/// become text. Inference runs once over all values, and event by event only when that fails.
fn infer_fields(values: &[Value]) -> (Vec<Field>, Vec<usize>) {
    if let Ok(schema) = arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
    {
        let fields = schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), column_type(f.data_type()), true))
            .collect();
        return (fields, Vec::new());
    }
    let mut fields: Vec<Field> = Vec::new();
    let mut untyped = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let Ok(schema) =
            arrow::json::reader::infer_json_schema_from_iterator(std::iter::once(Ok(value)))
        else {
            untyped.push(i);
            continue;
        };
        for f in schema.fields() {
            let data_type = column_type(f.data_type());
            match fields.iter_mut().find(|e| e.name() == f.name()) {
                Some(e) if e.data_type() != &data_type => {
                    *e = Field::new(f.name(), DataType::Utf8, true);
                }
                Some(_) => {}
                None => fields.push(Field::new(f.name(), data_type, true)),
            }
        }
    }
    (fields, untyped)
}

/// The table's columns (text as plain strings) followed by the new fields.
fn merged_schema(existing: Option<&Schema>, inferred: &[Field]) -> SchemaRef {
    let mut fields: Vec<Field> = match existing {
        Some(s) => s
            .fields()
            .iter()
            .filter(|f| !LINEAGE_COLUMNS.contains(&f.name().as_str()))
            .map(|f| {
                // Decode into plain strings; Delta hands back views.
                let data_type = match f.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                    other => other.clone(),
                };
                Field::new(f.name(), data_type, true)
            })
            .collect(),
        None => Vec::new(),
    };
    for f in inferred {
        if !fields.iter().any(|e| e.name() == f.name()) {
            fields.push(f.clone());
        }
    }
    Arc::new(Schema::new(fields))
}

/// Values of text columns as text: nested objects and arrays as JSON, numbers as written.
fn flatten_for(schema: &Schema, mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        for (key, v) in map.iter_mut() {
            let text_column = schema
                .field_with_name(key)
                .is_ok_and(|f| f.data_type() == &DataType::Utf8);
            // Text columns take nested values as JSON and scalars as their text.
            if text_column && !(v.is_string() || v.is_null()) {
                *v = Value::String(v.to_string());
            }
        }
    }
    value
}

fn decode(schema: &SchemaRef, values: &[Value]) -> std::result::Result<RecordBatch, String> {
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(schema))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(values).map_err(|e| e.to_string())?;
    match decoder.flush().map_err(|e| e.to_string())? {
        Some(batch) => Ok(batch),
        None => Ok(RecordBatch::new_empty(Arc::clone(schema))),
    }
}

/// Writes one stream's records to `raw.<stream>` in one commit; returns the rows written and
/// the events rejected.
async fn write_stream(
    lake: &Lake,
    principal: &Principal,
    stream: &str,
    records: &[Pending],
) -> Result<(u64, u64)> {
    let name = stream_table(stream)?;
    let url = lake.table_url(&name)?;
    let existing = lake.load_delta(&url, TimeTravel::Latest).await?;
    let done = match &existing {
        Some(t) => t
            .snapshot()?
            .transaction_version(t.log_store().as_ref(), STREAM_APP)
            .await?
            .unwrap_or(0),
        None => 0,
    };
    // Records a crash left behind after their commit are in the table already.
    let records: Vec<&Pending> = records.iter().filter(|p| p.seq as i64 > done).collect();
    let Some(last_seq) = records.iter().map(|p| p.seq).max() else {
        return Ok((0, 0));
    };
    let existing_schema = match &existing {
        Some(t) => Some(t.snapshot()?.snapshot().arrow_schema().as_ref().clone()),
        None => None,
    };
    let mut values = Vec::with_capacity(records.len());
    let mut rejects: Vec<(String, Reject)> = Vec::new();
    let mut kept: Vec<&Pending> = Vec::with_capacity(records.len());
    for p in &records {
        match serde_json::from_str::<Value>(&p.envelope.event) {
            Ok(v @ Value::Object(_)) => {
                values.push(v);
                kept.push(p);
            }
            _ => rejects.push((
                format!("http:{stream}"),
                Reject {
                    line: p.seq,
                    reason: "not a JSON object".into(),
                    raw: p.envelope.event.clone(),
                },
            )),
        }
    }
    let (inferred, untyped) = infer_fields(&values);
    if !untyped.is_empty() {
        let mut typed_values = Vec::with_capacity(values.len());
        let mut typed_records = Vec::with_capacity(kept.len());
        for (i, (v, p)) in values.into_iter().zip(kept).enumerate() {
            if untyped.contains(&i) {
                rejects.push((
                    format!("http:{stream}"),
                    Reject {
                        line: p.seq,
                        reason: "an array holds values of different kinds".into(),
                        raw: p.envelope.event.clone(),
                    },
                ));
            } else {
                typed_values.push(v);
                typed_records.push(p);
            }
        }
        values = typed_values;
        kept = typed_records;
    }
    let schema = merged_schema(existing_schema.as_ref(), &inferred);
    let values: Vec<Value> = values
        .into_iter()
        .map(|v| flatten_for(&schema, v))
        .collect();
    let (batch, kept) = match decode(&schema, &values) {
        Ok(batch) => (batch, kept),
        Err(_) => {
            // One by one: the events that fit go in, the others are quarantined.
            let mut good = Vec::new();
            let mut good_records = Vec::new();
            for (v, p) in values.iter().zip(kept) {
                match decode(&schema, std::slice::from_ref(v)) {
                    Ok(_) => {
                        good.push(v.clone());
                        good_records.push(p);
                    }
                    Err(reason) => rejects.push((
                        format!("http:{stream}"),
                        Reject {
                            line: p.seq,
                            reason: format!(
                                "does not fit the columns of {name}: {}",
                                carelake_common::redact_literals(&reason)
                            ),
                            raw: p.envelope.event.clone(),
                        },
                    )),
                }
            }
            (decode(&schema, &good).map_err(Error::Event)?, good_records)
        }
    };
    let load_id = uuid::Uuid::new_v4().to_string();
    let rejected = rejects.len() as u64;
    if !rejects.is_empty() {
        crate::load::quarantine(
            lake,
            principal,
            &name.to_string(),
            &load_id,
            rejects,
            Vec::new(),
        )
        .await?;
    }
    // Lineage: where each row came from (the stream and its log sequence number).
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let loaded_at = Utc::now().timestamp_micros();
    columns.push(Arc::new(StringArray::from(vec![
        format!("http:{stream}");
        n
    ])));
    columns.push(Arc::new(Int64Array::from_iter_values(
        kept.iter().map(|p| p.seq as i64),
    )));
    columns.push(Arc::new(StringArray::from(vec![load_id.clone(); n])));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![loaded_at; n]).with_timezone("UTC"),
    ));
    fields.push(Field::new("_source_file", DataType::Utf8, true));
    fields.push(Field::new("_source_line", DataType::Int64, true));
    fields.push(Field::new("_load_id", DataType::Utf8, true));
    fields.push(Field::new(
        "_loaded_at",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let created = existing.is_none();
    let table = match existing {
        Some(t) => t,
        None => lake.delta_handle(&url)?,
    };
    let written = table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_schema_mode(SchemaMode::Merge)
        .with_table_name(name.name.clone())
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transactions(vec![Transaction::new(STREAM_APP, last_seq as i64)])
                .with_max_retries(15),
        )
        .await?;
    // A commit a second: the small files are compacted as they pile up (on a task of its own).
    carelake_lake::AutoCompact::STREAMED.spawn_when_due(&written);
    let mut event = CatalogEvent::written(name.clone(), &written);
    if created {
        event.description = Some(format!("Events streamed to /api/v1/ingest/{stream}"));
        event.owner = Some(principal.name.clone());
        event.upstream = Some(Vec::new());
    }
    event.source = Some("HTTP ingest".into());
    lake.catalog().record(&[event]).await?;
    tracing::debug!(table = %name, rows = n, last_seq, "Streamed events flushed.");
    Ok((n as u64, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_checked() {
        assert!(stream_table("vitals").is_ok());
        assert!(stream_table("outreach_notes").is_ok());
        assert!(stream_table("Vitals").is_err());
        assert!(stream_table("_rejects").is_err());
        assert!(stream_table("../etc").is_err());
        assert!(stream_table("").is_err());
    }

    #[test]
    fn schemas_keep_the_table_and_add_new_fields() {
        let existing = Schema::new(vec![
            Field::new("event_id", DataType::Utf8View, true),
            Field::new("value", DataType::Float64, true),
            Field::new("_load_id", DataType::Utf8, true),
        ]);
        let values = vec![serde_json::json!({"event_id": "a", "value": 1, "note": {"x": 1}})];
        let schema = merged_schema(Some(&existing), &infer_fields(&values).0);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["event_id", "value", "note"]);
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
        let values: Vec<Value> = values
            .into_iter()
            .map(|v| flatten_for(&schema, v))
            .collect();
        let batch = decode(&schema, &values).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert!(decode(&schema, &[serde_json::json!({"value": "high"})]).is_err());
    }

    #[test]
    fn events_that_disagree_in_shape_become_text_and_untypable_ones_are_set_aside() {
        let values = vec![
            serde_json::json!({"reading": [1, 2], "site": "arm"}),
            serde_json::json!({"reading": [{"sys": 120}], "site": 3}),
            serde_json::json!({"reading": 7}),
            serde_json::json!({"mixed": [1, {"a": 1}]}),
        ];
        let (fields, untyped) = infer_fields(&values);
        assert_eq!(untyped, [3]);
        let types: Vec<(&str, &DataType)> = fields
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            types,
            [("reading", &DataType::Utf8), ("site", &DataType::Utf8)]
        );
        let schema = merged_schema(None, &fields);
        let typed: Vec<Value> = values[..3]
            .iter()
            .cloned()
            .map(|v| flatten_for(&schema, v))
            .collect();
        assert_eq!(decode(&schema, &typed).unwrap().num_rows(), 3);
    }
}
