//! Standardisation functions in SQL, over `carelake-standard`:
//!
//! - `icd10_normalize(code)`, `cpt_normalize(code)`, `phone_normalize(text)`,
//!   `zip_normalize(text)`: the value in its one form, NULL when invalid;
//! - `icd10_invalid_reason(code)`, `cpt_invalid_reason(code)`, `loinc_invalid_reason(code)`,
//!   `phone_invalid_reason(text)`, `zip_invalid_reason(text)`: why a value is invalid, NULL
//!   when it is valid (or NULL) — so curated tables flag values instead of dropping them;
//! - `icd10_chapter(code)`: the ICD-10-CM chapter number;
//! - `sex_code(text)`: male, female, other or unknown;
//! - `ucum_code(unit)`: the UCUM code of a unit as commonly written (`lbs` → `[lb_av]`);
//! - `ucum_convert(value, from_unit, to_unit [, analyte])`: the value in another unit, NULL
//!   when the units do not convert (analyte, a LOINC code or name, for mg/dL ↔ mmol/L);
//! - `to_utc(local_time, 'America/Chicago')`: a wall-clock time without offset, read in that
//!   zone, as a UTC timestamp (NULL for a time the zone skips, or an unknown zone).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use carelake_standard::{contact, cpt, icd10, loinc, ucum};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// A function of one text argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TextFunction {
    Icd10Normalize,
    Icd10Reason,
    Icd10Chapter,
    CptNormalize,
    CptReason,
    LoincReason,
    PhoneNormalize,
    PhoneReason,
    ZipNormalize,
    ZipReason,
    SexCode,
    UcumCode,
}

impl TextFunction {
    const ALL: [TextFunction; 12] = [
        TextFunction::Icd10Normalize,
        TextFunction::Icd10Reason,
        TextFunction::Icd10Chapter,
        TextFunction::CptNormalize,
        TextFunction::CptReason,
        TextFunction::LoincReason,
        TextFunction::PhoneNormalize,
        TextFunction::PhoneReason,
        TextFunction::ZipNormalize,
        TextFunction::ZipReason,
        TextFunction::SexCode,
        TextFunction::UcumCode,
    ];

    fn name(self) -> &'static str {
        match self {
            TextFunction::Icd10Normalize => "icd10_normalize",
            TextFunction::Icd10Reason => "icd10_invalid_reason",
            TextFunction::Icd10Chapter => "icd10_chapter",
            TextFunction::CptNormalize => "cpt_normalize",
            TextFunction::CptReason => "cpt_invalid_reason",
            TextFunction::LoincReason => "loinc_invalid_reason",
            TextFunction::PhoneNormalize => "phone_normalize",
            TextFunction::PhoneReason => "phone_invalid_reason",
            TextFunction::ZipNormalize => "zip_normalize",
            TextFunction::ZipReason => "zip_invalid_reason",
            TextFunction::SexCode => "sex_code",
            TextFunction::UcumCode => "ucum_code",
        }
    }

    fn apply(self, value: &str) -> Option<String> {
        let reason = |r: Result<String, &str>| r.err().map(str::to_string);
        match self {
            TextFunction::Icd10Normalize => icd10::normalize(value).ok(),
            TextFunction::Icd10Reason => reason(icd10::normalize(value)),
            TextFunction::Icd10Chapter => icd10::chapter(value).map(|c| c.to_string()),
            TextFunction::CptNormalize => cpt::normalize(value).ok(),
            TextFunction::CptReason => reason(cpt::normalize(value)),
            TextFunction::LoincReason => loinc::check(value).err().map(str::to_string),
            TextFunction::PhoneNormalize => contact::phone(value).ok(),
            TextFunction::PhoneReason => reason(contact::phone(value)),
            TextFunction::ZipNormalize => contact::zip(value).ok(),
            TextFunction::ZipReason => reason(contact::zip(value)),
            TextFunction::SexCode => Some(contact::sex(value).to_string()),
            TextFunction::UcumCode => ucum::code(value).map(str::to_string),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextUdf {
    function: TextFunction,
    signature: Signature,
}

impl ScalarUDFImpl for TextUdf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        // Codes loaded from CSV may have been read as numbers (CPT 99213): any type is text.
        match arg_types.len() {
            1 => Ok(vec![DataType::Utf8]),
            _ => exec_err!("{} takes one argument", self.function.name()),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            TextFunction::Icd10Chapter => DataType::Int64,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [input] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", self.function.name());
        };
        let input = arrow::compute::cast(input, &DataType::Utf8)?;
        let input = input.as_string::<i32>();
        let out: ArrayRef = if self.function == TextFunction::Icd10Chapter {
            let mut out = Int64Builder::with_capacity(input.len());
            for value in input.iter() {
                out.append_option(
                    value
                        .and_then(|v| self.function.apply(v))
                        .and_then(|c| c.parse().ok()),
                );
            }
            Arc::new(out.finish())
        } else {
            let mut out = StringBuilder::with_capacity(input.len(), input.len() * 8);
            for value in input.iter() {
                out.append_option(value.and_then(|v| self.function.apply(v)));
            }
            Arc::new(out.finish())
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `ucum_convert(value, from_unit, to_unit [, analyte])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UcumConvert {
    signature: Signature,
}

impl ScalarUDFImpl for UcumConvert {
    fn name(&self) -> &str {
        "ucum_convert"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types.len() {
            3 => Ok(vec![DataType::Float64, DataType::Utf8, DataType::Utf8]),
            4 => Ok(vec![
                DataType::Float64,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
            ]),
            _ => exec_err!("ucum_convert(value, from_unit, to_unit [, analyte])"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if arrays.len() < 3 {
            return exec_err!("ucum_convert(value, from_unit, to_unit [, analyte])");
        }
        let values = arrow::compute::cast(&arrays[0], &DataType::Float64)?;
        let values = values.as_primitive::<arrow::datatypes::Float64Type>();
        let text = |i: usize| arrow::compute::cast(&arrays[i], &DataType::Utf8);
        let (from, to) = (text(1)?, text(2)?);
        let (from, to) = (from.as_string::<i32>(), to.as_string::<i32>());
        let analyte = arrays.get(3).map(|_| text(3)).transpose()?;
        let analyte = analyte.as_ref().map(|a| a.as_string::<i32>());
        let mut out = Float64Builder::with_capacity(values.len());
        for i in 0..values.len() {
            let converted = match (values.is_valid(i), from.is_valid(i), to.is_valid(i)) {
                (true, true, true) => ucum::convert(
                    values.value(i),
                    from.value(i),
                    to.value(i),
                    analyte.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                )
                .ok(),
                _ => None,
            };
            out.append_option(converted);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `to_utc(local_time, zone)`: a wall-clock time without offset, read in an IANA zone, as UTC.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToUtc {
    signature: Signature,
}

const MICROS: DataType = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None);

impl ScalarUDFImpl for ToUtc {
    fn name(&self) -> &str {
        "to_utc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types.len() {
            2 => Ok(vec![MICROS, DataType::Utf8]),
            _ => exec_err!("to_utc(local_time, 'Area/City')"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [times, zones] = arrays.as_slice() else {
            return exec_err!("to_utc(local_time, 'Area/City')");
        };
        let times = arrow::compute::cast(times, &MICROS)?;
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let zones = arrow::compute::cast(zones, &DataType::Utf8)?;
        let zones = zones.as_string::<i32>();
        let mut out = arrow::array::TimestampMicrosecondBuilder::with_capacity(times.len())
            .with_timezone("UTC");
        for i in 0..times.len() {
            let utc = (times.is_valid(i) && zones.is_valid(i))
                .then(|| chrono::DateTime::from_timestamp_micros(times.value(i)))
                .flatten()
                .and_then(|local| {
                    carelake_standard::time::to_utc(local.naive_utc(), zones.value(i)).ok()
                });
            out.append_option(utc.map(|t| t.timestamp_micros()));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Registers the standardisation functions.
pub(crate) fn register(ctx: &SessionContext) {
    for function in TextFunction::ALL {
        ctx.register_udf(ScalarUDF::new_from_impl(TextUdf {
            function,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(UcumConvert {
        signature: Signature::user_defined(Volatility::Immutable),
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(ToUtc {
        signature: Signature::user_defined(Volatility::Immutable),
    }));
}
