//! The 837 loop walker of one transaction set: the submitter and receiver (1000A/B), the HL
//! hierarchy (2000A billing provider, 2000B subscriber, 2000C patient) with its name loops,
//! claims (2300) and service lines (2400), each loop checked when it closes.

use chrono::NaiveDate;

use crate::claim::{Claim, ClaimLine};
use crate::error::{Error, Result};
use crate::segment::Segment;

fn date8(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y%m%d").ok()
}

pub(crate) fn date6(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%y%m%d").ok()
}

fn amount(segment: &Segment<'_>, n: usize, what: &str) -> Result<Option<f64>> {
    match segment.get(n) {
        None => Ok(None),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| segment.error(format!("{}{n:02} {what} is not a number", segment.id()))),
    }
}

/// A DTP date or range: (from, to).
fn dtp(segment: &Segment<'_>) -> Result<(Option<NaiveDate>, Option<NaiveDate>)> {
    let format = segment.required(2, "date format qualifier")?;
    let value = segment.required(3, "date")?;
    match format {
        "D8" => {
            let d = date8(value).ok_or_else(|| segment.error("DTP03 is not a CCYYMMDD date"))?;
            Ok((Some(d), Some(d)))
        }
        "RD8" => {
            let (a, b) = value
                .split_once('-')
                .ok_or_else(|| segment.error("DTP03 is not a CCYYMMDD-CCYYMMDD range"))?;
            let (a, b) = (date8(a), date8(b));
            match (a, b) {
                (Some(a), Some(b)) if a <= b => Ok((Some(a), Some(b))),
                (Some(_), Some(_)) => Err(segment.error("DTP03 range ends before it starts")),
                _ => Err(segment.error("DTP03 is not a CCYYMMDD-CCYYMMDD range")),
            }
        }
        "TM" | "DT" => Ok((None, None)),
        _ => Err(segment.error("DTP02 date format qualifier must be D8, RD8, DT or TM")),
    }
}

/// Where in the hierarchy the walker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Header,
    Billing,
    Subscriber,
    Patient,
}

/// Loop state of one HL block, checked when it closes.
#[derive(Default)]
struct HlState {
    level: Option<&'static str>,
    hl_position: usize,
    billing_names: usize,
    /// Inside the 2010AA loop (after NM1*85, before the next NM1).
    in_billing_name: bool,
    billing_address: bool,
    billing_tax_id: bool,
    sbr: bool,
    subscriber_name: bool,
    payer_name: bool,
    patient_name: bool,
}

/// A 2000C patient: last name, first name, birth date, sex.
type PatientName = (
    Option<String>,
    Option<String>,
    Option<NaiveDate>,
    Option<String>,
);

/// Party data carried from the HL loops into each claim.
#[derive(Default, Clone)]
struct Parties {
    billing_npi: Option<String>,
    billing_name: Option<String>,
    payer_name: Option<String>,
    payer_id: Option<String>,
    subscriber_id: Option<String>,
    subscriber_last: Option<String>,
    subscriber_first: Option<String>,
    subscriber_birth: Option<NaiveDate>,
    subscriber_sex: Option<String>,
    relationship: Option<String>,
    responsibility: Option<String>,
    patient: Option<PatientName>,
    patient_member_id: Option<String>,
}

pub(crate) struct Transaction<'s> {
    pub(crate) control: String,
    pub(crate) segments: &'s [Segment<'s>],
}

impl Transaction<'_> {
    fn loop_error(&self, reason: impl Into<String>) -> Error {
        Error::Loop {
            transaction: self.control.clone(),
            reason: reason.into(),
        }
    }
}

fn npi_of(segment: &Segment<'_>) -> Option<String> {
    (segment.element(8) == "XX")
        .then(|| segment.get(9).map(str::to_string))
        .flatten()
}

fn check_nm1(segment: &Segment<'_>) -> Result<()> {
    segment.required(1, "entity identifier code")?;
    match segment.required(2, "entity type qualifier")? {
        "1" | "2" => Ok(()),
        _ => {
            Err(segment.error("NM102 entity type qualifier must be 1 (person) or 2 (organisation)"))
        }
    }
}

fn close_hl(state: &HlState, tx: &Transaction<'_>) -> Result<()> {
    let at = state.hl_position;
    match state.level {
        Some("20") => {
            if state.billing_names == 0 {
                return Err(tx.loop_error(format!(
                    "the billing provider HL at segment {at} has no 2010AA billing provider name (NM1*85)"
                )));
            }
            if !state.billing_address {
                return Err(tx.loop_error(format!(
                    "the 2010AA billing provider after segment {at} has no address (N3)"
                )));
            }
        }
        Some("22") => {
            if !state.sbr {
                return Err(tx.loop_error(format!(
                    "the subscriber HL at segment {at} has no SBR segment"
                )));
            }
            if !state.subscriber_name {
                return Err(tx.loop_error(format!(
                    "the subscriber HL at segment {at} has no 2010BA subscriber name (NM1*IL)"
                )));
            }
            if !state.payer_name {
                return Err(tx.loop_error(format!(
                    "the subscriber HL at segment {at} has no 2010BB payer name (NM1*PR)"
                )));
            }
        }
        Some("23") if !state.patient_name => {
            return Err(tx.loop_error(format!(
                "the patient HL at segment {at} has no 2010CA patient name (NM1*QC)"
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Walks one ST..SE transaction set into claims.
pub(crate) fn walk(tx: &Transaction<'_>, context: &Claim, out: &mut Vec<Claim>) -> Result<()> {
    let segs = tx.segments;
    // segs[0] is ST, last is SE.
    let body = &segs[1..segs.len() - 1];
    let Some(bht) = body.first() else {
        return Err(tx.loop_error("the transaction is empty"));
    };
    if bht.id() != "BHT" {
        return Err(bht.error("the first segment after ST must be BHT"));
    }
    let mut submitter = false;
    let mut receiver = false;
    let mut level = Level::Header;
    let mut hl = HlState::default();
    let mut parties = Parties::default();
    let mut claim: Option<Claim> = None;
    let mut in_line = false;
    let mut hl_ids: Vec<&str> = Vec::new();
    let claims_before = out.len();

    let finish_claim = |claim: &mut Option<Claim>, out: &mut Vec<Claim>| -> Result<()> {
        if let Some(mut c) = claim.take() {
            if c.lines.is_empty() {
                return Err(tx.loop_error(format!(
                    "the claim at segment {} has no service line (2400 LX)",
                    c.segment_position
                )));
            }
            let from = c.lines.iter().filter_map(|l| l.service_from).min();
            let to = c.lines.iter().filter_map(|l| l.service_to).max();
            c.statement_from = c.statement_from.or(from);
            c.statement_to = c.statement_to.or(to);
            out.push(c);
        }
        Ok(())
    };

    for seg in &body[1..] {
        let id = seg.id();
        if id == "HL" {
            finish_claim(&mut claim, out)?;
            in_line = false;
            close_hl(&hl, tx)?;
            let hl_id = seg.required(1, "hierarchical id")?;
            if hl_ids.contains(&hl_id) && level == Level::Header {
                return Err(seg.error("HL01 repeats an earlier hierarchical id"));
            }
            hl_ids.push(hl_id);
            let code = seg.required(3, "hierarchical level code")?;
            let (new_level, name) = match code {
                "20" => (Level::Billing, "20"),
                "22" => (Level::Subscriber, "22"),
                "23" => (Level::Patient, "23"),
                _ => return Err(seg.error("HL03 hierarchical level code must be 20, 22 or 23")),
            };
            if !submitter {
                return Err(tx.loop_error("the 1000A submitter name (NM1*41) is missing"));
            }
            if !receiver {
                return Err(tx.loop_error("the 1000B receiver name (NM1*40) is missing"));
            }
            if new_level == Level::Subscriber && level == Level::Header {
                return Err(
                    seg.error("a subscriber HL comes before any billing provider HL (2000A)")
                );
            }
            if new_level == Level::Patient && level == Level::Header {
                return Err(seg.error("a patient HL comes before any subscriber HL (2000B)"));
            }
            // A new billing provider resets everything; a new subscriber resets its parties.
            match new_level {
                Level::Billing => parties = Parties::default(),
                Level::Subscriber => {
                    parties = Parties {
                        billing_npi: parties.billing_npi.take(),
                        billing_name: parties.billing_name.take(),
                        ..Parties::default()
                    }
                }
                _ => {
                    parties.patient = None;
                    parties.patient_member_id = None;
                }
            }
            level = new_level;
            hl = HlState {
                level: Some(name),
                hl_position: seg.position,
                ..HlState::default()
            };
            continue;
        }
        match (id, level) {
            ("NM1", _) => {
                check_nm1(seg)?;
                hl.in_billing_name = false;
                let entity = seg.element(1);
                let last = seg.get(3).map(str::to_string);
                let first = seg.get(4).map(str::to_string);
                if let Some(c) = claim.as_mut() {
                    let npi = npi_of(seg);
                    match (entity, in_line) {
                        ("82", true) => {
                            if let Some(line) = c.lines.last_mut() {
                                line.rendering_provider_npi = npi;
                            }
                        }
                        ("82", false) => c.rendering_provider_npi = npi,
                        ("71", _) => c.attending_provider_npi = npi,
                        ("DN" | "DK", _) => c.referring_provider_npi = npi,
                        _ => {}
                    }
                    continue;
                }
                match (entity, level) {
                    ("41", Level::Header) => submitter = true,
                    ("40", Level::Header) => receiver = true,
                    ("85", Level::Billing) => {
                        hl.billing_names += 1;
                        if hl.billing_names > 1 {
                            return Err(seg.error(
                                "the 2010AA billing provider name loop repeats; the guide allows one per billing provider",
                            ));
                        }
                        hl.in_billing_name = true;
                        parties.billing_npi = npi_of(seg);
                        parties.billing_name = last;
                    }
                    ("IL", Level::Subscriber) => {
                        if hl.subscriber_name {
                            return Err(seg.error("the 2010BA subscriber name loop repeats"));
                        }
                        hl.subscriber_name = true;
                        parties.subscriber_last = last;
                        parties.subscriber_first = first;
                        parties.subscriber_id = seg.get(9).map(str::to_string);
                    }
                    ("PR", Level::Subscriber) => {
                        if hl.payer_name {
                            return Err(seg.error("the 2010BB payer name loop repeats"));
                        }
                        hl.payer_name = true;
                        parties.payer_name = last;
                        parties.payer_id = seg.get(9).map(str::to_string);
                    }
                    ("QC", Level::Patient) => {
                        hl.patient_name = true;
                        parties.patient = Some((last, first, None, None));
                    }
                    ("87" | "PE" | "QD" | "AO", _) => {}
                    (_, Level::Billing) if hl.billing_names == 0 => {
                        return Err(seg.error(
                            "NM101 entity identifier code is not valid here: the 2010AA billing provider must be NM1*85",
                        ));
                    }
                    _ => {}
                }
            }
            ("N3", Level::Billing) if hl.in_billing_name => {
                hl.billing_address = true;
            }
            ("REF", Level::Billing)
                if hl.in_billing_name && matches!(seg.element(1), "EI" | "SY") =>
            {
                if hl.billing_tax_id {
                    return Err(seg.error(
                        "the billing provider's tax id (REF*EI/SY) repeats; the guide allows one",
                    ));
                }
                hl.billing_tax_id = true;
            }
            ("SBR", Level::Subscriber) => {
                let responsibility = seg.required(1, "payer responsibility code")?;
                if !matches!(
                    responsibility,
                    "P" | "S" | "T" | "A" | "B" | "C" | "D" | "E" | "F" | "G" | "H" | "U"
                ) {
                    return Err(seg.error("SBR01 payer responsibility code is not a valid code"));
                }
                hl.sbr = true;
                parties.responsibility = Some(responsibility.to_string());
                parties.relationship = seg.get(2).map(str::to_string);
            }
            ("DMG", Level::Subscriber | Level::Patient) if claim.is_none() => {
                if seg.element(1) != "D8" {
                    return Err(seg.error("DMG01 date format qualifier must be D8"));
                }
                let birth = seg
                    .get(2)
                    .map(|d| {
                        date8(d).ok_or_else(|| seg.error("DMG02 birth date is not a CCYYMMDD date"))
                    })
                    .transpose()?;
                let sex = seg.get(3).map(str::to_string);
                if level == Level::Patient {
                    if let Some(p) = parties.patient.as_mut() {
                        p.2 = birth;
                        p.3 = sex;
                    }
                } else {
                    parties.subscriber_birth = birth;
                    parties.subscriber_sex = sex;
                }
            }
            ("REF", Level::Patient) if claim.is_none() && matches!(seg.element(1), "1W" | "SY") => {
                parties.patient_member_id = seg.get(2).map(str::to_string);
            }
            ("CLM", Level::Subscriber | Level::Patient) => {
                finish_claim(&mut claim, out)?;
                in_line = false;
                if level == Level::Subscriber && !hl.sbr {
                    return Err(seg.error("a claim comes before the subscriber's SBR segment"));
                }
                let claim_id = seg.required(1, "patient control number (claim id)")?;
                let total = amount(seg, 2, "total claim charge")?
                    .ok_or_else(|| seg.error("CLM02 total claim charge is missing"))?;
                let frequency = seg.component(5, 3).map(str::to_string);
                if frequency
                    .as_deref()
                    .is_some_and(|f| !f.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(seg.error("CLM05-3 claim frequency code must be a digit"));
                }
                let patient = parties.patient.clone();
                let is_subscriber = patient.is_none();
                let (p_last, p_first, p_birth, p_sex) = patient.unwrap_or((
                    parties.subscriber_last.clone(),
                    parties.subscriber_first.clone(),
                    parties.subscriber_birth,
                    parties.subscriber_sex.clone(),
                ));
                claim = Some(Claim {
                    claim_id: claim_id.to_string(),
                    total_charge: Some(total),
                    place_of_service: seg.component(5, 1).map(str::to_string),
                    facility_code_qualifier: seg.component(5, 2).map(str::to_string),
                    frequency_code: frequency,
                    billing_provider_npi: parties.billing_npi.clone(),
                    billing_provider_name: parties.billing_name.clone(),
                    payer_name: parties.payer_name.clone(),
                    payer_id: parties.payer_id.clone(),
                    subscriber_id: parties.subscriber_id.clone(),
                    subscriber_last_name: parties.subscriber_last.clone(),
                    subscriber_first_name: parties.subscriber_first.clone(),
                    subscriber_birth_date: parties.subscriber_birth,
                    subscriber_sex: parties.subscriber_sex.clone(),
                    subscriber_relationship: parties.relationship.clone(),
                    payer_responsibility: parties.responsibility.clone(),
                    patient_is_subscriber: is_subscriber,
                    patient_last_name: p_last,
                    patient_first_name: p_first,
                    patient_birth_date: p_birth,
                    patient_sex: p_sex,
                    patient_member_id: parties
                        .patient_member_id
                        .clone()
                        .or_else(|| parties.subscriber_id.clone()),
                    segment_position: seg.position,
                    ..context.clone()
                });
            }
            ("CLM", _) => return Err(seg.error("a claim (CLM) outside a subscriber or patient HL")),
            ("LX", _) => {
                let Some(c) = claim.as_mut() else {
                    return Err(seg.error("a service line (LX) outside a claim"));
                };
                let number = seg
                    .required(1, "line number")?
                    .parse::<u32>()
                    .map_err(|_| seg.error("LX01 line number is not a number"))?;
                c.lines.push(ClaimLine {
                    line_number: number,
                    ..ClaimLine::default()
                });
                in_line = true;
            }
            ("SV1" | "SV2", _) => {
                let Some(line) = claim
                    .as_mut()
                    .and_then(|c| c.lines.last_mut())
                    .filter(|_| in_line)
                else {
                    return Err(seg.error(
                        "a service (SV1/SV2) outside a service line: the 2400 loop's LX is missing",
                    ));
                };
                let (procedure, charge, basis, units) = if id == "SV1" {
                    (1, 2, 3, 4)
                } else {
                    line.revenue_code = Some(seg.required(1, "revenue code")?.to_string());
                    (2, 3, 4, 5)
                };
                let parts = seg.components(procedure);
                if id == "SV1" || !parts.concat().is_empty() {
                    let qualifier = parts.first().copied().filter(|q| !q.is_empty());
                    let code = parts.get(1).copied().filter(|c| !c.is_empty());
                    if id == "SV1" && (qualifier.is_none() || code.is_none()) {
                        return Err(seg.error("SV101 needs a qualifier and a procedure code"));
                    }
                    line.procedure_qualifier = qualifier.map(str::to_string);
                    line.procedure_code = code.map(str::to_string);
                    line.modifiers = parts
                        .iter()
                        .skip(2)
                        .take(4)
                        .filter(|m| !m.is_empty())
                        .map(|m| m.to_string())
                        .collect();
                }
                line.charge =
                    Some(amount(seg, charge, "line charge")?.ok_or_else(|| {
                        seg.error(format!("{id}{charge:02} line charge is missing"))
                    })?);
                line.unit_basis = seg.get(basis).map(str::to_string);
                line.units = amount(seg, units, "units")?;
                if id == "SV1" {
                    line.place_of_service = seg.get(5).map(str::to_string);
                    let mut pointers = Vec::new();
                    for p in seg.components(7).into_iter().filter(|p| !p.is_empty()) {
                        match p.parse::<u8>() {
                            Ok(n) if (1..=12).contains(&n) => pointers.push(n),
                            _ => return Err(seg.error("SV107 diagnosis pointer must be 1 to 12")),
                        }
                    }
                    line.diagnosis_pointers = pointers;
                }
            }
            ("DTP", _) if claim.is_some() => {
                let qualifier = seg.required(1, "date qualifier")?;
                let c = claim.as_mut().expect("checked");
                if qualifier == "096" {
                    c.discharge_hour = seg.get(3).map(str::to_string);
                    continue;
                }
                let (from, to) = dtp(seg)?;
                match (qualifier, in_line) {
                    ("472", true) => {
                        if let Some(line) = c.lines.last_mut() {
                            line.service_from = from;
                            line.service_to = to;
                        }
                    }
                    ("472" | "434", false) => {
                        c.statement_from = from;
                        c.statement_to = to;
                    }
                    ("435", _) => c.admission_date = from,
                    _ => {}
                }
            }
            ("REF", _) if claim.is_some() => {
                let c = claim.as_mut().expect("checked");
                match (seg.element(1), in_line) {
                    ("6R", true) => {
                        if let Some(line) = c.lines.last_mut() {
                            line.line_control_number = seg.get(2).map(str::to_string);
                        }
                    }
                    ("G1", false) => c.prior_authorization = seg.get(2).map(str::to_string),
                    _ => {}
                }
            }
            ("HI", _) if claim.is_some() && !in_line => {
                let c = claim.as_mut().expect("checked");
                let mut n = 0;
                while n < seg.len() {
                    n += 1;
                    let (qualifier, code) = match (seg.component(n, 1), seg.component(n, 2)) {
                        (Some(q), Some(c)) => (q, c),
                        // Some senders write the qualifier and the code as two elements.
                        (Some(q), None)
                            if seg.components(n).len() == 1 && seg.get(n + 1).is_some() =>
                        {
                            n += 1;
                            (q, seg.element(n))
                        }
                        _ => continue,
                    };
                    // Diagnosis qualifiers only (procedure codes, value and occurrence codes
                    // also travel in HI on 837I).
                    let principal = matches!(qualifier, "ABK" | "BK");
                    let other = matches!(
                        qualifier,
                        "ABF" | "BF" | "ABJ" | "BJ" | "APR" | "PR" | "ABN" | "BN"
                    );
                    if !(principal || other) {
                        continue;
                    }
                    if principal {
                        c.principal_diagnosis = Some(code.to_string());
                        c.diagnosis_codes.insert(0, code.to_string());
                        c.diagnosis_qualifiers.insert(0, qualifier.to_string());
                    } else {
                        c.diagnosis_codes.push(code.to_string());
                        c.diagnosis_qualifiers.push(qualifier.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    finish_claim(&mut claim, out)?;
    close_hl(&hl, tx)?;
    if !submitter {
        return Err(tx.loop_error("the 1000A submitter name (NM1*41) is missing"));
    }
    if hl_ids.is_empty() {
        return Err(tx.loop_error("the transaction has no billing provider HL (2000A)"));
    }
    if out.len() == claims_before {
        return Err(tx.loop_error("the transaction has no claim (2300 CLM)"));
    }
    Ok(())
}
