//! Runs the SQL-on-FHIR v2 conformance suite: each test file gives resources and cases; a case
//! has a view and either the expected rows (`expect`, compared without regard to order), the
//! expected column names (`expectColumns`), or `expectError`.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::view::ViewDefinition;

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's title.
    pub title: String,
    /// `None` when it passed, else why not.
    pub failure: Option<String>,
}

/// The outcome of one test file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file name.
    pub file: String,
    /// Its cases.
    pub cases: Vec<CaseResult>,
}

/// The outcome of a whole suite.
#[derive(Debug, Clone, Default)]
pub struct SuiteReport {
    /// One report per file, in file-name order.
    pub files: Vec<FileReport>,
}

impl SuiteReport {
    /// Cases passed.
    pub fn passed(&self) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.cases)
            .filter(|c| c.failure.is_none())
            .count()
    }

    /// Cases run.
    pub fn total(&self) -> usize {
        self.files.iter().map(|f| f.cases.len()).sum()
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            let passed = file.cases.iter().filter(|c| c.failure.is_none()).count();
            writeln!(f, "{:<28} {passed:>3}/{:<3}", file.file, file.cases.len())?;
            for case in &file.cases {
                if let Some(why) = &case.failure {
                    writeln!(f, "    FAILED {}: {why}", case.title)?;
                }
            }
        }
        Ok(())
    }
}

/// Runs every `*.json` file in `dir`.
pub fn run_suite(dir: &Path) -> Result<SuiteReport> {
    let suite_error = |path: &Path, reason: String| Error::Suite {
        path: path.display().to_string(),
        reason,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| suite_error(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut report = SuiteReport::default();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| suite_error(&path, e.to_string()))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| suite_error(&path, e.to_string()))?;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        report.files.push(run_file(&file, &json));
    }
    Ok(report)
}

/// Runs the cases of one parsed test file.
pub fn run_file(file: &str, json: &Value) -> FileReport {
    let resources = json
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cases = json
        .get("tests")
        .and_then(Value::as_array)
        .map(|tests| {
            tests
                .iter()
                .map(|case| run_case(case, &resources))
                .collect()
        })
        .unwrap_or_default();
    FileReport {
        file: file.to_string(),
        cases,
    }
}

fn run_case(case: &Value, resources: &[Value]) -> CaseResult {
    let title = case
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("(untitled)")
        .to_string();
    let outcome = evaluate_case(case.get("view").unwrap_or(&Value::Null), resources);
    let expect_error = case.get("expectError").and_then(Value::as_bool) == Some(true);
    let failure = match (outcome, expect_error) {
        (Err(_), true) => None,
        (Ok(_), true) => Some("expected an error, got rows".to_string()),
        (Err(e), false) => Some(e.to_string()),
        (Ok((columns, rows)), false) => {
            if let Some(expected) = case.get("expectColumns").and_then(Value::as_array) {
                let expected: Vec<&str> = expected.iter().filter_map(Value::as_str).collect();
                (columns != expected).then(|| format!("columns {columns:?}, expected {expected:?}"))
            } else if let Some(expected) = case.get("expect").and_then(Value::as_array) {
                compare_rows(&columns, &rows, expected)
            } else {
                Some("the case has neither expect, expectColumns nor expectError".into())
            }
        }
    };
    CaseResult { title, failure }
}

type Evaluated = (Vec<String>, Vec<Vec<Value>>);

fn evaluate_case(view: &Value, resources: &[Value]) -> Result<Evaluated> {
    let view = ViewDefinition::from_json(view)?;
    let columns: Vec<String> = view.columns().into_iter().map(|c| c.name).collect();
    let mut rows = Vec::new();
    for resource in resources {
        rows.extend(view.evaluate(resource)?);
    }
    Ok((columns, rows))
}

/// A canonical text for a value: numbers compared to 9 decimal places.
fn canonical(value: &Value) -> String {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) => format!("{:.9}", f),
            None => n.to_string(),
        },
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k:?}:{}", canonical(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

fn compare_rows(columns: &[String], rows: &[Vec<Value>], expected: &[Value]) -> Option<String> {
    let ours: Vec<String> = rows
        .iter()
        .map(|row| {
            let object: Map<String, Value> =
                columns.iter().cloned().zip(row.iter().cloned()).collect();
            canonical(&Value::Object(object))
        })
        .collect();
    let theirs: Vec<String> = expected.iter().map(canonical).collect();
    let (mut a, mut b) = (ours.clone(), theirs.clone());
    a.sort();
    b.sort();
    if a == b {
        None
    } else {
        Some(format!("rows differ: got {ours:?}, expected {theirs:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_small_file() {
        let file = json!({
            "resources": [{"resourceType": "Patient", "id": "a"}, {"resourceType": "Patient", "id": "b"}],
            "tests": [
                {"title": "ids", "view": {"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}]},
                 "expect": [{"id": "b"}, {"id": "a"}]},
                {"title": "columns", "view": {"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}]},
                 "expectColumns": ["id"]},
                {"title": "error", "view": {}, "expectError": true},
                {"title": "wrong", "view": {"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}]},
                 "expect": [{"id": "a"}]}
            ]
        });
        let report = SuiteReport {
            files: vec![run_file("t.json", &file)],
        };
        assert_eq!((report.passed(), report.total()), (3, 4));
        assert!(report.to_string().contains("FAILED wrong"));
    }
}
