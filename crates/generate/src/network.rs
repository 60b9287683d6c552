//! The run: what to generate, the network's facilities and providers, and the loop over
//! people (each simulated in `person.rs`, written by `outputs.rs`).

use std::path::PathBuf;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;
use crate::clinical::ClinicalCounts;
use crate::outputs::Outputs;
use crate::person::generate_person;
use crate::reference::*;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Number of distinct people.
    pub patients: u64,
    /// Seed; the same seed and count give the same files.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// Only the flat files (CSV, NDJSON), not the clinical feeds (HL7 v2, FHIR, X12): a
    /// benchmark of the flat tables at a million patients needs half the disk.
    pub flat_only: bool,
}

/// Counts of what was written.
#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    /// People generated.
    pub people: u64,
    /// Patient records across source systems (with duplicates and late updates).
    pub patient_records: u64,
    /// Encounters.
    pub encounters: u64,
    /// Inpatient stays.
    pub inpatient_stays: u64,
    /// Inpatient stays followed by a readmission within 30 days.
    pub readmissions: u64,
    /// Diagnosis rows.
    pub diagnoses: u64,
    /// Procedure rows.
    pub procedures: u64,
    /// Lab results.
    pub labs: u64,
    /// Vital-sign readings.
    pub vitals: u64,
    /// Claims.
    pub claims: u64,
    /// Outreach notes.
    pub notes: u64,
    /// Total rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// What was written in the clinical formats (HL7 v2, FHIR, X12 837P).
    pub clinical: ClinicalCounts,
}

/// Data covers these two years.
pub(crate) const START: (i32, u32, u32) = (2024, 1, 1);
pub(crate) const DAYS: i64 = 730;
/// Share of people known to both EHR systems.
pub(crate) const CROSS_SYSTEM_SHARE: f64 = 0.05;
/// Share of encounter and lab rows sent twice.
pub(crate) const DUPLICATE_ROW_SHARE: f64 = 0.005;

/// A provider: NPI and the facility they work at.
pub(crate) struct Provider {
    pub(crate) npi: String,
    pub(crate) facility: usize,
}

/// NPI with a valid Luhn check digit (prefix 80840, as the standard requires).
pub(crate) fn npi(base9: u64) -> String {
    let digits = format!("1{:08}", base9 % 100_000_000);
    let full = format!("80840{digits}");
    let mut sum = 0;
    for (i, c) in full.chars().rev().enumerate() {
        let mut d = c.to_digit(10).unwrap_or(0);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    let check = (10 - sum % 10) % 10;
    format!("{digits}{check}")
}

pub(crate) fn seed_for(seed: u64, index: u64) -> u64 {
    // SplitMix64 step: decorrelates consecutive patients.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    let l = (-lambda).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l || k > 50 {
            return k;
        }
        k += 1;
    }
}

pub(crate) fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub(crate) fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

pub(crate) fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Generates the data set into `config.out`.
pub fn generate(config: &GeneratorConfig) -> Result<GenerateSummary> {
    generate_into(config, false)
}

/// Generates only the people: `patients.csv` (every record in every EHR, with the same
/// identities, typos and moves as [`generate`] gives for the same seed) and
/// `_truth/person_records.csv`. The other files are left empty. For linkage benchmarks at sizes
/// where the whole network would be tens of gigabytes.
pub fn generate_people(config: &GeneratorConfig) -> Result<GenerateSummary> {
    generate_into(config, true)
}

pub(crate) fn generate_into(
    config: &GeneratorConfig,
    people_only: bool,
) -> Result<GenerateSummary> {
    let mut summary = GenerateSummary::default();
    let start = NaiveDate::from_ymd_opt(START.0, START.1, START.2).expect("valid start date");
    let sent = (start + Duration::days(DAYS))
        .and_hms_opt(2, 0, 0)
        .expect("valid time");
    let mut out = Outputs::open(&config.out, sent, !config.flat_only && !people_only)?;
    out.people_only = people_only;

    // Reference tables.
    for (id, name, kind, system, city) in FACILITIES {
        out.facilities.write_record([
            *id,
            *name,
            *kind,
            *system,
            CITIES[*city].0,
            CITIES[*city].1,
        ])?;
    }
    for (id, name, kind) in PAYERS {
        out.payers.write_record([*id, *name, *kind])?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed_for(config.seed, u64::MAX));
    let mut providers = Vec::new();
    for i in 0..(12 * FACILITIES.len()) {
        let facility = i % FACILITIES.len();
        let p = Provider {
            npi: npi(rng.next_u64()),
            facility,
        };
        let first = if rng.random_bool(0.5) {
            pick(&mut rng, FEMALE_NAMES)
        } else {
            pick(&mut rng, MALE_NAMES)
        };
        out.providers.write_record([
            p.npi.as_str(),
            first,
            *pick(&mut rng, LAST_NAMES),
            *pick(&mut rng, SPECIALTIES),
            FACILITIES[facility].0,
        ])?;
        providers.push(p);
    }
    summary.rows += (FACILITIES.len() + PAYERS.len() + providers.len()) as u64;

    let mut encounter_seq = 0u64;
    for person in 0..config.patients {
        let mut rng = ChaCha8Rng::seed_from_u64(seed_for(config.seed, person));
        generate_person(
            &mut rng,
            person,
            start,
            &providers,
            &mut out,
            &mut summary,
            &mut encounter_seq,
        )?;
    }
    summary.people = config.patients;
    (summary.bytes, summary.clinical) = out.finish()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npis_pass_the_luhn_check() {
        for base in [0u64, 123_456_789, 987_654_321] {
            let n = npi(base);
            assert_eq!(n.len(), 10);
            let full = format!("80840{n}");
            let sum: u32 = full
                .chars()
                .rev()
                .enumerate()
                .map(|(i, c)| {
                    let d = c.to_digit(10).unwrap();
                    if i % 2 == 1 {
                        let d2 = d * 2;
                        if d2 > 9 { d2 - 9 } else { d2 }
                    } else {
                        d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "{n}");
        }
    }

    #[test]
    fn same_seed_same_files() {
        let dir = std::env::temp_dir().join(format!("carelake-gen-{}", std::process::id()));
        let a = dir.join("a");
        let b = dir.join("b");
        let s1 = generate(&GeneratorConfig {
            patients: 300,
            seed: 7,
            out: a.clone(),
            flat_only: false,
        })
        .unwrap();
        // The flat files alone are the same files, without the clinical feeds.
        let s2 = generate(&GeneratorConfig {
            patients: 300,
            seed: 7,
            out: b.clone(),
            flat_only: true,
        })
        .unwrap();
        assert_eq!(s1.rows, s2.rows);
        assert!(s1.clinical.hl7_messages > 0 && s2.clinical.hl7_messages == 0);
        assert!(a.join("hl7").is_dir() && !b.join("hl7").exists() && !b.join("x12").exists());
        for file in [
            "patients.csv",
            "encounters.csv",
            "vitals.ndjson",
            "_truth/readmissions.csv",
        ] {
            assert_eq!(
                std::fs::read(a.join(file)).unwrap(),
                std::fs::read(b.join(file)).unwrap(),
                "{file}"
            );
        }
        assert!(s1.inpatient_stays > 0 && s1.encounters > s1.inpatient_stays);
        let _ = std::fs::remove_dir_all(dir);
    }
}
