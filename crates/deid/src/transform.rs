//! Column transforms over Arrow arrays: surrogates, years, shifted dates, capped ages, ZIP3.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Date64Array, Int32Array, Int64Array, ListArray,
    StringArray, new_null_array,
};
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::datatypes::{DataType, Date32Type, Date64Type, Field, Int64Type, TimeUnit};
use chrono::{Datelike, NaiveDate};

use crate::Result;

/// The 3-digit ZIP prefixes of 20,000 people or fewer (2000 Census), which Safe Harbor
/// turns into 000.
pub const RESTRICTED_ZIP3: [&str; 17] = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893",
];

/// Random bytes from the operating system's generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the operating system's random generator");
    bytes
}

/// The surrogates of one export: random, never derived from the value, the same for the same
/// (domain, value) in every table.
#[derive(Debug, Default)]
pub(crate) struct Surrogates {
    map: HashMap<(String, String), String>,
    issued: HashSet<String>,
    /// New (domain, original, surrogate) rows not yet written to the mapping table.
    pub(crate) pending: Vec<(String, String, String)>,
    /// Per-patient date offsets in days (limited data set).
    offsets: HashMap<String, i32>,
}

impl Surrogates {
    pub(crate) fn surrogate(&mut self, domain: &str, original: &str) -> String {
        if let Some(s) = self.map.get(&(domain.to_string(), original.to_string())) {
            return s.clone();
        }
        let surrogate = loop {
            let candidate: String = random_bytes::<10>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if self.issued.insert(candidate.clone()) {
                break candidate;
            }
        };
        self.map.insert(
            (domain.to_string(), original.to_string()),
            surrogate.clone(),
        );
        self.pending
            .push((domain.to_string(), original.to_string(), surrogate.clone()));
        surrogate
    }

    /// The random date offset of a patient (±1 to 365 days), made on first use.
    pub(crate) fn offset(&mut self, anchor: &str) -> i32 {
        if let Some(days) = self.offsets.get(anchor) {
            return *days;
        }
        let r = u32::from_le_bytes(random_bytes::<4>());
        let days = 1 + (r % 365) as i32;
        let days = if r & (1 << 31) != 0 { -days } else { days };
        self.offsets.insert(anchor.to_string(), days);
        self.pending
            .push(("date_shift".into(), anchor.to_string(), days.to_string()));
        days
    }
}

/// The type without view types (`Utf8View` → `Utf8`), which every Delta reader understands.
pub(crate) fn plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(Arc::new(
            f.as_ref().clone().with_data_type(plain_type(f.data_type())),
        )),
        DataType::LargeList(f) => DataType::List(Arc::new(
            f.as_ref().clone().with_data_type(plain_type(f.data_type())),
        )),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type()))))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `array` in its plain type.
pub(crate) fn plain(array: &ArrayRef) -> Result<ArrayRef> {
    let t = plain_type(array.data_type());
    if &t == array.data_type() {
        Ok(Arc::clone(array))
    } else {
        Ok(arrow::compute::cast(array, &t)?)
    }
}

/// The values of `array` as text (NULL stays NULL).
pub(crate) fn as_text(array: &ArrayRef) -> Result<StringArray> {
    let text = arrow::compute::cast(array, &DataType::Utf8)?;
    Ok(text.as_string::<i32>().clone())
}

/// Every value replaced by its surrogate in `domain`; lists of text element by element.
pub(crate) fn surrogate(
    array: &ArrayRef,
    domain: &str,
    surrogates: &mut Surrogates,
) -> Result<ArrayRef> {
    if let DataType::List(field) = plain_type(array.data_type()) {
        let list = plain(array)?;
        let list = list.as_list::<i32>();
        let values = surrogate(list.values(), domain, surrogates)?;
        let field = Arc::new(Field::new(field.name(), DataType::Utf8, true));
        return Ok(Arc::new(ListArray::try_new(
            field,
            list.offsets().clone(),
            values,
            list.nulls().cloned(),
        )?));
    }
    let text = as_text(array)?;
    let out: StringArray = text
        .iter()
        .map(|v| v.map(|v| surrogates.surrogate(domain, v)))
        .collect();
    Ok(Arc::new(out))
}

/// The year of each date, time or date text (leading `YYYY`); NULL where there is none.
pub(crate) fn year(array: &ArrayRef) -> Result<Int32Array> {
    match array.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let years = date_part(array.as_ref(), DatePart::Year)?;
            Ok(years.as_primitive::<arrow::datatypes::Int32Type>().clone())
        }
        t if t.is_integer() => {
            let ints = arrow::compute::cast(array, &DataType::Int64)?;
            Ok(ints
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.filter(|y| (1000..=9999).contains(y)).map(|y| y as i32))
                .collect())
        }
        t if arrow::compute::can_cast_types(t, &DataType::Utf8) && !t.is_nested() => {
            let text = as_text(array)?;
            Ok(text.iter().map(|v| v.and_then(text_year)).collect())
        }
        _ => Ok(Int32Array::new_null(array.len())),
    }
}

fn text_year(text: &str) -> Option<i32> {
    let head = text.trim().get(..4)?;
    if head.bytes().all(|b| b.is_ascii_digit()) {
        head.parse().ok()
    } else {
        None
    }
}

/// Birth years, NULL for people who are 90 or older in `this_year` (conservatively: whose
/// birth year is 90 or more years back); also how many those were.
pub(crate) fn birth_year(array: &ArrayRef, this_year: i32) -> Result<(Int32Array, u64)> {
    let years = year(array)?;
    let mut ninety = 0;
    let out = years
        .iter()
        .map(|y| match y {
            Some(y) if this_year - y >= 90 => {
                ninety += 1;
                None
            }
            other => other,
        })
        .collect();
    Ok((out, ninety))
}

/// Ages over 89 become 90 ("90 or older"); also how many those were.
pub(crate) fn cap_age(array: &ArrayRef) -> Result<(ArrayRef, u64)> {
    let ints = arrow::compute::cast(array, &DataType::Int64)?;
    let mut ninety = 0;
    let out: Int64Array = ints
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| {
            v.map(|a| {
                if a > 89 {
                    ninety += 1;
                    90
                } else {
                    a
                }
            })
        })
        .collect();
    Ok((Arc::new(out), ninety))
}

/// The first three digits of each ZIP code (integers are read as 5 digits), `000` for the
/// restricted prefixes; NULL where there are fewer than three digits.
pub(crate) fn zip3(array: &ArrayRef) -> Result<ArrayRef> {
    let integer = array.data_type().is_integer();
    let text = as_text(array)?;
    let out: StringArray = text
        .iter()
        .map(|v| {
            let v = v?.trim();
            let digits: String = if integer {
                format!("{:0>5}", v.trim_start_matches('-'))
            } else {
                v.chars().take_while(|c| c.is_ascii_digit()).collect()
            };
            let prefix = digits.get(..3)?.to_string();
            Some(if RESTRICTED_ZIP3.contains(&prefix.as_str()) {
                "000".to_string()
            } else {
                prefix
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// Each value moved by its row's offset in days (`None`: the row's dates are left out).
/// Text dates (`YYYY-MM-DD…`, `YYYYMMDD…`) keep their time part; other text becomes NULL.
pub(crate) fn shift(array: &ArrayRef, offsets: &[Option<i32>]) -> Result<ArrayRef> {
    let array = plain(array)?;
    match array.data_type() {
        DataType::Date32 => {
            let dates = array.as_primitive::<Date32Type>();
            let out: Date32Array = dates
                .iter()
                .zip(offsets)
                .map(|(v, o)| Some(v? + (*o)?))
                .collect();
            Ok(Arc::new(out))
        }
        DataType::Date64 => {
            let dates = array.as_primitive::<Date64Type>();
            let out: Date64Array = dates
                .iter()
                .zip(offsets)
                .map(|(v, o)| Some(v? + (*o)? as i64 * 86_400_000))
                .collect();
            Ok(Arc::new(out))
        }
        DataType::Timestamp(unit, _) => {
            let per_day: i64 = match unit {
                TimeUnit::Second => 86_400,
                TimeUnit::Millisecond => 86_400_000,
                TimeUnit::Microsecond => 86_400_000_000,
                TimeUnit::Nanosecond => 86_400_000_000_000,
            };
            let ints = arrow::compute::cast(&array, &DataType::Int64)?;
            let out: Int64Array = ints
                .as_primitive::<Int64Type>()
                .iter()
                .zip(offsets)
                .map(|(v, o)| Some(v? + (*o)? as i64 * per_day))
                .collect();
            Ok(arrow::compute::cast(
                &(Arc::new(out) as ArrayRef),
                array.data_type(),
            )?)
        }
        DataType::Utf8 => {
            let text = array.as_string::<i32>();
            let out: StringArray = text
                .iter()
                .zip(offsets)
                .map(|(v, o)| shift_text(v?, (*o)?))
                .collect();
            Ok(Arc::new(out))
        }
        t => Ok(new_null_array(t, array.len())),
    }
}

fn shift_text(text: &str, days: i32) -> Option<String> {
    let text = text.trim();
    let by = chrono::Duration::days(days as i64);
    if let Some(head) = text.get(..10)
        && let Ok(date) = NaiveDate::parse_from_str(head, "%Y-%m-%d")
    {
        let moved = date.checked_add_signed(by)?;
        return Some(format!("{}{}", moved.format("%Y-%m-%d"), &text[10..]));
    }
    if let Some(head) = text.get(..8)
        && head.bytes().all(|b| b.is_ascii_digit())
        && let Ok(date) = NaiveDate::parse_from_str(head, "%Y%m%d")
    {
        let moved = date.checked_add_signed(by)?;
        return Some(format!("{}{}", moved.format("%Y%m%d"), &text[8..]));
    }
    None
}

/// The current year (UTC).
pub(crate) fn this_year() -> i32 {
    chrono::Utc::now().year()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip3_restricts_small_prefixes() {
        let zips: ArrayRef = Arc::new(StringArray::from(vec![
            Some("61627"),
            Some("03601-1234"),
            Some("12"),
            None,
        ]));
        let out = zip3(&zips).unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "616");
        assert_eq!(out.value(1), "000");
        assert!(out.is_null(2) && out.is_null(3));
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![2134, 89012]));
        let out = zip3(&ints).unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "021");
        assert_eq!(out.value(1), "000");
    }

    #[test]
    fn birth_years_of_the_very_old_are_left_out() {
        let dates: ArrayRef = Arc::new(StringArray::from(vec!["1930-02-01", "1989-06-11", "x"]));
        let (years, ninety) = birth_year(&dates, 2025).unwrap();
        assert!(years.is_null(0));
        assert_eq!(years.value(1), 1989);
        assert!(years.is_null(2));
        assert_eq!(ninety, 1);
        let ages: ArrayRef = Arc::new(Int64Array::from(vec![Some(95), Some(40), None]));
        let (capped, ninety) = cap_age(&ages).unwrap();
        assert_eq!(capped.as_primitive::<Int64Type>().value(0), 90);
        assert_eq!(ninety, 1);
    }

    #[test]
    fn shifts_keep_the_time_of_day() {
        assert_eq!(
            shift_text("2024-05-28T11:46:00Z", 5).as_deref(),
            Some("2024-06-02T11:46:00Z")
        );
        assert_eq!(shift_text("20240101", -1).as_deref(), Some("20231231"));
        assert_eq!(shift_text("2024", 3), None);
    }

    #[test]
    fn surrogates_are_random_and_consistent() {
        let mut s = Surrogates::default();
        let a = s.surrogate("mrn", "M1");
        assert_eq!(s.surrogate("mrn", "M1"), a);
        assert_ne!(s.surrogate("mrn", "M2"), a);
        assert_ne!(a, "M1");
        let mut t = Surrogates::default();
        assert_ne!(t.surrogate("mrn", "M1"), a, "not derived from the value");
        assert_eq!(s.pending.len(), 2);
        let d = s.offset("p");
        assert!(d != 0 && d.abs() <= 365);
        assert_eq!(s.offset("p"), d);
    }
}
