//! Person records held column by column, normalised once, ready to be compared many times.

use std::collections::HashSet;

use rphonetic::{DoubleMetaphone, Encoder};

use crate::error::{Error, Result};
use crate::field::{Field, split_house_number};

/// Strings of one column in one buffer: a million records cost two allocations, not a million.
#[derive(Debug, Default, Clone)]
pub(crate) struct Column {
    data: String,
    ends: Vec<usize>,
}

impl Column {
    fn push(&mut self, value: &str) {
        self.data.push_str(value);
        self.ends.push(self.data.len());
    }

    pub(crate) fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}

/// The records to link: each from a source (an EHR, a lab system, a file) with its id there.
#[derive(Debug, Clone)]
pub struct RecordSet {
    fields: Vec<Field>,
    slots: [Option<usize>; Field::ALL.len()],
    normalized: Vec<Column>,
    original: Vec<Column>,
    first_phonetic: Column,
    last_phonetic: Column,
    sources: Vec<String>,
    source: Vec<u16>,
    ids: Column,
    updated: Column,
}

impl RecordSet {
    /// Starts a record set whose records give values for `fields`, in that order.
    pub fn builder(fields: &[Field]) -> RecordSetBuilder {
        RecordSetBuilder::new(fields)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// The fields that have values (given, or derived like the house number).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Whether the records carry `field`.
    pub fn has(&self, field: Field) -> bool {
        self.slots[field as usize].is_some()
    }

    /// Normalised value of `field` for record `i` (empty when missing or not carried).
    pub fn value(&self, field: Field, i: usize) -> &str {
        match self.slots[field as usize] {
            Some(slot) => self.normalized[slot].get(i),
            None => "",
        }
    }

    /// The value as given (trimmed), for golden records and output.
    pub fn original(&self, field: Field, i: usize) -> &str {
        match self.slots[field as usize] {
            Some(slot) => self.original[slot].get(i),
            None => "",
        }
    }

    /// Double Metaphone code of the given or family name.
    pub(crate) fn phonetic(&self, field: Field, i: usize) -> &str {
        match field {
            Field::FirstName => self.first_phonetic.get(i),
            Field::LastName => self.last_phonetic.get(i),
            _ => "",
        }
    }

    /// Names of the sources, in order of first appearance.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Index (into [`RecordSet::sources`]) of record `i`'s source.
    pub fn source_of(&self, i: usize) -> usize {
        self.source[i] as usize
    }

    /// Record `i`'s id in its source.
    pub fn id(&self, i: usize) -> &str {
        self.ids.get(i)
    }

    /// When record `i` was last updated in its source (sortable text; empty when unknown).
    pub fn updated_at(&self, i: usize) -> &str {
        self.updated.get(i)
    }

    /// `source:id`, the record's key across sources.
    pub fn key(&self, i: usize) -> String {
        format!("{}:{}", self.sources[self.source_of(i)], self.id(i))
    }
}

/// Collects records for a [`RecordSet`].
#[derive(Debug)]
pub struct RecordSetBuilder {
    given: Vec<Field>,
    fields: Vec<Field>,
    normalized: Vec<Column>,
    original: Vec<Column>,
    house_number_from_street: bool,
    sources: Vec<String>,
    source: Vec<u16>,
    ids: Column,
    updated: Column,
}

impl RecordSetBuilder {
    fn new(given: &[Field]) -> Self {
        let mut fields: Vec<Field> = Vec::new();
        for f in given {
            if !fields.contains(f) {
                fields.push(*f);
            }
        }
        // An address line with the house number in it gives the house number too.
        let house_number_from_street =
            fields.contains(&Field::Street) && !fields.contains(&Field::StreetNumber);
        if house_number_from_street {
            fields.push(Field::StreetNumber);
        }
        let columns = fields.len();
        Self {
            given: given.to_vec(),
            fields,
            normalized: vec![Column::default(); columns],
            original: vec![Column::default(); columns],
            house_number_from_street,
            sources: Vec::new(),
            source: Vec::new(),
            ids: Column::default(),
            updated: Column::default(),
        }
    }

    /// Adds a record: its source, its id there, when it was last updated (any sortable text,
    /// ISO times sort right; empty when unknown) and one value per field given to
    /// [`RecordSet::builder`].
    pub fn push(
        &mut self,
        source: &str,
        id: &str,
        updated_at: &str,
        values: &[&str],
    ) -> Result<()> {
        if values.len() != self.given.len() {
            return Err(Error::RecordWidth {
                record: self.source.len(),
                got: values.len(),
                expected: self.given.len(),
            });
        }
        let source_index = match self.sources.iter().position(|s| s == source) {
            Some(i) => i,
            None => {
                self.sources.push(source.to_string());
                self.sources.len() - 1
            }
        };
        self.source.push(source_index as u16);
        self.ids.push(id.trim());
        self.updated.push(updated_at.trim());
        let mut seen = [false; Field::ALL.len()];
        for (field, value) in self.given.iter().zip(values) {
            if std::mem::replace(&mut seen[*field as usize], true) {
                continue;
            }
            let slot = self
                .fields
                .iter()
                .position(|f| f == field)
                .expect("given fields are in fields");
            let normalized = field.normalize(value);
            if *field == Field::Street && self.house_number_from_street {
                let (number, street) = split_house_number(&normalized);
                let number_slot = self.fields.len() - 1;
                self.normalized[number_slot].push(number);
                self.original[number_slot].push(number);
                self.normalized[slot].push(street);
            } else {
                self.normalized[slot].push(&normalized);
            }
            self.original[slot].push(value.trim());
        }
        Ok(())
    }

    /// Checks that no source repeats an id, computes phonetic codes, and returns the set.
    pub fn build(self) -> Result<RecordSet> {
        let n = self.source.len();
        if n > u32::MAX as usize {
            return Err(Error::TooManyRecords(n));
        }
        let mut keys = HashSet::with_capacity(n);
        for i in 0..n {
            if !keys.insert((self.source[i], self.ids.get(i))) {
                return Err(Error::DuplicateRecord {
                    source_index: self.source[i] as usize,
                    record: i,
                });
            }
        }
        drop(keys);
        let mut slots = [None; Field::ALL.len()];
        for (slot, field) in self.fields.iter().enumerate() {
            slots[*field as usize] = Some(slot);
        }
        let encoder = DoubleMetaphone::default();
        let phonetic = |field: Field| {
            let mut column = Column::default();
            for i in 0..n {
                let value = slots[field as usize].map_or("", |s| self.normalized[s].get(i));
                let compact: String = value.chars().filter(|c| *c != ' ').collect();
                if compact.is_empty() {
                    column.push("");
                } else {
                    column.push(&encoder.encode(&compact));
                }
            }
            column
        };
        let first_phonetic = phonetic(Field::FirstName);
        let last_phonetic = phonetic(Field::LastName);
        debug_assert!(self.normalized.iter().all(|c| c.len() == n));
        Ok(RecordSet {
            fields: self.fields,
            slots,
            normalized: self.normalized,
            original: self.original,
            first_phonetic,
            last_phonetic,
            sources: self.sources,
            source: self.source,
            ids: self.ids,
            updated: self.updated,
        })
    }
}
