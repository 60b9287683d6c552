//! SQL-on-FHIR v2 ViewDefinitions: parsed and checked once, then evaluated per resource into
//! rows.
//!
//! A view's `select` is a tree. Each node has columns, nested selects, an optional iteration
//! (`forEach`, `forEachOrNull` or `repeat`) and `unionAll` branches. For every focus, the
//! node's row is the cross product of its columns, each nested select's rows and the union of
//! its branches' rows. Column order is columns, nested selects, then `unionAll`.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fhirpath::{Env, Expr, Item, evaluate, parse};

/// One output column of a view.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// The FHIR type the view declares (`string`, `integer`, `boolean`, …), if any.
    pub fhir_type: Option<String>,
    /// Whether the column holds a list.
    pub collection: bool,
    /// The column's description, if any.
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
struct Column {
    spec: ColumnSpec,
    path: Expr,
}

#[derive(Debug, Clone)]
enum Iteration {
    ForEach(Expr),
    ForEachOrNull(Expr),
    Repeat(Vec<Expr>),
}

#[derive(Debug, Clone, Default)]
struct Select {
    columns: Vec<Column>,
    selects: Vec<Select>,
    iteration: Option<Iteration>,
    union_all: Vec<Select>,
}

/// A parsed SQL-on-FHIR v2 ViewDefinition.
#[derive(Debug, Clone)]
pub struct ViewDefinition {
    name: Option<String>,
    resource: String,
    description: Option<String>,
    constants: Vec<(String, Value, String)>,
    root: Select,
    filters: Vec<Expr>,
    json: Value,
}

type Row = Vec<Value>;

fn view_error(message: impl Into<String>) -> Error {
    Error::View(message.into())
}

fn is_column_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn path_of(value: &Value, what: &str) -> Result<Expr> {
    let text = value
        .as_str()
        .ok_or_else(|| view_error(format!("{what} must be a FHIRPath string")))?;
    parse(text)
}

impl Select {
    fn from_json(json: &Value, depth: usize) -> Result<Self> {
        if depth > 64 {
            return Err(view_error("selects are nested too deeply"));
        }
        let object = json
            .as_object()
            .ok_or_else(|| view_error("a select must be an object"))?;
        let mut select = Select::default();
        if let Some(columns) = object.get("column") {
            let columns = columns
                .as_array()
                .ok_or_else(|| view_error("column must be a list"))?;
            for column in columns {
                let name = column
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| view_error("every column needs a name"))?;
                if !is_column_name(name) {
                    return Err(view_error(format!(
                        "column name `{name}` must be letters, digits and underscores, starting with a letter"
                    )));
                }
                let path = path_of(
                    column.get("path").unwrap_or(&Value::Null),
                    &format!("column {name}'s path"),
                )?;
                let collection = match column.get("collection") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(view_error(format!(
                            "column {name}: collection must be true or false"
                        )));
                    }
                };
                select.columns.push(Column {
                    spec: ColumnSpec {
                        name: name.to_string(),
                        fhir_type: column
                            .get("type")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        collection,
                        description: column
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    },
                    path,
                });
            }
        }
        if let Some(selects) = object.get("select") {
            for nested in selects
                .as_array()
                .ok_or_else(|| view_error("select must be a list"))?
            {
                select.selects.push(Select::from_json(nested, depth + 1)?);
            }
        }
        if let Some(branches) = object.get("unionAll") {
            for branch in branches
                .as_array()
                .ok_or_else(|| view_error("unionAll must be a list"))?
            {
                select.union_all.push(Select::from_json(branch, depth + 1)?);
            }
            let names = |s: &Select| s.specs().into_iter().map(|c| c.name).collect::<Vec<_>>();
            if let Some(first) = select.union_all.first() {
                let expected = names(first);
                if select.union_all.iter().any(|b| names(b) != expected) {
                    return Err(view_error(
                        "every unionAll branch must have the same columns in the same order",
                    ));
                }
            }
        }
        let for_each = object.get("forEach");
        let for_each_or_null = object.get("forEachOrNull");
        let repeat = object.get("repeat");
        if [for_each, for_each_or_null, repeat]
            .iter()
            .filter(|x| x.is_some())
            .count()
            > 1
        {
            return Err(view_error(
                "a select can have only one of forEach, forEachOrNull and repeat",
            ));
        }
        if let Some(path) = for_each {
            select.iteration = Some(Iteration::ForEach(path_of(path, "forEach")?));
        } else if let Some(path) = for_each_or_null {
            select.iteration = Some(Iteration::ForEachOrNull(path_of(path, "forEachOrNull")?));
        } else if let Some(paths) = repeat {
            let paths = paths
                .as_array()
                .ok_or_else(|| view_error("repeat must be a list of FHIRPath strings"))?;
            if paths.is_empty() {
                return Err(view_error("repeat needs at least one path"));
            }
            let parsed = paths
                .iter()
                .map(|p| path_of(p, "repeat"))
                .collect::<Result<Vec<_>>>()?;
            select.iteration = Some(Iteration::Repeat(parsed));
        }
        Ok(select)
    }

    fn specs(&self) -> Vec<ColumnSpec> {
        let mut out: Vec<ColumnSpec> = self.columns.iter().map(|c| c.spec.clone()).collect();
        for nested in &self.selects {
            out.extend(nested.specs());
        }
        if let Some(first) = self.union_all.first() {
            out.extend(first.specs());
        }
        out
    }

    fn width(&self) -> usize {
        self.columns.len()
            + self.selects.iter().map(Select::width).sum::<usize>()
            + self.union_all.first().map_or(0, Select::width)
    }

    /// The rows of this select for one focus.
    fn rows<'a>(&self, focus: &Item<'a>, env: &Env<'a>) -> Result<Vec<Row>> {
        let foci: Vec<(Item<'a>, i64)> = match &self.iteration {
            None => vec![(focus.clone(), env.row_index)],
            Some(Iteration::ForEach(path)) | Some(Iteration::ForEachOrNull(path)) => {
                let items = evaluate(path, std::slice::from_ref(focus), env)?;
                if items.is_empty() && matches!(self.iteration, Some(Iteration::ForEachOrNull(_))) {
                    return self.null_row(env).map(|row| vec![row]);
                }
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (item, i as i64))
                    .collect()
            }
            Some(Iteration::Repeat(paths)) => {
                let mut out = Vec::new();
                repeat(paths, focus, env, &mut out, 0)?;
                out.into_iter()
                    .enumerate()
                    .map(|(i, item)| (item, i as i64))
                    .collect()
            }
        };
        let mut rows = Vec::new();
        for (item, row_index) in foci {
            let env = Env {
                row_index,
                ..env.clone()
            };
            let mut partial: Vec<Row> = vec![Vec::with_capacity(self.width())];
            for column in &self.columns {
                let value = column_value(column, &item, &env)?;
                for row in &mut partial {
                    row.push(value.clone());
                }
            }
            let mut parts: Vec<Vec<Row>> = Vec::new();
            for nested in &self.selects {
                parts.push(nested.rows(&item, &env)?);
            }
            if !self.union_all.is_empty() {
                let mut union = Vec::new();
                for branch in &self.union_all {
                    union.extend(branch.rows(&item, &env)?);
                }
                parts.push(union);
            }
            for part in parts {
                let mut next = Vec::with_capacity(partial.len() * part.len());
                for left in &partial {
                    for right in &part {
                        let mut row = left.clone();
                        row.extend(right.iter().cloned());
                        next.push(row);
                    }
                }
                partial = next;
            }
            rows.extend(partial);
        }
        Ok(rows)
    }
}

impl Select {
    /// The row `forEachOrNull` gives for an empty collection: its own columns evaluated on
    /// nothing (so `%rowIndex` is 0 and constants keep their values), nulls for the rest.
    fn null_row(&self, env: &Env<'_>) -> Result<Row> {
        let env = Env {
            row_index: 0,
            ..env.clone()
        };
        let mut row = Vec::with_capacity(self.width());
        for column in &self.columns {
            let items = evaluate(&column.path, &[], &env)?;
            row.push(match (column.spec.collection, items.as_slice()) {
                (true, _) => Value::Array(items.iter().map(Item::to_json).collect()),
                (false, [one]) => one.to_json(),
                _ => Value::Null,
            });
        }
        row.resize(self.width(), Value::Null);
        Ok(row)
    }
}

/// Depth-first, pre-order traversal for `repeat`.
fn repeat<'a>(
    paths: &[Expr],
    node: &Item<'a>,
    env: &Env<'a>,
    out: &mut Vec<Item<'a>>,
    depth: usize,
) -> Result<()> {
    if depth > 256 {
        return Err(Error::Eval("repeat went deeper than 256 levels".into()));
    }
    for path in paths {
        for child in evaluate(path, std::slice::from_ref(node), env)? {
            out.push(child.clone());
            repeat(paths, &child, env, out, depth + 1)?;
        }
    }
    Ok(())
}

fn column_value<'a>(column: &Column, focus: &Item<'a>, env: &Env<'a>) -> Result<Value> {
    let items = evaluate(&column.path, std::slice::from_ref(focus), env)?;
    if column.spec.collection {
        return Ok(Value::Array(items.iter().map(Item::to_json).collect()));
    }
    match items.as_slice() {
        [] => Ok(Value::Null),
        [one] => Ok(one.to_json()),
        _ => Err(Error::Eval(format!(
            "column {} has {} values for one row; declare it `collection: true` or narrow its path",
            column.spec.name,
            items.len()
        ))),
    }
}

/// A constant's value and FHIR type from its `value[x]` element.
fn constant_value(json: &Value) -> Result<(String, Value, String)> {
    let object = json
        .as_object()
        .ok_or_else(|| view_error("a constant must be an object"))?;
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| view_error("every constant needs a name"))?;
    let (key, value) = object
        .iter()
        .find(|(k, _)| k.starts_with("value") && k.len() > 5)
        .ok_or_else(|| view_error(format!("constant {name} needs a value[x]")))?;
    Ok((
        name.to_string(),
        value.clone(),
        key["value".len()..].to_string(),
    ))
}

impl ViewDefinition {
    /// Parses and checks a ViewDefinition.
    pub fn from_json(json: &Value) -> Result<Self> {
        let object = json
            .as_object()
            .ok_or_else(|| view_error("a ViewDefinition must be a JSON object"))?;
        if let Some(kind) = object.get("resourceType").and_then(Value::as_str)
            && kind != "ViewDefinition"
        {
            return Err(view_error(format!(
                "resourceType is {kind}, not ViewDefinition"
            )));
        }
        let resource = object
            .get("resource")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                view_error("`resource` (the FHIR resource type the view reads) is required")
            })?
            .to_string();
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(name) = &name
            && !is_column_name(name)
        {
            return Err(view_error(format!(
                "view name `{name}` must be letters, digits and underscores, starting with a letter"
            )));
        }
        let selects = object
            .get("select")
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| view_error("`select` must be a non-empty list"))?;
        let mut root = Select::default();
        for select in selects {
            root.selects.push(Select::from_json(select, 0)?);
        }
        let mut seen = HashMap::new();
        for spec in root.specs() {
            if seen.insert(spec.name.clone(), ()).is_some() {
                return Err(view_error(format!(
                    "column name {} is used twice",
                    spec.name
                )));
            }
        }
        let mut constants = Vec::new();
        if let Some(list) = object.get("constant") {
            for c in list
                .as_array()
                .ok_or_else(|| view_error("constant must be a list"))?
            {
                constants.push(constant_value(c)?);
            }
        }
        let mut filters = Vec::new();
        if let Some(list) = object.get("where") {
            for w in list
                .as_array()
                .ok_or_else(|| view_error("where must be a list"))?
            {
                filters.push(path_of(
                    w.get("path").unwrap_or(&Value::Null),
                    "where's path",
                )?);
            }
        }
        Ok(Self {
            name,
            resource,
            description: object
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            constants,
            root,
            filters,
            json: json.clone(),
        })
    }

    /// The view's `name` (empty when the JSON gave none; see [`ViewDefinition::has_name`]).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// Whether the view JSON gave a name.
    pub fn has_name(&self) -> bool {
        self.name.is_some()
    }

    /// The resource type the view reads.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The view's description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The view as JSON, as it was given.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The output columns, in order.
    pub fn columns(&self) -> Vec<ColumnSpec> {
        self.root.specs()
    }

    fn env<'a>(&'a self, resource: &'a Value) -> Env<'a> {
        let mut vars = HashMap::new();
        for (name, value, ty) in &self.constants {
            let item = match (ty.as_str(), value) {
                ("Date", Value::String(s)) => Item::Date(s.clone()),
                ("DateTime" | "Instant", Value::String(s)) => Item::DateTime(s.clone()),
                ("Time", Value::String(s)) => Item::Time(s.clone()),
                (_, v) => Item::Node(v, Some(ty.as_str())),
            };
            vars.insert(name.clone(), vec![item]);
        }
        Env {
            vars,
            resource: Some(resource),
            row_index: 0,
        }
    }

    /// Whether a resource passes the view's `where` filters. A filter that yields something
    /// other than one boolean is an error.
    fn passes(&self, resource: &Value, env: &Env<'_>) -> Result<bool> {
        if resource.get("resourceType").and_then(Value::as_str) != Some(self.resource.as_str()) {
            return Ok(false);
        }
        let input = [Item::Node(resource, None)];
        for filter in &self.filters {
            let result = evaluate(filter, &input, env)?;
            match result.as_slice() {
                [] => return Ok(false),
                [Item::Bool(b)] | [Item::Node(Value::Bool(b), _)] => {
                    if !b {
                        return Ok(false);
                    }
                }
                _ => {
                    return Err(Error::Eval(
                        "a where path must evaluate to a single boolean".into(),
                    ));
                }
            }
        }
        Ok(true)
    }

    /// The rows of one resource (none when it is of another type or filtered out). Each row
    /// has one JSON value per column, in [`ViewDefinition::columns`] order.
    pub fn evaluate(&self, resource: &Value) -> Result<Vec<Vec<Value>>> {
        let env = self.env(resource);
        if !self.passes(resource, &env)? {
            return Ok(Vec::new());
        }
        self.root.rows(&Item::Node(resource, None), &env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn for_each_or_null_and_union() {
        let view = ViewDefinition::from_json(&json!({
            "resource": "Patient",
            "select": [
                {"column": [{"name": "id", "path": "getResourceKey()"}]},
                {"forEachOrNull": "name", "column": [{"name": "family", "path": "family"}]},
                {"unionAll": [
                    {"forEach": "telecom", "column": [{"name": "contact", "path": "value"}]},
                    {"forEach": "address", "column": [{"name": "contact", "path": "city"}]}
                ]}
            ]
        }))
        .unwrap();
        let names: Vec<_> = view.columns().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["id", "family", "contact"]);
        let rows = view
            .evaluate(&json!({"resourceType": "Patient", "id": "p",
                "telecom": [{"value": "t1"}], "address": [{"city": "c1"}, {"city": "c2"}]}))
            .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![json!("p"), Value::Null, json!("t1")],
                vec![json!("p"), Value::Null, json!("c1")],
                vec![json!("p"), Value::Null, json!("c2")],
            ]
        );
        assert!(
            view.evaluate(&json!({"resourceType": "Observation", "id": "o"}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn invalid_views() {
        for bad in [
            json!({}),
            json!({"resource": "Patient"}),
            json!({"resource": "Patient", "select": [{"forEach": 1}]}),
            json!({"resource": "Patient", "select": [{"column": [{"name": "a b", "path": "id"}]}]}),
            json!({"resource": "Patient", "select": [{"column": [{"name": "a", "path": "id"}, {"name": "a", "path": "id"}]}]}),
            json!({"resource": "Patient", "select": [{"unionAll": [
                {"column": [{"name": "a", "path": "id"}]}, {"column": [{"name": "b", "path": "id"}]}]}]}),
        ] {
            assert!(
                ViewDefinition::from_json(&bad).is_err(),
                "{bad} should be refused"
            );
        }
    }
}
