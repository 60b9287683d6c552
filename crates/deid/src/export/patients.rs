//! Which patient a row belongs to (by person, MRN or encounter), for the per-patient date
//! offset.

use std::collections::HashMap;

use carelake_common::TableName;
use carelake_lake::{Lake, TimeTravel};

use crate::transform::{self};
use crate::{Error, Result};

/// Which column tells the patient of a row, for the per-patient date offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Anchor {
    Person,
    Mrn,
    Encounter,
}

/// Who a row is about, for date offsets: MRN → person key (from `curated.person_xref`),
/// encounter → MRN (from the encounter tables).
#[derive(Debug, Default)]
pub(super) struct Patients {
    person_of_mrn: HashMap<String, String>,
    mrn_of_encounter: HashMap<String, String>,
}

impl Patients {
    pub(super) async fn load(source: &Lake) -> Result<Self> {
        let mut patients = Self::default();
        let pairs = |table: &'static str, a: &'static str, b: &'static str| async move {
            let name: TableName = table.parse()?;
            let Some(delta) = source.open_table_at(&name, TimeTravel::Latest).await? else {
                return Ok::<_, Error>(Vec::new());
            };
            let schema = delta.snapshot()?.snapshot().arrow_schema();
            if schema.field_with_name(a).is_err() || schema.field_with_name(b).is_err() {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for batch in carelake_lake::read_columns(&delta, &[a, b]).await? {
                let x = transform::as_text(batch.column(0))?;
                let y = transform::as_text(batch.column(1))?;
                for (x, y) in x.iter().zip(y.iter()) {
                    if let (Some(x), Some(y)) = (x, y) {
                        out.push((x.to_string(), y.to_string()));
                    }
                }
            }
            Ok(out)
        };
        for (mrn, person) in pairs("curated.person_xref", "record_id", "person_key").await? {
            patients.person_of_mrn.insert(mrn, person);
        }
        for table in ["raw.encounters", "curated.encounters"] {
            for (encounter, mrn) in pairs(table, "encounter_id", "mrn").await? {
                patients.mrn_of_encounter.insert(encounter, mrn);
            }
        }
        for (encounter, mrn) in pairs("curated.fhir_encounter", "id", "patient_id").await? {
            patients.mrn_of_encounter.entry(encounter).or_insert(mrn);
        }
        Ok(patients)
    }

    pub(super) fn anchor(&self, kind: Anchor, value: &str) -> String {
        let mrn = match kind {
            Anchor::Person => return format!("person_key:{value}"),
            Anchor::Mrn => value,
            Anchor::Encounter => match self.mrn_of_encounter.get(value) {
                Some(mrn) => mrn.as_str(),
                None => return format!("encounter_id:{value}"),
            },
        };
        match self.person_of_mrn.get(mrn) {
            Some(person) => format!("person_key:{person}"),
            None => format!("mrn:{mrn}"),
        }
    }
}
