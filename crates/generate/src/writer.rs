use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clinical::{
    ClaimLineRecord, ClaimRecord, ClinicalCounts, ClinicalWriters, EncounterRecord, LabRecord,
    PersonRecord,
};
use crate::reference::*;
use crate::{Error, Result};

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
const START: (i32, u32, u32) = (2024, 1, 1);
const DAYS: i64 = 730;
/// Share of people known to both EHR systems.
const CROSS_SYSTEM_SHARE: f64 = 0.05;
/// Share of encounter and lab rows sent twice.
const DUPLICATE_ROW_SHARE: f64 = 0.005;

struct Outputs {
    dir: PathBuf,
    facilities: csv::Writer<BufWriter<File>>,
    providers: csv::Writer<BufWriter<File>>,
    payers: csv::Writer<BufWriter<File>>,
    patients: csv::Writer<BufWriter<File>>,
    encounters: csv::Writer<BufWriter<File>>,
    diagnoses: csv::Writer<BufWriter<File>>,
    procedures: csv::Writer<BufWriter<File>>,
    labs: csv::Writer<BufWriter<File>>,
    claims: csv::Writer<BufWriter<File>>,
    claim_lines: csv::Writer<BufWriter<File>>,
    vitals: BufWriter<File>,
    notes: BufWriter<File>,
    truth_people: csv::Writer<BufWriter<File>>,
    truth_readmissions: csv::Writer<BufWriter<File>>,
    /// The clinical feeds (HL7 v2, FHIR, X12), unless only the flat files are wanted.
    clinical: Option<ClinicalWriters>,
    /// Write the people (patients.csv and their truth) and nothing of their care.
    people_only: bool,
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(|source| Error::Write { path, source })?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

fn csv_file(dir: &Path, name: &str, header: &[&str]) -> Result<csv::Writer<BufWriter<File>>> {
    let mut w = csv::WriterBuilder::new().from_writer(create(dir, name)?);
    w.write_record(header)?;
    Ok(w)
}

impl Outputs {
    fn open(dir: &Path, sent: NaiveDateTime, clinical: bool) -> Result<Self> {
        let truth = dir.join("_truth");
        for d in [dir, truth.as_path()] {
            std::fs::create_dir_all(d).map_err(|source| Error::Write {
                path: d.to_path_buf(),
                source,
            })?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            facilities: csv_file(
                dir,
                "facilities.csv",
                &[
                    "facility_id",
                    "name",
                    "kind",
                    "source_system",
                    "city",
                    "state",
                ],
            )?,
            providers: csv_file(
                dir,
                "providers.csv",
                &["npi", "first_name", "last_name", "specialty", "facility_id"],
            )?,
            payers: csv_file(dir, "payers.csv", &["payer_id", "name", "kind"])?,
            patients: csv_file(
                dir,
                "patients.csv",
                &[
                    "source_system",
                    "mrn",
                    "first_name",
                    "last_name",
                    "sex",
                    "birth_date",
                    "ssn",
                    "address",
                    "city",
                    "state",
                    "zip",
                    "phone",
                    "payer_id",
                    "member_id",
                    "updated_at",
                ],
            )?,
            encounters: csv_file(
                dir,
                "encounters.csv",
                &[
                    "source_system",
                    "encounter_id",
                    "mrn",
                    "facility_id",
                    "encounter_class",
                    "admit_time",
                    "discharge_time",
                    "attending_npi",
                    "admit_reason_code",
                    "discharge_disposition",
                    "payer_id",
                ],
            )?,
            diagnoses: csv_file(
                dir,
                "diagnoses.csv",
                &[
                    "source_system",
                    "encounter_id",
                    "seq",
                    "icd10_code",
                    "description",
                    "is_primary",
                ],
            )?,
            procedures: csv_file(
                dir,
                "procedures.csv",
                &[
                    "source_system",
                    "encounter_id",
                    "cpt_code",
                    "description",
                    "performed_at",
                    "npi",
                ],
            )?,
            labs: csv_file(
                dir,
                "labs.csv",
                &[
                    "source_system",
                    "encounter_id",
                    "mrn",
                    "loinc_code",
                    "test_name",
                    "value",
                    "unit",
                    "ref_low",
                    "ref_high",
                    "abnormal_flag",
                    "collected_at",
                ],
            )?,
            claims: csv_file(
                dir,
                "claims.csv",
                &[
                    "claim_id",
                    "encounter_id",
                    "payer_id",
                    "member_id",
                    "billing_npi",
                    "facility_id",
                    "service_from",
                    "service_to",
                    "principal_dx",
                    "total_charge",
                    "claim_status",
                ],
            )?,
            claim_lines: csv_file(
                dir,
                "claim_lines.csv",
                &["claim_id", "line_no", "cpt_code", "units", "charge"],
            )?,
            vitals: create(dir, "vitals.ndjson")?,
            notes: create(dir, "outreach_notes.ndjson")?,
            truth_people: csv_file(
                &truth,
                "person_records.csv",
                &["source_system", "mrn", "person_id"],
            )?,
            truth_readmissions: csv_file(
                &truth,
                "readmissions.csv",
                &[
                    "index_encounter_id",
                    "readmit_encounter_id",
                    "days_after_discharge",
                ],
            )?,
            clinical: if clinical {
                Some(ClinicalWriters::open(dir, sent)?)
            } else {
                None
            },
            people_only: false,
        })
    }

    fn finish(mut self) -> Result<(u64, ClinicalCounts)> {
        let wrap = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Write { path, source }
        };
        for w in [
            &mut self.facilities,
            &mut self.providers,
            &mut self.payers,
            &mut self.patients,
            &mut self.encounters,
            &mut self.diagnoses,
            &mut self.procedures,
            &mut self.labs,
            &mut self.claims,
            &mut self.claim_lines,
            &mut self.truth_people,
            &mut self.truth_readmissions,
        ] {
            w.flush().map_err(wrap(&self.dir))?;
        }
        self.vitals.flush().map_err(wrap(&self.dir))?;
        self.notes.flush().map_err(wrap(&self.dir))?;
        let counts = match self.clinical {
            Some(clinical) => clinical.finish()?,
            None => ClinicalCounts::default(),
        };
        let mut bytes = 0;
        for dir in [
            self.dir.clone(),
            self.dir.join("_truth"),
            self.dir.join("hl7"),
            self.dir.join("fhir"),
            self.dir.join("x12"),
        ] {
            if !dir.is_dir() {
                continue; // the clinical feeds' folders, when only the flat files are written
            }
            for entry in std::fs::read_dir(&dir).map_err(wrap(&dir))?.flatten() {
                if entry.path().is_file() {
                    bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        Ok((bytes, counts))
    }
}

/// A provider: NPI and the facility they work at.
struct Provider {
    npi: String,
    facility: usize,
}

/// NPI with a valid Luhn check digit (prefix 80840, as the standard requires).
fn npi(base9: u64) -> String {
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

fn seed_for(seed: u64, index: u64) -> u64 {
    // SplitMix64 step: decorrelates consecutive patients.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
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

fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[derive(Clone)]
struct Identity {
    first: String,
    last: String,
    sex: &'static str,
    birth: NaiveDate,
    ssn: String,
    street: String,
    city: usize,
    zip: String,
    phone: String,
}

/// A clerk's version of an identity in another system: typos, nicknames, moves.
fn corrupt(rng: &mut ChaCha8Rng, id: &Identity) -> Identity {
    let mut out = id.clone();
    let changes = 1 + rng.random_range(0..2);
    for _ in 0..changes {
        match rng.random_range(0..7) {
            0 => out.last = typo(rng, &out.last),
            1 => out.first = transpose(rng, &out.first),
            2 => {
                if let Some((_, nick)) = NICKNAMES.iter().find(|(full, _)| *full == out.first) {
                    out.first = (*nick).to_string();
                } else {
                    out.first = typo(rng, &out.first);
                }
            }
            3 => {
                out.street = format!("{} {}", rng.random_range(1..9999), pick(rng, STREETS));
                out.zip = format!("{}{:02}", CITIES[out.city].2, rng.random_range(1..99));
                out.phone = phone(rng, CITIES[out.city].3);
            }
            4 => {
                // Day and month swapped when both are valid months.
                if out.birth.day() <= 12
                    && let Some(d) = NaiveDate::from_ymd_opt(
                        out.birth.year(),
                        out.birth.day(),
                        out.birth.month(),
                    )
                {
                    out.birth = d;
                }
            }
            5 => out.ssn = String::new(),
            _ => out.last = out.last.to_uppercase(),
        }
    }
    out
}

fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let i = rng.random_range(1..chars.len());
    match rng.random_range(0..3) {
        0 => {
            chars.remove(i);
        }
        1 => chars.insert(i, (b'a' + rng.random_range(0..26u8)) as char),
        _ => chars[i] = (b'a' + rng.random_range(0..26u8)) as char,
    }
    chars.into_iter().collect()
}

fn transpose(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let i = rng.random_range(1..chars.len() - 1);
    chars.swap(i, i + 1);
    chars.into_iter().collect()
}

fn phone(rng: &mut ChaCha8Rng, area: &str) -> String {
    format!(
        "({area}) {:03}-{:04}",
        rng.random_range(200..999),
        rng.random_range(0..10000)
    )
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

fn generate_into(config: &GeneratorConfig, people_only: bool) -> Result<GenerateSummary> {
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

struct Stay {
    class: &'static str,
    admit: NaiveDateTime,
    discharge: NaiveDateTime,
    reason: (&'static str, &'static str),
    facility: usize,
}

#[allow(clippy::too_many_arguments)]
fn generate_person(
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

fn person_record<'a>(
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
fn write_patient(
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
fn write_vitals(
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
