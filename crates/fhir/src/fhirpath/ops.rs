//! FHIRPath operators: boolean logic, arithmetic, equality and equivalence, comparison.

use super::eval::{Env, Frame, bool_result, eval, singleton_bool};
use super::item::{Item, Prim};
use super::parse::{BinOp, Expr};
use crate::error::{Error, Result};

pub(super) fn binary<'a>(
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
pub(super) fn equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
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
