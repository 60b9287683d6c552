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
//! Messages received over MLLP go through the MLLP store in `carelake-stream`, which derives
//! the same rows with [`Hl7Group`] and commits the message store first (that commit is what
//! the ACK promises), then the typed tables.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use carelake_common::{TableName, Zone};
use carelake_hl7::Message;
use carelake_lake::{Lake, TimeTravel};
use chrono::{DateTime, NaiveDateTime, Utc};
use deltalake::DeltaTable;
use sha2::{Digest, Sha256};

use arrow::datatypes::SchemaRef;

use crate::Result;
use crate::clinical::{
    ClinicalParser, FileParse, RoundContext, SourceFile, TableSpec, clip, table_index,
};
use crate::columns::{ColumnSpec, Kind, Lineage, TableRows, col as column};
use crate::rows::Reject;
use crate::staged::RowSink;

/// The message store.
pub(crate) const MESSAGES: &str = "hl7_messages";
const PATIENT_EVENTS: &str = "hl7_patient_events";
const OBSERVATIONS: &str = "hl7_observations";
const DIAGNOSES: &str = "hl7_diagnoses";
const ALLERGIES: &str = "hl7_allergies";
const INSURANCE: &str = "hl7_insurance";

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
/// a conflict in the MLLP store).
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
                .struct_list(p.identifiers.iter().map(identifier_parts))
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
                .struct_list(p.prior_identifiers.iter().map(identifier_parts))
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

/// The raw table that holds every HL7 message whole, and the names of the typed HL7 tables
/// (for the MLLP store, which commits the message store first and catches the others up).
pub const MESSAGES_TABLE: &str = MESSAGES;

/// The names of the typed HL7 tables (every HL7 table but the message store).
pub fn typed_tables() -> impl Iterator<Item = &'static str> {
    table_specs()
        .into_iter()
        .map(|(name, _, _)| name)
        .filter(|name| *name != MESSAGES)
}

/// A stored message's content key or identity key (see [`hl7_message_key`] and [`hl7_id_key`]).
pub type Hl7Key = [u8; 16];

/// The content key of a message: equal for a resend, different for a reused control id.
pub fn hl7_message_key(message: &Message<'_>) -> Hl7Key {
    message_key(message)
}

/// The identity key of a message: sender, control id, message type and trigger event.
pub fn hl7_id_key(message: &Message<'_>) -> Hl7Key {
    id_key(message)
}

/// The content keys of every stored message, and the content key first stored under each
/// identity.
pub async fn stored_hl7_keys(lake: &Lake) -> Result<(HashSet<Hl7Key>, HashMap<Hl7Key, Hl7Key>)> {
    load_keys_and_ids(lake).await
}

/// Where a group of received messages came from, for the lineage columns.
#[derive(Debug, Clone, Copy)]
pub struct Hl7Source<'a> {
    /// The source (`mllp://<peer>`).
    pub file: &'a str,
    /// The load id of the group.
    pub load_id: &'a str,
    /// When the group was received, in microseconds since the epoch.
    pub loaded_at: i64,
}

/// The rows of every HL7 table derived from a group of messages (the unit the MLLP store
/// commits), typed as a file load types them.
#[derive(Default)]
pub struct Hl7Group {
    tables: Vec<(TableSpec, TableRows)>,
}

impl std::fmt::Debug for Hl7Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hl7Group")
            .field("tables", &self.tables.len())
            .finish()
    }
}

impl Hl7Group {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one message, received over `transport` ("mllp"), to every table it has rows for.
    pub fn add(
        &mut self,
        message: &Message<'_>,
        text: &str,
        transport: &str,
        source: Hl7Source<'_>,
    ) {
        Hl7Rows::new(&mut self.tables).add(
            message,
            text,
            transport,
            &Lineage {
                file: source.file,
                line: 1,
                load_id: source.load_id,
                loaded_at: source.loaded_at,
            },
        );
    }

    /// Each table's rows (name, description, batch), the message store first.
    pub fn finish(mut self) -> Result<Vec<(String, String, RecordBatch)>> {
        let mut batches = Vec::with_capacity(self.tables.len());
        for (spec, rows) in self.tables.iter_mut() {
            batches.push((spec.name.clone(), spec.description.clone(), rows.finish()?));
        }
        batches.sort_by_key(|(name, _, _)| name != MESSAGES);
        Ok(batches)
    }
}

/// The parts of a patient identifier (CX) as the identifier struct columns hold them.
fn identifier_parts(i: &carelake_hl7::PatientIdentifier) -> Vec<Option<&str>> {
    vec![
        Some(i.id.as_str()),
        i.assigning_authority.as_deref(),
        i.identifier_type.as_deref(),
    ]
}
