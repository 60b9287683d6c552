//! carelake's own SQL functions.
//!
//! - `hl7_field(message, path)`: one field of an HL7 v2 message by its path, escape-decoded,
//!   e.g. `hl7_field(raw_text, 'PID-5.1')` (family name), `'PID-3(2).1'` (second identifier),
//!   `'OBX[2]-5'` (value of the second OBX). NULL when the field is empty or absent, or when the
//!   message cannot be parsed.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers carelake's functions in a context.
pub(crate) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(Hl7Field::new()));
    crate::standard::register(ctx);
    crate::risk::register(ctx);
}

/// `hl7_field(message, path)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Hl7Field {
    signature: Signature,
}

impl Hl7Field {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8View, DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::LargeUtf8, DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8View, DataType::Utf8View]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8View]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

fn field_of(message: &str, path: &str) -> Option<String> {
    let message = carelake_hl7::Message::parse(message).ok()?;
    message
        .get(path)
        .map(|v| v.into_owned())
        .filter(|v| !v.is_empty())
}

fn strings(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(array, &DataType::Utf8)?)
}

impl ScalarUDFImpl for Hl7Field {
    fn name(&self) -> &str {
        "hl7_field"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [message, path] = args.args.as_slice() else {
            return exec_err!(
                "hl7_field takes two arguments: the message and a path like 'PID-5.1'"
            );
        };
        // The common case: a constant path over a column of messages.
        if let ColumnarValue::Scalar(scalar) = path {
            let path = match scalar {
                ScalarValue::Utf8(p) | ScalarValue::Utf8View(p) | ScalarValue::LargeUtf8(p) => {
                    p.clone()
                }
                _ => None,
            };
            let Some(path) = path else {
                return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
            };
            if !carelake_hl7::is_valid_path(&path) {
                return exec_err!(
                    "hl7_field: '{path}' is not a field path like PID-5.1, PID-3(2).1 or OBX[2]-5"
                );
            }
            return match message {
                ColumnarValue::Scalar(m) => {
                    let text = match m {
                        ScalarValue::Utf8(t)
                        | ScalarValue::Utf8View(t)
                        | ScalarValue::LargeUtf8(t) => {
                            t.as_deref().and_then(|t| field_of(t, &path))
                        }
                        _ => None,
                    };
                    Ok(ColumnarValue::Scalar(ScalarValue::Utf8(text)))
                }
                ColumnarValue::Array(array) => {
                    let array = strings(array)?;
                    let array = array.as_string::<i32>();
                    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 8);
                    for i in 0..array.len() {
                        if array.is_null(i) {
                            out.append_null();
                        } else {
                            out.append_option(field_of(array.value(i), &path));
                        }
                    }
                    Ok(ColumnarValue::Array(Arc::new(out.finish())))
                }
            };
        }
        // Paths that vary per row.
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (messages, paths) = (strings(&arrays[0])?, strings(&arrays[1])?);
        let (messages, paths) = (messages.as_string::<i32>(), paths.as_string::<i32>());
        let mut out = StringBuilder::with_capacity(messages.len(), messages.len() * 8);
        for i in 0..messages.len() {
            if messages.is_null(i) || paths.is_null(i) {
                out.append_null();
            } else {
                out.append_option(field_of(messages.value(i), paths.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
