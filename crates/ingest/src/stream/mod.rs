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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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

use crate::infer::{ColumnStats, ColumnType};
use crate::load::LINEAGE_COLUMNS;
use crate::rows::{BatchBuilder, Cell, Reject, classify_json, json_text, parse_cell};
use crate::{Error, Result};
use carelake_wal::{Wal, WalRecord};

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
        let (wal, records) = tokio::task::spawn_blocking(move || {
            carelake_lake::create_private_dir(&dir).map_err(|source| Error::Io {
                context: format!("creating {}", dir.display()),
                source,
            })?;
            Wal::open(&dir, segment_bytes).map_err(Error::from)
        })
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
            .and_then(|r| r.map_err(Error::from))
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
            .map_err(Error::from)
        }
    }
}

/// The columns of one flush: the table's own, in order, then the new keys of its events, each
/// with the type a file load of the same NDJSON would give it (carelake-rows: the same
/// classification of every value and the same inference, so the same events get the same
/// columns however they arrive). Keys are normalised as a file load normalises them
/// (`heartRate` → `heart_rate`), except a key that names an existing column as it is.
struct StreamColumns {
    names: Vec<String>,
    /// `None`: an existing column of a type streamed events cannot fill (no value goes in).
    types: Vec<Option<ColumnType>>,
    existing: usize,
    stats: Vec<ColumnStats>,
    by_key: HashMap<String, usize>,
}

impl StreamColumns {
    fn new(existing: Option<&Schema>) -> Self {
        let mut columns = Self {
            names: Vec::new(),
            types: Vec::new(),
            existing: 0,
            stats: Vec::new(),
            by_key: HashMap::new(),
        };
        for field in existing.into_iter().flat_map(|s| s.fields().iter()) {
            if LINEAGE_COLUMNS.contains(&field.name().as_str()) {
                continue;
            }
            columns.names.push(field.name().clone());
            columns
                .types
                .push(ColumnType::from_arrow(field.data_type()));
            columns.stats.push(ColumnStats::default());
        }
        columns.existing = columns.names.len();
        columns
    }

    /// The column of `key`, added when new.
    fn index(&mut self, key: &str) -> usize {
        if let Some(i) = self.by_key.get(key) {
            return *i;
        }
        let i = match self.names.iter().position(|n| n == key) {
            Some(i) => i,
            None => {
                let mut name = carelake_common::normalize_identifier(key);
                if name.is_empty() || LINEAGE_COLUMNS.contains(&name.as_str()) {
                    name = format!("field_{name}").trim_end_matches('_').to_string();
                }
                match self.names.iter().position(|n| *n == name) {
                    Some(i) => i,
                    None => {
                        self.names.push(name);
                        self.types.push(None);
                        self.stats.push(ColumnStats::default());
                        self.names.len() - 1
                    }
                }
            }
        };
        self.by_key.insert(key.to_string(), i);
        i
    }

    fn observe(&mut self, object: &serde_json::Map<String, Value>) {
        for (key, value) in object {
            let i = self.index(key);
            self.stats[i].observe(classify_json(value));
        }
    }

    /// Fixes the new columns' types (all-null ones are text) once every event was observed.
    fn infer(&mut self) {
        for i in self.existing..self.names.len() {
            self.types[i] = Some(match self.stats[i].infer() {
                ColumnType::Null => ColumnType::Text,
                other => other,
            });
        }
    }

    /// The columns written (those of a type streams fill), as indexes, and the batch schema:
    /// each as nullable, text as plain strings, then the lineage columns.
    fn written(&self, existing: Option<&Schema>) -> (Vec<usize>, SchemaRef, Vec<ColumnType>) {
        let mut indexes = Vec::new();
        let mut fields = Vec::new();
        let mut types = Vec::new();
        for (i, (name, column_type)) in self.names.iter().zip(&self.types).enumerate() {
            let Some(column_type) = column_type else {
                continue;
            };
            let data_type = match existing.and_then(|s| s.field_with_name(name).ok()) {
                // Decode into the table's type (plain strings for the views Delta hands back).
                Some(f) => match f.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                    other => other.clone(),
                },
                None => column_type.arrow_type(),
            };
            indexes.push(i);
            fields.push(Field::new(name, data_type, true));
            types.push(*column_type);
        }
        fields.extend(crate::rows::lineage_fields());
        (indexes, Arc::new(Schema::new(fields)), types)
    }

    /// The cells of one event in the written columns' order, or the column its value does not
    /// fit.
    fn cells<'a>(
        &mut self,
        object: &'a serde_json::Map<String, Value>,
        texts: &'a [Option<std::borrow::Cow<'a, str>>],
        positions: &[Option<usize>],
    ) -> std::result::Result<Vec<Cell<'a>>, usize> {
        let mut cells = vec![Cell::Null; positions.iter().flatten().count()];
        for ((key, value), text) in object.iter().zip(texts) {
            let column = self.index(key);
            let Some(text) = text else {
                continue;
            };
            let (Some(position), Some(column_type)) = (positions[column], self.types[column])
            else {
                return Err(column);
            };
            cells[position] = parse_cell(text, classify_json(value), column_type).ok_or(column)?;
        }
        Ok(cells)
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
    let label = format!("http:{stream}");
    let mut rejects: Vec<(String, Reject)> = Vec::new();
    let mut events: Vec<(&Pending, serde_json::Map<String, Value>)> =
        Vec::with_capacity(records.len());
    for p in &records {
        match serde_json::from_str::<Value>(&p.envelope.event) {
            Ok(Value::Object(object)) => events.push((*p, object)),
            _ => rejects.push((
                label.clone(),
                Reject {
                    line: p.seq,
                    reason: "not a JSON object".into(),
                    raw: p.envelope.event.clone(),
                },
            )),
        }
    }
    let mut columns = StreamColumns::new(existing_schema.as_ref());
    for (_, object) in &events {
        columns.observe(object);
    }
    columns.infer();
    let (written_columns, schema, types) = columns.written(existing_schema.as_ref());
    let mut positions = vec![None; columns.names.len()];
    for (position, column) in written_columns.iter().enumerate() {
        positions[*column] = Some(position);
    }
    let load_id = uuid::Uuid::new_v4().to_string();
    let loaded_at = Utc::now().timestamp_micros();
    let mut builder = BatchBuilder::new(Arc::clone(&schema), types, load_id.clone(), loaded_at);
    builder.file_label = label.clone();
    for (p, object) in &events {
        let texts: Vec<Option<std::borrow::Cow<'_, str>>> =
            object.values().map(json_text).collect();
        match columns.cells(object, &texts, &positions) {
            Ok(cells) => builder.append_row(p.seq, &cells),
            Err(column) => rejects.push((
                label.clone(),
                Reject {
                    line: p.seq,
                    reason: match columns.types[column] {
                        Some(t) => format!(
                            "a value does not fit the {t} column {} of {name}",
                            columns.names[column]
                        ),
                        None => format!(
                            "the column {} of {name} has a type streamed events cannot fill",
                            columns.names[column]
                        ),
                    },
                    raw: p.envelope.event.clone(),
                },
            )),
        }
    }
    let batch = builder.finish()?;
    let n = batch.num_rows();
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
    fn columns_keep_the_table_and_type_new_keys_as_a_file_load_does() {
        let existing = Schema::new(vec![
            Field::new("event_id", DataType::Utf8View, true),
            Field::new("value", DataType::Float64, true),
            Field::new("_load_id", DataType::Utf8, true),
        ]);
        let events: Vec<serde_json::Map<String, Value>> = [
            serde_json::json!({"event_id": "a", "value": 1, "note": {"x": 1}, "takenAt": "2024-01-31T10:00:00Z", "site": "arm"}),
            serde_json::json!({"event_id": "b", "value": 2.5, "takenAt": "2024-02-01T10:00:00Z", "site": 3, "reading": [1, {"a": 1}]}),
        ]
        .into_iter()
        .map(|v| match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        })
        .collect();
        let mut columns = StreamColumns::new(Some(&existing));
        for e in &events {
            columns.observe(e);
        }
        columns.infer();
        let (written, schema, types) = columns.written(Some(&existing));
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "event_id",
                "value",
                "note",
                "site",
                "taken_at",
                "reading",
                "_source_file",
                "_source_line",
                "_load_id",
                "_loaded_at"
            ]
        );
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(types[1], ColumnType::Double);
        assert_eq!(types[2], ColumnType::Text, "nested values are JSON text");
        assert!(
            matches!(types[4], ColumnType::Timestamp(_)),
            "{:?}",
            types[4]
        );
        assert_eq!(types[3], ColumnType::Text, "values that disagree are text");
        let mut positions = vec![None; columns.names.len()];
        for (p, c) in written.iter().enumerate() {
            positions[*c] = Some(p);
        }
        let mut builder = BatchBuilder::new(Arc::clone(&schema), types, "load".into(), 0);
        for (line, e) in events.iter().enumerate() {
            let texts: Vec<_> = e.values().map(json_text).collect();
            let cells = columns.cells(e, &texts, &positions).unwrap();
            builder.append_row(line as u64, &cells);
        }
        assert_eq!(builder.finish().unwrap().num_rows(), 2);
        // A value that does not fit an existing column's type is the event's reject.
        let bad = match serde_json::json!({"value": "high"}) {
            Value::Object(o) => o,
            _ => unreachable!(),
        };
        let texts: Vec<_> = bad.values().map(json_text).collect();
        assert_eq!(columns.cells(&bad, &texts, &positions).unwrap_err(), 1);
    }
}
