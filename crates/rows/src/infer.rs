//! Schema inference: per-column statistics gathered by the crawler, and the rules that turn them
//! into one Arrow type per column (widening int → bigint → double → string).

use std::fmt;

use arrow::datatypes::{DataType, TimeUnit};

use crate::value::{Class, DateForm, DateOrder};

/// Share of a column's non-empty values that may fail to parse as the inferred type; those rows
/// are rejected rather than the column falling back to text. Below [`MIN_VALUES_FOR_TOLERANCE`]
/// values the column must be clean.
pub const TYPE_TOLERANCE: f64 = 0.01;
pub const MIN_VALUES_FOR_TOLERANCE: u64 = 50;

/// A column type as the crawler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// No value seen yet.
    Null,
    /// true/false, yes/no.
    Boolean,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    BigInt,
    /// 64-bit float.
    Double,
    /// Calendar date; numeric day/month dates read in the given order.
    Date(Option<DateOrder>),
    /// Instant in UTC (values without a zone are read as UTC).
    Timestamp(Option<DateOrder>),
    /// Anything else.
    Text,
}

impl ColumnType {
    /// The Arrow type stored in Delta.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Null | ColumnType::Text => DataType::Utf8,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Date(_) => DataType::Date32,
            ColumnType::Timestamp(_) => timestamp_type(),
        }
    }

    /// The crawler's view of an Arrow type already in a table, if it is one it produces.
    pub fn from_arrow(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::Text,
            DataType::Boolean => ColumnType::Boolean,
            DataType::Int8 | DataType::Int16 | DataType::Int32 => ColumnType::Int,
            DataType::Int64 => ColumnType::BigInt,
            DataType::Float32 | DataType::Float64 => ColumnType::Double,
            DataType::Date32 => ColumnType::Date(None),
            DataType::Timestamp(_, _) => ColumnType::Timestamp(None),
            DataType::Null => ColumnType::Null,
            _ => return None,
        })
    }

    /// The narrowest type holding values of both (the widening lattice).
    pub fn widen(self, other: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Int, BigInt) | (BigInt, Int) => BigInt,
            (Int | BigInt, Double) | (Double, Int | BigInt) => Double,
            (Date(a), Date(b)) => Date(a.or(b)),
            (Timestamp(a), Timestamp(b)) | (Date(a), Timestamp(b)) | (Timestamp(a), Date(b)) => {
                Timestamp(a.or(b))
            }
            _ => Text,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Null => "null",
            ColumnType::Boolean => "boolean",
            ColumnType::Int => "int",
            ColumnType::BigInt => "bigint",
            ColumnType::Double => "double",
            ColumnType::Date(_) => "date",
            ColumnType::Timestamp(_) => "timestamp",
            ColumnType::Text => "string",
        })
    }
}

/// Timestamps are stored as microseconds in UTC, as Delta's `timestamp` type requires.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A column and its inferred type.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredColumn {
    /// The normalised column name.
    pub name: String,
    /// The inferred type.
    pub column_type: ColumnType,
}

/// Counts of value classes seen in one column.
#[derive(Debug, Clone, Default)]
pub struct ColumnStats {
    pub non_null: u64,
    bools: u64,
    int32: u64,
    int64: u64,
    floats: u64,
    /// [fixed/dot, month-first only, day-first only, either] for dates and for timestamps.
    dates: [u64; 4],
    timestamps: [u64; 4],
}

fn form_index(form: DateForm) -> usize {
    match form {
        DateForm::Fixed | DateForm::Dot => 0,
        DateForm::MonthFirst => 1,
        DateForm::DayFirst => 2,
        DateForm::Either => 3,
    }
}

impl ColumnStats {
    pub fn observe(&mut self, class: Class) {
        match class {
            Class::Null => return,
            Class::Bool => self.bools += 1,
            Class::Int32 => self.int32 += 1,
            Class::Int64 => self.int64 += 1,
            Class::Float => self.floats += 1,
            Class::Date(form) => self.dates[form_index(form)] += 1,
            Class::Timestamp(form) => self.timestamps[form_index(form)] += 1,
            Class::Text => {}
        }
        self.non_null += 1;
    }

    pub fn merge(&mut self, other: &ColumnStats) {
        self.non_null += other.non_null;
        self.bools += other.bools;
        self.int32 += other.int32;
        self.int64 += other.int64;
        self.floats += other.floats;
        for i in 0..4 {
            self.dates[i] += other.dates[i];
            self.timestamps[i] += other.timestamps[i];
        }
    }

    /// The most specific type that all but a tolerated few values fit.
    pub fn infer(&self) -> ColumnType {
        if self.non_null == 0 {
            return ColumnType::Null;
        }
        let tolerated = if self.non_null >= MIN_VALUES_FOR_TOLERANCE {
            (self.non_null as f64 * TYPE_TOLERANCE).floor() as u64
        } else {
            0
        };
        let fits = |conforming: u64| self.non_null - conforming.min(self.non_null) <= tolerated;
        // Day/month order: whichever unambiguous reading the column shows; none when it shows both
        // or only ambiguous values.
        let us = self.dates[1] + self.timestamps[1];
        let eu = self.dates[2] + self.timestamps[2];
        let order = match (us > 0, eu > 0) {
            (true, false) => Some(DateOrder::MonthFirst),
            (false, true) => Some(DateOrder::DayFirst),
            (true, true) if us > eu => Some(DateOrder::MonthFirst),
            (true, true) => Some(DateOrder::DayFirst),
            (false, false) => None,
        };
        let readable = |counts: &[u64; 4]| -> u64 {
            counts[0]
                + match order {
                    Some(DateOrder::MonthFirst) => counts[1] + counts[3],
                    Some(DateOrder::DayFirst) => counts[2] + counts[3],
                    None => 0,
                }
        };
        let numeric_any = self.int32 + self.int64 + self.floats;
        if self.bools > 0 && fits(self.bools) {
            ColumnType::Boolean
        } else if numeric_any > 0 && fits(self.int32) {
            ColumnType::Int
        } else if numeric_any > 0 && fits(self.int32 + self.int64) {
            ColumnType::BigInt
        } else if numeric_any > 0 && fits(numeric_any) {
            ColumnType::Double
        } else if readable(&self.dates) > 0 && fits(readable(&self.dates)) {
            ColumnType::Date(order)
        } else if readable(&self.timestamps) > 0
            && fits(readable(&self.dates) + readable(&self.timestamps))
        {
            ColumnType::Timestamp(order)
        } else {
            ColumnType::Text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::classify;

    fn infer(values: &[&str]) -> ColumnType {
        let mut stats = ColumnStats::default();
        for v in values {
            stats.observe(classify(v));
        }
        stats.infer()
    }

    #[test]
    fn infers_and_widens() {
        assert_eq!(infer(&["1", "2", ""]), ColumnType::Int);
        assert_eq!(infer(&["1", "5000000000"]), ColumnType::BigInt);
        assert_eq!(infer(&["1", "2.5"]), ColumnType::Double);
        assert_eq!(infer(&["1", "x"]), ColumnType::Text);
        assert_eq!(infer(&["", ""]), ColumnType::Null);
        assert_eq!(infer(&["true", "no"]), ColumnType::Boolean);
        assert_eq!(
            infer(&["2024-01-01", "2024-01-02 10:00"]),
            ColumnType::Timestamp(None)
        );
        assert_eq!(
            infer(&["01/31/2024", "02/01/2024"]),
            ColumnType::Date(Some(DateOrder::MonthFirst))
        );
        assert_eq!(
            infer(&["31/01/2024", "02/01/2024"]),
            ColumnType::Date(Some(DateOrder::DayFirst))
        );
        // Only ambiguous day/month dates: the reading is unknown, so they stay text.
        assert_eq!(infer(&["01/02/2024", "03/04/2024"]), ColumnType::Text);
        // Dashes, day first (`DD-MM-YYYY`), as public datasets write them.
        assert_eq!(
            infer(&["17-11-2022", "01-12-2022", "05-01-2023"]),
            ColumnType::Date(Some(DateOrder::DayFirst))
        );
        assert_eq!(
            infer(&["11-17-2022", "12-01-2022"]),
            ColumnType::Date(Some(DateOrder::MonthFirst))
        );
        assert_eq!(infer(&["17.11.2022", "01.12.22"]), ColumnType::Date(None));
        assert_eq!(
            infer(&["Nov 17 2022", "17-NOV-22", "December 1, 2022", "2022/12/05"]),
            ColumnType::Date(None)
        );
        assert_eq!(
            infer(&["17/11/2022 10:15 PM", "01/12/2022 08:00"]),
            ColumnType::Timestamp(Some(DateOrder::DayFirst))
        );
        // Values that disagree (both readings needed) keep the column text.
        assert_eq!(infer(&["17/11/2022", "11/17/2022"]), ColumnType::Text);
    }

    #[test]
    fn tolerates_a_few_bad_values_in_large_columns() {
        let mut values = vec!["12.5"; 997];
        values.extend(["abc", "n.a.", "?"]);
        assert_eq!(infer(&values), ColumnType::Double);
        let mut values = vec!["7"; 90];
        values.extend(vec!["abc"; 10]);
        assert_eq!(infer(&values), ColumnType::Text);
    }

    #[test]
    fn widening_lattice() {
        use ColumnType::*;
        assert_eq!(Int.widen(BigInt), BigInt);
        assert_eq!(BigInt.widen(Double), Double);
        assert_eq!(Double.widen(Text), Text);
        assert_eq!(Null.widen(Boolean), Boolean);
        assert_eq!(Date(None).widen(Timestamp(None)), Timestamp(None));
        assert_eq!(Boolean.widen(Int), Text);
    }
}
