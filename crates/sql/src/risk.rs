//! Readmission risk scores in SQL, over `carelake-risk`:
//!
//! - `charlson_index(codes [, weights => 'charlson1987' | 'quan2011'])`: the Charlson index of
//!   a list of ICD-10 codes by Quan's 2005 coding algorithm (default weights: Charlson 1987);
//! - `charlson_categories(codes)`: the categories the codes fall in, after the hierarchy;
//! - `lace_score(los_days, emergent, charlson, ed_visits_6m)` (0–19) and `lace_band(score)`
//!   (`low`, `moderate`, `high`);
//! - `hospital_score(hemoglobin_g_dl, oncology, sodium_mmol_l, procedure, urgent,
//!   admissions_12m, los_days)` (0–13) and `hospital_band(score)` (`low`, `intermediate`,
//!   `high`).
//!
//! A NULL input gives a NULL score: a missing laboratory value is not a normal one unless the
//! query says so (`coalesce(hemoglobin, 99)`), which keeps the choice visible.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Builder, Int64Array, ListBuilder,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field};
use carelake_risk::{charlson, hospital, lace};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the score functions in a context.
pub(crate) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(Charlson::new(false)));
    ctx.register_udf(ScalarUDF::new_from_impl(Charlson::new(true)));
    for score in [Score::Lace, Score::Hospital] {
        ctx.register_udf(ScalarUDF::new_from_impl(ScoreUdf {
            score,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
        ctx.register_udf(ScalarUDF::new_from_impl(BandUdf {
            score,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}

/// The list of text codes a Charlson function takes.
fn code_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// `charlson_index` or `charlson_categories`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Charlson {
    categories: bool,
    signature: Signature,
}

impl Charlson {
    fn new(categories: bool) -> Self {
        let names: Vec<&str> = if categories {
            vec!["codes"]
        } else {
            vec!["codes", "weights"]
        };
        // Names make `weights => 'quan2011'` work; a user-defined signature takes any names.
        let signature = Signature::user_defined(Volatility::Immutable)
            .with_parameter_names(names)
            .unwrap_or_else(|_| Signature::user_defined(Volatility::Immutable));
        Self {
            categories,
            signature,
        }
    }
}

impl ScalarUDFImpl for Charlson {
    fn name(&self) -> &str {
        if self.categories {
            "charlson_categories"
        } else {
            "charlson_index"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let most = if self.categories { 1 } else { 2 };
        if arg_types.is_empty() || arg_types.len() > most {
            return plan_err!(
                "{} takes {}",
                self.name(),
                if self.categories {
                    "a list of ICD-10 codes"
                } else {
                    "a list of ICD-10 codes and optionally the weights"
                }
            );
        }
        match &arg_types[0] {
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::Null => {}
            other => {
                return plan_err!(
                    "{} takes a list of codes (array_agg(code), make_array(…)), not {other}",
                    self.name()
                );
            }
        }
        let mut types = vec![code_list()];
        if arg_types.len() == 2 {
            types.push(DataType::Utf8);
        }
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.categories {
            code_list()
        } else {
            DataType::Int32
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let lists = arrays[0].as_list::<i32>();
        let weights: Vec<Option<charlson::Weights>> = match arrays.get(1) {
            None => vec![Some(charlson::Weights::default()); rows],
            Some(names) => {
                let names = names.as_string::<i32>();
                let mut out = Vec::with_capacity(rows);
                for i in 0..rows {
                    if names.is_null(i) {
                        out.push(None);
                    } else {
                        match names.value(i).parse() {
                            Ok(w) => out.push(Some(w)),
                            Err(e) => return exec_err!("{e}"),
                        }
                    }
                }
                out
            }
        };
        let out: ArrayRef = if self.categories {
            let mut out = ListBuilder::new(StringBuilder::new());
            for i in 0..rows {
                if lists.is_null(i) {
                    out.append_null();
                    continue;
                }
                let codes = lists.value(i);
                for category in charlson::categories(codes.as_string::<i32>().iter().flatten()) {
                    out.values().append_value(category.as_str());
                }
                out.append(true);
            }
            Arc::new(out.finish())
        } else {
            let mut out = Int32Builder::with_capacity(rows);
            for (i, weights) in weights.iter().enumerate() {
                match weights {
                    Some(w) if !lists.is_null(i) => {
                        let codes = lists.value(i);
                        let codes = codes.as_string::<i32>().iter().flatten();
                        out.append_value(charlson::index(codes, *w) as i32)
                    }
                    _ => out.append_null(),
                }
            }
            Arc::new(out.finish())
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// LACE or HOSPITAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Score {
    Lace,
    Hospital,
}

impl Score {
    fn name(self) -> &'static str {
        match self {
            Score::Lace => "lace_score",
            Score::Hospital => "hospital_score",
        }
    }

    fn band_name(self) -> &'static str {
        match self {
            Score::Lace => "lace_band",
            Score::Hospital => "hospital_band",
        }
    }

    /// The argument types, coerced to.
    fn inputs(self) -> Vec<DataType> {
        use DataType::{Boolean, Float64, Int64};
        match self {
            Score::Lace => vec![Float64, Boolean, Int64, Int64],
            Score::Hospital => vec![Float64, Boolean, Float64, Boolean, Boolean, Int64, Float64],
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Score::Lace => "lace_score(los_days, emergent, charlson, ed_visits_6m)",
            Score::Hospital => {
                "hospital_score(hemoglobin_g_dl, oncology, sodium_mmol_l, procedure, urgent, admissions_12m, los_days)"
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ScoreUdf {
    score: Score,
    signature: Signature,
}

/// A count argument as the score takes it: never negative.
fn count(values: &Int64Array, i: usize, what: &str) -> Result<u32> {
    let v = values.value(i);
    if v < 0 {
        return exec_err!("{what} cannot be negative");
    }
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

impl ScalarUDFImpl for ScoreUdf {
    fn name(&self) -> &str {
        self.score.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let inputs = self.score.inputs();
        if arg_types.len() != inputs.len() {
            return plan_err!("usage: {}", self.score.usage());
        }
        for (given, wanted) in arg_types.iter().zip(&inputs) {
            let fits = given.is_null()
                || match wanted {
                    DataType::Boolean => *given == DataType::Boolean,
                    _ => given.is_numeric(),
                };
            if !fits {
                return plan_err!("usage: {} (given {given} for {wanted})", self.score.usage());
            }
        }
        Ok(inputs)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let f = |i: usize| -> &Float64Array { arrays[i].as_primitive() };
        let b = |i: usize| -> &BooleanArray { arrays[i].as_boolean() };
        let n = |i: usize| -> &Int64Array { arrays[i].as_primitive() };
        let mut out = Int32Builder::with_capacity(rows);
        for row in 0..rows {
            if arrays.iter().any(|a| a.is_null(row)) {
                out.append_null();
                continue;
            }
            let score = match self.score {
                Score::Lace => lace::score(
                    f(0).value(row),
                    b(1).value(row),
                    count(n(2), row, "the Charlson index")?,
                    count(n(3), row, "emergency visits")?,
                ),
                Score::Hospital => hospital::score(
                    f(0).value(row),
                    b(1).value(row),
                    f(2).value(row),
                    b(3).value(row),
                    b(4).value(row),
                    count(n(5), row, "prior admissions")?,
                    f(6).value(row),
                ),
            };
            out.append_value(score as i32);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BandUdf {
    score: Score,
    signature: Signature,
}

impl ScalarUDFImpl for BandUdf {
    fn name(&self) -> &str {
        self.score.band_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if t.is_numeric() || t.is_null() => Ok(vec![DataType::Int64]),
            _ => plan_err!("{}(score) takes the score", self.score.band_name()),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let scores: &Int64Array = arrays[0].as_primitive();
        let mut out = StringBuilder::with_capacity(scores.len(), scores.len() * 8);
        for i in 0..scores.len() {
            if scores.is_null(i) {
                out.append_null();
                continue;
            }
            let score = count(scores, i, "a score")?;
            out.append_value(match self.score {
                Score::Lace => lace::band(score).as_str(),
                Score::Hospital => hospital::band(score).as_str(),
            });
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
