//! Golden records: one best value per attribute for each person, chosen by survivorship rules.
//!
//! Identity attributes (names, birth date, sex, national id) come from the most trusted source,
//! then the most complete record, then the most recent. Contact attributes come from the most
//! recent record, and the address travels as a whole (house number, street, locality, city,
//! ZIP, state from one record), so a golden address is always one somebody really gave.

use crate::cluster::Clustering;
use crate::field::Field;
use crate::records::RecordSet;

/// How a value is chosen among a person's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivorship {
    /// From the most trusted source; ties by completeness, then recency.
    MostTrusted,
    /// From the most recently updated record; ties by trust.
    MostRecent,
    /// From the record with the most attributes filled in; ties by trust, then recency.
    MostComplete,
}

/// The rules for a person's golden record.
#[derive(Debug, Clone)]
pub struct SurvivorshipRules {
    /// Sources, most trusted first; sources not listed rank after these, in order of appearance.
    pub trust: Vec<String>,
    /// The rule for identity attributes.
    pub identity: Survivorship,
    /// The rule for contact attributes (address, phone, e-mail).
    pub contact: Survivorship,
}

impl Default for SurvivorshipRules {
    fn default() -> Self {
        Self {
            trust: Vec::new(),
            identity: Survivorship::MostTrusted,
            contact: Survivorship::MostRecent,
        }
    }
}

const ADDRESS: [Field; 6] = [
    Field::StreetNumber,
    Field::Street,
    Field::Locality,
    Field::City,
    Field::Zip,
    Field::State,
];

/// A person's best values.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenRecord {
    /// The person.
    pub person_key: String,
    /// Records merged into this person.
    pub record_count: usize,
    /// Distinct sources among them.
    pub source_count: usize,
    /// Per field the records carry: the value (as given) and the record it came from.
    pub values: Vec<(Field, String, u32)>,
}

impl GoldenRecord {
    /// The chosen value of `field` (empty when no record has one).
    pub fn value(&self, field: Field) -> &str {
        self.values
            .iter()
            .find(|(f, ..)| *f == field)
            .map_or("", |(_, v, _)| v.as_str())
    }
}

/// The golden record of every person.
pub fn golden_records(
    records: &RecordSet,
    clustering: &Clustering,
    rules: &SurvivorshipRules,
) -> Vec<GoldenRecord> {
    let trust_rank: Vec<usize> = records
        .sources()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            rules
                .trust
                .iter()
                .position(|t| t == s)
                .unwrap_or(rules.trust.len() + i)
        })
        .collect();
    let completeness = |i: u32| {
        records
            .fields()
            .iter()
            .filter(|f| !records.value(**f, i as usize).is_empty())
            .count()
    };
    // Ordering::Less means x is the better source of a value.
    let compare = |rule: Survivorship, x: u32, y: u32| {
        let by_trust = trust_rank[records.source_of(x as usize)]
            .cmp(&trust_rank[records.source_of(y as usize)]);
        let by_complete = completeness(y).cmp(&completeness(x));
        let by_recent = records
            .updated_at(y as usize)
            .cmp(records.updated_at(x as usize));
        match rule {
            Survivorship::MostTrusted => by_trust.then(by_complete).then(by_recent),
            Survivorship::MostRecent => by_recent.then(by_trust).then(by_complete),
            Survivorship::MostComplete => by_complete.then(by_trust).then(by_recent),
        }
    };
    let members = clustering.members();
    members
        .iter()
        .enumerate()
        .map(|(c, members)| {
            let pick = |rule: Survivorship, has: &dyn Fn(u32) -> bool| {
                members
                    .iter()
                    .copied()
                    .filter(|i| has(*i))
                    .min_by(|x, y| compare(rule, *x, *y).then(x.cmp(y)))
            };
            let mut values = Vec::new();
            let address_from = pick(rules.contact, &|i| {
                ADDRESS
                    .iter()
                    .any(|f| !records.value(*f, i as usize).is_empty())
            });
            for field in records.fields() {
                let from = if ADDRESS.contains(field) {
                    address_from
                } else {
                    let rule = match field {
                        Field::Phone | Field::Email => rules.contact,
                        _ => rules.identity,
                    };
                    pick(rule, &|i| !records.value(*field, i as usize).is_empty())
                };
                let (value, from) = match from {
                    Some(i) => (records.original(*field, i as usize).to_string(), i),
                    None => (String::new(), members[0]),
                };
                values.push((*field, value, from));
            }
            let mut sources: Vec<usize> = members
                .iter()
                .map(|i| records.source_of(*i as usize))
                .collect();
            sources.sort_unstable();
            sources.dedup();
            GoldenRecord {
                person_key: clustering.keys()[c].clone(),
                record_count: members.len(),
                source_count: sources.len(),
                values,
            }
        })
        .collect()
}
