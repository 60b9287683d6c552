//! The functions row and masking policies are written with.
//!
//! Who is asking (constant for a session): `current_user()`, `current_roles()` (a list, for
//! `array_has(current_roles(), 'clinician')`) and `current_user_attr('facility')`.
//!
//! Masks: `mask_full(v)` (`****`), `mask_last4(v)` (letters and digits but the last four
//! become `*`, separators stay), `mask_email(v)` (`j***@example.org`), `pseudonym(v)` (an
//! HMAC-SHA-256 of the value under the lake's own key, so the same value gives the same
//! pseudonym and joins still work, while another lake gives another), `year_only(date)` (the
//! first of January of its year; text keeps its first four digits), `zip3(zip)` (the first
//! three digits, `000` for the three-digit areas of fewer than 20,000 people, as the HIPAA
//! Safe Harbor method requires) and `age_band(birth_date)` (five-year bands, `90+` above 89).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Builder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field};
use chrono::{Datelike, NaiveDate};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Who the session acts for, as the identity functions answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    pub(crate) user: String,
    pub(crate) roles: Vec<String>,
    pub(crate) attributes: Vec<(String, String)>,
}

/// Registers the identity functions for `identity` (again after a refresh: roles and
/// attributes may have changed).
pub(crate) fn register_identity(ctx: &SessionContext, identity: &Identity) {
    for kind in [
        IdKind::User,
        IdKind::SessionUser,
        IdKind::Roles,
        IdKind::Attr,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(IdentityFn::new(
            kind,
            identity.clone(),
        )));
    }
}

/// Registers the masking functions, `pseudonym` keyed with the lake's secret.
pub(crate) fn register_masks(ctx: &SessionContext, key: &[u8]) {
    for kind in [
        MaskKind::Full,
        MaskKind::Last4,
        MaskKind::Email,
        MaskKind::Zip3,
        MaskKind::AgeBand,
        MaskKind::YearOnly,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(MaskFn::new(kind)));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(Pseudonym {
        key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

/// The identity an identity function answers for; `None` for any other function.
pub(crate) fn identity_of(udf: &ScalarUDF) -> Option<&Identity> {
    udf.inner()
        .downcast_ref::<IdentityFn>()
        .map(|f| &f.identity)
}

/// The identity function called `name`, answering for `identity`.
pub(crate) fn identity_function(name: &str, identity: Identity) -> Option<ScalarUDF> {
    let kind = [
        IdKind::User,
        IdKind::SessionUser,
        IdKind::Roles,
        IdKind::Attr,
    ]
    .into_iter()
    .find(|k| k.name() == name)?;
    Some(ScalarUDF::new_from_impl(IdentityFn::new(kind, identity)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IdKind {
    User,
    /// The Postgres spelling (`SELECT current_user` arrives as `session_user()`).
    SessionUser,
    Roles,
    Attr,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IdentityFn {
    kind: IdKind,
    identity: Identity,
    signature: Signature,
}

impl IdentityFn {
    fn new(kind: IdKind, identity: Identity) -> Self {
        let signature = match kind {
            IdKind::Attr => Signature::string(1, Volatility::Stable),
            _ => Signature::nullary(Volatility::Stable),
        };
        Self {
            kind,
            identity,
            signature,
        }
    }
}

impl IdKind {
    fn name(self) -> &'static str {
        match self {
            IdKind::User => "current_user",
            IdKind::SessionUser => "session_user",
            IdKind::Roles => "current_roles",
            IdKind::Attr => "current_user_attr",
        }
    }
}

impl ScalarUDFImpl for IdentityFn {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            IdKind::Roles => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match self.kind {
            IdKind::User | IdKind::SessionUser => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                Some(self.identity.user.clone()),
            ))),
            IdKind::Roles => {
                let roles: Vec<ScalarValue> = self
                    .identity
                    .roles
                    .iter()
                    .map(|r| ScalarValue::Utf8(Some(r.clone())))
                    .collect();
                Ok(ColumnarValue::Scalar(ScalarValue::List(
                    ScalarValue::new_list_nullable(&roles, &DataType::Utf8),
                )))
            }
            IdKind::Attr => {
                let lookup = |key: &str| {
                    let key = key.to_ascii_lowercase();
                    self.identity
                        .attributes
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| v.clone())
                };
                match args.args.as_slice() {
                    [ColumnarValue::Scalar(s)] => {
                        let key = match s {
                            ScalarValue::Utf8(k)
                            | ScalarValue::Utf8View(k)
                            | ScalarValue::LargeUtf8(k) => k.clone(),
                            _ => None,
                        };
                        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                            key.as_deref().and_then(lookup),
                        )))
                    }
                    [ColumnarValue::Array(keys)] => {
                        let keys = arrow::compute::cast(keys, &DataType::Utf8)?;
                        let keys = keys.as_string::<i32>();
                        let out: StringArray = (0..keys.len())
                            .map(|i| (!keys.is_null(i)).then(|| lookup(keys.value(i))).flatten())
                            .collect();
                        Ok(ColumnarValue::Array(Arc::new(out)))
                    }
                    _ => exec_err!("current_user_attr takes one argument: the attribute's name"),
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MaskKind {
    Full,
    Last4,
    Email,
    Zip3,
    AgeBand,
    YearOnly,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MaskFn {
    kind: MaskKind,
    signature: Signature,
}

impl MaskFn {
    fn new(kind: MaskKind) -> Self {
        Self {
            kind,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// Three-digit ZIP areas of 20,000 people or fewer (2000 census), which Safe Harbor turns
/// into `000`.
const RESTRICTED_ZIP3: [&str; 17] = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893",
];

fn mask_last4(value: &str) -> String {
    let alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen + 4 <= alnum { '*' } else { c }
            } else {
                c
            }
        })
        .collect()
}

fn mask_email(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        _ => "****".into(),
    }
}

fn zip3(value: &str) -> Option<String> {
    let digits: String = value.chars().filter(char::is_ascii_digit).take(3).collect();
    if digits.len() < 3 {
        return None;
    }
    Some(if RESTRICTED_ZIP3.contains(&digits.as_str()) {
        "000".into()
    } else {
        digits
    })
}

/// Days since 1970-01-01 of a date.
fn epoch_days(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn date_of_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days as i64))
}

fn age_band(birth: NaiveDate, today: NaiveDate) -> Option<String> {
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    if age < 0 {
        return None;
    }
    Some(if age >= 90 {
        "90+".into()
    } else {
        let low = age / 5 * 5;
        format!("{low}-{}", low + 4)
    })
}

/// Dates of an array of dates, timestamps or ISO text (`None` where there is none).
fn dates(array: &ArrayRef) -> Result<Vec<Option<NaiveDate>>> {
    Ok(match array.data_type() {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            let text = arrow::compute::cast(array, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            (0..text.len())
                .map(|i| {
                    (!text.is_null(i))
                        .then(|| {
                            let t = text.value(i);
                            NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d").ok()
                        })
                        .flatten()
                })
                .collect()
        }
        _ => {
            let days = arrow::compute::cast(array, &DataType::Date32)?;
            let days = days.as_primitive::<arrow::datatypes::Date32Type>();
            (0..days.len())
                .map(|i| {
                    (!days.is_null(i))
                        .then(|| date_of_days(days.value(i)))
                        .flatten()
                })
                .collect()
        }
    })
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

impl ScalarUDFImpl for MaskFn {
    fn name(&self) -> &str {
        match self.kind {
            MaskKind::Full => "mask_full",
            MaskKind::Last4 => "mask_last4",
            MaskKind::Email => "mask_email",
            MaskKind::Zip3 => "zip3",
            MaskKind::AgeBand => "age_band",
            MaskKind::YearOnly => "year_only",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match (self.kind, arg_types.first()) {
            (MaskKind::YearOnly, Some(t)) if is_text(t) => DataType::Utf8,
            (MaskKind::YearOnly, _) => DataType::Date32,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(1)?;
        let out: ArrayRef = match self.kind {
            MaskKind::Full | MaskKind::Last4 | MaskKind::Email | MaskKind::Zip3 => {
                let text = arrow::compute::cast(&array, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                let mut out = StringBuilder::with_capacity(text.len(), text.len() * 8);
                for i in 0..text.len() {
                    if text.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let v = text.value(i);
                    match self.kind {
                        MaskKind::Full => out.append_value("****"),
                        MaskKind::Last4 => out.append_value(mask_last4(v)),
                        MaskKind::Email => out.append_value(mask_email(v)),
                        _ => out.append_option(zip3(v)),
                    }
                }
                Arc::new(out.finish())
            }
            MaskKind::AgeBand => {
                let today = chrono::Utc::now().date_naive();
                let out: StringArray = dates(&array)?
                    .into_iter()
                    .map(|d| d.and_then(|d| age_band(d, today)))
                    .collect();
                Arc::new(out)
            }
            MaskKind::YearOnly if is_text(array.data_type()) => {
                let text = arrow::compute::cast(&array, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                let out: StringArray = (0..text.len())
                    .map(|i| {
                        (!text.is_null(i))
                            .then(|| {
                                let year: String = text.value(i).chars().take(4).collect();
                                (year.len() == 4 && year.chars().all(|c| c.is_ascii_digit()))
                                    .then_some(year)
                            })
                            .flatten()
                    })
                    .collect();
                Arc::new(out)
            }
            MaskKind::YearOnly => {
                let mut out = Date32Builder::with_capacity(array.len());
                for d in dates(&array)? {
                    out.append_option(
                        d.and_then(|d| NaiveDate::from_ymd_opt(d.year(), 1, 1))
                            .map(epoch_days),
                    );
                }
                Arc::new(out.finish())
            }
        };
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// `pseudonym(value)`: `p_` and 20 hex digits of HMAC-SHA-256(lake key, value as text).
struct Pseudonym {
    key: ring::hmac::Key,
    signature: Signature,
}

impl std::fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonym")
    }
}

impl PartialEq for Pseudonym {
    fn eq(&self, _other: &Self) -> bool {
        // One per session, keyed by the lake: two are interchangeable only if they are one.
        std::ptr::eq(self, _other)
    }
}

impl Eq for Pseudonym {}

impl std::hash::Hash for Pseudonym {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "pseudonym".hash(state);
    }
}

impl ScalarUDFImpl for Pseudonym {
    fn name(&self) -> &str {
        "pseudonym"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("pseudonym takes one argument");
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(1)?;
        let text = arrow::compute::cast(&array, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(text.len(), text.len() * PSEUDONYM_LEN);
        let mut buffer = [0u8; PSEUDONYM_LEN];
        for i in 0..text.len() {
            if text.is_null(i) {
                out.append_null();
                continue;
            }
            let tag = ring::hmac::sign(&self.key, text.value(i).as_bytes());
            out.append_value(pseudonym_text(tag.as_ref(), &mut buffer));
        }
        let out: ArrayRef = Arc::new(out.finish());
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// `p_` and the first 10 bytes of a tag in hex.
const PSEUDONYM_LEN: usize = 22;

/// Writes a pseudonym into `buffer` without allocating (it runs once per row read).
fn pseudonym_text<'a>(tag: &[u8], buffer: &'a mut [u8; PSEUDONYM_LEN]) -> &'a str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buffer[0] = b'p';
    buffer[1] = b'_';
    for (i, b) in tag.iter().take((PSEUDONYM_LEN - 2) / 2).enumerate() {
        buffer[2 + 2 * i] = HEX[usize::from(b >> 4)];
        buffer[3 + 2 * i] = HEX[usize::from(b & 0x0f)];
    }
    std::str::from_utf8(buffer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_last4("123-45-6789"), "***-**-6789");
        assert_eq!(mask_last4("12"), "12");
        assert_eq!(mask_email("jane.doe@example.org"), "j***@example.org");
        assert_eq!(mask_email("nobody"), "****");
        assert_eq!(zip3("55455-1234").as_deref(), Some("554"));
        assert_eq!(zip3("03601").as_deref(), Some("000"));
        assert_eq!(zip3("12"), None);
    }

    #[test]
    fn age_bands() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(age_band(d(2026, 1, 1), today).as_deref(), Some("0-4"));
        assert_eq!(age_band(d(1986, 6, 15), today).as_deref(), Some("40-44"));
        assert_eq!(age_band(d(1986, 6, 16), today).as_deref(), Some("35-39"));
        assert_eq!(age_band(d(1936, 6, 16), today).as_deref(), Some("85-89"));
        assert_eq!(age_band(d(1936, 6, 15), today).as_deref(), Some("90+"));
        assert_eq!(age_band(d(2027, 1, 1), today), None);
    }
}
