//! X12 837 claims into the lake: `raw.x12_claims` (one row per claim, with its envelope,
//! parties, dates and diagnoses) and `raw.x12_claim_lines` (one row per service line, its
//! diagnosis pointers resolved to codes).
//!
//! A file is all or nothing: a file the parser refuses (a broken envelope, a missing required
//! loop, a 999 acknowledgement sent by mistake) loads no claim and is quarantined whole in
//! `raw._rejects` with the reason. Each table's commit carries the file's hash, so the same
//! file is never loaded twice (see [`crate::clinical`]).

use arrow::datatypes::SchemaRef;
use carelake_x12::{Claim, ClaimLine};

use crate::clinical::{
    ClinicalParser, FileParse, RoundContext, SourceFile, TableSpec, clip, table_index,
};
use crate::columns::{ColumnSpec, Kind, Lineage, TableRows, col as column};
use crate::rows::Reject;
use crate::staged::RowSink;

const CLAIMS: &str = "x12_claims";
const LINES: &str = "x12_claim_lines";

const CLAIM_COLUMNS: &[ColumnSpec] = &[
    column("claim_id", Kind::Text),
    column("claim_kind", Kind::Text),
    column("implementation", Kind::Text),
    column("interchange_control", Kind::Text),
    column("group_control", Kind::Text),
    column("transaction_control", Kind::Text),
    column("sender_id", Kind::Text),
    column("receiver_id", Kind::Text),
    column("frequency_code", Kind::Text),
    column("place_of_service", Kind::Text),
    column("facility_code_qualifier", Kind::Text),
    column("total_charge", Kind::Float),
    column("billing_provider_npi", Kind::Text),
    column("billing_provider_name", Kind::Text),
    column("rendering_provider_npi", Kind::Text),
    column("attending_provider_npi", Kind::Text),
    column("referring_provider_npi", Kind::Text),
    column("payer_id", Kind::Text),
    column("payer_name", Kind::Text),
    column("payer_responsibility", Kind::Text),
    column("subscriber_id", Kind::Text),
    column("subscriber_last_name", Kind::Text),
    column("subscriber_first_name", Kind::Text),
    column("subscriber_birth_date", Kind::Date),
    column("subscriber_sex", Kind::Text),
    column("subscriber_relationship", Kind::Text),
    column("patient_is_subscriber", Kind::Bool),
    column("patient_last_name", Kind::Text),
    column("patient_first_name", Kind::Text),
    column("patient_birth_date", Kind::Date),
    column("patient_sex", Kind::Text),
    column("patient_member_id", Kind::Text),
    column("statement_from", Kind::Date),
    column("statement_to", Kind::Date),
    column("admission_date", Kind::Date),
    column("principal_diagnosis", Kind::Text),
    column("diagnosis_codes", Kind::TextList),
    column("diagnosis_qualifiers", Kind::TextList),
    column("prior_authorization", Kind::Text),
    column("line_count", Kind::Int),
];

const LINE_COLUMNS: &[ColumnSpec] = &[
    column("claim_id", Kind::Text),
    column("interchange_control", Kind::Text),
    column("transaction_control", Kind::Text),
    column("line_number", Kind::Int),
    column("procedure_qualifier", Kind::Text),
    column("procedure_code", Kind::Text),
    column("modifiers", Kind::TextList),
    column("revenue_code", Kind::Text),
    column("charge", Kind::Float),
    column("unit_basis", Kind::Text),
    column("units", Kind::Float),
    column("place_of_service", Kind::Text),
    column("diagnosis_pointers", Kind::TextList),
    column("diagnosis_codes", Kind::TextList),
    column("service_from", Kind::Date),
    column("service_to", Kind::Date),
    column("rendering_provider_npi", Kind::Text),
    column("line_control_number", Kind::Text),
];

/// The file loader's X12 parser.
#[derive(Debug, Default)]
pub(crate) struct X12Parser;

fn add_claim(
    tables: &mut Vec<(TableSpec, TableRows)>,
    claim: &Claim,
    sender: &str,
    receiver: &str,
    lineage: &Lineage<'_>,
) {
    let claims = table_index(
        tables,
        CLAIMS,
        "X12 837 claims as received: envelope, parties, dates and diagnoses, one row per claim",
        CLAIM_COLUMNS,
    );
    tables[claims]
        .1
        .row()
        .text(Some(&claim.claim_id))
        .text(claim.kind.map(|k| k.as_str()))
        .text(Some(&claim.implementation))
        .text(Some(&claim.interchange_control))
        .text(Some(&claim.group_control))
        .text(Some(&claim.transaction_control))
        .text(Some(sender))
        .text(Some(receiver))
        .text(claim.frequency_code.as_deref())
        .text(claim.place_of_service.as_deref())
        .text(claim.facility_code_qualifier.as_deref())
        .float(claim.total_charge)
        .text(claim.billing_provider_npi.as_deref())
        .text(claim.billing_provider_name.as_deref())
        .text(claim.rendering_provider_npi.as_deref())
        .text(claim.attending_provider_npi.as_deref())
        .text(claim.referring_provider_npi.as_deref())
        .text(claim.payer_id.as_deref())
        .text(claim.payer_name.as_deref())
        .text(claim.payer_responsibility.as_deref())
        .text(claim.subscriber_id.as_deref())
        .text(claim.subscriber_last_name.as_deref())
        .text(claim.subscriber_first_name.as_deref())
        .date(claim.subscriber_birth_date)
        .text(claim.subscriber_sex.as_deref())
        .text(claim.subscriber_relationship.as_deref())
        .bool(Some(claim.patient_is_subscriber))
        .text(claim.patient_last_name.as_deref())
        .text(claim.patient_first_name.as_deref())
        .date(claim.patient_birth_date)
        .text(claim.patient_sex.as_deref())
        .text(claim.patient_member_id.as_deref())
        .date(claim.statement_from)
        .date(claim.statement_to)
        .date(claim.admission_date)
        .text(claim.principal_diagnosis.as_deref())
        .text_list(claim.diagnosis_codes.iter().map(String::as_str))
        .text_list(claim.diagnosis_qualifiers.iter().map(String::as_str))
        .text(claim.prior_authorization.as_deref())
        .int(Some(claim.lines.len() as i64))
        .end(lineage);
    let lines = table_index(
        tables,
        LINES,
        "X12 837 service lines: procedure, modifiers, units, charge, dates and diagnosis pointers",
        LINE_COLUMNS,
    );
    for line in &claim.lines {
        add_line(&mut tables[lines].1, claim, line, lineage);
    }
}

fn add_line(rows: &mut TableRows, claim: &Claim, line: &ClaimLine, lineage: &Lineage<'_>) {
    let pointers: Vec<String> = line.diagnosis_pointers.iter().map(u8::to_string).collect();
    let codes: Vec<&str> = line
        .diagnosis_pointers
        .iter()
        .filter_map(|p| claim.diagnosis_codes.get(usize::from(*p).checked_sub(1)?))
        .map(String::as_str)
        .collect();
    rows.row()
        .text(Some(&claim.claim_id))
        .text(Some(&claim.interchange_control))
        .text(Some(&claim.transaction_control))
        .int(Some(i64::from(line.line_number)))
        .text(line.procedure_qualifier.as_deref())
        .text(line.procedure_code.as_deref())
        .text_list(line.modifiers.iter().map(String::as_str))
        .text(line.revenue_code.as_deref())
        .float(line.charge)
        .text(line.unit_basis.as_deref())
        .float(line.units)
        .text(line.place_of_service.as_deref())
        .text_list(pointers.iter().map(String::as_str))
        .text_list(codes)
        .date(line.service_from)
        .date(line.service_to)
        .text(line.rendering_provider_npi.as_deref())
        .text(line.line_control_number.as_deref())
        .end(lineage);
}

impl ClinicalParser for X12Parser {
    fn parse_file(
        &mut self,
        file: &SourceFile,
        context: &RoundContext,
        tables: &mut RowSink,
    ) -> FileParse {
        let mut parse = FileParse::default();
        // Claims become rows one transaction set at a time, handed over in chunks; a file
        // refused further on is dropped whole (see `crate::staged`).
        let parsed = carelake_x12::parse_837_each(&file.content, |envelope, claims| {
            for claim in &claims {
                parse.records += 1;
                let lineage = Lineage {
                    file: &file.label,
                    line: claim.segment_position as i64,
                    load_id: &context.load_id,
                    loaded_at: context.loaded_at,
                };
                add_claim(
                    tables,
                    claim,
                    &envelope.sender_id,
                    &envelope.receiver_id,
                    &lineage,
                );
            }
            tables.flush_full();
        });
        match parsed {
            Ok(interchange) => {
                for warning in &interchange.warnings {
                    tracing::warn!(file = %file.label, %warning, "X12 envelope count is off; the file is loaded.");
                }
            }
            Err(e) => {
                parse.records = 1;
                parse.whole_file_rejected = true;
                let line = match &e {
                    carelake_x12::Error::Segment { position, .. } => *position as u64,
                    _ => 0,
                };
                parse.rejects.push(Reject {
                    line,
                    reason: format!("X12 file rejected: {e}"),
                    raw: clip(&String::from_utf8_lossy(&file.content)),
                });
            }
        }
        parse
    }

    fn commit_order(&self, tables: &mut [(TableSpec, SchemaRef)]) {
        // Lines before claims: a claim row means its lines are in.
        tables.sort_by_key(|(spec, _)| spec.name == CLAIMS);
    }
}
