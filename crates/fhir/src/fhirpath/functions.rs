//! FHIRPath functions (`where`, `exists`, `ofType`, `getReferenceKey`, `lowBoundary`, ...)
//! and their arguments.

use serde_json::Value;

use super::eval::{Env, Frame, bool_result, children, eval, singleton_bool};
use super::item::{Item, Prim};
use super::ops::equal;
use super::parse::Expr;
use crate::error::{Error, Result};

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

pub(super) fn call<'a>(
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
