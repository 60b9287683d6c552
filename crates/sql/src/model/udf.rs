//! `predict(model, col, …)`, `predict_proba(model, col, …)` and
//! `predict_contributions(model, col, …)`: a model's answer for each row, given its input
//! columns in the order it was trained on (`EXPLAIN MODEL` lists them).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, StringBuilder};
use arrow::datatypes::DataType;
use carelake_model::Model;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

/// The models a session's principal may use, by name, with the version loaded.
#[derive(Debug, Default)]
pub(crate) struct ModelRegistry {
    pub(crate) models: RwLock<HashMap<String, (u32, Arc<Model>)>>,
}

impl ModelRegistry {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.models.read().get(name).map(|(_, m)| Arc::clone(m))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Answer {
    Class,
    Probability,
    Contributions,
}

impl Answer {
    fn name(self) -> &'static str {
        match self {
            Answer::Class => "predict",
            Answer::Probability => "predict_proba",
            Answer::Contributions => "predict_contributions",
        }
    }
}

#[derive(Debug)]
struct Predict {
    answer: Answer,
    signature: Signature,
    registry: Arc<ModelRegistry>,
}

impl PartialEq for Predict {
    fn eq(&self, other: &Self) -> bool {
        self.answer == other.answer && Arc::ptr_eq(&self.registry, &other.registry)
    }
}

impl Eq for Predict {}

impl std::hash::Hash for Predict {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.answer.hash(state);
    }
}

/// Registers the three functions over `registry`.
pub(crate) fn register(ctx: &SessionContext, registry: &Arc<ModelRegistry>) {
    for answer in [Answer::Class, Answer::Probability, Answer::Contributions] {
        ctx.register_udf(ScalarUDF::new_from_impl(Predict {
            answer,
            signature: Signature::user_defined(Volatility::Immutable),
            registry: Arc::clone(registry),
        }));
    }
}

impl ScalarUDFImpl for Predict {
    fn name(&self) -> &str {
        self.answer.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types.first() {
            Some(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
                if arg_types.len() > 1 =>
            {
                let mut out = vec![DataType::Utf8];
                out.extend(arg_types[1..].iter().cloned());
                Ok(out)
            }
            _ => plan_err!(
                "usage: {}('model', column, …): the model's name, then its input columns in order (EXPLAIN MODEL lists them)",
                self.answer.name()
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.answer {
            Answer::Class => DataType::Boolean,
            Answer::Probability => DataType::Float64,
            Answer::Contributions => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let name = match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(n))) => n.to_ascii_lowercase(),
            _ => {
                return exec_err!(
                    "{}: the model's name is a quoted constant",
                    self.answer.name()
                );
            }
        };
        let Some(model) = self.registry.get(&name) else {
            return exec_err!(
                "no model {name} (SHOW MODELS lists those you may use: their training tables must be readable to you)"
            );
        };
        let arrays: Vec<ArrayRef> = args.args[1..]
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let x = model
            .features
            .encode(&arrays)
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("{name}: {e}")))?;
        let fail = |e: carelake_model::Error| {
            datafusion::error::DataFusionError::Execution(format!("{name}: {e}"))
        };
        let out: ArrayRef = match self.answer {
            Answer::Probability => {
                Arc::new(Float64Array::from(model.predict_proba(&x).map_err(fail)?))
            }
            Answer::Class => {
                let threshold = model.summary.options.threshold;
                Arc::new(BooleanArray::from(
                    model
                        .predict_proba(&x)
                        .map_err(fail)?
                        .into_iter()
                        .map(|p| (!p.is_nan()).then_some(p >= threshold))
                        .collect::<Vec<_>>(),
                ))
            }
            Answer::Contributions => {
                let names = model.features.names();
                let mut builder = StringBuilder::new();
                for row in model.contributions(&x).map_err(fail)? {
                    let mut object = serde_json::Map::new();
                    for (feature, value) in names.iter().zip(&row) {
                        object.insert(feature.clone(), serde_json::json!(value));
                    }
                    if let Some(bias) = row.last() {
                        object.insert("(bias)".into(), serde_json::json!(bias));
                    }
                    builder.append_value(serde_json::Value::Object(object).to_string());
                }
                Arc::new(builder.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}
