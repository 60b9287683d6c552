//! Blocking: which pairs are compared at all. A pair is a candidate when it agrees on every
//! part of at least one rule; rules are tried in order and a pair found by an earlier rule is
//! not produced again.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use rayon::prelude::*;

use crate::field::Field;
use crate::records::RecordSet;

/// One part of a blocking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    /// The normalised value.
    Value(Field),
    /// The Double Metaphone code of a name.
    Sounds(Field),
    /// The first `n` characters.
    Prefix(Field, usize),
    /// The year of the birth date.
    BirthYear,
}

impl KeyPart {
    pub(crate) fn field(self) -> Field {
        match self {
            KeyPart::Value(f) | KeyPart::Sounds(f) | KeyPart::Prefix(f, _) => f,
            KeyPart::BirthYear => Field::BirthDate,
        }
    }

    fn value(self, records: &RecordSet, i: usize) -> &str {
        match self {
            KeyPart::Value(f) => records.value(f, i),
            KeyPart::Sounds(f) => records.phonetic(f, i),
            KeyPart::Prefix(f, n) => {
                let v = records.value(f, i);
                match v.char_indices().nth(n) {
                    Some((end, _)) => &v[..end],
                    None => v,
                }
            }
            KeyPart::BirthYear => {
                let v = records.value(Field::BirthDate, i);
                if v.len() >= 4 { &v[..4] } else { "" }
            }
        }
    }
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Value(field) => write!(f, "{field}"),
            KeyPart::Sounds(field) => write!(f, "sounds({field})"),
            KeyPart::Prefix(field, n) => write!(f, "prefix({field}, {n})"),
            KeyPart::BirthYear => f.write_str("year(birth_date)"),
        }
    }
}

/// Records agreeing on all parts are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingRule {
    parts: Vec<KeyPart>,
}

impl BlockingRule {
    /// A rule over these key parts.
    pub fn new(parts: Vec<KeyPart>) -> Self {
        Self { parts }
    }

    /// The fields the rule reads.
    pub(crate) fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.parts.iter().map(|p| p.field())
    }

    /// Whether the records carry every field the rule reads.
    pub fn applies_to(&self, records: &RecordSet) -> bool {
        self.parts.iter().all(|p| records.has(p.field()))
    }

    /// The record's key under this rule, or `None` when a part is missing.
    fn key(&self, records: &RecordSet, i: usize) -> Option<u64> {
        let mut hasher = DefaultHasher::new();
        for part in &self.parts {
            let v = part.value(records, i);
            if v.is_empty() {
                return None;
            }
            v.hash(&mut hasher);
        }
        Some(hasher.finish() | 1)
    }
}

impl fmt::Display for BlockingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

/// The default rules, each pairing a strong field with a second one so that blocks stay small
/// at a million records; together they catch pairs with any one or two fields corrupted.
pub fn default_rules() -> Vec<BlockingRule> {
    use Field::*;
    use KeyPart::*;
    let rule = |parts: &[KeyPart]| BlockingRule::new(parts.to_vec());
    vec![
        rule(&[Value(FirstName), Value(LastName), BirthYear]),
        rule(&[Value(BirthDate), Sounds(LastName)]),
        rule(&[Value(BirthDate), Sounds(FirstName)]),
        rule(&[Value(NationalId)]),
        rule(&[Value(Phone)]),
        rule(&[Value(Zip), Value(StreetNumber), Prefix(Street, 3)]),
        rule(&[Value(City), Value(StreetNumber), Prefix(Street, 3)]),
        rule(&[Sounds(LastName), Value(StreetNumber), Prefix(Street, 3)]),
        rule(&[Value(BirthDate), Value(Zip)]),
        rule(&[Sounds(FirstName), Sounds(LastName), Value(Zip)]),
        rule(&[Value(LastName), Value(Zip)]),
        rule(&[Value(FirstName), Value(Zip)]),
        rule(&[Value(Email)]),
    ]
}

/// Which record pairs may be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Find duplicates among all records, whatever their source.
    Dedupe,
    /// Link records of one source to those of the other; pairs within a source are not
    /// compared (two clean files, each with one record per person).
    Link,
}

/// What blocking produced.
#[derive(Debug, Clone, Default)]
pub struct BlockingStats {
    /// Per rule: its text and the new pairs it contributed.
    pub rules: Vec<(String, u64)>,
    /// Blocks left out because they held more records than the limit.
    pub oversized_blocks: u64,
    /// Records in those blocks (counted once per rule).
    pub oversized_records: u64,
}

/// Candidate pairs `(a, b)` with `a < b`, each once, with a callback per pair run in parallel.
/// The callback also gets a bit mask of the rules (of those that apply, in order; at most 32)
/// on which the pair agrees.
pub(crate) fn for_each_candidate<T: Send>(
    records: &RecordSet,
    rules: &[&BlockingRule],
    mode: LinkMode,
    max_block: usize,
    visit: impl Fn(u32, u32, u32) -> Option<T> + Sync,
) -> (Vec<T>, BlockingStats) {
    debug_assert!(rules.len() <= 32);
    let n = records.len();
    let keys: Vec<Vec<u64>> = rules
        .iter()
        .map(|rule| {
            (0..n)
                .into_par_iter()
                .map(|i| rule.key(records, i).unwrap_or(0))
                .collect()
        })
        .collect();
    let mut stats = BlockingStats::default();
    let mut out = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        let mut sorted: Vec<(u64, u32)> = keys[r]
            .iter()
            .enumerate()
            .filter(|(_, k)| **k != 0)
            .map(|(i, k)| (*k, i as u32))
            .collect();
        sorted.par_sort_unstable();
        let mut blocks: Vec<&[(u64, u32)]> = Vec::new();
        for block in sorted.chunk_by(|x, y| x.0 == y.0) {
            if block.len() < 2 {
                continue;
            }
            if block.len() > max_block {
                stats.oversized_blocks += 1;
                stats.oversized_records += block.len() as u64;
                continue;
            }
            blocks.push(block);
        }
        let keys = &keys;
        let found: Vec<Vec<T>> = blocks
            .par_iter()
            .map(|block| {
                let mut found = Vec::new();
                for (x, &(_, a)) in block.iter().enumerate() {
                    for &(_, b) in &block[x + 1..] {
                        let (a, b) = if a < b { (a, b) } else { (b, a) };
                        if mode == LinkMode::Link
                            && records.source_of(a as usize) == records.source_of(b as usize)
                        {
                            continue;
                        }
                        let mut mask = 0u32;
                        for (bit, k) in keys.iter().enumerate() {
                            let ka = k[a as usize];
                            if ka != 0 && ka == k[b as usize] {
                                mask |= 1 << bit;
                            }
                        }
                        // Found already by an earlier rule.
                        if mask & ((1u32 << r) - 1) != 0 {
                            continue;
                        }
                        if let Some(t) = visit(a, b, mask) {
                            found.push(t);
                        }
                    }
                }
                found
            })
            .collect();
        let before = out.len();
        for f in found {
            out.extend(f);
        }
        stats
            .rules
            .push((rule.to_string(), (out.len() - before) as u64));
    }
    (out, stats)
}
