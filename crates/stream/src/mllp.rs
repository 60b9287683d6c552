//! The MLLP message store: groups of HL7 v2 messages received over MLLP, committed to
//! `raw.hl7_messages` first (that commit is what the ACK promises) and then to the typed HL7
//! tables, with the rows a file load derives ([`carelake_ingest::Hl7Group`]).
//!
//! A message is identified by its sender (MSH-3 and MSH-4) and control id (MSH-10); one that is
//! already stored is a duplicate, acknowledged and not stored again. A message whose sender and
//! control id were seen with *different* content is a conflict: answered AE and quarantined
//! with the reason, never acknowledged as a duplicate (so that a forged message cannot make the
//! real one be dropped, nor the other way round), and never stored beside the first.
//!
//! Each group has a sequence number recorded as a Delta application transaction
//! (`carelake-mllp`) in every table it reaches, so a typed table that missed a group (the
//! process stopped between the two commits) is caught up from the message store when the
//! store opens again.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use carelake_common::{Principal, TableName, Zone};
use carelake_hl7::Message;
use carelake_ingest::{
    HL7_MESSAGES_TABLE as MESSAGES_TABLE, Hl7Group, Hl7Key, Hl7Source, Result, clip, hl7_id_key,
    hl7_message_key, hl7_typed_tables as typed_tables, stored_hl7_keys,
};
use carelake_lake::{Lake, Provenance, TableWrite, TimeTravel, WriteMode};
use carelake_rows::Reject;
use chrono::Utc;
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::DeltaTable;

use crate::window::{WindowMap, WindowSet};

/// Application id of the MLLP listener's group transactions.
const MLLP_APP: &str = "carelake-mllp";

/// A message received over the network.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The message text.
    pub text: String,
    /// Who sent it (address), for lineage.
    pub peer: String,
}

/// What became of a received message; the text comes back for the acknowledgement.
#[derive(Debug, Clone)]
pub enum StoreOutcome {
    /// Stored durably now.
    Stored {
        /// The message text.
        text: String,
    },
    /// Already in the lake (a resend): not stored again.
    Duplicate {
        /// The message text.
        text: String,
    },
    /// Could not be parsed: quarantined in `raw._rejects`.
    Rejected {
        /// The message text.
        text: String,
        /// Why, without patient data.
        reason: String,
    },
    /// Its sender and control id belong to a different message already stored (or earlier in
    /// the same group): quarantined in `raw._rejects`, answered AE.
    Conflict {
        /// The message text.
        text: String,
        /// Why, without patient data.
        reason: String,
    },
}

/// The HL7 message store as the MLLP listener uses it: knows every stored message's key,
/// commits groups of messages and catches the typed tables up after a restart.
#[derive(Debug)]
pub struct Hl7Store {
    lake: Lake,
    principal: Principal,
    /// The newest messages' keys (see [`Hl7Store::open_with`]).
    keys: WindowSet<Hl7Key>,
    /// The content key stored under each sender and control id, for the same messages.
    ids: WindowMap<Hl7Key, Hl7Key>,
    /// Sequence number of the last group committed to the message store.
    sequence: i64,
    /// A typed table missed a group (its commit failed after the message store's): the typed
    /// tables are caught up from the message store before they take another group, so a later
    /// group's transaction version never hides the one missed.
    lagging: bool,
    /// The typed tables that exist (one without rows yet is created empty by the first group,
    /// so that queries and pipelines find every typed table once a message is stored).
    present: HashSet<String>,
}

impl Hl7Store {
    /// Opens the store remembering the last [`Hl7Store::DEFAULT_WINDOW`] messages.
    pub async fn open(lake: Lake, principal: Principal) -> Result<Self> {
        Self::open_with(lake, principal, Self::DEFAULT_WINDOW).await
    }

    /// Messages remembered by default (about 80 bytes of memory each).
    pub const DEFAULT_WINDOW: usize = 2_000_000;

    /// Opens the store: reads the keys of the stored messages, keeping the newest `window`
    /// (a resend, or a reused control id, is recognised within the last `window` messages),
    /// and brings the typed tables up to date with the message store.
    pub async fn open_with(lake: Lake, principal: Principal, window: usize) -> Result<Self> {
        let (stored_keys, stored_ids) = stored_hl7_keys(&lake).await?;
        let mut keys = WindowSet::new(window);
        keys.extend(stored_keys);
        let mut ids = WindowMap::new(window);
        for (id, key) in stored_ids {
            ids.insert(id, key);
        }
        let sequence = match open_table(&lake, MESSAGES_TABLE).await? {
            Some(t) => mllp_version(&t).await?.unwrap_or(0),
            None => 0,
        };
        let mut store = Self {
            lake,
            principal,
            keys,
            ids,
            sequence,
            lagging: false,
            present: HashSet::new(),
        };
        store.catch_up().await?;
        tracing::info!(messages = store.keys.len(), sequence, "HL7 store open.");
        Ok(store)
    }

    /// The lake the store writes to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The principal the store writes as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The raw table that holds every stored message, `zone.table`.
    pub fn messages_table() -> String {
        format!("{}.{MESSAGES_TABLE}", Zone::Raw)
    }

    /// Messages known to the store.
    pub fn message_count(&self) -> usize {
        self.keys.len()
    }

    /// Stores a group of messages: new ones in one commit to the message store (durable when
    /// this returns), then in the typed tables. Outcomes are in the order of `messages`.
    pub async fn store(&mut self, messages: Vec<InboundMessage>) -> Result<Vec<StoreOutcome>> {
        let started = std::time::Instant::now();
        let stored = self.store_group(messages).await;
        metrics::histogram!(carelake_common::metrics::MLLP_GROUP_SECONDS)
            .record(started.elapsed().as_secs_f64());
        stored
    }

    async fn store_group(&mut self, messages: Vec<InboundMessage>) -> Result<Vec<StoreOutcome>> {
        let sequence = self.sequence + 1;
        let load_id = mllp_load_id(sequence);
        let loaded_at = Utc::now().timestamp_micros();
        let mut rows = Hl7Group::new();
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut rejects = Vec::new();
        let mut new_keys: HashSet<Hl7Key> = HashSet::new();
        let mut new_ids: HashMap<Hl7Key, Hl7Key> = HashMap::new();
        // A message that is not stored is quarantined with its reason.
        let mut quarantine = |inbound: &InboundMessage, reason: &str| {
            rejects.push((
                format!("mllp://{}", inbound.peer),
                Reject {
                    line: 1,
                    reason: reason.to_string(),
                    raw: clip(&inbound.text),
                },
            ));
        };
        for inbound in messages {
            let parsed = Message::parse(&inbound.text);
            let message = match parsed {
                Ok(m) => m,
                Err(e) => {
                    let reason = format!("HL7 message rejected: {e}");
                    quarantine(&inbound, &reason);
                    outcomes.push(StoreOutcome::Rejected {
                        text: inbound.text,
                        reason,
                    });
                    continue;
                }
            };
            let key = hl7_message_key(&message);
            if self.keys.contains(&key) || new_keys.contains(&key) {
                drop(message);
                outcomes.push(StoreOutcome::Duplicate { text: inbound.text });
                continue;
            }
            let id = hl7_id_key(&message);
            let taken = self
                .ids
                .get(&id)
                .or_else(|| new_ids.get(&id))
                .is_some_and(|k| *k != key);
            if taken {
                drop(message);
                let reason = "conflict: a different message with this sender and control id (MSH-3, MSH-4, MSH-10) is stored already; not stored".to_string();
                quarantine(&inbound, &reason);
                outcomes.push(StoreOutcome::Conflict {
                    text: inbound.text,
                    reason,
                });
                continue;
            }
            new_keys.insert(key);
            new_ids.entry(id).or_insert(key);
            let source = format!("mllp://{}", inbound.peer);
            rows.add(
                &message,
                &inbound.text,
                "mllp",
                Hl7Source {
                    file: &source,
                    load_id: &load_id,
                    loaded_at,
                },
            );
            drop(message);
            outcomes.push(StoreOutcome::Stored { text: inbound.text });
        }
        if !rejects.is_empty() {
            carelake_ingest::quarantine(
                &self.lake,
                &self.principal,
                "raw.hl7_messages",
                &load_id,
                rejects,
                Vec::new(),
            )
            .await?;
        }
        if new_keys.is_empty() {
            return Ok(outcomes);
        }
        // The message store first: this commit is the durable promise behind the ACK.
        let mut batches = rows.finish()?.into_iter();
        if let Some((name, description, batch)) = batches.next() {
            self.commit(&name, &description, batch, sequence).await?;
        }
        self.sequence = sequence;
        self.keys.extend(new_keys.iter().copied());
        for (id, key) in &new_ids {
            self.ids.insert(*id, *key);
        }
        if self.lagging {
            // This group included: the catch-up reads up to the sequence just stored.
            match self.catch_up().await {
                Ok(()) => self.lagging = false,
                Err(e) => {
                    tracing::warn!(error = %e, "The typed HL7 tables are behind the message store; retrying at the next group.");
                }
            }
            return Ok(outcomes);
        }
        for (name, description, batch) in batches {
            // A typed table with no rows from this group is not committed to: its transaction
            // version stays behind and the next catch-up advances it.
            if batch.num_rows() == 0 && self.present.contains(&name) {
                continue;
            }
            if let Err(e) = self.commit(&name, &description, batch, sequence).await {
                // Stored and acknowledged; the typed table catches up before the next group.
                tracing::warn!(table = %name, error = %e, "A typed HL7 table missed a group; it will be caught up.");
                self.lagging = true;
            } else {
                self.present.insert(name);
            }
        }
        Ok(outcomes)
    }

    async fn commit(
        &self,
        table: &str,
        description: &str,
        batch: RecordBatch,
        sequence: i64,
    ) -> Result<()> {
        let name = TableName::new(Zone::Raw, table)?;
        let provenance =
            Provenance::new("MLLP listener", self.principal.name.clone()).described(description);
        // A commit per acknowledged group: the small files are compacted as they pile up.
        TableWrite::new(name, WriteMode::Append, provenance)
            .transaction(MLLP_APP, sequence)
            .compact(carelake_lake::AutoCompact::STREAMED)
            .coalesce_catalog()
            .batches(&self.lake, None, vec![batch])
            .await?;
        Ok(())
    }

    /// Re-derives the typed rows of MLLP groups that reached the message store but not a
    /// typed table.
    async fn catch_up(&mut self) -> Result<()> {
        if self.sequence == 0 {
            return Ok(());
        }
        let Some(messages) = open_table(&self.lake, MESSAGES_TABLE).await? else {
            return Ok(());
        };
        for name in typed_tables() {
            let behind = match open_table(&self.lake, name).await? {
                Some(t) => {
                    self.present.insert(name.to_string());
                    mllp_version(&t).await?.unwrap_or(0)
                }
                None => 0,
            };
            if behind >= self.sequence {
                continue;
            }
            let ctx = SessionContext::new();
            messages.update_datafusion_session(&ctx.state())?;
            let batches = ctx
                .read_table(messages.table_provider().await?)?
                .filter(
                    col("_source_file")
                        .like(lit("mllp://%"))
                        .and(col("_load_id").gt(lit(mllp_load_id(behind))))
                        .and(col("_load_id").lt_eq(lit(mllp_load_id(self.sequence)))),
                )?
                .select_columns(&["raw_text", "_source_file", "_load_id"])?
                .collect()
                .await?;
            let loaded_at = Utc::now().timestamp_micros();
            let mut rows = Hl7Group::new();
            for batch in &batches {
                let text =
                    arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
                let source =
                    arrow::compute::cast(batch.column(1), &arrow::datatypes::DataType::Utf8)?;
                let load =
                    arrow::compute::cast(batch.column(2), &arrow::datatypes::DataType::Utf8)?;
                let (text, source, load) = (
                    text.as_string::<i32>(),
                    source.as_string::<i32>(),
                    load.as_string::<i32>(),
                );
                for row in 0..batch.num_rows() {
                    if text.is_null(row) {
                        continue;
                    }
                    let Ok(message) = Message::parse(text.value(row)) else {
                        continue;
                    };
                    rows.add(
                        &message,
                        text.value(row),
                        "mllp",
                        Hl7Source {
                            file: source.value(row),
                            load_id: load.value(row),
                            loaded_at,
                        },
                    );
                }
            }
            let Some((table, description, batch)) = rows
                .finish()?
                .into_iter()
                .find(|(table, _, _)| table == name)
            else {
                continue;
            };
            if batch.num_rows() > 0 {
                tracing::warn!(
                    table = name,
                    from = behind + 1,
                    to = self.sequence,
                    rows = batch.num_rows(),
                    "Caught up a typed HL7 table from the message store."
                );
            }
            self.commit(&table, &description, batch, self.sequence)
                .await?;
            self.present.insert(table);
        }
        Ok(())
    }
}

fn mllp_load_id(sequence: i64) -> String {
    format!("mllp-{sequence:012}")
}

async fn mllp_version(table: &DeltaTable) -> Result<Option<i64>> {
    Ok(carelake_lake::app_version(table, MLLP_APP).await?)
}

async fn open_table(lake: &Lake, name: &str) -> Result<Option<DeltaTable>> {
    let name = TableName::new(Zone::Raw, name)?;
    Ok(lake
        .load_delta(&lake.table_url(&name)?, TimeTravel::Latest)
        .await?)
}
