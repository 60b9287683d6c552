//! The writers: every output file (flat CSV/NDJSON and the clinical formats), opened once per
//! run and appended to person by person.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;

use crate::clinical::{ClinicalCounts, ClinicalWriters};
use crate::{Error, Result};

pub(crate) struct Outputs {
    pub(crate) dir: PathBuf,
    pub(crate) facilities: csv::Writer<BufWriter<File>>,
    pub(crate) providers: csv::Writer<BufWriter<File>>,
    pub(crate) payers: csv::Writer<BufWriter<File>>,
    pub(crate) patients: csv::Writer<BufWriter<File>>,
    pub(crate) encounters: csv::Writer<BufWriter<File>>,
    pub(crate) diagnoses: csv::Writer<BufWriter<File>>,
    pub(crate) procedures: csv::Writer<BufWriter<File>>,
    pub(crate) labs: csv::Writer<BufWriter<File>>,
    pub(crate) claims: csv::Writer<BufWriter<File>>,
    pub(crate) claim_lines: csv::Writer<BufWriter<File>>,
    pub(crate) vitals: BufWriter<File>,
    pub(crate) notes: BufWriter<File>,
    pub(crate) truth_people: csv::Writer<BufWriter<File>>,
    pub(crate) truth_readmissions: csv::Writer<BufWriter<File>>,
    /// The clinical feeds (HL7 v2, FHIR, X12), unless only the flat files are wanted.
    pub(crate) clinical: Option<ClinicalWriters>,
    /// Write the people (patients.csv and their truth) and nothing of their care.
    pub(crate) people_only: bool,
}

pub(crate) fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(|source| Error::Write { path, source })?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

pub(crate) fn csv_file(
    dir: &Path,
    name: &str,
    header: &[&str],
) -> Result<csv::Writer<BufWriter<File>>> {
    let mut w = csv::WriterBuilder::new().from_writer(create(dir, name)?);
    w.write_record(header)?;
    Ok(w)
}

impl Outputs {
    pub(crate) fn open(dir: &Path, sent: NaiveDateTime, clinical: bool) -> Result<Self> {
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

    pub(crate) fn finish(mut self) -> Result<(u64, ClinicalCounts)> {
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
