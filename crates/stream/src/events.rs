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
use arrow::datatypes::DataType;
use carelake_common::{Principal, TableName, Zone};
use carelake_lake::{Lake, TimeTravel};

use crate::flush::write_stream;
use crate::window::{WindowSet, id_digest};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

use carelake_ingest::{Error, Result};
use carelake_wal::{Wal, WalRecord};

/// Application id of the Delta transactions that record how far a table has taken the log.
pub(crate) const STREAM_APP: &str = "carelake-stream";

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
pub(crate) struct Envelope {
    pub(crate) stream: String,
    /// Microseconds since the epoch.
    pub(crate) received_at: i64,
    pub(crate) event_id: Option<String>,
    /// The event, a JSON object.
    pub(crate) event: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) seq: u64,
    pub(crate) envelope: Envelope,
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
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                stream: stream.to_string(),
                events,
                reply,
            })
            .await
            .map_err(|_| Error::StreamClosed)?;
        let accepted = answer.await.map_err(|_| Error::StreamClosed)?;
        metrics::histogram!(carelake_common::metrics::INGEST_ACK_SECONDS)
            .record(started.elapsed().as_secs_f64());
        accepted
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
    Ok(carelake_lake::app_version(&table, STREAM_APP)
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
        let started = std::time::Instant::now();
        let written = write_stream(&ingest.lake, &ingest.principal, &stream, &records).await;
        metrics::histogram!(carelake_common::metrics::INGEST_FLUSH_SECONDS)
            .record(started.elapsed().as_secs_f64());
        match written {
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
}
