//! What an 837 file holds, as carelake reads it: flat claims with their service lines, and the
//! file's envelope summary. The envelopes are read in `envelope.rs`, the loops in `walk.rs`.

use chrono::NaiveDate;

/// Professional (837P) or institutional (837I).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// 005010X222: professional claims (CMS-1500).
    Professional,
    /// 005010X223: institutional claims (UB-04).
    Institutional,
}

impl ClaimKind {
    /// `837P` or `837I`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimKind::Professional => "837P",
            ClaimKind::Institutional => "837I",
        }
    }
}

/// One service line (loop 2400).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimLine {
    /// LX01.
    pub line_number: u32,
    /// Product/service id qualifier (`HC` for CPT/HCPCS).
    pub procedure_qualifier: Option<String>,
    /// CPT/HCPCS code.
    pub procedure_code: Option<String>,
    /// Up to four modifiers.
    pub modifiers: Vec<String>,
    /// Revenue code (837I SV201).
    pub revenue_code: Option<String>,
    /// Line charge.
    pub charge: Option<f64>,
    /// Unit basis (`UN` units, `MJ` minutes, `DA` days).
    pub unit_basis: Option<String>,
    /// Units.
    pub units: Option<f64>,
    /// Line place of service (837P SV105).
    pub place_of_service: Option<String>,
    /// Diagnosis pointers (1-based into the claim's diagnoses).
    pub diagnosis_pointers: Vec<u8>,
    /// Service date, or the start of the range.
    pub service_from: Option<NaiveDate>,
    /// End of the service date range.
    pub service_to: Option<NaiveDate>,
    /// Line rendering provider NPI (2420A).
    pub rendering_provider_npi: Option<String>,
    /// Line item control number (REF*6R).
    pub line_control_number: Option<String>,
}

/// One claim (loop 2300) with its context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claim {
    /// ISA13.
    pub interchange_control: String,
    /// GS06.
    pub group_control: String,
    /// ST02.
    pub transaction_control: String,
    /// Professional or institutional.
    pub kind: Option<ClaimKind>,
    /// ST03 or GS08 (`005010X222A1`).
    pub implementation: String,
    /// CLM01: the submitter's claim id.
    pub claim_id: String,
    /// CLM02.
    pub total_charge: Option<f64>,
    /// CLM05-1: place of service (837P) or facility type (837I).
    pub place_of_service: Option<String>,
    /// CLM05-2.
    pub facility_code_qualifier: Option<String>,
    /// CLM05-3: 1 original, 7 replacement, 8 void.
    pub frequency_code: Option<String>,
    /// 2010AA NPI.
    pub billing_provider_npi: Option<String>,
    /// 2010AA name.
    pub billing_provider_name: Option<String>,
    /// 2310B (837P) or 2310D (837I) rendering NPI.
    pub rendering_provider_npi: Option<String>,
    /// 2310A (837I) attending NPI.
    pub attending_provider_npi: Option<String>,
    /// Referring provider NPI.
    pub referring_provider_npi: Option<String>,
    /// 2010BB payer name.
    pub payer_name: Option<String>,
    /// 2010BB payer id.
    pub payer_id: Option<String>,
    /// 2010BA member id.
    pub subscriber_id: Option<String>,
    /// 2010BA last name.
    pub subscriber_last_name: Option<String>,
    /// 2010BA first name.
    pub subscriber_first_name: Option<String>,
    /// 2010BA DMG02.
    pub subscriber_birth_date: Option<NaiveDate>,
    /// 2010BA DMG03.
    pub subscriber_sex: Option<String>,
    /// SBR02 (18 = self).
    pub subscriber_relationship: Option<String>,
    /// SBR01 (P primary, S secondary, T tertiary…).
    pub payer_responsibility: Option<String>,
    /// Whether the patient is the subscriber (no 2000C loop).
    pub patient_is_subscriber: bool,
    /// Patient last name (2010CA, else the subscriber's).
    pub patient_last_name: Option<String>,
    /// Patient first name.
    pub patient_first_name: Option<String>,
    /// Patient birth date.
    pub patient_birth_date: Option<NaiveDate>,
    /// Patient sex.
    pub patient_sex: Option<String>,
    /// Patient member id (2010CA REF or the subscriber id).
    pub patient_member_id: Option<String>,
    /// Statement from (837I DTP*434), else the earliest service date.
    pub statement_from: Option<NaiveDate>,
    /// Statement to, else the latest service date.
    pub statement_to: Option<NaiveDate>,
    /// Admission date (DTP*435).
    pub admission_date: Option<NaiveDate>,
    /// Discharge hour (DTP*096).
    pub discharge_hour: Option<String>,
    /// Diagnosis codes, principal first.
    pub diagnosis_codes: Vec<String>,
    /// The principal diagnosis.
    pub principal_diagnosis: Option<String>,
    /// The qualifier of each code (`ABK` ICD-10 principal, `ABF` other, `BK`/`BF` ICD-9…).
    pub diagnosis_qualifiers: Vec<String>,
    /// Prior authorization (REF*G1).
    pub prior_authorization: Option<String>,
    /// Service lines.
    pub lines: Vec<ClaimLine>,
    /// Position of the CLM segment in the file.
    pub segment_position: usize,
}

/// A parsed 837 file: every claim of every transaction of every interchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interchange837 {
    /// ISA13 of the first interchange.
    pub control_number: String,
    /// ISA06 (trimmed) of the first interchange.
    pub sender_id: String,
    /// ISA08 (trimmed) of the first interchange.
    pub receiver_id: String,
    /// ISA09 of the first interchange.
    pub date: Option<NaiveDate>,
    /// Interchanges in the file.
    pub interchange_count: usize,
    /// Functional groups in the file.
    pub group_count: usize,
    /// Transaction sets in the file.
    pub transaction_count: usize,
    /// Every claim.
    pub claims: Vec<Claim>,
    /// Segments in the file.
    pub segment_count: usize,
    /// Problems that do not refuse the file (an SE01 segment count that is off).
    pub warnings: Vec<String>,
}
