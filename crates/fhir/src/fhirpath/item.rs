//! The items of a FHIRPath collection: JSON nodes borrowed from the resource, and values the
//! evaluation made, with their FHIR types.

use serde_json::Value;

/// FHIR primitive type names (a choice suffix `DateTime` is the primitive `dateTime`).
const PRIMITIVES: &[&str] = &[
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "integer64",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
];

/// One item of a FHIRPath collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A node of the resource (or of a constant), with its type when it was known from a
    /// choice element's name.
    Node(&'a Value, Option<&'a str>),
    /// A computed boolean.
    Bool(bool),
    /// A computed integer.
    Int(i64),
    /// A computed decimal and its decimal places.
    Dec(f64, u32),
    /// A computed string.
    Str(String),
    /// A date literal or computed date.
    Date(String),
    /// A dateTime literal or computed dateTime.
    DateTime(String),
    /// A time literal or computed time.
    Time(String),
}

/// A primitive view of an item, for comparison and arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Prim<'b> {
    Bool(bool),
    Int(i64),
    Dec(f64, u32),
    Str(&'b str),
}

impl<'a> Item<'a> {
    pub(super) fn prim(&self) -> Option<Prim<'_>> {
        Some(match self {
            Item::Node(v, _) => match v {
                Value::Bool(b) => Prim::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => Prim::Int(i),
                    None => {
                        let f = n.as_f64()?;
                        Prim::Dec(f, decimal_places(f))
                    }
                },
                Value::String(s) => Prim::Str(s),
                _ => return None,
            },
            Item::Bool(b) => Prim::Bool(*b),
            Item::Int(i) => Prim::Int(*i),
            Item::Dec(d, p) => Prim::Dec(*d, *p),
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Prim::Str(s),
        })
    }

    /// The item as JSON, for a view column.
    pub fn to_json(&self) -> Value {
        match self {
            Item::Node(v, _) => (*v).clone(),
            Item::Bool(b) => Value::Bool(*b),
            Item::Int(i) => Value::from(*i),
            Item::Dec(d, _) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => {
                Value::String(s.clone())
            }
        }
    }

    /// The item's FHIR type name when known.
    pub(super) fn type_name(&self) -> Option<String> {
        Some(match self {
            Item::Node(_, Some(suffix)) => {
                let mut chars = suffix.chars();
                let first = chars.next()?;
                let lowered: String = first.to_lowercase().chain(chars).collect();
                if PRIMITIVES.contains(&lowered.as_str()) {
                    lowered
                } else {
                    (*suffix).to_string()
                }
            }
            Item::Node(v, None) => match v {
                Value::Bool(_) => "boolean".into(),
                Value::Number(n) if n.is_f64() => "decimal".into(),
                Value::Number(_) => "integer".into(),
                Value::Object(o) => o.get("resourceType")?.as_str()?.to_string(),
                _ => return None,
            },
            Item::Bool(_) => "boolean".into(),
            Item::Int(_) => "integer".into(),
            Item::Dec(..) => "decimal".into(),
            Item::Str(_) => "string".into(),
            Item::Date(_) => "date".into(),
            Item::DateTime(_) => "dateTime".into(),
            Item::Time(_) => "time".into(),
        })
    }

    /// Whether the item is of type `ty` (namespace stripped). Without type information a JSON
    /// string passes any string-like primitive and an object any complex type.
    pub(super) fn is_type(&self, ty: &str) -> bool {
        let ty = ty.rsplit('.').next().unwrap_or(ty);
        if let Some(known) = self.type_name() {
            if known == ty {
                return true;
            }
            // System types for FHIR primitives.
            return matches!(
                (known.as_str(), ty),
                ("boolean", "Boolean")
                    | ("integer" | "positiveInt" | "unsignedInt", "Integer")
                    | ("decimal", "Decimal")
                    | (
                        "string"
                            | "code"
                            | "id"
                            | "uri"
                            | "url"
                            | "canonical"
                            | "oid"
                            | "uuid"
                            | "markdown",
                        "String"
                    )
                    | ("date", "Date")
                    | ("dateTime" | "instant", "DateTime")
                    | ("time", "Time")
            );
        }
        match self {
            Item::Node(Value::String(_), None) => {
                ty == "String"
                    || (ty.starts_with(|c: char| c.is_ascii_lowercase())
                        && !matches!(
                            ty,
                            "boolean" | "integer" | "decimal" | "positiveInt" | "unsignedInt"
                        ))
            }
            Item::Node(Value::Object(_), None) => ty.starts_with(|c: char| c.is_ascii_uppercase()),
            _ => false,
        }
    }
}

/// Decimal places of a JSON decimal (at least one: `1.0` was written with a fraction).
fn decimal_places(f: f64) -> u32 {
    let text = format!("{f}");
    match text.split_once('.') {
        Some((_, fraction)) if !text.contains('e') => fraction.len() as u32,
        _ => 1,
    }
}
