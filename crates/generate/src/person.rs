//! The simulation of one person's life in the network: identity in one or two EHR systems,
//! encounters with their diagnoses, procedures, labs, vitals, claims and notes, and 30-day
//! readmissions.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::clinical::{ClaimLineRecord, ClaimRecord, EncounterRecord, LabRecord, PersonRecord};
use crate::identity::{Identity, corrupt, phone};
use crate::network::{
    CROSS_SYSTEM_SHARE, DAYS, DUPLICATE_ROW_SHARE, GenerateSummary, Provider, normal, npi, pick,
    poisson, ts,
};
use crate::outputs::Outputs;
use crate::reference::*;
use crate::{Error, Result};

pub(crate) struct Stay {
    pub(crate) class: &'static str,
    pub(crate) admit: NaiveDateTime,
    pub(crate) discharge: NaiveDateTime,
    pub(crate) reason: (&'static str, &'static str),
    pub(crate) facility: usize,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn generate_person(
    rng: &mut ChaCha8Rng,
    person: u64,
    start: NaiveDate,
    providers: &[Provider],
    out: &mut Outputs,
    summary: &mut GenerateSummary,
    encounter_seq: &mut u64,
) -> Result<()> {
    let person_id = format!("P{:08}", person + 1);
    // Age distribution: a hospital population skews older.
    let age = match rng.random_range(0..100) {
        0..=14 => rng.random_range(0..18),
        15..=49 => rng.random_range(18..50),
        50..=74 => rng.random_range(50..70),
        _ => rng.random_range(70..96),
    };
    let sex = if rng.random_bool(0.52) { "F" } else { "M" };
    let first = if sex == "F" {
        pick(rng, FEMALE_NAMES)
    } else {
        pick(rng, MALE_NAMES)
    };
    let birth = start - Duration::days(age * 365 + rng.random_range(0..365));
    let city = rng.random_range(0..CITIES.len());
    let identity = Identity {
        first: (*first).to_string(),
        last: (*pick(rng, LAST_NAMES)).to_string(),
        sex,
        birth,
        ssn: format!(
            "9{:02}-{:02}-{:04}",
            rng.random_range(0..100),
            rng.random_range(70..100),
            rng.random_range(0..10000)
        ),
        street: format!("{} {}", rng.random_range(1..9999), pick(rng, STREETS)),
        city,
        zip: format!("{}{:02}", CITIES[city].2, rng.random_range(1..99)),
        phone: phone(rng, CITIES[city].3),
    };
    // Comorbidities rise with age.
    let chronic_count =
        poisson(rng, 0.2 + (age as f64 / 30.0).powf(1.6) * 0.5).min(CHRONIC.len() as u32) as usize;
    let mut chronic: Vec<usize> = Vec::new();
    while chronic.len() < chronic_count {
        let c = rng.random_range(0..CHRONIC.len());
        if !chronic.contains(&c) {
            chronic.push(c);
        }
    }
    let payer = if age >= 65 {
        0
    } else if rng.random_bool(0.18) {
        1
    } else if rng.random_bool(0.07) {
        5
    } else {
        rng.random_range(2..5)
    };
    let member_id = format!(
        "{}{:09}",
        &PAYERS[payer].0[4..],
        rng.random_range(0..1_000_000_000u64)
    );

    // The home system follows the city; some people are known to both systems.
    let home = if city >= 6 { "CASCADE" } else { "MERIDIAN" };
    let other = if home == "MERIDIAN" {
        "CASCADE"
    } else {
        "MERIDIAN"
    };
    let mut systems = vec![(home, identity.clone())];
    if rng.random_bool(CROSS_SYSTEM_SHARE) {
        systems.push((other, corrupt(rng, &identity)));
    }
    let mut mrns = Vec::new();
    for (system, id) in &systems {
        let prefix = if *system == "MERIDIAN" { "M" } else { "C" };
        // A bijection of the person index modulo a prime: unique, but unrelated to the person id.
        let multiplier = if *system == "MERIDIAN" {
            7_919
        } else {
            104_729
        };
        let mrn = format!(
            "{prefix}{:09}",
            (person * multiplier + 12_345) % 100_000_007
        );
        let updated = start + Duration::days(rng.random_range(0..DAYS / 2));
        write_patient(out, system, &mrn, id, payer, &member_id, updated, 1)?;
        summary.patient_records += 1;
        // A late update: the person moved or changed phone.
        if rng.random_bool(0.03) {
            let mut moved = id.clone();
            moved.street = format!("{} {}", rng.random_range(1..9999), pick(rng, STREETS));
            moved.phone = phone(rng, CITIES[moved.city].3);
            write_patient(
                out,
                system,
                &mrn,
                &moved,
                payer,
                &member_id,
                updated + Duration::days(rng.random_range(30..300)),
                2,
            )?;
            summary.patient_records += 1;
        }
        out.truth_people
            .write_record([*system, mrn.as_str(), person_id.as_str()])?;
        mrns.push((*system, mrn));
    }
    if out.people_only {
        return Ok(());
    }

    // Encounters over the two years.
    let facilities_of = |system: &str, kind: &str| -> Vec<usize> {
        FACILITIES
            .iter()
            .enumerate()
            .filter(|(_, f)| f.3 == system && f.2 == kind)
            .map(|(i, _)| i)
            .collect()
    };
    let years = DAYS as f64 / 365.0;
    let mut stays: Vec<Stay> = Vec::new();
    let visit_count = poisson(
        rng,
        (1.5 + age as f64 / 25.0 + chronic.len() as f64 * 0.8) * years,
    );
    for _ in 0..visit_count {
        let day = rng.random_range(0..DAYS);
        let admit = (start + Duration::days(day))
            .and_hms_opt(rng.random_range(8..17), rng.random_range(0..60), 0)
            .expect("valid time");
        let facility = *pick(rng, &facilities_of(home, "clinic"));
        stays.push(Stay {
            class: "outpatient",
            admit,
            discharge: admit + Duration::minutes(rng.random_range(15..60)),
            reason: *pick(rng, VISIT_REASONS),
            facility,
        });
    }
    let ed_count = poisson(
        rng,
        (0.15 + age as f64 / 400.0 + chronic.len() as f64 * 0.05) * years,
    );
    for _ in 0..ed_count {
        let day = rng.random_range(0..DAYS);
        let admit = (start + Duration::days(day))
            .and_hms_opt(rng.random_range(0..24), rng.random_range(0..60), 0)
            .expect("valid time");
        let facility = *pick(rng, &facilities_of(home, "hospital"));
        stays.push(Stay {
            class: "emergency",
            admit,
            discharge: admit + Duration::minutes(rng.random_range(90..600)),
            reason: *pick(rng, ED_REASONS),
            facility,
        });
    }
    // Inpatient stays: background admissions, each followed by a 30-day readmission with a
    // probability that rises with age and comorbidity.
    let admissions = poisson(
        rng,
        (0.02 + (age as f64 / 100.0).powi(2) * 0.25 + chronic.len() as f64 * 0.06) * years,
    );
    let mut days: Vec<i64> = (0..admissions).map(|_| rng.random_range(0..DAYS)).collect();
    days.sort_unstable();
    let mut inpatient: Vec<(Stay, Option<u64>)> = Vec::new();
    let mut next_free = 0i64;
    for day in days {
        let mut day = day.max(next_free);
        if day >= DAYS {
            break;
        }
        loop {
            let reason = *pick(rng, ADMIT_REASONS);
            let admit = (start + Duration::days(day))
                .and_hms_opt(rng.random_range(0..24), rng.random_range(0..60), 0)
                .expect("valid time");
            let los_hours = (normal(rng, reason.2, reason.2 * 0.4).max(1.0) * 24.0) as i64;
            let discharge = admit + Duration::hours(los_hours);
            // Some stays happen at the other system's hospital, for people registered there.
            let system = if mrns.len() > 1 && rng.random_bool(0.3) {
                other
            } else {
                home
            };
            let facility = *pick(rng, &facilities_of(system, "hospital"));
            inpatient.push((
                Stay {
                    class: "inpatient",
                    admit,
                    discharge,
                    reason: (reason.0, reason.1),
                    facility,
                },
                None,
            ));
            let p = (0.045 + (age as f64 - 30.0).max(0.0) * 0.0012 + chronic.len() as f64 * 0.03)
                .min(0.55);
            let discharge_day = (discharge.date() - start).num_days();
            if rng.random_bool(p) {
                let gap = rng.random_range(1..=30);
                day = discharge_day + gap;
                let index = inpatient.len() - 1;
                inpatient[index].1 = Some(gap as u64);
                if day >= DAYS {
                    // The readmission falls after the window: none inside it, and no
                    // background admission within 30 days of this discharge either.
                    inpatient[index].1 = None;
                    next_free = discharge_day + 31;
                    break;
                }
            } else {
                next_free = discharge_day + 31;
                break;
            }
        }
    }
    let mut all: Vec<(Stay, Option<u64>)> = stays.into_iter().map(|s| (s, None)).collect();
    all.extend(inpatient);
    all.sort_by_key(|(s, _)| s.admit);

    let mut previous_inpatient: Option<(String, u64)> = None;
    for (stay, readmit_gap) in &all {
        *encounter_seq += 1;
        let system = FACILITIES[stay.facility].3;
        let Some((_, mrn)) = mrns.iter().find(|(s, _)| *s == system) else {
            continue;
        };
        let encounter_id = format!("E{:010}", *encounter_seq);
        let facility_providers: Vec<&Provider> = providers
            .iter()
            .filter(|p| p.facility == stay.facility)
            .collect();
        let attending = pick(rng, &facility_providers).npi.clone();
        let disposition = match stay.class {
            "inpatient" => {
                if age > 75 && rng.random_bool(0.2) {
                    "SNF"
                } else {
                    "HOME"
                }
            }
            "emergency" => "HOME",
            _ => "",
        };
        let record = [
            system,
            encounter_id.as_str(),
            mrn.as_str(),
            FACILITIES[stay.facility].0,
            stay.class,
            &ts(stay.admit),
            &ts(stay.discharge),
            attending.as_str(),
            stay.reason.0,
            disposition,
            PAYERS[payer].0,
        ];
        out.encounters.write_record(record)?;
        summary.encounters += 1;
        if rng.random_bool(DUPLICATE_ROW_SHARE) {
            out.encounters.write_record(record)?;
        }
        if stay.class == "inpatient" {
            summary.inpatient_stays += 1;
            if let Some((index_id, gap)) = previous_inpatient.take() {
                out.truth_readmissions.write_record([
                    index_id.as_str(),
                    encounter_id.as_str(),
                    &gap.to_string(),
                ])?;
                summary.readmissions += 1;
            }
            if let Some(gap) = readmit_gap {
                previous_inpatient = Some((encounter_id.clone(), *gap));
            }
        }

        // Diagnoses: the reason, then chronic conditions.
        let mut encounter_diagnoses: Vec<(&str, &str)> = vec![stay.reason];
        let mut seq = 1;
        out.diagnoses.write_record([
            system,
            encounter_id.as_str(),
            "1",
            stay.reason.0,
            stay.reason.1,
            "true",
        ])?;
        for c in &chronic {
            if stay.class == "inpatient" || rng.random_bool(0.5) {
                seq += 1;
                out.diagnoses.write_record([
                    system,
                    encounter_id.as_str(),
                    &seq.to_string(),
                    CHRONIC[*c].0,
                    CHRONIC[*c].1,
                    "false",
                ])?;
                encounter_diagnoses.push(CHRONIC[*c]);
            }
        }
        summary.diagnoses += seq as u64;

        // Procedures and claim lines.
        let mut cpts: Vec<usize> = match stay.class {
            "inpatient" => {
                let mut v = vec![2];
                let days = (stay.discharge - stay.admit).num_days().clamp(0, 10) as usize;
                v.extend(std::iter::repeat_n(3, days.saturating_sub(1)));
                v.extend([4, 9, 10, 11]);
                if rng.random_bool(0.5) {
                    v.push(7)
                }
                if rng.random_bool(0.4) {
                    v.push(8)
                }
                v
            }
            "emergency" => {
                let mut v = vec![if rng.random_bool(0.3) { 6 } else { 5 }, 11];
                if rng.random_bool(0.4) {
                    v.push(8)
                }
                if rng.random_bool(0.3) {
                    v.push(7)
                }
                v
            }
            _ => {
                let mut v = vec![if chronic.len() > 1 { 1 } else { 0 }];
                if rng.random_bool(0.3) {
                    v.extend([9, 11])
                }
                if stay.reason.0 == "Z23" {
                    v.push(12)
                }
                v
            }
        };
        cpts.sort_unstable();
        let claim_id = format!("CLM{:010}", *encounter_seq);
        let mut total = 0.0;
        let mut line_no = 0;
        let mut claim_lines: Vec<ClaimLineRecord> = Vec::new();
        let mut i = 0;
        while i < cpts.len() {
            let code = cpts[i];
            let units = cpts[i..].iter().take_while(|c| **c == code).count();
            let (cpt, description, price) = CPT[code];
            for _ in 0..units {
                out.procedures.write_record([
                    system,
                    encounter_id.as_str(),
                    cpt,
                    description,
                    &ts(stay.admit),
                    attending.as_str(),
                ])?;
                summary.procedures += 1;
            }
            line_no += 1;
            let charge =
                (price * units as f64 * rng.random_range(0.9..1.3) * 100.0).round() / 100.0;
            total += charge;
            out.claim_lines.write_record([
                claim_id.as_str(),
                &line_no.to_string(),
                cpt,
                &units.to_string(),
                &format!("{charge:.2}"),
            ])?;
            claim_lines.push(ClaimLineRecord { cpt, units, charge });
            i += units;
        }
        if stay.class == "inpatient" {
            let room = ((stay.discharge - stay.admit).num_hours() as f64 / 24.0).max(1.0)
                * rng.random_range(2200.0..3400.0);
            total += (room * 100.0).round() / 100.0;
        }
        let status = if rng.random_bool(0.08) {
            "DENIED"
        } else if rng.random_bool(0.1) {
            "PENDING"
        } else {
            "PAID"
        };
        out.claims.write_record([
            claim_id.as_str(),
            encounter_id.as_str(),
            PAYERS[payer].0,
            member_id.as_str(),
            attending.as_str(),
            FACILITIES[stay.facility].0,
            &stay.admit.date().to_string(),
            &stay.discharge.date().to_string(),
            stay.reason.0,
            &format!("{total:.2}"),
            status,
        ])?;
        summary.claims += 1;
        let identity = systems
            .iter()
            .find(|(s, _)| *s == system)
            .map_or(&identity, |(_, id)| id);
        let person_updated = start.and_hms_opt(9, 0, 0).expect("valid time");
        let person = person_record(system, mrn, identity, payer, &member_id, person_updated);
        let facility_npi = npi(0x00FA_C000 + stay.facility as u64);
        if let Some(clinical) = out.clinical.as_mut() {
            clinical.claim(
                &person,
                &ClaimRecord {
                    claim_id: &claim_id,
                    billing_npi: &facility_npi,
                    rendering_npi: &attending,
                    facility_name: FACILITIES[stay.facility].1,
                    total,
                    service_from: stay.admit.date(),
                    service_to: stay.discharge.date(),
                    place_of_service: match stay.class {
                        "inpatient" => "21",
                        "emergency" => "23",
                        _ => "11",
                    },
                    lines: claim_lines,
                },
                &encounter_diagnoses,
            )?;
        }

        // Labs.
        let mut lab_records: Vec<LabRecord> = Vec::new();
        let lab_count = match stay.class {
            "inpatient" => 6 + rng.random_range(0..6),
            "emergency" => 3 + rng.random_range(0..3),
            _ => {
                if rng.random_bool(0.3) {
                    2
                } else {
                    0
                }
            }
        };
        for _ in 0..lab_count {
            let (loinc, name, unit, low, high, mean, sd) = *pick(rng, LABS);
            let value = normal(rng, mean, sd).max(low * 0.3);
            let value = (value * 100.0).round() / 100.0;
            let flag = if value < low {
                "L"
            } else if value > high {
                "H"
            } else {
                "N"
            };
            let collected = stay.admit
                + Duration::minutes(
                    rng.random_range(10..((stay.discharge - stay.admit).num_minutes().max(20))),
                );
            let record = [
                system,
                encounter_id.as_str(),
                mrn.as_str(),
                loinc,
                name,
                &value.to_string(),
                unit,
                &low.to_string(),
                &high.to_string(),
                flag,
                &ts(collected),
            ];
            out.labs.write_record(record)?;
            lab_records.push(LabRecord {
                loinc,
                name,
                value,
                unit,
                low,
                high,
                flag,
                collected,
            });
            summary.labs += 1;
            if rng.random_bool(DUPLICATE_ROW_SHARE) {
                out.labs.write_record(record)?;
            }
        }

        if let Some(clinical) = out.clinical.as_mut() {
            clinical.encounter(
                &person,
                &EncounterRecord {
                    encounter_id: &encounter_id,
                    facility_id: FACILITIES[stay.facility].0,
                    facility_name: FACILITIES[stay.facility].1,
                    class: stay.class,
                    admit: stay.admit,
                    discharge: stay.discharge,
                    attending_npi: &attending,
                    disposition,
                    diagnoses: &encounter_diagnoses,
                },
                &lab_records,
            )?;
        }

        // Device vitals every eight hours of a stay (once for an ED visit).
        if stay.class != "outpatient" {
            let mut t = stay.admit + Duration::minutes(30);
            let device = format!(
                "MON-{}-{:03}",
                &FACILITIES[stay.facility].0[4..],
                rng.random_range(1..200)
            );
            let fahrenheit = system == "CASCADE" || rng.random_bool(0.2);
            let mut n = 0;
            while t < stay.discharge && n < 30 {
                write_vitals(
                    rng,
                    &mut out.vitals,
                    system,
                    mrn,
                    &encounter_id,
                    &device,
                    t,
                    fahrenheit,
                    summary,
                )?;
                t += Duration::hours(8);
                n += 1;
                if stay.class == "emergency" {
                    break;
                }
            }
        }

        // Outreach after an inpatient discharge.
        if stay.class == "inpatient" && rng.random_bool(0.6) {
            let when = stay.discharge + Duration::hours(rng.random_range(24..96));
            let note = serde_json::json!({
                "note_id": format!("N{:010}", *encounter_seq),
                "source_system": system,
                "mrn": mrn,
                "encounter_id": encounter_id,
                "author_role": *pick(rng, &["RN care manager", "Social worker", "Pharmacist"]),
                "channel": *pick(rng, &["phone", "portal", "home visit"]),
                "created_at": ts(when),
                "text": *pick(rng, NOTE_TEMPLATES),
            });
            serde_json::to_writer(&mut out.notes, &note)?;
            out.notes.write_all(b"\n").map_err(|source| Error::Write {
                path: out.dir.join("outreach_notes.ndjson"),
                source,
            })?;
            summary.notes += 1;
        }
    }
    summary.rows = summary.patient_records
        + summary.encounters
        + summary.diagnoses
        + summary.procedures
        + summary.labs
        + summary.vitals
        + summary.claims * 2
        + summary.notes;
    Ok(())
}

pub(crate) fn person_record<'a>(
    system: &'a str,
    mrn: &'a str,
    id: &'a Identity,
    payer: usize,
    member_id: &'a str,
    updated: NaiveDateTime,
) -> PersonRecord<'a> {
    let (city, state, ..) = CITIES[id.city];
    PersonRecord {
        system,
        mrn,
        first: &id.first,
        last: &id.last,
        sex: id.sex,
        birth: id.birth,
        street: &id.street,
        city,
        state,
        zip: &id.zip,
        phone: &id.phone,
        payer_id: PAYERS[payer].0,
        payer_name: PAYERS[payer].1,
        member_id,
        updated,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write_patient(
    out: &mut Outputs,
    system: &str,
    mrn: &str,
    id: &Identity,
    payer_index: usize,
    member_id: &str,
    updated: NaiveDate,
    version: u32,
) -> Result<()> {
    let payer = PAYERS[payer_index].0;
    let updated_at = updated.and_hms_opt(9, 0, 0).expect("valid time");
    if let Some(clinical) = out.clinical.as_mut() {
        clinical.person(
            &person_record(system, mrn, id, payer_index, member_id, updated_at),
            version,
        )?;
    }
    let (city, state, ..) = CITIES[id.city];
    out.patients.write_record([
        system,
        mrn,
        id.first.as_str(),
        id.last.as_str(),
        id.sex,
        &id.birth.to_string(),
        id.ssn.as_str(),
        id.street.as_str(),
        city,
        state,
        id.zip.as_str(),
        id.phone.as_str(),
        payer,
        member_id,
        &format!("{updated}T09:00:00"),
    ])?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write_vitals(
    rng: &mut ChaCha8Rng,
    w: &mut BufWriter<File>,
    system: &str,
    mrn: &str,
    encounter_id: &str,
    device: &str,
    at: NaiveDateTime,
    fahrenheit: bool,
    summary: &mut GenerateSummary,
) -> Result<()> {
    let outlier = rng.random_bool(0.002);
    let temp_c = normal(rng, 37.0, 0.5);
    let readings: [(&str, f64, &str); 5] = [
        (
            "heart_rate",
            if outlier {
                250.0
            } else {
                normal(rng, 82.0, 14.0).round()
            },
            "/min",
        ),
        ("spo2", normal(rng, 96.0, 2.0).min(100.0).round(), "%"),
        ("bp_systolic", normal(rng, 128.0, 18.0).round(), "mm[Hg]"),
        ("bp_diastolic", normal(rng, 78.0, 11.0).round(), "mm[Hg]"),
        if fahrenheit {
            (
                "temperature",
                ((temp_c * 9.0 / 5.0 + 32.0) * 10.0).round() / 10.0,
                "[degF]",
            )
        } else {
            ("temperature", (temp_c * 10.0).round() / 10.0, "Cel")
        },
    ];
    for (kind, value, unit) in readings {
        summary.vitals += 1;
        let event_id = format!("{device}-{}-{kind}", at.and_utc().timestamp());
        writeln!(
            w,
            r#"{{"event_id":"{event_id}","source_system":"{system}","mrn":"{mrn}","encounter_id":"{encounter_id}","device_id":"{device}","measured_at":"{}","type":"{kind}","value":{value:.1},"unit":"{unit}"}}"#,
            ts(at)
        )
        .map_err(|source| Error::Write { path: PathBuf::from("vitals.ndjson"), source })?;
    }
    Ok(())
}
