//! Comparisons: for a pair of records, how closely one attribute agrees, as a level.
//!
//! Level 0 is "missing on either side" (no evidence either way); level 1 is exact agreement;
//! higher levels are weaker agreement down to the last, disagreement. Each level gets its own
//! m and u probabilities in the model.

use crate::similarity::{jaro_winkler, osa_distance};

use crate::field::Field;
use crate::nickname;
use crate::records::RecordSet;

/// What a comparison measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A personal name: exact, close spelling / nickname / swapped with the other name part,
    /// similar spelling or same sound, different.
    Name { field: Field, swapped_with: Field },
    /// Date of birth as `YYYYMMDD`.
    Date,
    /// An identifier compared by edit distance (1, 2).
    Identifier(Field),
    /// Free text (street, locality, city) by Jaro-Winkler similarity.
    Text(Field),
    /// Postcode: exact, one edit, different.
    Zip,
    /// Phone: exact, one edit or the same local number, different.
    Phone,
    /// Exact or not.
    Exact(Field),
    /// House number, street and postcode together: a move changes all three at once, and
    /// comparing them one by one would count it three times.
    Address,
}

/// One comparison of the model.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub(crate) kind: Kind,
    /// Whether exact agreement is weighted by how common the value is.
    pub(crate) term_frequency: bool,
}

impl Comparison {
    /// The field the comparison reads (and the one whose exact value gets term frequencies).
    pub fn field(&self) -> Field {
        match self.kind {
            Kind::Name { field, .. } => field,
            Kind::Date => Field::BirthDate,
            Kind::Identifier(f) | Kind::Text(f) | Kind::Exact(f) => f,
            Kind::Zip => Field::Zip,
            Kind::Phone => Field::Phone,
            Kind::Address => Field::Street,
        }
    }

    /// Every field the comparison reads.
    pub fn fields(&self) -> Vec<Field> {
        match self.kind {
            Kind::Address => vec![Field::StreetNumber, Field::Street, Field::Zip],
            Kind::Name {
                field,
                swapped_with,
            } => vec![field, swapped_with],
            _ => vec![self.field()],
        }
    }

    /// The value exact agreement compares, for value frequencies.
    pub(crate) fn exact_key<'r>(
        &self,
        records: &'r RecordSet,
        i: usize,
    ) -> std::borrow::Cow<'r, str> {
        if self.kind == Kind::Address {
            let street = records.value(Field::Street, i);
            let zip = records.value(Field::Zip, i);
            if street.is_empty() && zip.is_empty() {
                return std::borrow::Cow::Borrowed("");
            }
            return std::borrow::Cow::Owned(format!(
                "{}|{street}|{zip}",
                records.value(Field::StreetNumber, i)
            ));
        }
        std::borrow::Cow::Borrowed(records.value(self.field(), i))
    }

    /// The comparison's name: its field's (`address` for the address block).
    pub fn name(&self) -> &'static str {
        if self.kind == Kind::Address {
            return "address";
        }
        self.field().name()
    }

    /// Labels of the levels, level 0 (missing) first.
    pub fn level_labels(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Name { .. } => &[
                "missing",
                "exact",
                "close (Jaro-Winkler >= 0.92, nickname, or swapped)",
                "similar (Jaro-Winkler >= 0.80, or sounds alike)",
                "different",
            ],
            Kind::Date => &[
                "missing",
                "exact",
                "one edit, or day and month swapped",
                "two edits, or same year and month",
                "different",
            ],
            Kind::Identifier(_) => &["missing", "exact", "one edit", "two edits", "different"],
            Kind::Text(_) => &[
                "missing",
                "exact",
                "Jaro-Winkler >= 0.92",
                "Jaro-Winkler >= 0.80",
                "different",
            ],
            Kind::Zip => &["missing", "exact", "one edit", "different"],
            Kind::Phone => &[
                "missing",
                "exact",
                "one edit or same local number",
                "different",
            ],
            Kind::Exact(_) => &["missing", "exact", "different"],
            Kind::Address => &[
                "missing",
                "same address",
                "same street and house number",
                "same street and postcode",
                "same postcode",
                "different",
            ],
        }
    }

    /// Typical u of the agreeing levels (exact first, the last agreeing level last; the
    /// disagreeing level takes the rest) between two different people, used where the data
    /// are too few to say.
    pub(crate) fn prior_u(&self) -> &'static [f64] {
        match self.kind {
            Kind::Name {
                field: Field::MiddleName,
                ..
            } => &[0.02, 0.01, 0.02],
            Kind::Name { .. } => &[0.005, 0.002, 0.006],
            Kind::Date => &[0.00004, 0.0008, 0.012],
            Kind::Identifier(_) => &[0.000001, 0.00002, 0.0002],
            Kind::Text(Field::City) => &[0.03, 0.002, 0.005],
            Kind::Text(_) => &[0.001, 0.001, 0.01],
            Kind::Zip => &[0.005, 0.02],
            Kind::Phone => &[0.00001, 0.0001],
            Kind::Exact(Field::Sex) => &[0.5],
            Kind::Exact(Field::State) => &[0.2],
            Kind::Exact(Field::StreetNumber) => &[0.01],
            Kind::Exact(_) => &[0.0001],
            Kind::Address => &[0.00001, 0.00002, 0.0001, 0.005],
        }
    }

    /// Number of levels including the missing level.
    pub fn level_count(&self) -> usize {
        self.level_labels().len()
    }

    /// The agreement level of records `a` and `b`.
    pub(crate) fn level(&self, records: &RecordSet, a: usize, b: usize) -> u8 {
        if self.kind == Kind::Address {
            return address_level(records, a, b);
        }
        let field = self.field();
        let x = records.value(field, a);
        let y = records.value(field, b);
        if x.is_empty() || y.is_empty() {
            return 0;
        }
        if x == y {
            return 1;
        }
        match self.kind {
            Kind::Name {
                field,
                swapped_with,
            } => {
                let jw = jaro_winkler(x, y);
                let swapped = {
                    let xs = records.value(swapped_with, a);
                    let ys = records.value(swapped_with, b);
                    (!xs.is_empty() && xs == y) || (!ys.is_empty() && ys == x)
                };
                if jw >= 0.92
                    || swapped
                    || (field == Field::FirstName && nickname::equivalent(x, y))
                {
                    2
                } else if jw >= 0.80 || {
                    let px = records.phonetic(field, a);
                    !px.is_empty() && px == records.phonetic(field, b)
                } {
                    3
                } else {
                    4
                }
            }
            Kind::Date => {
                let swapped = x.len() == 8
                    && y.len() == 8
                    && x[..4] == y[..4]
                    && x[4..6] == y[6..8]
                    && x[6..8] == y[4..6];
                let edits = osa_distance(x, y);
                if edits <= 1 || swapped {
                    2
                } else if edits <= 2 || (x.len() == 8 && y.len() == 8 && x[..6] == y[..6]) {
                    3
                } else {
                    4
                }
            }
            Kind::Identifier(_) => match osa_distance(x, y) {
                1 => 2,
                2 => 3,
                _ => 4,
            },
            Kind::Text(_) => {
                let jw = jaro_winkler(x, y);
                if jw >= 0.92 {
                    2
                } else if jw >= 0.80 {
                    3
                } else {
                    4
                }
            }
            Kind::Zip => {
                if osa_distance(x, y) <= 1 {
                    2
                } else {
                    3
                }
            }
            Kind::Phone => {
                let local = |s: &str| s.len() >= 7 && s.len() <= 10;
                if osa_distance(x, y) <= 1
                    || (local(x) && local(y) && x[x.len() - 7..] == y[y.len() - 7..])
                {
                    2
                } else {
                    3
                }
            }
            Kind::Exact(_) => 2,
            Kind::Address => unreachable!("compared above"),
        }
    }
}

fn address_level(records: &RecordSet, a: usize, b: usize) -> u8 {
    let get = |f: Field, i: usize| records.value(f, i);
    let (sa, sb) = (get(Field::Street, a), get(Field::Street, b));
    let (za, zb) = (get(Field::Zip, a), get(Field::Zip, b));
    if (sa.is_empty() && za.is_empty()) || (sb.is_empty() && zb.is_empty()) {
        return 0;
    }
    let (na, nb) = (get(Field::StreetNumber, a), get(Field::StreetNumber, b));
    let street_same =
        !sa.is_empty() && !sb.is_empty() && (sa == sb || jaro_winkler(sa, sb) >= 0.92);
    let number_same = !na.is_empty() && na == nb;
    let zip_same = !za.is_empty() && za == zb;
    let zip_close = !za.is_empty() && !zb.is_empty() && osa_distance(za, zb) <= 1;
    let zip_unknown = za.is_empty() || zb.is_empty();
    if sa == sb && number_same && (zip_same || zip_unknown) {
        1
    } else if street_same && number_same {
        2
    } else if street_same && (zip_close || zip_unknown) {
        3
    } else if zip_same {
        4
    } else {
        5
    }
}

/// The default comparisons for the fields the records carry: one per field, names and places
/// with term-frequency adjustment.
pub(crate) fn default_comparisons(records: &RecordSet) -> Vec<Comparison> {
    let mut out = Vec::new();
    // House number, street and postcode compare as one address when all three are there.
    let address =
        records.has(Field::StreetNumber) && records.has(Field::Street) && records.has(Field::Zip);
    for field in Field::ALL {
        if !records.has(field) {
            continue;
        }
        if address && matches!(field, Field::StreetNumber | Field::Zip) {
            continue;
        }
        if address && field == Field::Street {
            out.push(Comparison {
                kind: Kind::Address,
                term_frequency: false,
            });
            continue;
        }
        let (kind, term_frequency) = match field {
            Field::FirstName => (
                Kind::Name {
                    field,
                    swapped_with: Field::LastName,
                },
                true,
            ),
            Field::LastName => (
                Kind::Name {
                    field,
                    swapped_with: Field::FirstName,
                },
                true,
            ),
            Field::MiddleName => (
                Kind::Name {
                    field,
                    swapped_with: Field::FirstName,
                },
                false,
            ),
            Field::BirthDate => (Kind::Date, false),
            Field::NationalId => (Kind::Identifier(field), false),
            Field::Street | Field::Locality => (Kind::Text(field), true),
            Field::City => (Kind::Text(field), true),
            Field::Zip => (Kind::Zip, true),
            Field::Phone => (Kind::Phone, false),
            Field::StreetNumber => (Kind::Exact(field), true),
            Field::Sex | Field::State | Field::Email => (Kind::Exact(field), false),
        };
        out.push(Comparison {
            kind,
            term_frequency,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(rows: &[[&str; 4]]) -> RecordSet {
        let fields = [
            Field::FirstName,
            Field::LastName,
            Field::BirthDate,
            Field::Zip,
        ];
        let mut b = RecordSet::builder(&fields);
        for (i, row) in rows.iter().enumerate() {
            b.push("s", &i.to_string(), "", row).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn typical_u_fits_the_levels() {
        let r = records(&[["a", "b", "1980-01-01", "1"]]);
        for c in default_comparisons(&r) {
            assert_eq!(c.prior_u().len(), c.level_count() - 2, "{}", c.name());
        }
    }

    #[test]
    fn levels() {
        let r = records(&[
            ["William", "Smith", "1980-03-07", "97201"],
            ["Bill", "Smyth", "1980-07-03", "97202"],
            ["Smith", "William", "1980-03-08", ""],
            ["Xavier", "Jones", "1990-01-01", "10001"],
        ]);
        let c = default_comparisons(&r);
        let by = |f: Field| c.iter().find(|c| c.field() == f).unwrap();
        let first = by(Field::FirstName);
        assert_eq!(first.level(&r, 0, 0), 1);
        assert_eq!(first.level(&r, 0, 1), 2, "nickname");
        assert_eq!(first.level(&r, 0, 2), 2, "swapped names");
        assert_eq!(first.level(&r, 0, 3), 4);
        let last = by(Field::LastName);
        assert_eq!(last.level(&r, 0, 1), 3, "smith/smyth: similar");
        let dob = by(Field::BirthDate);
        assert_eq!(dob.level(&r, 0, 1), 2, "day and month swapped");
        assert_eq!(dob.level(&r, 0, 2), 2, "one edit");
        assert_eq!(dob.level(&r, 0, 3), 4);
        let zip = by(Field::Zip);
        assert_eq!(zip.level(&r, 0, 1), 2);
        assert_eq!(zip.level(&r, 0, 2), 0, "missing");
        assert_eq!(zip.level(&r, 0, 3), 3);
    }
}
