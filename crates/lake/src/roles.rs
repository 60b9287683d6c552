//! Column roles: what a column holds as far as de-identification is concerned, and the
//! protective defaults for the tables carelake makes and for columns nobody tagged. The
//! de-identified export (`carelake-deid`) and the statistics kept in the Delta log both
//! go by them.

use arrow::datatypes::DataType;
use carelake_common::TableName;

/// What a column holds, as far as de-identification is concerned (45 CFR 164.514(b)(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnRole {
    /// A direct identifier (name, SSN, phone, fax, email, street address, URL, IP, member,
    /// policy, account, certificate or licence number, device id…): removed.
    Identifier,
    /// Free text or a raw payload that may hold any identifier: removed.
    FreeText,
    /// A record key (MRN, person key, encounter, claim, message ids…): replaced by a random
    /// surrogate, the same for the same value in every table of one export.
    Key,
    /// A date or time about a person: the year (Safe Harbor) or shifted by the patient's
    /// random offset (limited data set).
    Date,
    /// A date of birth: the year, none for people 90 or older (Safe Harbor); shifted
    /// (limited data set).
    BirthDate,
    /// An age in years: over 89 becomes 90, "90 or older" (Safe Harbor); kept (limited).
    Age,
    /// A ZIP code: the first three digits, 000 for the restricted prefixes (Safe Harbor);
    /// kept (limited).
    Zip,
    /// A city or county: removed (Safe Harbor); kept (limited).
    City,
    /// Kept, and counted in the k-anonymity figure (sex, race, ethnicity, state…).
    QuasiIdentifier,
    /// Kept as it is.
    Keep,
}

/// Every role, for listings and help.
pub const ROLES: [ColumnRole; 10] = [
    ColumnRole::Identifier,
    ColumnRole::FreeText,
    ColumnRole::Key,
    ColumnRole::Date,
    ColumnRole::BirthDate,
    ColumnRole::Age,
    ColumnRole::Zip,
    ColumnRole::City,
    ColumnRole::QuasiIdentifier,
    ColumnRole::Keep,
];

impl ColumnRole {
    /// The role's name in tags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnRole::Identifier => "identifier",
            ColumnRole::FreeText => "free_text",
            ColumnRole::Key => "key",
            ColumnRole::Date => "date",
            ColumnRole::BirthDate => "birth_date",
            ColumnRole::Age => "age",
            ColumnRole::Zip => "zip",
            ColumnRole::City => "city",
            ColumnRole::QuasiIdentifier => "quasi_identifier",
            ColumnRole::Keep => "keep",
        }
    }
}

impl std::fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ColumnRole {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        ROLES
            .iter()
            .copied()
            .find(|r| r.as_str() == s || (s == "kept" && *r == ColumnRole::Keep))
            .ok_or_else(|| {
                crate::Error::Governance(format!(
                    "unknown role '{s}' (one of {})",
                    ROLES.map(ColumnRole::as_str).join(", ")
                ))
            })
    }
}

/// Tables of providers, facilities, payers and the calendar: nothing in them is about a
/// patient, so their names and places stay.
fn is_reference_table(table: &TableName) -> bool {
    matches!(
        table.name.as_str(),
        "providers"
            | "dim_provider"
            | "facilities"
            | "dim_facility"
            | "payers"
            | "dim_payer"
            | "dim_date"
            | "dim_diagnosis"
    )
}

/// Columns that are raw payloads or free text, removed wherever they appear.
const FREE_TEXT: [&str; 13] = [
    "raw_text",
    "segments",
    "resource",
    "full_url",
    "_source_file",
    "text",
    "note",
    "notes",
    "comment",
    "comments",
    "value_text",
    "value_string",
    "body",
];

/// Ids of organisations, providers, loads and versions: not about a patient, kept.
const NON_PATIENT_IDS: [&str; 16] = [
    "plan_id",
    "location_id",
    "practitioner_id",
    "service_provider_id",
    "managing_organization_id",
    "organization_id",
    "provider_id",
    "sender_id",
    "receiver_id",
    "set_id",
    "_load_id",
    "load_id",
    "run_id",
    "version_id",
    "attending_id",
    "model_id",
];

/// Names that are not a person's name.
const NON_PERSON_NAMES: [&str; 9] = [
    "test_name",
    "company_name",
    "payer_name",
    "plan_name",
    "facility_name",
    "table_name",
    "column_name",
    "check_name",
    "billing_provider_name",
];

/// Organisation and provider columns (by prefix): not patient identifiers.
const PROVIDER_PREFIXES: [&str; 10] = [
    "attending_",
    "billing_provider",
    "rendering_provider",
    "referring_provider",
    "payer",
    "company_",
    "facility",
    "sending_",
    "receiving_",
    "admitting_provider",
];

/// Parts of a column name that mark a direct identifier.
const IDENTIFIER_WORDS: [&str; 28] = [
    "ssn",
    "social_security",
    "national_id",
    "phone",
    "fax",
    "email",
    "telecom",
    "address",
    "street",
    "url",
    "ip_address",
    "member",
    "subscriber",
    "policy",
    "account",
    "certificate",
    "licen",
    "device",
    "serial",
    "vin",
    "plate",
    "photo",
    "biometric",
    "fingerprint",
    "identifiers",
    "group_number",
    "prior_authorization",
    "row_hash",
];

/// Values that are quasi-identifiers (kept, counted for k-anonymity).
const QUASI: [&str; 12] = [
    "sex",
    "gender",
    "birth_sex",
    "race",
    "race_code",
    "ethnicity",
    "ethnicity_code",
    "marital_status",
    "state",
    "country",
    "language",
    "religion",
];

/// Text columns whose names say they hold a date or time (FHIR keeps dates as text).
const TEXT_DATES: [&str; 9] = [
    "start",
    "end",
    "onset",
    "abatement",
    "effective",
    "issued",
    "last_updated",
    "period_start",
    "period_end",
];

/// The protective default role of `column` of `table` of type `data_type`, when nobody
/// tagged it: the built-in tables' columns by name, and any other column whose name or type
/// looks like an identifier, a key, a date, a ZIP or a city.
pub fn default_role(table: &TableName, column: &str, data_type: &DataType) -> ColumnRole {
    let c = column.to_ascii_lowercase();
    let c = c.as_str();
    if FREE_TEXT.contains(&c) {
        return ColumnRole::FreeText;
    }
    if table.name == "dim_date" {
        return ColumnRole::Keep;
    }
    let temporal = matches!(
        data_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    );
    if is_reference_table(table) {
        return if temporal && table.name != "dim_date" {
            ColumnRole::Date
        } else {
            ColumnRole::Keep
        };
    }
    if c.contains("npi") || PROVIDER_PREFIXES.iter().any(|p| c.starts_with(p)) {
        return ColumnRole::Keep;
    }
    if (c.contains("birth") && !c.contains("sex")) || c == "dob" {
        return ColumnRole::BirthDate;
    }
    if c == "age" || c.starts_with("age_") || c.ends_with("_age") {
        return ColumnRole::Age;
    }
    if c.contains("zip") || c.contains("postal") {
        return ColumnRole::Zip;
    }
    if c.contains("city") || c.contains("county") {
        return ColumnRole::City;
    }
    if QUASI.contains(&c) || c.ends_with("_sex") || c.ends_with("_gender") {
        return ColumnRole::QuasiIdentifier;
    }
    if IDENTIFIER_WORDS.iter().any(|w| c.contains(w)) || c == "ip" || c == "uri" {
        return ColumnRole::Identifier;
    }
    let person_name = c == "name"
        || c.ends_with("_name")
        || matches!(c, "family" | "given" | "prefix" | "suffix" | "initials");
    if person_name && !NON_PERSON_NAMES.contains(&c) {
        return ColumnRole::Identifier;
    }
    if NON_PATIENT_IDS.contains(&c) {
        return ColumnRole::Keep;
    }
    if c == "mrn"
        || c.ends_with("_mrn")
        || c.starts_with("person_key")
        || c == "id"
        || c.ends_with("_id")
        || c.ends_with("_ids")
        || c.ends_with("_id_a")
        || c.ends_with("_id_b")
        || c.contains("control")
        || c == "visit_number"
        || c.ends_with("order_number")
    {
        return ColumnRole::Key;
    }
    if temporal {
        return ColumnRole::Date;
    }
    let text = matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    );
    if text
        && (TEXT_DATES.contains(&c)
            || c.contains("date")
            || c.contains("time")
            || c.ends_with("_at"))
    {
        return ColumnRole::Date;
    }
    ColumnRole::Keep
}

/// The surrogate domain of a key column: its normalised name, so that the same value gets
/// the same surrogate in every table. Patient identifiers (`mrn`, `patient_id`, `record_id`,
/// a FHIR Patient's `id`) share the domain `mrn`; encounter references (`visit_number`, a
/// FHIR Encounter's `id`, lists of visit ids) share `encounter_id`; `_a`/`_b` pair suffixes
/// are dropped.
pub fn key_domain(table: &TableName, column: &str) -> String {
    let mut c = column.to_ascii_lowercase();
    for suffix in ["_a", "_b"] {
        if let Some(stripped) = c.strip_suffix(suffix) {
            c = stripped.to_string();
        }
    }
    if let Some(stripped) = c.strip_suffix("_ids") {
        c = format!("{stripped}_id");
    }
    if c == "id" {
        let kind = table
            .name
            .strip_prefix("fhir_")
            .unwrap_or(table.name.as_str());
        c = format!("{kind}_id");
    }
    match c.as_str() {
        "patient_id" | "record_id" | "mrn" => "mrn".into(),
        "visit_number" | "ed_visit_id" | "prior_admission_id" | "admission_id" => {
            "encounter_id".into()
        }
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(table: &str, column: &str, t: DataType) -> ColumnRole {
        default_role(&table.parse().unwrap(), column, &t)
    }

    #[test]
    fn built_in_columns_get_protective_roles() {
        use ColumnRole::*;
        let s = DataType::Utf8View;
        assert_eq!(role("raw.patients", "first_name", s.clone()), Identifier);
        assert_eq!(role("raw.patients", "ssn", s.clone()), Identifier);
        assert_eq!(role("raw.patients", "address", s.clone()), Identifier);
        assert_eq!(role("raw.patients", "member_id", s.clone()), Identifier);
        assert_eq!(role("raw.patients", "mrn", s.clone()), Key);
        assert_eq!(role("raw.patients", "zip", DataType::Int32), Zip);
        assert_eq!(role("raw.patients", "city", s.clone()), City);
        assert_eq!(
            role("raw.patients", "birth_date", DataType::Date32),
            BirthDate
        );
        assert_eq!(role("raw.patients", "sex", s.clone()), QuasiIdentifier);
        assert_eq!(role("raw.patients", "_source_file", s.clone()), FreeText);
        assert_eq!(role("raw.hl7_messages", "raw_text", s.clone()), FreeText);
        assert_eq!(role("raw.fhir_patient", "resource", s.clone()), FreeText);
        assert_eq!(role("raw.vitals", "device_id", s.clone()), Identifier);
        assert_eq!(
            role("raw.x12_claims", "subscriber_id", s.clone()),
            Identifier
        );
        assert_eq!(
            role("raw.x12_claims", "patient_first_name", s.clone()),
            Identifier
        );
        assert_eq!(
            role("raw.x12_claims", "billing_provider_name", s.clone()),
            Keep
        );
        assert_eq!(role("raw.providers", "last_name", s.clone()), Keep);
        assert_eq!(
            role("raw.encounters", "attending_npi", DataType::Int32),
            Keep
        );
        assert_eq!(role("raw.encounters", "facility_id", s.clone()), Keep);
        assert_eq!(role("raw.labs", "test_name", s.clone()), Keep);
        assert_eq!(role("curated.fhir_encounter", "start", s.clone()), Date);
        assert_eq!(
            role("analytics.readmission_risk", "age_years", DataType::Int64),
            Age
        );
        assert_eq!(
            role("analytics.dim_patient", "row_hash", s.clone()),
            Identifier
        );
        assert_eq!(role("raw.anything", "patient_email", s.clone()), Identifier);
        assert_eq!(role("raw.anything", "account_no", s.clone()), Identifier);
        assert_eq!(role("raw.anything", "widget_id", s.clone()), Key);
        assert_eq!(role("raw.anything", "seen", DataType::Date32), Date);
        assert_eq!(role("raw.anything", "score", DataType::Float64), Keep);
    }

    #[test]
    fn patient_keys_share_one_domain() {
        let t = |s: &str| s.parse::<TableName>().unwrap();
        assert_eq!(key_domain(&t("raw.patients"), "mrn"), "mrn");
        assert_eq!(
            key_domain(&t("raw.hl7_patient_events"), "patient_id"),
            "mrn"
        );
        assert_eq!(key_domain(&t("curated.mpi_links"), "record_id_a"), "mrn");
        assert_eq!(key_domain(&t("curated.fhir_patient"), "id"), "mrn");
        assert_eq!(
            key_domain(&t("curated.fhir_encounter"), "id"),
            "encounter_id"
        );
        assert_eq!(
            key_domain(&t("curated.mpi_links"), "person_key_b"),
            "person_key"
        );
        assert_eq!(
            key_domain(&t("raw.hl7_diagnoses"), "visit_number"),
            "encounter_id"
        );
        assert_eq!(
            key_domain(&t("analytics.readmission_risk"), "ed_visit_ids"),
            "encounter_id"
        );
    }

    #[test]
    fn roles_parse_by_name() {
        for role in ROLES {
            assert_eq!(role.as_str().parse::<ColumnRole>().unwrap(), role);
        }
        assert!("secret".parse::<ColumnRole>().is_err());
    }
}
