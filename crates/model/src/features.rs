//! Columns of a training query as model features: numbers as they are, booleans as 0 or 1,
//! text as one indicator per level seen in training (the most frequent levels, up to
//! [`MAX_LEVELS`]). What each feature is, and the value that stands in for a missing number,
//! are learnt from the training rows and kept with the model, so that prediction encodes new
//! rows exactly as training did.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Text levels kept per column: the rarer ones share the all-zero encoding.
pub const MAX_LEVELS: usize = 30;

/// How one input column becomes model features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// A number; a missing one is `fill` (the training mean) for models that need a value.
    Numeric {
        /// The training mean.
        fill: f64,
    },
    /// True 1, false 0; a missing one is `fill` (the training share of true).
    Boolean {
        /// The training share of true.
        fill: f64,
    },
    /// One 0/1 feature per level; a missing or unseen level is all 0.
    Category {
        /// The levels, most frequent first.
        levels: Vec<String>,
    },
}

/// One input column and its encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name in the training query, which `predict` takes in this order.
    pub name: String,
    /// Its encoding.
    pub encoding: Encoding,
}

impl Column {
    /// The names of the features this column becomes.
    pub fn feature_names(&self) -> Vec<String> {
        match &self.encoding {
            Encoding::Category { levels } => levels
                .iter()
                .map(|l| format!("{}={l}", self.name))
                .collect(),
            _ => vec![self.name.clone()],
        }
    }

    fn width(&self) -> usize {
        match &self.encoding {
            Encoding::Category { levels } => levels.len(),
            _ => 1,
        }
    }
}

/// The input columns of a model, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// The columns.
    pub columns: Vec<Column>,
}

/// Encoded rows, column-major: feature `j` of row `i` at `j * rows + i`. Missing values are
/// NaN until [`Matrix::fill_missing`].
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Features.
    pub cols: usize,
    /// The values, column after column.
    pub data: Vec<f64>,
}

impl Matrix {
    /// Feature `j` of row `i`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[j * self.rows + i]
    }

    /// The rows at `keep`, in that order.
    pub fn select(&self, keep: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(keep.len() * self.cols);
        for j in 0..self.cols {
            let column = &self.data[j * self.rows..(j + 1) * self.rows];
            data.extend(keep.iter().map(|&i| column[i]));
        }
        Matrix {
            rows: keep.len(),
            cols: self.cols,
            data,
        }
    }

    /// Replaces NaN with each feature's fill value.
    pub fn fill_missing(&mut self, fills: &[f64]) {
        for (j, fill) in fills.iter().enumerate() {
            for v in &mut self.data[j * self.rows..(j + 1) * self.rows] {
                if v.is_nan() {
                    *v = *fill;
                }
            }
        }
    }
}

fn as_f64(array: &ArrayRef, name: &str) -> Result<Vec<f64>> {
    let floats =
        cast(array, &DataType::Float64).map_err(|e| Error::Features(format!("{name}: {e}")))?;
    let floats = floats.as_primitive::<Float64Type>();
    Ok((0..floats.len())
        .map(|i| {
            if floats.is_null(i) {
                f64::NAN
            } else {
                floats.value(i)
            }
        })
        .collect())
}

fn as_text(array: &ArrayRef, name: &str) -> Result<Vec<Option<String>>> {
    let text = cast(array, &DataType::Utf8).map_err(|e| Error::Features(format!("{name}: {e}")))?;
    let text = text.as_string::<i32>();
    Ok((0..text.len())
        .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
        .collect())
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..)
    )
}

fn mean(values: &[f64]) -> f64 {
    let (sum, n) = values
        .iter()
        .filter(|v| !v.is_nan())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

impl Features {
    /// Learns the encoding of each named column from its training values (one array per
    /// column, all of one length).
    pub fn learn(columns: &[(String, ArrayRef)]) -> Result<Features> {
        let mut out = Vec::new();
        for (name, array) in columns {
            let t = array.data_type();
            let encoding = if *t == DataType::Boolean {
                Encoding::Boolean {
                    fill: mean(&as_f64(array, name)?),
                }
            } else if t.is_numeric() || *t == DataType::Null {
                Encoding::Numeric {
                    fill: mean(&as_f64(array, name)?),
                }
            } else if is_text(t) {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for v in as_text(array, name)?.into_iter().flatten() {
                    *counts.entry(v).or_default() += 1;
                }
                let mut levels: Vec<(String, usize)> = counts.into_iter().collect();
                levels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                levels.truncate(MAX_LEVELS);
                Encoding::Category {
                    levels: levels.into_iter().map(|(l, _)| l).collect(),
                }
            } else {
                return Err(Error::Features(format!(
                    "{name} is {t}: a feature is a number, a boolean or text (cast it, or leave it out of the query)"
                )));
            };
            out.push(Column {
                name: name.clone(),
                encoding,
            });
        }
        if out.is_empty() {
            return Err(Error::Features(
                "the query has no feature columns besides the target".into(),
            ));
        }
        Ok(Features { columns: out })
    }

    /// Every feature's name, in matrix order.
    pub fn names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(Column::feature_names)
            .collect()
    }

    /// The value standing in for a missing one, per feature.
    pub fn fills(&self) -> Vec<f64> {
        self.columns
            .iter()
            .flat_map(|c| match &c.encoding {
                Encoding::Numeric { fill } | Encoding::Boolean { fill } => vec![*fill],
                Encoding::Category { levels } => vec![0.0; levels.len()],
            })
            .collect()
    }

    /// Encodes rows: one array per column, in [`Features::columns`] order.
    pub fn encode(&self, arrays: &[ArrayRef]) -> Result<Matrix> {
        if arrays.len() != self.columns.len() {
            return Err(Error::Features(format!(
                "the model takes {} columns ({}), given {}",
                self.columns.len(),
                self.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                arrays.len()
            )));
        }
        let rows = arrays.first().map_or(0, |a| a.len());
        let cols = self.columns.iter().map(Column::width).sum();
        let mut data = Vec::with_capacity(rows * cols);
        for (column, array) in self.columns.iter().zip(arrays) {
            match &column.encoding {
                Encoding::Numeric { .. } | Encoding::Boolean { .. } => {
                    data.extend(as_f64(array, &column.name)?)
                }
                Encoding::Category { levels } => {
                    let text = as_text(array, &column.name)?;
                    for level in levels {
                        data.extend(
                            text.iter()
                                .map(|v| f64::from(u8::from(v.as_deref() == Some(level)))),
                        );
                    }
                }
            }
        }
        Ok(Matrix { rows, cols, data })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Int64Array, StringArray};

    use super::*;

    #[test]
    fn columns_are_encoded_as_learnt() {
        let age: ArrayRef = Arc::new(Int64Array::from(vec![Some(60), None, Some(80)]));
        let ed: ArrayRef = Arc::new(BooleanArray::from(vec![true, false, true]));
        let class: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("a"), Some("b")]));
        let features = Features::learn(&[
            ("age".into(), Arc::clone(&age)),
            ("ed".into(), Arc::clone(&ed)),
            ("class".into(), Arc::clone(&class)),
        ])
        .unwrap();
        assert_eq!(features.names(), ["age", "ed", "class=b", "class=a"]);
        assert_eq!(features.fills(), [70.0, 2.0 / 3.0, 0.0, 0.0]);
        let mut m = features.encode(&[age, ed, class]).unwrap();
        assert!(m.get(1, 0).is_nan());
        m.fill_missing(&features.fills());
        assert_eq!(m.get(1, 0), 70.0);
        assert_eq!((m.get(0, 2), m.get(1, 2), m.get(1, 3)), (1.0, 0.0, 1.0));
        assert_eq!(m.select(&[2, 0]).get(0, 0), 80.0);
    }
}
