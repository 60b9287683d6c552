//! The same ground truth in the formats hospitals really send:
//!
//! - `hl7/meridian_adt_oru.hl7`: the MERIDIAN EHR's HL7 v2.5.1 feed in an FHS/BHS batch: an
//!   ADT^A04 (outpatient, emergency) or ADT^A01 (inpatient) at arrival, an ADT^A03 at discharge
//!   with the diagnoses (DG1) and insurance (IN1), and an ORU^R01 per lab result.
//! - `fhir/*.000.ndjson`: the CASCADE EHR's FHIR R4 bulk export: Patient (a second version for
//!   people who moved), Encounter, Condition and laboratory Observation.
//! - `x12/claims_837p.x12`: every claim as an X12 005010X222A1 837P, one ISA/GS envelope and
//!   one ST transaction per 200 claims.
//!
//! Nothing here draws from the random generator, so the CSV files stay the same for a seed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use crate::{Error, Result};

/// Claims per X12 transaction set.
const CLAIMS_PER_TRANSACTION: usize = 200;

/// A person as one source system knows them.
pub(crate) struct PersonRecord<'a> {
    pub(crate) system: &'a str,
    pub(crate) mrn: &'a str,
    pub(crate) first: &'a str,
    pub(crate) last: &'a str,
    /// `F` or `M`.
    pub(crate) sex: &'a str,
    pub(crate) birth: NaiveDate,
    pub(crate) street: &'a str,
    pub(crate) city: &'a str,
    pub(crate) state: &'a str,
    pub(crate) zip: &'a str,
    pub(crate) phone: &'a str,
    pub(crate) payer_id: &'a str,
    pub(crate) payer_name: &'a str,
    pub(crate) member_id: &'a str,
    pub(crate) updated: NaiveDateTime,
}

/// One encounter and what happened in it.
pub(crate) struct EncounterRecord<'a> {
    pub(crate) encounter_id: &'a str,
    pub(crate) facility_id: &'a str,
    pub(crate) facility_name: &'a str,
    /// `inpatient`, `emergency` or `outpatient`.
    pub(crate) class: &'a str,
    pub(crate) admit: NaiveDateTime,
    pub(crate) discharge: NaiveDateTime,
    pub(crate) attending_npi: &'a str,
    /// `HOME`, `SNF` or empty.
    pub(crate) disposition: &'a str,
    /// (ICD-10-CM code, description); the first is the principal diagnosis.
    pub(crate) diagnoses: &'a [(&'a str, &'a str)],
}

/// One lab result.
pub(crate) struct LabRecord<'a> {
    pub(crate) loinc: &'a str,
    pub(crate) name: &'a str,
    pub(crate) value: f64,
    pub(crate) unit: &'a str,
    pub(crate) low: f64,
    pub(crate) high: f64,
    /// `H`, `L` or `N`.
    pub(crate) flag: &'a str,
    pub(crate) collected: NaiveDateTime,
}

/// One claim line.
pub(crate) struct ClaimLineRecord<'a> {
    pub(crate) cpt: &'a str,
    pub(crate) units: usize,
    pub(crate) charge: f64,
}

/// One claim.
pub(crate) struct ClaimRecord<'a> {
    pub(crate) claim_id: &'a str,
    /// The facility's organisation NPI.
    pub(crate) billing_npi: &'a str,
    /// The attending physician's NPI.
    pub(crate) rendering_npi: &'a str,
    pub(crate) facility_name: &'a str,
    pub(crate) total: f64,
    pub(crate) service_from: NaiveDate,
    pub(crate) service_to: NaiveDate,
    /// CMS place-of-service code: 21 inpatient, 23 emergency, 11 office.
    pub(crate) place_of_service: &'a str,
    pub(crate) lines: Vec<ClaimLineRecord<'a>>,
}

/// Counts written in the clinical formats.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClinicalCounts {
    /// HL7 v2 messages.
    pub hl7_messages: u64,
    /// FHIR resources (every version).
    pub fhir_resources: u64,
    /// X12 837P claims.
    pub x12_claims: u64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn create(path: PathBuf) -> Result<(PathBuf, BufWriter<File>)> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let file = File::create(&path).map_err(io_error(&path))?;
    Ok((path, BufWriter::with_capacity(1 << 20, file)))
}

/// HL7 text is `|^~\&`-delimited: values must not carry those characters.
fn hl7_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '~' => out.push_str("\\R\\"),
            '\\' => out.push_str("\\E\\"),
            '&' => out.push_str("\\T\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn hl7_time(t: NaiveDateTime) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

fn fhir_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// X12 element text: no separators, upper case as most payers want.
fn x12_text(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '*' | '~' | ':' | '^' => ' ',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

struct X12Writer {
    path: PathBuf,
    out: BufWriter<File>,
    /// Segments of the open transaction, ST..SE.
    segments: Vec<String>,
    claims_in_transaction: usize,
    transactions: usize,
    hl: usize,
    control: u32,
    sent: NaiveDateTime,
    started: bool,
}

impl X12Writer {
    fn segment(&mut self, text: String) {
        self.segments.push(text);
    }

    fn begin(&mut self) -> Result<()> {
        if !self.started {
            self.started = true;
            let date = self.sent.format("%y%m%d");
            let time = self.sent.format("%H%M");
            let gs_date = self.sent.format("%Y%m%d");
            write!(
                self.out,
                "ISA*00*          *00*          *ZZ*CARELAKEGEN    *ZZ*CARELAKE       *{date}*{time}*^*00501*{:09}*0*P*:~\n\
                 GS*HC*CARELAKEGEN*CARELAKE*{gs_date}*{time}*{}*X*005010X222A1~\n",
                self.control, self.control
            )
            .map_err(io_error(&self.path))?;
        }
        if self.segments.is_empty() {
            self.transactions += 1;
            let st = format!("ST*837*{:04}*005010X222A1", self.transactions);
            self.segment(st);
            let bht = format!(
                "BHT*0019*00*{:06}*{}*{}*CH",
                self.transactions,
                self.sent.format("%Y%m%d"),
                self.sent.format("%H%M")
            );
            self.segment(bht);
            self.segment("NM1*41*2*CARELAKE SYNTHETIC NETWORK*****46*CLGEN".into());
            self.segment("PER*IC*CLAIMS DESK*TE*2175550100".into());
            self.segment("NM1*40*2*CARELAKE CLEARINGHOUSE*****46*CARELAKE".into());
            self.hl = 0;
        }
        Ok(())
    }

    fn claim(
        &mut self,
        person: &PersonRecord<'_>,
        claim: &ClaimRecord<'_>,
        diagnoses: &[(&str, &str)],
    ) -> Result<()> {
        self.begin()?;
        // 2000A billing provider, 2000B subscriber (the patient) with the claim.
        self.hl += 1;
        let billing_hl = self.hl;
        self.segment(format!("HL*{billing_hl}**20*1"));
        self.segment(format!(
            "NM1*85*2*{}*****XX*{}",
            x12_text(claim.facility_name),
            claim.billing_npi
        ));
        self.segment("N3*100 MAIN ST".into());
        self.segment("N4*SPRINGFIELD*IL*627010000".into());
        self.segment("REF*EI*371234567".into());
        self.hl += 1;
        self.segment(format!("HL*{}*{billing_hl}*22*0", self.hl));
        self.segment("SBR*P*18*******CI".into());
        self.segment(format!(
            "NM1*IL*1*{}*{}****MI*{}",
            x12_text(person.last),
            x12_text(person.first),
            person.member_id
        ));
        self.segment(format!("N3*{}", x12_text(person.street)));
        self.segment(format!(
            "N4*{}*{}*{}",
            x12_text(person.city),
            person.state,
            person.zip
        ));
        self.segment(format!(
            "DMG*D8*{}*{}",
            person.birth.format("%Y%m%d"),
            person.sex
        ));
        self.segment(format!(
            "NM1*PR*2*{}*****PI*{}",
            x12_text(person.payer_name),
            person.payer_id
        ));
        self.segment(format!(
            "CLM*{}*{:.2}***{}:B:1*Y*A*Y*Y",
            claim.claim_id, claim.total, claim.place_of_service
        ));
        let mut hi = Vec::new();
        for (i, (code, _)) in diagnoses.iter().take(12).enumerate() {
            let code = code.replace('.', "");
            hi.push(format!("{}:{code}", if i == 0 { "ABK" } else { "ABF" }));
        }
        if !hi.is_empty() {
            self.segment(format!("HI*{}", hi.join("*")));
        }
        self.segment(format!(
            "NM1*82*1*ATTENDING*PROVIDER****XX*{}",
            claim.rendering_npi
        ));
        let pointers: Vec<String> = (1..=diagnoses.len().clamp(1, 4))
            .map(|i| i.to_string())
            .collect();
        let pointers = pointers.join(":");
        for (i, line) in claim.lines.iter().enumerate() {
            self.segment(format!("LX*{}", i + 1));
            self.segment(format!(
                "SV1*HC:{}*{:.2}*UN*{}***{pointers}",
                line.cpt, line.charge, line.units
            ));
            if claim.service_from == claim.service_to {
                self.segment(format!(
                    "DTP*472*D8*{}",
                    claim.service_from.format("%Y%m%d")
                ));
            } else {
                self.segment(format!(
                    "DTP*472*RD8*{}-{}",
                    claim.service_from.format("%Y%m%d"),
                    claim.service_to.format("%Y%m%d")
                ));
            }
        }
        self.claims_in_transaction += 1;
        if self.claims_in_transaction >= CLAIMS_PER_TRANSACTION {
            self.end_transaction()?;
        }
        Ok(())
    }

    fn end_transaction(&mut self) -> Result<()> {
        if self.segments.is_empty() {
            return Ok(());
        }
        let count = self.segments.len() + 1;
        let se = format!("SE*{count}*{:04}", self.transactions);
        self.segment(se);
        for segment in std::mem::take(&mut self.segments) {
            self.out
                .write_all(segment.as_bytes())
                .map_err(io_error(&self.path))?;
            self.out.write_all(b"~\n").map_err(io_error(&self.path))?;
        }
        self.claims_in_transaction = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.end_transaction()?;
        if self.started {
            write!(
                self.out,
                "GE*{}*{}~\nIEA*1*{:09}~\n",
                self.transactions, self.control, self.control
            )
            .map_err(io_error(&self.path))?;
        }
        self.out.flush().map_err(io_error(&self.path))
    }
}

/// Writers of the clinical-format files.
pub(crate) struct ClinicalWriters {
    hl7_path: PathBuf,
    hl7: BufWriter<File>,
    fhir: Vec<(&'static str, PathBuf, BufWriter<File>)>,
    x12: X12Writer,
    control: u64,
    pub(crate) counts: ClinicalCounts,
}

const FHIR_TYPES: &[&str] = &["Patient", "Encounter", "Condition", "Observation"];

impl ClinicalWriters {
    pub(crate) fn open(dir: &Path, sent: NaiveDateTime) -> Result<Self> {
        let (hl7_path, mut hl7) = create(dir.join("hl7").join("meridian_adt_oru.hl7"))?;
        let stamp = hl7_time(sent);
        write!(
            hl7,
            "FHS|^~\\&|MERIDIAN_EHR|MERIDIAN|CARELAKE|CARELAKE|{stamp}\rBHS|^~\\&|MERIDIAN_EHR|MERIDIAN|CARELAKE|CARELAKE|{stamp}\r"
        )
        .map_err(io_error(&hl7_path))?;
        let mut fhir = Vec::new();
        for kind in FHIR_TYPES {
            let (path, w) = create(dir.join("fhir").join(format!("{kind}.000.ndjson")))?;
            fhir.push((*kind, path, w));
        }
        let (x12_path, x12_out) = create(dir.join("x12").join("claims_837p.x12"))?;
        Ok(Self {
            hl7_path,
            hl7,
            fhir,
            x12: X12Writer {
                path: x12_path,
                out: x12_out,
                segments: Vec::new(),
                claims_in_transaction: 0,
                transactions: 0,
                hl: 0,
                control: 1,
                sent,
                started: false,
            },
            control: 0,
            counts: ClinicalCounts::default(),
        })
    }

    fn resource(&mut self, resource: Value) -> Result<()> {
        let kind = resource["resourceType"].as_str().unwrap_or_default();
        let index = FHIR_TYPES.iter().position(|t| *t == kind).unwrap_or(0);
        let (_, path, w) = &mut self.fhir[index];
        serde_json::to_writer(&mut *w, &resource)?;
        w.write_all(b"\n").map_err(io_error(path))?;
        self.counts.fhir_resources += 1;
        Ok(())
    }

    fn message(&mut self, segments: &[String]) -> Result<()> {
        for segment in segments {
            self.hl7
                .write_all(segment.as_bytes())
                .map_err(io_error(&self.hl7_path))?;
            self.hl7
                .write_all(b"\r")
                .map_err(io_error(&self.hl7_path))?;
        }
        self.counts.hl7_messages += 1;
        Ok(())
    }

    fn msh(&mut self, facility_id: &str, at: NaiveDateTime, kind: &str) -> String {
        self.control += 1;
        let structure = kind.replace('^', "_");
        let structure = if structure == "ADT_A04" {
            "ADT_A01".to_string()
        } else {
            structure
        };
        format!(
            "MSH|^~\\&|MERIDIAN_EHR|{facility_id}|CARELAKE|CARELAKE|{}||{kind}^{structure}|MER{:010}|P|2.5.1",
            hl7_time(at),
            self.control
        )
    }

    fn pid(person: &PersonRecord<'_>) -> String {
        format!(
            "PID|1||{}^^^MERIDIAN^MR||{}^{}||{}|{}|||{}^^{}^{}^{}||{}",
            person.mrn,
            hl7_text(person.last),
            hl7_text(person.first),
            person.birth.format("%Y%m%d"),
            person.sex,
            hl7_text(person.street),
            hl7_text(person.city),
            person.state,
            person.zip,
            hl7_text(person.phone)
        )
    }

    fn pv1(encounter: &EncounterRecord<'_>, discharged: bool) -> String {
        let class = match encounter.class {
            "inpatient" => "I",
            "emergency" => "E",
            _ => "O",
        };
        let disposition = match encounter.disposition {
            "HOME" => "01",
            "SNF" => "03",
            _ => "",
        };
        let discharge = if discharged {
            hl7_time(encounter.discharge)
        } else {
            String::new()
        };
        // PV1-2 class, -3 location, -7 attending, -19 visit number, -36 disposition,
        // -44 admit time, -45 discharge time.
        format!(
            "PV1|1|{class}|{}^^^{}||||{}^ATTENDING^PROVIDER^^^^^^NPI||||||||||||{}|||||||||||||||||{}||||||||{}|{discharge}",
            encounter.facility_id,
            hl7_text(encounter.facility_name),
            encounter.attending_npi,
            encounter.encounter_id,
            if discharged { disposition } else { "" },
            hl7_time(encounter.admit),
        )
    }

    /// The patient's records in the two EHRs: FHIR Patient for CASCADE (HL7 carries the
    /// patient in every message for MERIDIAN).
    pub(crate) fn person(&mut self, person: &PersonRecord<'_>, version: u32) -> Result<()> {
        if person.system != "CASCADE" {
            return Ok(());
        }
        self.resource(json!({
            "resourceType": "Patient",
            "id": person.mrn,
            "meta": {"versionId": version.to_string(), "lastUpdated": fhir_time(person.updated), "source": person.system},
            "identifier": [{
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": "urn:carelake:cascade:mrn",
                "value": person.mrn
            }],
            "name": [{"use": "official", "family": person.last, "given": [person.first]}],
            "gender": if person.sex == "F" { "female" } else { "male" },
            "birthDate": person.birth.to_string(),
            "address": [{"line": [person.street], "city": person.city, "state": person.state, "postalCode": person.zip}],
            "telecom": [{"system": "phone", "value": person.phone}]
        }))
    }

    /// An encounter with its diagnoses and labs.
    pub(crate) fn encounter(
        &mut self,
        person: &PersonRecord<'_>,
        encounter: &EncounterRecord<'_>,
        labs: &[LabRecord<'_>],
    ) -> Result<()> {
        match person.system {
            "MERIDIAN" => self.hl7_encounter(person, encounter, labs),
            _ => self.fhir_encounter(person, encounter, labs),
        }
    }

    fn hl7_encounter(
        &mut self,
        person: &PersonRecord<'_>,
        encounter: &EncounterRecord<'_>,
        labs: &[LabRecord<'_>],
    ) -> Result<()> {
        let arrival = if encounter.class == "inpatient" {
            "ADT^A01"
        } else {
            "ADT^A04"
        };
        let trigger = &arrival[4..];
        let mut message = vec![
            self.msh(encounter.facility_id, encounter.admit, arrival),
            format!("EVN|{trigger}|{}", hl7_time(encounter.admit)),
            Self::pid(person),
            Self::pv1(encounter, false),
        ];
        if let Some((code, description)) = encounter.diagnoses.first() {
            message.push(format!(
                "DG1|1||{code}^{}^I10||{}|A",
                hl7_text(description),
                hl7_time(encounter.admit)
            ));
        }
        self.message(&message)?;
        for (i, lab) in labs.iter().enumerate() {
            let message = vec![
                self.msh(encounter.facility_id, lab.collected, "ORU^R01"),
                Self::pid(person),
                Self::pv1(encounter, false),
                format!(
                    "OBR|1|{}-{}||{}^{}^LN|||{}",
                    encounter.encounter_id,
                    i + 1,
                    lab.loinc,
                    hl7_text(lab.name),
                    hl7_time(lab.collected)
                ),
                format!(
                    "OBX|1|NM|{}^{}^LN||{}|{}^^UCUM|{}-{}|{}|||F|||{}",
                    lab.loinc,
                    hl7_text(lab.name),
                    lab.value,
                    hl7_text(lab.unit),
                    lab.low,
                    lab.high,
                    if lab.flag == "N" { "" } else { lab.flag },
                    hl7_time(lab.collected)
                ),
            ];
            self.message(&message)?;
        }
        let mut message = vec![
            self.msh(encounter.facility_id, encounter.discharge, "ADT^A03"),
            format!("EVN|A03|{}", hl7_time(encounter.discharge)),
            Self::pid(person),
            Self::pv1(encounter, true),
        ];
        for (i, (code, description)) in encounter.diagnoses.iter().enumerate() {
            message.push(format!(
                "DG1|{}||{code}^{}^I10||{}|F",
                i + 1,
                hl7_text(description),
                hl7_time(encounter.discharge)
            ));
        }
        message.push(format!(
            "IN1|1|{}|{}|{}||||||||||||{}^{}|18|||||||||||||||||||{}",
            person.payer_id,
            person.payer_id,
            hl7_text(person.payer_name),
            hl7_text(person.last),
            hl7_text(person.first),
            person.member_id
        ));
        self.message(&message)
    }

    fn fhir_encounter(
        &mut self,
        person: &PersonRecord<'_>,
        encounter: &EncounterRecord<'_>,
        labs: &[LabRecord<'_>],
    ) -> Result<()> {
        let (class, display) = match encounter.class {
            "inpatient" => ("IMP", "inpatient encounter"),
            "emergency" => ("EMER", "emergency"),
            _ => ("AMB", "ambulatory"),
        };
        let subject = json!({"reference": format!("Patient/{}", person.mrn)});
        let reference = json!({"reference": format!("Encounter/{}", encounter.encounter_id)});
        let mut resource = json!({
            "resourceType": "Encounter",
            "id": encounter.encounter_id,
            "meta": {"versionId": "1", "lastUpdated": fhir_time(encounter.discharge), "source": person.system},
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class, "display": display},
            "subject": subject,
            "participant": [{"individual": {"reference": format!("Practitioner/{}", encounter.attending_npi)}}],
            "period": {"start": fhir_time(encounter.admit), "end": fhir_time(encounter.discharge)},
            "serviceProvider": {"reference": format!("Organization/{}", encounter.facility_id), "display": encounter.facility_name}
        });
        if let Some((code, description)) = encounter.diagnoses.first() {
            resource["reasonCode"] = json!([{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code, "display": description}]}]);
        }
        if !encounter.disposition.is_empty() {
            let (code, display) = match encounter.disposition {
                "SNF" => ("snf", "Skilled nursing facility"),
                _ => ("home", "Home"),
            };
            resource["hospitalization"] = json!({"dischargeDisposition": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": code, "display": display}]}});
        }
        self.resource(resource)?;
        for (i, (code, description)) in encounter.diagnoses.iter().enumerate() {
            self.resource(json!({
                "resourceType": "Condition",
                "id": format!("{}-dx{}", encounter.encounter_id, i + 1),
                "meta": {"versionId": "1", "lastUpdated": fhir_time(encounter.discharge), "source": person.system},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code, "display": description}]},
                "subject": subject,
                "encounter": reference,
                "recordedDate": fhir_time(encounter.discharge)
            }))?;
        }
        for (i, lab) in labs.iter().enumerate() {
            self.resource(json!({
                "resourceType": "Observation",
                "id": format!("{}-lab{}", encounter.encounter_id, i + 1),
                "meta": {"versionId": "1", "lastUpdated": fhir_time(lab.collected), "source": person.system},
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": lab.loinc, "display": lab.name}], "text": lab.name},
                "subject": subject,
                "encounter": reference,
                "effectiveDateTime": fhir_time(lab.collected),
                "valueQuantity": {"value": lab.value, "unit": lab.unit, "system": "http://unitsofmeasure.org", "code": lab.unit},
                "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": lab.flag}]}],
                "referenceRange": [{"low": {"value": lab.low, "unit": lab.unit}, "high": {"value": lab.high, "unit": lab.unit}}]
            }))?;
        }
        Ok(())
    }

    /// A claim, as an 837P.
    pub(crate) fn claim(
        &mut self,
        person: &PersonRecord<'_>,
        claim: &ClaimRecord<'_>,
        diagnoses: &[(&str, &str)],
    ) -> Result<()> {
        self.x12.claim(person, claim, diagnoses)?;
        self.counts.x12_claims += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<ClinicalCounts> {
        write!(self.hl7, "BTS|{}\rFTS|1\r", self.counts.hl7_messages)
            .map_err(io_error(&self.hl7_path))?;
        self.hl7.flush().map_err(io_error(&self.hl7_path))?;
        for (_, path, w) in &mut self.fhir {
            w.flush().map_err(io_error(path))?;
        }
        self.x12.finish()?;
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_text_escapes_delimiters() {
        assert_eq!(hl7_text("A|B^C~D\\E&F"), "A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F");
        assert_eq!(x12_text("o'brien*jr~"), "O'BRIEN JR ");
    }
}
