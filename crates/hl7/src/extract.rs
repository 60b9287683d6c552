//! Typed extraction of what analytics needs: the header, the patient and visit (PID, PV1,
//! EVN, MRG), observations (OBR/OBX), diagnoses (DG1), allergies (AL1) and insurance (IN1).

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::time::{parse_date, parse_dtm};
use crate::{Message, Segment};

/// Header fields (MSH).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageHeader {
    /// MSH-10.
    pub control_id: Option<String>,
    /// MSH-9.1, e.g. `ADT`.
    pub message_type: Option<String>,
    /// MSH-9.2, e.g. `A01`.
    pub trigger_event: Option<String>,
    /// MSH-9.3, e.g. `ADT_A01`.
    pub message_structure: Option<String>,
    /// MSH-3.1.
    pub sending_application: Option<String>,
    /// MSH-4.1.
    pub sending_facility: Option<String>,
    /// MSH-5.1.
    pub receiving_application: Option<String>,
    /// MSH-6.1.
    pub receiving_facility: Option<String>,
    /// MSH-7 as written.
    pub message_time_raw: Option<String>,
    /// MSH-7 in UTC (a time without an offset is taken as UTC).
    pub message_time: Option<NaiveDateTime>,
    /// MSH-11.1 (P, T, D).
    pub processing_id: Option<String>,
    /// MSH-12.1, e.g. `2.5.1`.
    pub version: Option<String>,
}

/// A patient identifier (CX): PID-3 or MRG-1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientIdentifier {
    /// CX.1.
    pub id: String,
    /// CX.4.1, the assigning authority.
    pub assigning_authority: Option<String>,
    /// CX.5, e.g. MR, SS.
    pub identifier_type: Option<String>,
}

/// A patient and visit event (from any message with PID; ADT above all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PatientEvent {
    /// EVN-1, else MSH-9.2.
    pub event_type: Option<String>,
    /// EVN-2.
    pub event_time: Option<NaiveDateTime>,
    /// Every PID-3 repetition.
    pub identifiers: Vec<PatientIdentifier>,
    /// PID-5.1.
    pub family_name: Option<String>,
    /// PID-5.2.
    pub given_name: Option<String>,
    /// PID-5.3.
    pub middle_name: Option<String>,
    /// PID-7.
    pub birth_date: Option<NaiveDate>,
    /// PID-8.
    pub sex: Option<String>,
    /// PID-11.1.
    pub street: Option<String>,
    /// PID-11.3.
    pub city: Option<String>,
    /// PID-11.4.
    pub state: Option<String>,
    /// PID-11.5.
    pub postal_code: Option<String>,
    /// PID-11.6.
    pub country: Option<String>,
    /// PID-13.1 (or PID-13.12 when only the unformatted number is given).
    pub phone: Option<String>,
    /// PID-16.1.
    pub marital_status: Option<String>,
    /// PID-30.
    pub death_indicator: Option<String>,
    /// PID-29.
    pub death_time: Option<NaiveDateTime>,
    /// PV1-19.1.
    pub visit_number: Option<String>,
    /// PV1-2.
    pub patient_class: Option<String>,
    /// PV1-3.1.
    pub point_of_care: Option<String>,
    /// PV1-3.2.
    pub room: Option<String>,
    /// PV1-3.3.
    pub bed: Option<String>,
    /// PV1-3.4.
    pub facility: Option<String>,
    /// PV1-7.1.
    pub attending_id: Option<String>,
    /// PV1-7.2.
    pub attending_family_name: Option<String>,
    /// PV1-7.3.
    pub attending_given_name: Option<String>,
    /// PV1-4.
    pub admit_type: Option<String>,
    /// PV1-10.
    pub hospital_service: Option<String>,
    /// PV1-44.
    pub admit_time: Option<NaiveDateTime>,
    /// PV1-45.
    pub discharge_time: Option<NaiveDateTime>,
    /// PV1-36.
    pub discharge_disposition: Option<String>,
    /// MRG-1: identifiers merged away (A34, A40…).
    pub prior_identifiers: Vec<PatientIdentifier>,
}

/// An observation (OBX) with its order (OBR).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observation {
    /// 1-based position of the OBX among the message's OBX segments.
    pub index: usize,
    /// OBX-1.
    pub set_id: Option<String>,
    /// OBR-2.1.
    pub placer_order_number: Option<String>,
    /// OBR-3.1.
    pub filler_order_number: Option<String>,
    /// OBR-4.1.
    pub service_code: Option<String>,
    /// OBR-4.2.
    pub service_text: Option<String>,
    /// OBR-4.3.
    pub service_coding_system: Option<String>,
    /// OBX-2 (NM, ST, CE, SN, TX…).
    pub value_type: Option<String>,
    /// OBX-3.1.
    pub code: Option<String>,
    /// OBX-3.2.
    pub code_text: Option<String>,
    /// OBX-3.3 (LN for LOINC).
    pub coding_system: Option<String>,
    /// OBX-5, decoded; repetitions joined with `; `; coded values as their text or code.
    pub value_text: Option<String>,
    /// OBX-5 as a number for NM and SN values.
    pub value_numeric: Option<f64>,
    /// The comparator of an SN value (`<`, `>`, `<=`…).
    pub comparator: Option<String>,
    /// OBX-6.1.
    pub units: Option<String>,
    /// OBX-7.
    pub reference_range: Option<String>,
    /// OBX-8, repetitions joined with `~`-free `,`.
    pub abnormal_flags: Option<String>,
    /// OBX-11.
    pub status: Option<String>,
    /// OBX-14, else OBR-7.
    pub observation_time: Option<NaiveDateTime>,
}

/// A diagnosis (DG1).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diagnosis {
    /// DG1-1.
    pub set_id: Option<String>,
    /// DG1-3.1.
    pub code: Option<String>,
    /// DG1-3.2, else DG1-4.
    pub description: Option<String>,
    /// DG1-3.3, else DG1-2.
    pub coding_system: Option<String>,
    /// DG1-6 (A admitting, W working, F final).
    pub diagnosis_type: Option<String>,
    /// DG1-5.
    pub diagnosis_time: Option<NaiveDateTime>,
    /// DG1-15.
    pub priority: Option<String>,
}

/// An allergy (AL1).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Allergy {
    /// AL1-1.
    pub set_id: Option<String>,
    /// AL1-2.1 (DA drug, FA food, EA environmental…).
    pub allergen_type: Option<String>,
    /// AL1-3.1.
    pub code: Option<String>,
    /// AL1-3.2.
    pub description: Option<String>,
    /// AL1-3.3.
    pub coding_system: Option<String>,
    /// AL1-4.1.
    pub severity: Option<String>,
    /// AL1-5, every repetition.
    pub reactions: Vec<String>,
    /// AL1-6.
    pub identified_date: Option<NaiveDate>,
}

/// Insurance (IN1).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Insurance {
    /// IN1-1.
    pub set_id: Option<String>,
    /// IN1-2.1.
    pub plan_id: Option<String>,
    /// IN1-3.1.
    pub company_id: Option<String>,
    /// IN1-4.1.
    pub company_name: Option<String>,
    /// IN1-8.
    pub group_number: Option<String>,
    /// IN1-9.1.
    pub group_name: Option<String>,
    /// IN1-15.
    pub plan_type: Option<String>,
    /// IN1-16.1.
    pub insured_family_name: Option<String>,
    /// IN1-16.2.
    pub insured_given_name: Option<String>,
    /// IN1-17.1.
    pub insured_relationship: Option<String>,
    /// IN1-36.
    pub policy_number: Option<String>,
    /// IN1-12.
    pub effective_date: Option<NaiveDate>,
    /// IN1-13.
    pub expiration_date: Option<NaiveDate>,
}

/// Everything extracted from one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Extracted {
    /// MSH.
    pub header: MessageHeader,
    /// PID/PV1/EVN/MRG, when the message has a PID.
    pub patient: Option<PatientEvent>,
    /// OBX segments.
    pub observations: Vec<Observation>,
    /// DG1 segments.
    pub diagnoses: Vec<Diagnosis>,
    /// AL1 segments.
    pub allergies: Vec<Allergy>,
    /// IN1 segments.
    pub insurance: Vec<Insurance>,
}

fn text(segment: Option<&Segment<'_, '_>>, field: usize, component: usize) -> Option<String> {
    segment?
        .value(field, 1, component, 0)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn first_component(segment: Option<&Segment<'_, '_>>, field: usize) -> Option<String> {
    text(segment, field, 1)
}

fn time(segment: Option<&Segment<'_, '_>>, field: usize) -> Option<NaiveDateTime> {
    parse_dtm(&segment?.value(field, 1, 1, 0)?)
}

fn date(segment: Option<&Segment<'_, '_>>, field: usize) -> Option<NaiveDate> {
    parse_date(&segment?.value(field, 1, 1, 0)?)
}

fn identifiers(segment: Option<&Segment<'_, '_>>, field: usize) -> Vec<PatientIdentifier> {
    let Some(segment) = segment else {
        return Vec::new();
    };
    (1..=segment.repetition_count(field))
        .filter_map(|r| {
            let id = segment.value(field, r, 1, 0)?.trim().to_string();
            if id.is_empty() {
                return None;
            }
            Some(PatientIdentifier {
                id,
                assigning_authority: segment
                    .value(field, r, 4, 1)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty()),
                identifier_type: segment
                    .value(field, r, 5, 0)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty()),
            })
        })
        .collect()
}

/// Parses a structured numeric (SN: `comparator^num1^separator^num2`) or a plain number.
fn numeric(value_type: Option<&str>, segment: &Segment<'_, '_>) -> (Option<f64>, Option<String>) {
    match value_type {
        Some("NM") => (
            segment
                .value(5, 1, 0, 0)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite()),
            None,
        ),
        Some("SN") => {
            let comparator = segment
                .value(5, 1, 1, 0)
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty());
            let number = segment
                .value(5, 1, 2, 0)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite());
            (number, comparator)
        }
        _ => (None, None),
    }
}

impl<'a> Message<'a> {
    /// The header fields.
    pub fn header(&self) -> MessageHeader {
        let msh = self.segment("MSH", 1);
        let msh = msh.as_ref();
        let raw_time = text(msh, 7, 1);
        MessageHeader {
            control_id: text(msh, 10, 0),
            message_type: text(msh, 9, 1),
            trigger_event: text(msh, 9, 2),
            message_structure: text(msh, 9, 3),
            sending_application: text(msh, 3, 1),
            sending_facility: text(msh, 4, 1),
            receiving_application: text(msh, 5, 1),
            receiving_facility: text(msh, 6, 1),
            message_time: raw_time.as_deref().and_then(parse_dtm),
            message_time_raw: raw_time,
            processing_id: text(msh, 11, 1),
            version: text(msh, 12, 1),
        }
    }

    /// Extracts the header, patient, observations, diagnoses, allergies and insurance.
    pub fn extract(&self) -> Extracted {
        let header = self.header();
        let mut out = Extracted {
            patient: self.patient_event(&header),
            header,
            ..Default::default()
        };
        // OBX segments belong to the OBR before them.
        let mut obr: Option<Segment<'_, 'a>> = None;
        let mut obx_index = 0;
        for segment in self.segments() {
            match segment.name() {
                "OBR" => obr = Some(segment),
                "OBX" => {
                    obx_index += 1;
                    let s = Some(&segment);
                    let value_type = text(s, 2, 0);
                    let (value_numeric, comparator) = numeric(value_type.as_deref(), &segment);
                    let values: Vec<String> = (1..=segment.repetition_count(5))
                        .filter_map(|r| {
                            // Coded values: their text, else their code.
                            if matches!(value_type.as_deref(), Some("CE" | "CWE" | "CNE")) {
                                segment
                                    .value(5, r, 2, 0)
                                    .or_else(|| segment.value(5, r, 1, 0))
                            } else {
                                segment.value(5, r, 0, 0)
                            }
                        })
                        .map(|v| v.into_owned())
                        .collect();
                    let flags: Vec<String> = (1..=segment.repetition_count(8))
                        .filter_map(|r| segment.value(8, r, 1, 0).map(|v| v.into_owned()))
                        .collect();
                    let o = obr.as_ref();
                    out.observations.push(Observation {
                        index: obx_index,
                        set_id: text(s, 1, 0),
                        placer_order_number: first_component(o, 2),
                        filler_order_number: first_component(o, 3),
                        service_code: text(o, 4, 1),
                        service_text: text(o, 4, 2),
                        service_coding_system: text(o, 4, 3),
                        value_type,
                        code: text(s, 3, 1),
                        code_text: text(s, 3, 2),
                        coding_system: text(s, 3, 3),
                        value_text: (!values.is_empty()).then(|| values.join("; ")),
                        value_numeric,
                        comparator,
                        units: text(s, 6, 1),
                        reference_range: text(s, 7, 0),
                        abnormal_flags: (!flags.is_empty()).then(|| flags.join(",")),
                        status: text(s, 11, 0),
                        observation_time: time(s, 14).or_else(|| time(o, 7)),
                    });
                }
                "DG1" => {
                    let s = Some(&segment);
                    out.diagnoses.push(Diagnosis {
                        set_id: text(s, 1, 0),
                        code: text(s, 3, 1),
                        description: text(s, 3, 2).or_else(|| text(s, 4, 0)),
                        coding_system: text(s, 3, 3).or_else(|| text(s, 2, 0)),
                        diagnosis_type: text(s, 6, 1),
                        diagnosis_time: time(s, 5),
                        priority: text(s, 15, 0),
                    });
                }
                "AL1" => {
                    let s = Some(&segment);
                    out.allergies.push(Allergy {
                        set_id: text(s, 1, 0),
                        allergen_type: text(s, 2, 1),
                        code: text(s, 3, 1),
                        description: text(s, 3, 2),
                        coding_system: text(s, 3, 3),
                        severity: text(s, 4, 1),
                        reactions: (1..=segment.repetition_count(5))
                            .filter_map(|r| segment.value(5, r, 0, 0).map(|v| v.into_owned()))
                            .collect(),
                        identified_date: date(s, 6),
                    });
                }
                "IN1" => {
                    let s = Some(&segment);
                    out.insurance.push(Insurance {
                        set_id: text(s, 1, 0),
                        plan_id: text(s, 2, 1),
                        company_id: text(s, 3, 1),
                        company_name: text(s, 4, 1),
                        group_number: text(s, 8, 0),
                        group_name: text(s, 9, 1),
                        plan_type: text(s, 15, 0),
                        insured_family_name: text(s, 16, 1),
                        insured_given_name: text(s, 16, 2),
                        insured_relationship: text(s, 17, 1),
                        policy_number: text(s, 36, 0),
                        effective_date: date(s, 12),
                        expiration_date: date(s, 13),
                    });
                }
                _ => {}
            }
        }
        out
    }

    fn patient_event(&self, header: &MessageHeader) -> Option<PatientEvent> {
        let pid = self.segment("PID", 1)?;
        let pv1 = self.segment("PV1", 1);
        let evn = self.segment("EVN", 1);
        let mrg = self.segment("MRG", 1);
        let (pid, pv1, evn) = (Some(&pid), pv1.as_ref(), evn.as_ref());
        Some(PatientEvent {
            event_type: text(evn, 1, 0).or_else(|| header.trigger_event.clone()),
            event_time: time(evn, 2),
            identifiers: identifiers(pid, 3),
            family_name: pid
                .and_then(|p| p.value(5, 1, 1, 1))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            given_name: text(pid, 5, 2),
            middle_name: text(pid, 5, 3),
            birth_date: date(pid, 7),
            sex: text(pid, 8, 0),
            street: pid
                .and_then(|p| p.value(11, 1, 1, 1))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            city: text(pid, 11, 3),
            state: text(pid, 11, 4),
            postal_code: text(pid, 11, 5),
            country: text(pid, 11, 6),
            phone: text(pid, 13, 1).or_else(|| text(pid, 13, 12)),
            marital_status: text(pid, 16, 1),
            death_indicator: text(pid, 30, 0),
            death_time: time(pid, 29),
            visit_number: text(pv1, 19, 1),
            patient_class: text(pv1, 2, 1),
            point_of_care: text(pv1, 3, 1),
            room: text(pv1, 3, 2),
            bed: text(pv1, 3, 3),
            facility: pv1
                .and_then(|p| p.value(3, 1, 4, 1))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            attending_id: text(pv1, 7, 1),
            attending_family_name: pv1
                .and_then(|p| p.value(7, 1, 2, 1))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            attending_given_name: text(pv1, 7, 3),
            admit_type: text(pv1, 4, 1),
            hospital_service: text(pv1, 10, 1),
            admit_time: time(pv1, 44),
            discharge_time: time(pv1, 45),
            discharge_disposition: text(pv1, 36, 1),
            prior_identifiers: identifiers(mrg.as_ref(), 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORU: &str = "MSH|^~\\&|LAB|HOSP|CL|CL|20240102080000-0500||ORU^R01^ORU_R01|L1|P|2.5.1\r\
PID|1||555^^^HOSP^MR||Roe^Ann\r\
PV1|1|O|||||||||||||||||V9\r\
OBR|1|P1|F1|24331-1^Lipid panel^LN|||20240102070000\r\
OBX|1|NM|2093-3^Cholesterol^LN||212|mg/dL|<200|H|||F\r\
OBX|2|SN|2085-9^HDL^LN||>^60|mg/dL|>40|N|||F|||20240102071500\r\
OBX|3|CWE|883-9^ABO group^LN||A^Group A^L||||||F\r\
DG1|1||E78.5^Hyperlipidemia^I10||20240102|F\r\
AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives~Rash|20100101\r\
IN1|1|PLAN1|PAY01|Acme Health|||||Group X|||20240101|20241231||HMO|Roe^Ann|SEL|||||||||||||||||||POL123\r";

    #[test]
    fn extracts_lab_results() {
        let m = Message::parse(ORU).unwrap();
        let e = m.extract();
        assert_eq!(e.header.message_type.as_deref(), Some("ORU"));
        assert_eq!(
            e.header.message_time.unwrap().to_string(),
            "2024-01-02 13:00:00"
        );
        let p = e.patient.unwrap();
        assert_eq!(p.identifiers[0].id, "555");
        assert_eq!(
            p.identifiers[0].assigning_authority.as_deref(),
            Some("HOSP")
        );
        assert_eq!(p.visit_number.as_deref(), Some("V9"));
        assert_eq!(e.observations.len(), 3);
        let chol = &e.observations[0];
        assert_eq!(chol.value_numeric, Some(212.0));
        assert_eq!(chol.units.as_deref(), Some("mg/dL"));
        assert_eq!(chol.abnormal_flags.as_deref(), Some("H"));
        assert_eq!(chol.service_code.as_deref(), Some("24331-1"));
        assert_eq!(
            chol.observation_time.unwrap().to_string(),
            "2024-01-02 07:00:00"
        );
        let hdl = &e.observations[1];
        assert_eq!(
            (hdl.comparator.as_deref(), hdl.value_numeric),
            (Some(">"), Some(60.0))
        );
        assert_eq!(
            hdl.observation_time.unwrap().to_string(),
            "2024-01-02 07:15:00"
        );
        assert_eq!(e.observations[2].value_text.as_deref(), Some("Group A"));
        assert_eq!(e.diagnoses[0].code.as_deref(), Some("E78.5"));
        assert_eq!(e.diagnoses[0].diagnosis_type.as_deref(), Some("F"));
        assert_eq!(e.allergies[0].reactions, vec!["Hives", "Rash"]);
        assert_eq!(e.allergies[0].severity.as_deref(), Some("SV"));
        assert_eq!(e.insurance[0].company_name.as_deref(), Some("Acme Health"));
        assert_eq!(e.insurance[0].policy_number.as_deref(), Some("POL123"));
        assert_eq!(
            e.insurance[0].effective_date.unwrap().to_string(),
            "2024-01-01"
        );
    }
}
