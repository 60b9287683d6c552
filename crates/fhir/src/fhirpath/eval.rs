//! FHIRPath evaluation over FHIR JSON (`serde_json::Value`) without a schema.
//!
//! Choice elements (`value[x]`) are found by their JSON names (`valueQuantity`), and the suffix
//! gives the item its type for `ofType`, `is` and `as`. Items borrow from the resource, so a
//! path like `name.family` copies nothing.
//!
//! This file walks the expression (paths, indexers, `$this`, variables); the items are in
//! `item.rs`, the operators in `ops.rs`, the functions in `functions.rs`.

use std::collections::HashMap;

use serde_json::Value;

use super::functions::call;
use super::item::{Item, Prim};
use super::ops::binary;
use super::parse::Expr;
use crate::error::{Error, Result};

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
pub(super) struct Frame<'f, 'a> {
    pub(super) this: Option<&'f Item<'a>>,
    pub(super) index: Option<i64>,
}

/// Evaluates `expr` with `input` as its input collection.
pub fn evaluate<'a>(expr: &Expr, input: &[Item<'a>], env: &Env<'a>) -> Result<Vec<Item<'a>>> {
    let frame = Frame {
        this: input.first(),
        index: None,
    };
    eval(expr, input, env, frame)
}

pub(super) fn singleton_bool(items: &[Item<'_>], what: &str) -> Result<Option<bool>> {
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

pub(super) fn bool_result<'a>(b: Option<bool>) -> Vec<Item<'a>> {
    b.map(Item::Bool).into_iter().collect()
}

/// Children of a JSON node by member name, choice elements included.
pub(super) fn children<'a>(node: &'a Value, name: &str, out: &mut Vec<Item<'a>>) {
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

pub(super) fn eval<'a>(
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
