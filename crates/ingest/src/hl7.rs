//! HL7 v2 into the lake: every message whole in `raw.hl7_messages`, and typed tables for what
//! analytics needs (`raw.hl7_patient_events`, `raw.hl7_observations`, `raw.hl7_diagnoses`,
//! `raw.hl7_allergies`, `raw.hl7_insurance`).
//!
//! A message is identified by its sender (MSH-3 and MSH-4) and control id (MSH-10); one that is
//! already in the lake is counted as a duplicate and not stored again, whether it arrives in a
//! file or over MLLP. Over MLLP, a message whose sender and control id were seen with
//! *different* content is a conflict: answered AE and quarantined with the reason, never
//! acknowledged as a duplicate (so that a forged message cannot make the real one be dropped,
//! nor the other way round), and never stored beside the first. Files are committed typed tables first and the message store last, so a
//! load cut off half-way is completed by loading again (see [`crate::clinical`]).
//!
//! Messages received over MLLP ([`Hl7Store`]) are committed to the message store first — that
//! commit is what the ACK promises — and then to the typed tables. Each group of messages has
//! a sequence number recorded as a Delta application transaction (`carelake-mllp`) in every
//! table it reaches, so a typed table that missed a group (the process stopped between the two
//! commits) is caught up from the message store when the store opens again.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use carelake_common::{Principal, TableName, Zone};
use carelake_hl7::Message;
use carelake_lake::{CatalogEvent, Lake, TimeTravel};
use chrono::{DateTime, NaiveDateTime, Utc};
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use sha2::{Digest, Sha256};

use arrow::datatypes::SchemaRef;

use crate::Result;
use crate::clinical::{
    ClinicalParser, FileParse, RoundContext, SourceFile, TableSpec, clip, table_index,
};
use crate::columns::{ColumnSpec, Kind, Lineage, TableRows, col as column};
use crate::rows::Reject;
use crate::staged::RowSink;
use crate::window::{WindowMap, WindowSet};

/// The message store.
pub(crate) const MESSAGES: &str = "hl7_messages";
const PATIENT_EVENTS: &str = "hl7_patient_events";
const OBSERVATIONS: &str = "hl7_observations";
const DIAGNOSES: &str = "hl7_diagnoses";
const ALLERGIES: &str = "hl7_allergies";
const INSURANCE: &str = "hl7_insurance";

/// Application id of the MLLP listener's group transactions.
const MLLP_APP: &str = "carelake-mllp";

const MESSAGE_COLUMNS: &[ColumnSpec] = &[
    column("control_id", Kind::Text),
    column("message_type", Kind::Text),
    column("trigger_event", Kind::Text),
    column("message_structure", Kind::Text),
    column("sending_application", Kind::Text),
    column("sending_facility", Kind::Text),
    column("receiving_application", Kind::Text),
    column("receiving_facility", Kind::Text),
    column("message_time", Kind::Timestamp),
    column("processing_id", Kind::Text),
    column("version", Kind::Text),
    column("segment_count", Kind::Int),
    column("segments", Kind::TextList),
    column("transport", Kind::Text),
    column("raw_text", Kind::Text),
];

const IDENTIFIER_FIELDS: &[&str] = &["id", "assigning_authority", "identifier_type"];

const PATIENT_EVENT_COLUMNS: &[ColumnSpec] = &[
    column("control_id", Kind::Text),
    column("sending_facility", Kind::Text),
    column("message_type", Kind::Text),
    column("event_type", Kind::Text),
    column("event_time", Kind::Timestamp),
    column("message_time", Kind::Timestamp),
    column("patient_id", Kind::Text),
    column("patient_id_authority", Kind::Text),
    column("identifiers", Kind::StructList(IDENTIFIER_FIELDS)),
    column("family_name", Kind::Text),
    column("given_name", Kind::Text),
    column("middle_name", Kind::Text),
    column("birth_date", Kind::Date),
    column("sex", Kind::Text),
    column("street", Kind::Text),
    column("city", Kind::Text),
    column("state", Kind::Text),
    column("postal_code", Kind::Text),
    column("country", Kind::Text),
    column("phone", Kind::Text),
    column("marital_status", Kind::Text),
    column("death_indicator", Kind::Text),
    column("death_time", Kind::Timestamp),
    column("visit_number", Kind::Text),
    column("patient_class", Kind::Text),
    column("point_of_care", Kind::Text),
    column("room", Kind::Text),
    column("bed", Kind::Text),
    column("facility", Kind::Text),
    column("attending_id", Kind::Text),
    column("attending_family_name", Kind::Text),
    column("attending_given_name", Kind::Text),
    column("admit_type", Kind::Text),
    column("hospital_service", Kind::Text),
    column("admit_time", Kind::Timestamp),
    column("discharge_time", Kind::Timestamp),
    column("discharge_disposition", Kind::Text),
    column("prior_identifiers", Kind::StructList(IDENTIFIER_FIELDS)),
];

const OBSERVATION_COLUMNS: &[ColumnSpec] = &[
    column("control_id", Kind::Text),
    column("sending_facility", Kind::Text),
    column("patient_id", Kind::Text),
    column("visit_number", Kind::Text),
    column("obx_index", Kind::Int),
    column("set_id", Kind::Text),
    column("placer_order_number", Kind::Text),
    column("filler_order_number", Kind::Text),
    column("service_code", Kind::Text),
    column("service_text", Kind::Text),
    column("service_coding_system", Kind::Text),
    column("value_type", Kind::Text),
    column("code", Kind::Text),
    column("code_text", Kind::Text),
    column("coding_system", Kind::Text),
    column("value_text", Kind::Text),
    column("value_numeric", Kind::Float),
    column("comparator", Kind::Text),
    column("units", Kind::Text),
    column("reference_range", Kind::Text),
    column("abnormal_flags", Kind::Text),
    column("status", Kind::Text),
    column("observation_time", Kind::Timestamp),
];

const DIAGNOSIS_COLUMNS: &[ColumnSpec] = &[
    column("control_id", Kind::Text),
    column("sending_facility", Kind::Text),
    column("patient_id", Kind::Text),
    column("visit_number", Kind::Text),
    column("set_id", Kind::Text),
    column("code", Kind::Text),
    column("description", Kind::Text),
    column("coding_system", Kind::Text),
    column("diagnosis_type", Kind::Text),
    column("diagnosis_time", Kind::Timestamp),
    column("priority", Kind::Text),
];

const ALLERGY_COLUMNS: &[ColumnSpec] = &[
    column("control_id", Kind::Text),
    column("sending_facility", Kind::Text),
    column("patient_id", Kind::Text),
    column("set_id", Kind::Text),
    column("allergen_type", Kind::Text),
    column("code", Kind::Text),
    column("description", Kind::Text),
    column("coding_system", Kind::Text),
    column("severity", Kind::Text),
    column("reactions", Kind::TextList),
    column("identified_date", Kind::Date),
];

const INSURANCE_COLUMNS: &[ColumnSpec] = &[
    column("control_id", Kind::Text),
    column("sending_facility", Kind::Text),
    column("patient_id", Kind::Text),
    column("set_id", Kind::Text),
    column("plan_id", Kind::Text),
    column("company_id", Kind::Text),
    column("company_name", Kind::Text),
    column("group_number", Kind::Text),
    column("group_name", Kind::Text),
    column("plan_type", Kind::Text),
    column("insured_family_name", Kind::Text),
    column("insured_given_name", Kind::Text),
    column("insured_relationship", Kind::Text),
    column("policy_number", Kind::Text),
    column("effective_date", Kind::Date),
    column("expiration_date", Kind::Date),
];

/// The HL7 tables in commit order for file loads: typed tables first, the message store last.
fn table_specs() -> [(&'static str, &'static str, &'static [ColumnSpec]); 6] {
    [
        (
            PATIENT_EVENTS,
            "HL7 v2 patient and visit events (PID, PV1, EVN, MRG) with all identifiers",
            PATIENT_EVENT_COLUMNS,
        ),
        (
            OBSERVATIONS,
            "HL7 v2 observations (OBX with their OBR order), typed values and units",
            OBSERVATION_COLUMNS,
        ),
        (DIAGNOSES, "HL7 v2 diagnoses (DG1)", DIAGNOSIS_COLUMNS),
        (ALLERGIES, "HL7 v2 allergies (AL1)", ALLERGY_COLUMNS),
        (INSURANCE, "HL7 v2 insurance (IN1)", INSURANCE_COLUMNS),
        (
            MESSAGES,
            "Every HL7 v2 message received, whole, with its header fields",
            MESSAGE_COLUMNS,
        ),
    ]
}

/// The 128-bit key of a message: sender, control id, message type and the content after MSH.
/// A resend (same MSH-10 from the same sender, whatever its MSH-7) has the same key; a control
/// id a sender reused for a different message does not (a file load keeps that message; over MLLP it is
/// a conflict, see [`Hl7Store::store`]).
type MessageKey = [u8; 16];

fn message_key(message: &Message<'_>) -> MessageKey {
    let header = message.header();
    let mut hasher = Sha256::new();
    for part in [
        header.sending_application.as_deref().unwrap_or(""),
        header.sending_facility.as_deref().unwrap_or(""),
        header.control_id.as_deref().unwrap_or(""),
        header.message_type.as_deref().unwrap_or(""),
        header.trigger_event.as_deref().unwrap_or(""),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    for segment in message.segments().skip(1) {
        hasher.update(segment.text().trim_end().as_bytes());
        hasher.update(b"\r");
    }
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The 128-bit key of a message's identity without its content: sender, control id, message
/// type and trigger event.
type IdKey = [u8; 16];

fn id_key(message: &Message<'_>) -> IdKey {
    let header = message.header();
    let mut hasher = Sha256::new();
    hasher.update(b"id\0");
    for part in [
        header.sending_application.as_deref().unwrap_or(""),
        header.sending_facility.as_deref().unwrap_or(""),
        header.control_id.as_deref().unwrap_or(""),
        header.message_type.as_deref().unwrap_or(""),
        header.trigger_event.as_deref().unwrap_or(""),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Reads the keys of every message in the store.
async fn load_keys(lake: &Lake) -> Result<HashSet<MessageKey>> {
    Ok(load_keys_and_ids(lake).await?.0)
}

/// Reads the keys of every message in the store, and which content key each identity has.
async fn load_keys_and_ids(
    lake: &Lake,
) -> Result<(HashSet<MessageKey>, HashMap<IdKey, MessageKey>)> {
    let mut keys = HashSet::new();
    let mut ids = HashMap::new();
    let Some(table) = open_table(lake, MESSAGES).await? else {
        return Ok((keys, ids));
    };
    let batches = carelake_lake::read_columns(&table, &["raw_text"]).await?;
    for batch in batches {
        let text = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
        let text = text.as_string::<i32>();
        for row in 0..batch.num_rows() {
            if text.is_null(row) {
                continue;
            }
            if let Ok(message) = Message::parse(text.value(row)) {
                let key = message_key(&message);
                keys.insert(key);
                ids.entry(id_key(&message)).or_insert(key);
            }
        }
    }
    Ok((keys, ids))
}

async fn open_table(lake: &Lake, name: &str) -> Result<Option<DeltaTable>> {
    let name = TableName::new(Zone::Raw, name)?;
    Ok(lake
        .load_delta(&lake.table_url(&name)?, TimeTravel::Latest)
        .await?)
}

fn utc(time: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    time.map(|t| t.and_utc())
}

/// Rows of the six HL7 tables.
struct Hl7Rows<'t> {
    tables: &'t mut Vec<(TableSpec, TableRows)>,
    index: [usize; 6],
}

impl<'t> Hl7Rows<'t> {
    fn new(tables: &'t mut Vec<(TableSpec, TableRows)>) -> Self {
        let mut index = [0; 6];
        for (i, (name, description, columns)) in table_specs().into_iter().enumerate() {
            index[i] = table_index(tables, name, description, columns);
        }
        Self { tables, index }
    }

    fn rows(&mut self, which: usize) -> &mut TableRows {
        &mut self.tables[self.index[which]].1
    }

    /// Adds one message to every table it has rows for.
    fn add(&mut self, message: &Message<'_>, text: &str, transport: &str, lineage: &Lineage<'_>) {
        let extracted = message.extract();
        let header = &extracted.header;
        let message_time = utc(header.message_time);
        let control = header.control_id.as_deref();
        let facility = header.sending_facility.as_deref();
        let patient_id = extracted
            .patient
            .as_ref()
            .and_then(|p| p.identifiers.first())
            .map(|i| i.id.as_str());
        let visit = extracted
            .patient
            .as_ref()
            .and_then(|p| p.visit_number.as_deref());

        let segments: Vec<&str> = message.segments().map(|s| s.name()).collect();
        self.rows(5)
            .row()
            .text(control)
            .text(header.message_type.as_deref())
            .text(header.trigger_event.as_deref())
            .text(header.message_structure.as_deref())
            .text(header.sending_application.as_deref())
            .text(facility)
            .text(header.receiving_application.as_deref())
            .text(header.receiving_facility.as_deref())
            .timestamp(message_time)
            .text(header.processing_id.as_deref())
            .text(header.version.as_deref())
            .int(Some(segments.len() as i64))
            .text_list(segments.iter().copied())
            .text(Some(transport))
            .text(Some(text))
            .end(lineage);

        if let Some(p) = &extracted.patient {
            let first = p.identifiers.first();
            self.rows(0)
                .row()
                .text(control)
                .text(facility)
                .text(header.message_type.as_deref())
                .text(p.event_type.as_deref())
                .timestamp(utc(p.event_time))
                .timestamp(message_time)
                .text(first.map(|i| i.id.as_str()))
                .text(first.and_then(|i| i.assigning_authority.as_deref()))
                .struct_list(p.identifiers.iter().map(|i| {
                    vec![
                        Some(i.id.as_str()),
                        i.assigning_authority.as_deref(),
                        i.identifier_type.as_deref(),
                    ]
                }))
                .text(p.family_name.as_deref())
                .text(p.given_name.as_deref())
                .text(p.middle_name.as_deref())
                .date(p.birth_date)
                .text(p.sex.as_deref())
                .text(p.street.as_deref())
                .text(p.city.as_deref())
                .text(p.state.as_deref())
                .text(p.postal_code.as_deref())
                .text(p.country.as_deref())
                .text(p.phone.as_deref())
                .text(p.marital_status.as_deref())
                .text(p.death_indicator.as_deref())
                .timestamp(utc(p.death_time))
                .text(p.visit_number.as_deref())
                .text(p.patient_class.as_deref())
                .text(p.point_of_care.as_deref())
                .text(p.room.as_deref())
                .text(p.bed.as_deref())
                .text(p.facility.as_deref())
                .text(p.attending_id.as_deref())
                .text(p.attending_family_name.as_deref())
                .text(p.attending_given_name.as_deref())
                .text(p.admit_type.as_deref())
                .text(p.hospital_service.as_deref())
                .timestamp(utc(p.admit_time))
                .timestamp(utc(p.discharge_time))
                .text(p.discharge_disposition.as_deref())
                .struct_list(p.prior_identifiers.iter().map(|i| {
                    vec![
                        Some(i.id.as_str()),
                        i.assigning_authority.as_deref(),
                        i.identifier_type.as_deref(),
                    ]
                }))
                .end(lineage);
        }
        for o in &extracted.observations {
            self.rows(1)
                .row()
                .text(control)
                .text(facility)
                .text(patient_id)
                .text(visit)
                .int(Some(o.index as i64))
                .text(o.set_id.as_deref())
                .text(o.placer_order_number.as_deref())
                .text(o.filler_order_number.as_deref())
                .text(o.service_code.as_deref())
                .text(o.service_text.as_deref())
                .text(o.service_coding_system.as_deref())
                .text(o.value_type.as_deref())
                .text(o.code.as_deref())
                .text(o.code_text.as_deref())
                .text(o.coding_system.as_deref())
                .text(o.value_text.as_deref())
                .float(o.value_numeric)
                .text(o.comparator.as_deref())
                .text(o.units.as_deref())
                .text(o.reference_range.as_deref())
                .text(o.abnormal_flags.as_deref())
                .text(o.status.as_deref())
                .timestamp(utc(o.observation_time))
                .end(lineage);
        }
        for d in &extracted.diagnoses {
            self.rows(2)
                .row()
                .text(control)
                .text(facility)
                .text(patient_id)
                .text(visit)
                .text(d.set_id.as_deref())
                .text(d.code.as_deref())
                .text(d.description.as_deref())
                .text(d.coding_system.as_deref())
                .text(d.diagnosis_type.as_deref())
                .timestamp(utc(d.diagnosis_time))
                .text(d.priority.as_deref())
                .end(lineage);
        }
        for a in &extracted.allergies {
            self.rows(3)
                .row()
                .text(control)
                .text(facility)
                .text(patient_id)
                .text(a.set_id.as_deref())
                .text(a.allergen_type.as_deref())
                .text(a.code.as_deref())
                .text(a.description.as_deref())
                .text(a.coding_system.as_deref())
                .text(a.severity.as_deref())
                .text_list(a.reactions.iter().map(String::as_str))
                .date(a.identified_date)
                .end(lineage);
        }
        for i in &extracted.insurance {
            self.rows(4)
                .row()
                .text(control)
                .text(facility)
                .text(patient_id)
                .text(i.set_id.as_deref())
                .text(i.plan_id.as_deref())
                .text(i.company_id.as_deref())
                .text(i.company_name.as_deref())
                .text(i.group_number.as_deref())
                .text(i.group_name.as_deref())
                .text(i.plan_type.as_deref())
                .text(i.insured_family_name.as_deref())
                .text(i.insured_given_name.as_deref())
                .text(i.insured_relationship.as_deref())
                .text(i.policy_number.as_deref())
                .date(i.effective_date)
                .date(i.expiration_date)
                .end(lineage);
        }
    }
}

fn key_of(message: &Message<'_>) -> MessageKey {
    message_key(message)
}

/// The file loader's HL7 parser.
#[derive(Debug, Default)]
pub(crate) struct Hl7Parser {
    keys: HashSet<MessageKey>,
}

impl ClinicalParser for Hl7Parser {
    async fn prepare(&mut self, lake: &Lake) -> Result<()> {
        self.keys = load_keys(lake).await?;
        Ok(())
    }

    fn parse_file(
        &mut self,
        file: &SourceFile,
        context: &RoundContext,
        tables: &mut RowSink,
    ) -> FileParse {
        let mut parse = FileParse::default();
        // Every HL7 table exists once a file was read, whatever it held.
        Hl7Rows::new(tables);
        let text = String::from_utf8_lossy(&file.content);
        let messages = match carelake_hl7::split_batch(&text) {
            Ok(batch) => batch,
            Err(e) => {
                parse.whole_file_rejected = true;
                parse.rejects.push(Reject {
                    line: e.line().unwrap_or(0) as u64,
                    reason: format!("HL7 file rejected: {e}"),
                    raw: clip(&text),
                });
                return parse;
            }
        };
        for item in messages.messages {
            parse.records += 1;
            let lineage = Lineage {
                file: &file.label,
                line: item.line as i64,
                load_id: &context.load_id,
                loaded_at: context.loaded_at,
            };
            let message = match Message::parse(item.text) {
                Ok(m) => m,
                Err(e) => {
                    parse.rejects.push(Reject {
                        line: item.line as u64,
                        reason: format!("HL7 message rejected: {e}"),
                        raw: clip(item.text),
                    });
                    continue;
                }
            };
            if !self.keys.insert(key_of(&message)) {
                parse.duplicates += 1;
                continue;
            }
            Hl7Rows::new(tables).add(&message, item.text, "file", &lineage);
            tables.flush_full();
        }
        parse
    }

    fn commit_order(&self, tables: &mut [(TableSpec, SchemaRef)]) {
        // The message store is the ledger: last.
        tables.sort_by_key(|(spec, _)| spec.name == MESSAGES);
    }
}

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
    keys: WindowSet<MessageKey>,
    /// The content key stored under each sender and control id, for the same messages.
    ids: WindowMap<IdKey, MessageKey>,
    /// Sequence number of the last group committed to the message store.
    sequence: i64,
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
        let (stored_keys, stored_ids) = load_keys_and_ids(&lake).await?;
        let mut keys = WindowSet::new(window);
        keys.extend(stored_keys);
        let mut ids = WindowMap::new(window);
        for (id, key) in stored_ids {
            ids.insert(id, key);
        }
        let sequence = match open_table(&lake, MESSAGES).await? {
            Some(t) => mllp_version(&t).await?.unwrap_or(0),
            None => 0,
        };
        let store = Self {
            lake,
            principal,
            keys,
            ids,
            sequence,
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
        format!("{}.{MESSAGES}", Zone::Raw)
    }

    /// Messages known to the store.
    pub fn message_count(&self) -> usize {
        self.keys.len()
    }

    /// Stores a group of messages: new ones in one commit to the message store (durable when
    /// this returns), then in the typed tables. Outcomes are in the order of `messages`.
    pub async fn store(&mut self, messages: Vec<InboundMessage>) -> Result<Vec<StoreOutcome>> {
        let sequence = self.sequence + 1;
        let load_id = mllp_load_id(sequence);
        let loaded_at = Utc::now().timestamp_micros();
        let mut tables = Vec::new();
        let mut rows = Hl7Rows::new(&mut tables);
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut rejects = Vec::new();
        let mut new_keys: HashSet<MessageKey> = HashSet::new();
        let mut new_ids: HashMap<IdKey, MessageKey> = HashMap::new();
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
            let key = key_of(&message);
            if self.keys.contains(&key) || new_keys.contains(&key) {
                drop(message);
                outcomes.push(StoreOutcome::Duplicate { text: inbound.text });
                continue;
            }
            let id = id_key(&message);
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
                &Lineage {
                    file: &source,
                    line: 1,
                    load_id: &load_id,
                    loaded_at,
                },
            );
            drop(message);
            outcomes.push(StoreOutcome::Stored { text: inbound.text });
        }
        if !rejects.is_empty() {
            crate::load::quarantine(
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
        let mut batches: Vec<(TableSpec, RecordBatch)> = Vec::new();
        for (spec, table) in tables.iter_mut() {
            batches.push((spec.clone(), table.finish()?));
        }
        batches.sort_by_key(|(spec, _)| spec.name != MESSAGES);
        let mut first = true;
        for (spec, batch) in batches {
            let result = self.commit(&spec, batch, sequence).await;
            if first {
                result?;
                self.sequence = sequence;
                self.keys.extend(new_keys.iter().copied());
                for (id, key) in &new_ids {
                    self.ids.insert(*id, *key);
                }
                first = false;
            } else if let Err(e) = result {
                // Stored and acknowledged; the typed table catches up at the next open.
                tracing::warn!(table = %spec.name, error = %e, "A typed HL7 table missed a group; it will be caught up.");
            }
        }
        Ok(outcomes)
    }

    async fn commit(&self, spec: &TableSpec, batch: RecordBatch, sequence: i64) -> Result<()> {
        let name = TableName::new(Zone::Raw, &spec.name)?;
        let url = self.lake.table_url(&name)?;
        let existing = self.lake.load_delta(&url, TimeTravel::Latest).await?;
        let created = existing.is_none();
        let table = match existing {
            Some(t) => t,
            None => self.lake.delta_handle(&url)?,
        };
        let written = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_table_name(name.name.clone())
            .with_commit_properties(
                CommitProperties::default()
                    .with_application_transactions(vec![Transaction::new(MLLP_APP, sequence)])
                    .with_max_retries(15),
            )
            .await?;
        // A commit per acknowledged group: the small files are compacted as they pile up, on a
        // task of its own so that no acknowledgement waits for it.
        carelake_lake::AutoCompact::STREAMED.spawn_when_due(&written);
        let mut event = CatalogEvent::written(name, &written);
        if created {
            event.description = Some(spec.description.clone());
            event.owner = Some(self.principal.name.clone());
            event.upstream = Some(Vec::new());
        }
        event.source = Some("MLLP listener".into());
        self.lake.catalog().record(&[event]).await?;
        Ok(())
    }

    /// Re-derives the typed rows of MLLP groups that reached the message store but not a
    /// typed table.
    async fn catch_up(&self) -> Result<()> {
        if self.sequence == 0 {
            return Ok(());
        }
        let Some(messages) = open_table(&self.lake, MESSAGES).await? else {
            return Ok(());
        };
        for (name, _, _) in table_specs() {
            if name == MESSAGES {
                continue;
            }
            let behind = match open_table(&self.lake, name).await? {
                Some(t) => mllp_version(&t).await?.unwrap_or(0),
                None => 0,
            };
            if behind >= self.sequence {
                continue;
            }
            tracing::warn!(
                table = name,
                from = behind + 1,
                to = self.sequence,
                "Catching up a typed HL7 table from the message store."
            );
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
            let mut tables = Vec::new();
            let loaded_at = Utc::now().timestamp_micros();
            {
                let mut rows = Hl7Rows::new(&mut tables);
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
                            &Lineage {
                                file: source.value(row),
                                line: 1,
                                load_id: load.value(row),
                                loaded_at,
                            },
                        );
                    }
                }
            }
            let Some((spec, table)) = tables.iter_mut().find(|(s, _)| s.name == name) else {
                continue;
            };
            let batch = table.finish()?;
            self.commit(spec, batch, self.sequence).await?;
        }
        Ok(())
    }
}

fn mllp_load_id(sequence: i64) -> String {
    format!("mllp-{sequence:012}")
}

async fn mllp_version(table: &DeltaTable) -> Result<Option<i64>> {
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), MLLP_APP)
        .await?)
}
