//! FHIRPath evaluation over FHIR JSON (`serde_json::Value`) without a schema.
//!
//! Choice elements (`value[x]`) are found by their JSON names (`valueQuantity`), and the suffix
//! gives the item its type for `ofType`, `is` and `as`. Items borrow from the resource, so a
//! path like `name.family` copies nothing.

use std::collections::HashMap;

use serde_json::Value;

use super::parse::{BinOp, Expr};
use crate::error::{Error, Result};

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
enum Prim<'b> {
    Bool(bool),
    Int(i64),
    Dec(f64, u32),
    Str(&'b str),
}

impl<'a> Item<'a> {
    fn prim(&self) -> Option<Prim<'_>> {
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
    fn type_name(&self) -> Option<String> {
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
    fn is_type(&self, ty: &str) -> bool {
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

/// Variables visible to an evaluation: `%name` constants, `%rowIndex`, `%resource`.
#[derive(Debug, Default, Clone)]
pub struct Env<'a> {
    /// `%name` → collection.
    pub vars: HashMap<String, Vec<Item<'a>>>,
    /// The resource (`%resource`, `%rootResource`, `getResourceKey()`).
    pub resource: Option<&'a Value>,
    /// `%rowIndex`.
    pub row_index: i64,
}

#[derive(Clone, Copy)]
struct Frame<'f, 'a> {
    this: Option<&'f Item<'a>>,
    index: Option<i64>,
}

/// Evaluates `expr` with `input` as its input collection.
pub fn evaluate<'a>(expr: &Expr, input: &[Item<'a>], env: &Env<'a>) -> Result<Vec<Item<'a>>> {
    let frame = Frame {
        this: input.first(),
        index: None,
    };
    eval(expr, input, env, frame)
}

fn singleton_bool(items: &[Item<'_>], what: &str) -> Result<Option<bool>> {
    match items {
        [] => Ok(None),
        [one] => match one.prim() {
            Some(Prim::Bool(b)) => Ok(Some(b)),
            // A single non-boolean item counts as true (FHIRPath singleton evaluation).
            _ => Ok(Some(true)),
        },
        _ => Err(Error::Eval(format!(
            "{what} expects a single boolean, got {} items",
            items.len()
        ))),
    }
}

fn bool_result<'a>(b: Option<bool>) -> Vec<Item<'a>> {
    b.map(Item::Bool).into_iter().collect()
}

/// Children of a JSON node by member name, choice elements included.
fn children<'a>(node: &'a Value, name: &str, out: &mut Vec<Item<'a>>) {
    let Value::Object(map) = node else { return };
    let push = |value: &'a Value, ty: Option<&'a str>, out: &mut Vec<Item<'a>>| match value {
        Value::Array(items) => out.extend(
            items
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| Item::Node(v, ty)),
        ),
        Value::Null => {}
        other => out.push(Item::Node(other, ty)),
    };
    if let Some(value) = map.get(name) {
        push(value, None, out);
        return;
    }
    for (key, value) in map {
        if let Some(suffix) = key.strip_prefix(name)
            && suffix.starts_with(|c: char| c.is_ascii_uppercase())
        {
            push(value, Some(suffix), out);
        }
    }
}

fn eval<'a>(
    expr: &Expr,
    input: &[Item<'a>],
    env: &Env<'a>,
    frame: Frame<'_, 'a>,
) -> Result<Vec<Item<'a>>> {
    Ok(match expr {
        Expr::Empty => Vec::new(),
        Expr::Bool(b) => vec![Item::Bool(*b)],
        Expr::Str(s) => vec![Item::Str(s.clone())],
        Expr::Int(i) => vec![Item::Int(*i)],
        Expr::Dec(d, p) => vec![Item::Dec(*d, *p)],
        Expr::Date(s) => vec![Item::Date(s.clone())],
        Expr::DateTime(s) => vec![Item::DateTime(s.clone())],
        Expr::Time(s) => vec![Item::Time(s.clone())],
        Expr::This => frame.this.cloned().into_iter().collect(),
        Expr::Index => frame.index.map(Item::Int).into_iter().collect(),
        Expr::Total => Vec::new(),
        Expr::Var(name) => match name.as_str() {
            "rowIndex" => vec![Item::Int(env.row_index)],
            "resource" | "rootResource" | "context" => env
                .resource
                .map(|r| Item::Node(r, None))
                .into_iter()
                .collect(),
            "ucum" => vec![Item::Str("http://unitsofmeasure.org".into())],
            "sct" => vec![Item::Str("http://snomed.info/sct".into())],
            "loinc" => vec![Item::Str("http://loinc.org".into())],
            _ => env
                .vars
                .get(name)
                .cloned()
                .ok_or_else(|| Error::Eval(format!("unknown constant %{name}")))?,
        },
        Expr::Member(focus, name) => {
            let base = match focus {
                Some(f) => eval(f, input, env, frame)?,
                None => {
                    // A leading resource type name selects the input resource itself.
                    if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                        let typed: Vec<Item<'a>> = input
                            .iter()
                            .filter(|i| matches!(i, Item::Node(Value::Object(o), _) if o.get("resourceType").and_then(Value::as_str) == Some(name)))
                            .cloned()
                            .collect();
                        if !typed.is_empty() {
                            return Ok(typed);
                        }
                    }
                    input.to_vec()
                }
            };
            let mut out = Vec::new();
            for item in &base {
                if let Item::Node(node, _) = item {
                    children(node, name, &mut out);
                }
            }
            out
        }
        Expr::Indexer(focus, index) => {
            let base = eval(focus, input, env, frame)?;
            let index = eval(index, input, env, frame)?;
            match index.first().and_then(Item::prim) {
                Some(Prim::Int(i)) if i >= 0 => {
                    base.into_iter().nth(i as usize).into_iter().collect()
                }
                Some(Prim::Int(_)) | None => Vec::new(),
                Some(_) => return Err(Error::Eval("an indexer needs an integer".into())),
            }
        }
        Expr::Neg(inner) => {
            let v = eval(inner, input, env, frame)?;
            match v.first().and_then(Item::prim) {
                Some(Prim::Int(i)) => vec![Item::Int(-i)],
                Some(Prim::Dec(d, p)) => vec![Item::Dec(-d, p)],
                None => Vec::new(),
                Some(_) => return Err(Error::Eval("unary minus needs a number".into())),
            }
        }
        Expr::TypeOp(is, inner, ty) => {
            let v = eval(inner, input, env, frame)?;
            if *is {
                match v.as_slice() {
                    [] => Vec::new(),
                    [one] => vec![Item::Bool(one.is_type(ty))],
                    _ => return Err(Error::Eval("`is` needs a single item".into())),
                }
            } else {
                v.into_iter().filter(|i| i.is_type(ty)).collect()
            }
        }
        Expr::Binary(op, left, right) => binary(*op, left, right, input, env, frame)?,
        Expr::Call(focus, name, args) => {
            let base = match focus {
                Some(f) => eval(f, input, env, frame)?,
                None => input.to_vec(),
            };
            call(name, base, args, input, env, frame)?
        }
    })
}

fn binary<'a>(
    op: BinOp,
    left: &Expr,
    right: &Expr,
    input: &[Item<'a>],
    env: &Env<'a>,
    frame: Frame<'_, 'a>,
) -> Result<Vec<Item<'a>>> {
    let l = eval(left, input, env, frame)?;
    // Short-circuit logic keeps three-valued semantics.
    if matches!(op, BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies) {
        let a = singleton_bool(&l, "a logical operator")?;
        match (op, a) {
            (BinOp::And, Some(false)) => return Ok(vec![Item::Bool(false)]),
            (BinOp::Or, Some(true)) => return Ok(vec![Item::Bool(true)]),
            (BinOp::Implies, Some(false)) => return Ok(vec![Item::Bool(true)]),
            _ => {}
        }
        let r = eval(right, input, env, frame)?;
        let b = singleton_bool(&r, "a logical operator")?;
        let result = match op {
            BinOp::And => match (a, b) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            BinOp::Or => match (a, b) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            BinOp::Xor => match (a, b) {
                (Some(x), Some(y)) => Some(x != y),
                _ => None,
            },
            _ => match (a, b) {
                (_, Some(true)) => Some(true),
                (Some(true), Some(false)) => Some(false),
                _ => None,
            },
        };
        return Ok(bool_result(result));
    }
    let r = eval(right, input, env, frame)?;
    Ok(match op {
        BinOp::Union => {
            let mut out: Vec<Item<'a>> = Vec::new();
            for item in l.into_iter().chain(r) {
                if !out.iter().any(|o| equal(o, &item) == Some(true)) {
                    out.push(item);
                }
            }
            out
        }
        BinOp::Eq | BinOp::Ne | BinOp::Equiv | BinOp::NotEquiv => {
            let equiv = matches!(op, BinOp::Equiv | BinOp::NotEquiv);
            let result = if l.is_empty() || r.is_empty() {
                if equiv {
                    Some(l.is_empty() && r.is_empty())
                } else {
                    None
                }
            } else if l.len() != r.len() {
                Some(false)
            } else {
                let mut all = Some(true);
                for (a, b) in l.iter().zip(&r) {
                    match if equiv {
                        Some(equivalent(a, b))
                    } else {
                        equal(a, b)
                    } {
                        Some(true) => {}
                        Some(false) => {
                            all = Some(false);
                            break;
                        }
                        None => all = None,
                    }
                }
                all
            };
            let negate = matches!(op, BinOp::Ne | BinOp::NotEquiv);
            bool_result(result.map(|b| b != negate))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            if l.is_empty() || r.is_empty() {
                return Ok(Vec::new());
            }
            if l.len() > 1 || r.len() > 1 {
                return Err(Error::Eval("a comparison needs single items".into()));
            }
            let ordering = compare(&l[0], &r[0])?;
            bool_result(ordering.map(|o| match op {
                BinOp::Lt => o.is_lt(),
                BinOp::Le => o.is_le(),
                BinOp::Gt => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        BinOp::In | BinOp::Contains => {
            let (element, collection) = if op == BinOp::In { (&l, &r) } else { (&r, &l) };
            match element.as_slice() {
                [] => Vec::new(),
                [one] => vec![Item::Bool(
                    collection.iter().any(|c| equal(c, one) == Some(true)),
                )],
                _ => return Err(Error::Eval("`in`/`contains` needs a single item".into())),
            }
        }
        BinOp::Concat => {
            let text = |c: &[Item<'_>]| -> Result<String> {
                match c {
                    [] => Ok(String::new()),
                    [one] => match one.prim() {
                        Some(Prim::Str(s)) => Ok(s.to_string()),
                        _ => Err(Error::Eval("`&` needs strings".into())),
                    },
                    _ => Err(Error::Eval("`&` needs single items".into())),
                }
            };
            vec![Item::Str(text(&l)? + &text(&r)?)]
        }
        _ => arithmetic(op, &l, &r)?,
    })
}

fn arithmetic<'a>(op: BinOp, l: &[Item<'a>], r: &[Item<'a>]) -> Result<Vec<Item<'a>>> {
    if l.is_empty() || r.is_empty() {
        return Ok(Vec::new());
    }
    if l.len() > 1 || r.len() > 1 {
        return Err(Error::Eval("arithmetic needs single items".into()));
    }
    let (a, b) = (l[0].prim(), r[0].prim());
    if let (BinOp::Add, Some(Prim::Str(x)), Some(Prim::Str(y))) = (op, &a, &b) {
        return Ok(vec![Item::Str(format!("{x}{y}"))]);
    }
    let num = |p: &Option<Prim<'_>>| -> Result<(f64, Option<i64>, u32)> {
        match p {
            Some(Prim::Int(i)) => Ok((*i as f64, Some(*i), 0)),
            Some(Prim::Dec(d, places)) => Ok((*d, None, *places)),
            _ => Err(Error::Eval("arithmetic needs numbers".into())),
        }
    };
    let (x, xi, xp) = num(&a)?;
    let (y, yi, yp) = num(&b)?;
    let places = xp.max(yp);
    Ok(match (op, xi, yi) {
        (BinOp::Add, Some(i), Some(j)) => i.checked_add(j).map(Item::Int).into_iter().collect(),
        (BinOp::Sub, Some(i), Some(j)) => i.checked_sub(j).map(Item::Int).into_iter().collect(),
        (BinOp::Mul, Some(i), Some(j)) => i.checked_mul(j).map(Item::Int).into_iter().collect(),
        (BinOp::IntDiv, Some(i), Some(j)) => i.checked_div(j).map(Item::Int).into_iter().collect(),
        (BinOp::Mod, Some(i), Some(j)) => i.checked_rem(j).map(Item::Int).into_iter().collect(),
        (BinOp::Add, ..) => vec![Item::Dec(x + y, places)],
        (BinOp::Sub, ..) => vec![Item::Dec(x - y, places)],
        (BinOp::Mul, ..) => vec![Item::Dec(x * y, xp + yp)],
        (BinOp::Div, ..) => {
            if y == 0.0 {
                Vec::new()
            } else {
                vec![Item::Dec(x / y, 8)]
            }
        }
        (BinOp::IntDiv, ..) => {
            if y == 0.0 {
                Vec::new()
            } else {
                vec![Item::Int((x / y).trunc() as i64)]
            }
        }
        (BinOp::Mod, ..) => {
            if y == 0.0 {
                Vec::new()
            } else {
                vec![Item::Dec(x % y, places)]
            }
        }
        _ => return Err(Error::Eval("unsupported arithmetic".into())),
    })
}

/// FHIRPath `=`: `None` when the answer is unknown (different date precisions).
fn equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    match (a.prim(), b.prim()) {
        (Some(x), Some(y)) => match (x, y) {
            (Prim::Int(i), Prim::Int(j)) => Some(i == j),
            (Prim::Int(i), Prim::Dec(d, _)) | (Prim::Dec(d, _), Prim::Int(i)) => {
                Some(i as f64 == d)
            }
            (Prim::Dec(d, _), Prim::Dec(e, _)) => Some(d == e),
            (Prim::Str(s), Prim::Str(t)) => {
                if is_temporal(a) || is_temporal(b) {
                    temporal_equal(s, t)
                } else {
                    Some(s == t)
                }
            }
            (Prim::Bool(x), Prim::Bool(y)) => Some(x == y),
            _ => Some(false),
        },
        (None, None) => match (a, b) {
            (Item::Node(x, _), Item::Node(y, _)) => Some(x == y),
            _ => Some(false),
        },
        _ => Some(false),
    }
}

fn is_temporal(item: &Item<'_>) -> bool {
    match item {
        Item::Date(_) | Item::DateTime(_) | Item::Time(_) => true,
        Item::Node(_, Some(_)) => matches!(
            item.type_name().as_deref(),
            Some("date" | "dateTime" | "instant" | "time")
        ),
        _ => false,
    }
}

/// Equality of date/time strings: equal text is equal; different precision is unknown.
fn temporal_equal(a: &str, b: &str) -> Option<bool> {
    if a == b {
        return Some(true);
    }
    let precision = |s: &str| s.chars().filter(|c| c.is_ascii_digit()).count().min(14);
    let (pa, pb) = (precision(a), precision(b));
    if pa != pb {
        // Compare the common prefix: a difference there decides.
        let common = pa.min(pb);
        let digits = |s: &str| {
            s.chars()
                .filter(|c| c.is_ascii_digit())
                .take(common)
                .collect::<String>()
        };
        if digits(a) != digits(b) {
            return Some(false);
        }
        return None;
    }
    Some(false)
}

fn equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a.prim(), b.prim()) {
        (Some(Prim::Str(s)), Some(Prim::Str(t))) => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            };
            norm(s) == norm(t)
        }
        _ => equal(a, b) == Some(true),
    }
}

fn compare(a: &Item<'_>, b: &Item<'_>) -> Result<Option<std::cmp::Ordering>> {
    Ok(match (a.prim(), b.prim()) {
        (Some(Prim::Int(i)), Some(Prim::Int(j))) => Some(i.cmp(&j)),
        (Some(Prim::Int(i)), Some(Prim::Dec(d, _))) => (i as f64).partial_cmp(&d),
        (Some(Prim::Dec(d, _)), Some(Prim::Int(i))) => d.partial_cmp(&(i as f64)),
        (Some(Prim::Dec(d, _)), Some(Prim::Dec(e, _))) => d.partial_cmp(&e),
        (Some(Prim::Str(s)), Some(Prim::Str(t))) => {
            if (is_temporal(a) || is_temporal(b)) && temporal_equal(s, t).is_none() {
                None
            } else {
                Some(s.cmp(t))
            }
        }
        _ => return Err(Error::Eval("these items cannot be compared".into())),
    })
}

fn arg_count(name: &str, args: &[Expr], allowed: std::ops::RangeInclusive<usize>) -> Result<()> {
    if allowed.contains(&args.len()) {
        Ok(())
    } else {
        Err(Error::Eval(format!(
            "{name}() takes {allowed:?} arguments, got {}",
            args.len()
        )))
    }
}

/// Evaluates an argument once, against the whole input of the expression.
fn arg_value<'a>(
    arg: &Expr,
    input: &[Item<'a>],
    env: &Env<'a>,
    frame: Frame<'_, 'a>,
) -> Result<Vec<Item<'a>>> {
    eval(arg, input, env, frame)
}

fn type_arg(name: &str, args: &[Expr]) -> Result<String> {
    match args {
        [Expr::Member(None, ty)] => Ok(ty.clone()),
        [Expr::Member(Some(_), ty)] => Ok(ty.clone()),
        _ => Err(Error::Eval(format!("{name}() needs a type name"))),
    }
}

fn string_arg<'a>(
    name: &str,
    arg: &Expr,
    input: &[Item<'a>],
    env: &Env<'a>,
    frame: Frame<'_, 'a>,
) -> Result<String> {
    let v = arg_value(arg, input, env, frame)?;
    match v.first().and_then(Item::prim) {
        Some(Prim::Str(s)) => Ok(s.to_string()),
        _ => Err(Error::Eval(format!("{name}() needs a string argument"))),
    }
}

fn single_string<'b>(base: &'b [Item<'_>], name: &str) -> Result<Option<&'b str>> {
    match base {
        [] => Ok(None),
        [one] => match one {
            Item::Node(Value::String(s), _) => Ok(Some(s)),
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Ok(Some(s)),
            _ => Err(Error::Eval(format!("{name}() needs a string"))),
        },
        _ => Err(Error::Eval(format!("{name}() needs a single item"))),
    }
}

fn call<'a>(
    name: &str,
    base: Vec<Item<'a>>,
    args: &[Expr],
    input: &[Item<'a>],
    env: &Env<'a>,
    frame: Frame<'_, 'a>,
) -> Result<Vec<Item<'a>>> {
    // Functions whose argument is evaluated per item, with `$this` the item.
    let per_item = |arg: &Expr, item: &Item<'a>, index: usize| -> Result<Vec<Item<'a>>> {
        let focus = std::slice::from_ref(item);
        eval(
            arg,
            focus,
            env,
            Frame {
                this: Some(item),
                index: Some(index as i64),
            },
        )
    };
    Ok(match name {
        "where" => {
            arg_count(name, args, 1..=1)?;
            let mut out = Vec::new();
            for (i, item) in base.iter().enumerate() {
                if singleton_bool(&per_item(&args[0], item, i)?, "where()")? == Some(true) {
                    out.push(item.clone());
                }
            }
            out
        }
        "select" => {
            arg_count(name, args, 1..=1)?;
            let mut out = Vec::new();
            for (i, item) in base.iter().enumerate() {
                out.extend(per_item(&args[0], item, i)?);
            }
            out
        }
        "repeat" => {
            arg_count(name, args, 1..=1)?;
            let mut out: Vec<Item<'a>> = Vec::new();
            let mut queue = base;
            let mut rounds = 0;
            while !queue.is_empty() && rounds < 10_000 {
                rounds += 1;
                let mut next = Vec::new();
                for (i, item) in queue.iter().enumerate() {
                    for child in per_item(&args[0], item, i)? {
                        if !out.iter().any(|o| equal(o, &child) == Some(true)) {
                            out.push(child.clone());
                            next.push(child);
                        }
                    }
                }
                queue = next;
            }
            out
        }
        "exists" => {
            arg_count(name, args, 0..=1)?;
            let found = match args.first() {
                None => !base.is_empty(),
                Some(criteria) => {
                    let mut any = false;
                    for (i, item) in base.iter().enumerate() {
                        if singleton_bool(&per_item(criteria, item, i)?, "exists()")? == Some(true)
                        {
                            any = true;
                            break;
                        }
                    }
                    any
                }
            };
            vec![Item::Bool(found)]
        }
        "all" => {
            arg_count(name, args, 1..=1)?;
            let mut all = true;
            for (i, item) in base.iter().enumerate() {
                if singleton_bool(&per_item(&args[0], item, i)?, "all()")? != Some(true) {
                    all = false;
                    break;
                }
            }
            vec![Item::Bool(all)]
        }
        "empty" => {
            arg_count(name, args, 0..=0)?;
            vec![Item::Bool(base.is_empty())]
        }
        "count" => {
            arg_count(name, args, 0..=0)?;
            vec![Item::Int(base.len() as i64)]
        }
        "first" => base.into_iter().next().into_iter().collect(),
        "last" => base.into_iter().last().into_iter().collect(),
        "tail" => base.into_iter().skip(1).collect(),
        "single" => match base.len() {
            0 | 1 => base,
            _ => return Err(Error::Eval("single() found more than one item".into())),
        },
        "skip" | "take" => {
            arg_count(name, args, 1..=1)?;
            let n = match arg_value(&args[0], input, env, frame)?
                .first()
                .and_then(Item::prim)
            {
                Some(Prim::Int(n)) => n.max(0) as usize,
                _ => return Err(Error::Eval(format!("{name}() needs an integer"))),
            };
            if name == "skip" {
                base.into_iter().skip(n).collect()
            } else {
                base.into_iter().take(n).collect()
            }
        }
        "distinct" => {
            let mut out: Vec<Item<'a>> = Vec::new();
            for item in base {
                if !out.iter().any(|o| equal(o, &item) == Some(true)) {
                    out.push(item);
                }
            }
            out
        }
        "not" => bool_result(singleton_bool(&base, "not()")?.map(|b| !b)),
        "hasValue" => vec![Item::Bool(base.len() == 1 && base[0].prim().is_some())],
        "iif" => {
            arg_count(name, args, 2..=3)?;
            let condition = singleton_bool(&arg_value(&args[0], input, env, frame)?, "iif()")?;
            if condition == Some(true) {
                arg_value(&args[1], input, env, frame)?
            } else if let Some(otherwise) = args.get(2) {
                arg_value(otherwise, input, env, frame)?
            } else {
                Vec::new()
            }
        }
        "ofType" => {
            let ty = type_arg(name, args)?;
            base.into_iter().filter(|i| i.is_type(&ty)).collect()
        }
        "is" => {
            let ty = type_arg(name, args)?;
            match base.as_slice() {
                [] => Vec::new(),
                [one] => vec![Item::Bool(one.is_type(&ty))],
                _ => return Err(Error::Eval("is() needs a single item".into())),
            }
        }
        "as" => {
            let ty = type_arg(name, args)?;
            base.into_iter().filter(|i| i.is_type(&ty)).collect()
        }
        "extension" => {
            arg_count(name, args, 1..=1)?;
            let url = string_arg(name, &args[0], input, env, frame)?;
            let mut out = Vec::new();
            for item in &base {
                if let Item::Node(node, _) = item {
                    let mut exts = Vec::new();
                    children(node, "extension", &mut exts);
                    out.extend(exts.into_iter().filter(|e| {
                        matches!(e, Item::Node(Value::Object(o), _) if o.get("url").and_then(Value::as_str) == Some(url.as_str()))
                    }));
                }
            }
            out
        }
        "join" => {
            arg_count(name, args, 0..=1)?;
            let separator = match args.first() {
                Some(arg) => string_arg(name, arg, input, env, frame)?,
                None => String::new(),
            };
            let mut parts = Vec::new();
            for item in &base {
                match item.prim() {
                    Some(Prim::Str(s)) => parts.push(s.to_string()),
                    _ => return Err(Error::Eval("join() needs strings".into())),
                }
            }
            vec![Item::Str(parts.join(&separator))]
        }
        "getResourceKey" => {
            arg_count(name, args, 0..=0)?;
            let mut out = Vec::new();
            for item in &base {
                if let Item::Node(Value::Object(o), _) = item
                    && let Some(id) = o.get("id").and_then(Value::as_str)
                {
                    out.push(Item::Str(id.to_string()));
                }
            }
            out
        }
        "getReferenceKey" => {
            arg_count(name, args, 0..=1)?;
            let wanted = if args.is_empty() {
                None
            } else {
                Some(type_arg(name, args)?)
            };
            let mut out = Vec::new();
            for item in &base {
                if let Item::Node(Value::Object(o), _) = item
                    && let Some(reference) = o.get("reference").and_then(Value::as_str)
                    && let Some((ty, id)) = reference_parts(reference)
                    && wanted.as_deref().is_none_or(|w| match ty {
                        Some(ty) => ty == w,
                        // `urn:uuid:` references say no type; `Reference.type` may.
                        None => o.get("type").and_then(Value::as_str).is_none_or(|t| t == w),
                    })
                {
                    out.push(Item::Str(id.to_string()));
                }
            }
            out
        }
        "lowBoundary" | "highBoundary" => {
            let high = name == "highBoundary";
            let mut out = Vec::new();
            for item in &base {
                if let Some(b) = boundary(item, high) {
                    out.push(b);
                }
            }
            out
        }
        "toString" => match single_string(&base, name) {
            Ok(Some(s)) => vec![Item::Str(s.to_string())],
            Ok(None) => Vec::new(),
            Err(_) => match base.first().and_then(Item::prim) {
                Some(Prim::Int(i)) => vec![Item::Str(i.to_string())],
                Some(Prim::Dec(d, _)) => vec![Item::Str(d.to_string())],
                Some(Prim::Bool(b)) => vec![Item::Str(b.to_string())],
                _ => Vec::new(),
            },
        },
        "toInteger" => match base.first().and_then(Item::prim) {
            Some(Prim::Int(i)) => vec![Item::Int(i)],
            Some(Prim::Str(s)) => s.parse().map(Item::Int).into_iter().collect(),
            Some(Prim::Bool(b)) => vec![Item::Int(b as i64)],
            _ => Vec::new(),
        },
        "toDecimal" => match base.first().and_then(Item::prim) {
            Some(Prim::Int(i)) => vec![Item::Dec(i as f64, 0)],
            Some(Prim::Dec(d, p)) => vec![Item::Dec(d, p)],
            Some(Prim::Str(s)) => s
                .parse()
                .map(|d| Item::Dec(d, s.split_once('.').map_or(0, |(_, f)| f.len() as u32)))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        },
        "length" => match single_string(&base, name)? {
            Some(s) => vec![Item::Int(s.chars().count() as i64)],
            None => Vec::new(),
        },
        "lower" | "upper" | "trim" => match single_string(&base, name)? {
            Some(s) => vec![Item::Str(match name {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                _ => s.trim().to_string(),
            })],
            None => Vec::new(),
        },
        "startsWith" | "endsWith" | "contains" | "matches" => {
            arg_count(name, args, 1..=1)?;
            let pattern = string_arg(name, &args[0], input, env, frame)?;
            match single_string(&base, name)? {
                Some(s) => vec![Item::Bool(match name {
                    "startsWith" => s.starts_with(&pattern),
                    "endsWith" => s.ends_with(&pattern),
                    "contains" => s.contains(&pattern),
                    _ => {
                        return Err(Error::Eval(
                            "matches() (regular expressions) is not supported".into(),
                        ));
                    }
                })],
                None => Vec::new(),
            }
        }
        "substring" => {
            arg_count(name, args, 1..=2)?;
            let int = |arg: &Expr| -> Result<Option<i64>> {
                Ok(
                    match arg_value(arg, input, env, frame)?
                        .first()
                        .and_then(Item::prim)
                    {
                        Some(Prim::Int(i)) => Some(i),
                        _ => None,
                    },
                )
            };
            let start = int(&args[0])?;
            let length = match args.get(1) {
                Some(a) => int(a)?,
                None => None,
            };
            match (single_string(&base, name)?, start) {
                (Some(s), Some(start)) if start >= 0 && (start as usize) < s.chars().count() => {
                    let chars = s.chars().skip(start as usize);
                    let text: String = match length {
                        Some(l) => chars.take(l.max(0) as usize).collect(),
                        None => chars.collect(),
                    };
                    vec![Item::Str(text)]
                }
                _ => Vec::new(),
            }
        }
        "trace" => base,
        other => return Err(Error::Eval(format!("function {other}() is not supported"))),
    })
}

/// Splits a reference into (resource type, id): `Patient/p1`, `http://x/fhir/Patient/p1`,
/// `Patient/p1/_history/2`, `urn:uuid:…`.
fn reference_parts(reference: &str) -> Option<(Option<&str>, &str)> {
    if let Some(uuid) = reference
        .strip_prefix("urn:uuid:")
        .or_else(|| reference.strip_prefix("urn:oid:"))
    {
        return Some((None, uuid));
    }
    // Local (`#contained`) and conditional (`Type?identifier=…`) references have no key.
    if reference.starts_with('#') || reference.contains('?') {
        return None;
    }
    let path = reference
        .split_once("/_history/")
        .map_or(reference, |(p, _)| p);
    let mut parts = path.rsplit('/');
    let id = parts.next()?;
    let ty = parts.next();
    if id.is_empty() {
        return None;
    }
    Some((ty, id))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        chrono::NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt())
        .map_or(31, |d| chrono::Datelike::day(&d))
}

/// `lowBoundary()` / `highBoundary()` of a decimal, date, dateTime or time.
fn boundary<'a>(item: &Item<'a>, high: bool) -> Option<Item<'a>> {
    let kind = item.type_name();
    match item.prim()? {
        Prim::Int(i) => Some(Item::Dec(i as f64 + if high { 0.5 } else { -0.5 }, 1)),
        Prim::Dec(d, places) => {
            let half = 0.5 * 10f64.powi(-(places as i32));
            let value = if high { d + half } else { d - half };
            let scale = 10f64.powi(places as i32 + 1);
            Some(Item::Dec((value * scale).round() / scale, places + 1))
        }
        Prim::Str(s) => {
            let kind = kind.as_deref();
            if kind == Some("time")
                || (kind != Some("date") && kind != Some("dateTime") && looks_like_time(s))
            {
                return time_boundary(s, high).map(Item::Time);
            }
            let (date_part, time_part) = match s.split_once('T') {
                Some((d, t)) => (d, Some(t)),
                None => (s, None),
            };
            let mut pieces = date_part.split('-');
            let year: i32 = pieces.next()?.parse().ok()?;
            let month: Option<u32> = pieces.next().map(|m| m.parse().ok()).unwrap_or(None);
            let day: Option<u32> = pieces.next().map(|d| d.parse().ok()).unwrap_or(None);
            let month_v = month.unwrap_or(if high { 12 } else { 1 });
            let day_v = day.unwrap_or(if high {
                days_in_month(year, month_v)
            } else {
                1
            });
            let date = format!("{year:04}-{month_v:02}-{day_v:02}");
            let is_date = kind == Some("date")
                || (kind != Some("dateTime") && kind != Some("instant") && time_part.is_none());
            if is_date {
                return Some(Item::Date(date));
            }
            let (clock, zone) = match time_part {
                Some(t) => {
                    let split = t.find(['Z', '+', '-']).unwrap_or(t.len());
                    (
                        Some(&t[..split]),
                        Some(&t[split..]).filter(|z| !z.is_empty()),
                    )
                }
                None => (None, None),
            };
            let clock = match clock {
                Some(c) => time_boundary(c, high)?,
                None => (if high { "23:59:59.999" } else { "00:00:00.000" }).to_string(),
            };
            let zone = zone
                .map(str::to_string)
                .unwrap_or_else(|| (if high { "-12:00" } else { "+14:00" }).to_string());
            Some(Item::DateTime(format!("{date}T{clock}{zone}")))
        }
        Prim::Bool(_) => None,
    }
}

fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[2] == b':' && b[..2].iter().all(u8::is_ascii_digit)
}

fn time_boundary(s: &str, high: bool) -> Option<String> {
    let (main, fraction) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    let mut parts = main.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: Option<u32> = parts.next().and_then(|m| m.parse().ok());
    let sec: Option<u32> = parts.next().and_then(|x| x.parse().ok());
    let m = m.unwrap_or(if high { 59 } else { 0 });
    let sec = sec.unwrap_or(if high { 59 } else { 0 });
    let ms = match fraction {
        Some(f) => {
            let mut digits: String = f.chars().take(3).collect();
            while digits.len() < 3 {
                digits.push(if high { '9' } else { '0' });
            }
            digits
        }
        None => (if high { "999" } else { "000" }).to_string(),
    };
    Some(format!("{h:02}:{m:02}:{sec:02}.{ms}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhirpath::parse::parse;
    use serde_json::json;

    fn run(path: &str, resource: &Value) -> Vec<Value> {
        let env = Env {
            resource: Some(resource),
            ..Env::default()
        };
        let input = [Item::Node(resource, None)];
        evaluate(&parse(path).unwrap(), &input, &env)
            .unwrap()
            .iter()
            .map(Item::to_json)
            .collect()
    }

    #[test]
    fn paths_and_functions() {
        let patient = json!({"resourceType": "Patient", "id": "p1",
            "name": [{"use": "official", "family": "A", "given": ["B", "C"]}, {"family": "D"}],
            "deceasedBoolean": false,
            "link": [{"other": {"reference": "Patient/p9/_history/2"}}]});
        assert_eq!(run("name.family", &patient), vec![json!("A"), json!("D")]);
        assert_eq!(run("Patient.name[1].family", &patient), vec![json!("D")]);
        assert_eq!(run("name.given.join(', ')", &patient), vec![json!("B, C")]);
        assert_eq!(
            run("name.where(use = 'official').given.count()", &patient),
            vec![json!(2)]
        );
        assert_eq!(
            run("deceased.ofType(boolean)", &patient),
            vec![json!(false)]
        );
        assert_eq!(
            run("deceased.ofType(dateTime)", &patient),
            Vec::<Value>::new()
        );
        assert_eq!(
            run("link.other.getReferenceKey(Patient)", &patient),
            vec![json!("p9")]
        );
        assert_eq!(run("getResourceKey()", &patient), vec![json!("p1")]);
        assert_eq!(
            run("name.exists() and name.empty().not()", &patient),
            vec![json!(true)]
        );
        assert_eq!(run("{} = 1", &patient), Vec::<Value>::new());
        assert_eq!(run("(1 | 2 | 2).count()", &patient), vec![json!(2)]);
        assert_eq!(run("7 div 2 + 7 mod 2", &patient), vec![json!(4)]);
    }

    #[test]
    fn boundaries() {
        let o = json!({"v": 1.0, "d": "2010-10", "t": "12:34"});
        assert_eq!(run("v.lowBoundary()", &o), vec![json!(0.95)]);
        assert_eq!(run("v.highBoundary()", &o), vec![json!(1.05)]);
        assert_eq!(run("d.highBoundary()", &o), vec![json!("2010-10-31")]);
        assert_eq!(run("t.lowBoundary()", &o), vec![json!("12:34:00.000")]);
        assert_eq!(
            run("@2010-10-10T10:00.highBoundary()", &o),
            vec![json!("2010-10-10T10:00:59.999-12:00")]
        );
    }
}
