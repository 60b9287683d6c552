//! The long-running ingest services: what clients push while `carelake serve` runs, as
//! opposed to the files that `carelake-ingest` loads.
//!
//! ```text
//! events.rs  streamed events (HTTP /api/v1/ingest/<stream>): acknowledged once in the
//!            write-ahead log (carelake-wal), flushed to raw.<stream> about once a second
//! flush.rs   one stream's flush: events typed with the same inference as a file load of
//!            NDJSON (carelake-rows), one commit with the log's sequence number
//! mllp.rs    the MLLP message store: groups of HL7 v2 messages committed to raw.hl7_messages
//!            (what the ACK promises), then to the typed HL7 tables (rows from carelake-ingest)
//! window.rs  the bounded sets of recent event ids and message keys that tell a resend
//! ```
//!
//! Both write through the lake's one commit path ([`carelake_lake::TableWrite`]) with a
//! sequence number as a Delta application transaction, which is what makes every
//! acknowledged event or message land exactly once across crashes and restarts.

mod events;
mod flush;
mod mllp;
mod window;

pub use carelake_ingest::{Error, Result};
pub use events::{Accepted, StreamConfig, StreamEvent, StreamIngest, StreamStats, stream_table};
pub use mllp::{Hl7Store, InboundMessage, StoreOutcome};
