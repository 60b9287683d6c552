//! No PHI in the Delta log, even in a lake that is not encrypted.
//!
//! Delta writers record each file's minimum and maximum per column in the log (`add.stats`),
//! and DELETE, UPDATE and MERGE record their predicate in `commitInfo`: in a patient table
//! that puts names, MRNs, SSNs and birth dates in plaintext JSON next to the data. The lake's
//! store layer ([`crate::files`]) passes every commit through [`scrub_commit`] on its way to
//! storage, whoever the writer is (loads, SQL, the pipeline, deltalake's own operations):
//! - `add`/`remove` statistics keep `numRecords` and `nullCount`, and minimum/maximum only for
//!   columns whose role ([`crate::roles::default_role`]) is neither an identifier, a key, a
//!   date, a ZIP, a city, an age nor free text (so filters on those read every file);
//! - a `metaData` action gets `delta.dataSkippingStatsColumns` set to those same columns, so
//!   that writers that honour it (deltalake, Spark) do not compute the others at all;
//! - `commitInfo` predicates are dropped.
//!
//! The lake's own tables under `_carelake/` keep statistics for numbers and `*_at` times only.

use arrow::datatypes::{DataType, TimeUnit};
use carelake_common::{TableName, Zone};
use object_store::path::Path;
use serde_json::{Map, Value};

use crate::roles::{ColumnRole, default_role};

/// Whose table a log file belongs to.
#[derive(Debug, Clone, PartialEq)]
enum Owner {
    /// A table of a zone.
    Table(TableName),
    /// One of the lake's own tables under `_carelake/`.
    System,
}

/// The table of a commit file (`…/<zone>/<table>/_delta_log/<n>.json`, or a commit's temporary
/// file), or `None` for any other object.
pub(crate) fn is_commit(path: &Path) -> bool {
    commit_owner(path).is_some()
}

fn commit_owner(path: &Path) -> Option<Owner> {
    let parts: Vec<String> = path.parts().map(|p| p.as_ref().to_string()).collect();
    let n = parts.len();
    if n < 4 || parts[n - 2] != "_delta_log" {
        return None;
    }
    let file = &parts[n - 1];
    let is_commit =
        file.ends_with(".json") && file[..file.len() - 5].bytes().all(|b| b.is_ascii_digit());
    let is_temp = file.starts_with("_commit_") && file.ends_with(".json.tmp");
    if !is_commit && !is_temp {
        return None;
    }
    let (zone, table) = (&parts[n - 4], &parts[n - 3]);
    if zone == "_carelake" {
        return Some(Owner::System);
    }
    let zone: Zone = zone.parse().ok()?;
    TableName::new(zone, table).ok().map(Owner::Table)
}

/// The type a statistic's value suggests (the log carries JSON, not the column's type).
fn hinted_type(value: &Value) -> DataType {
    match value {
        Value::Number(n) if n.is_f64() => DataType::Float64,
        Value::Number(_) => DataType::Int64,
        Value::Bool(_) => DataType::Boolean,
        Value::String(s)
            if chrono::DateTime::parse_from_rfc3339(s).is_ok()
                || chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() =>
        {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        _ => DataType::Utf8,
    }
}

/// Whether a column's minimum and maximum may stay in the log. Only columns named as plain
/// identifiers qualify (Delta parses `dataSkippingStatsColumns` as SQL identifiers): a column
/// with any other name gets no statistics.
fn keeps_stats(owner: &Owner, column: &str, hint: &DataType) -> bool {
    let plain = column.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && column
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain {
        return false;
    }
    match owner {
        Owner::System => {
            matches!(
                hint,
                DataType::Int64 | DataType::Float64 | DataType::Boolean
            ) || column == "at"
                || column.ends_with("_at")
        }
        Owner::Table(table) => {
            // carelake's lineage columns: when and by which load (never the file name).
            if matches!(column, "_loaded_at" | "_load_id" | "_source_line") {
                return true;
            }
            matches!(
                default_role(table, column, hint),
                ColumnRole::Keep | ColumnRole::QuasiIdentifier
            )
        }
    }
}

/// Keeps the statistics of the columns that may stay; nested structs are walked.
fn scrub_values(owner: &Owner, values: &mut Map<String, Value>) {
    values.retain(|column, value| match value {
        Value::Object(inner) => {
            scrub_values(owner, inner);
            !inner.is_empty()
        }
        _ => keeps_stats(owner, column, &hinted_type(value)),
    });
}

fn scrub_stats(owner: &Owner, action: &mut Map<String, Value>) {
    let Some(Value::String(stats)) = action.get("stats") else {
        return;
    };
    let Ok(Value::Object(mut stats)) = serde_json::from_str::<Value>(stats) else {
        return;
    };
    for key in ["minValues", "maxValues"] {
        if let Some(Value::Object(values)) = stats.get_mut(key) {
            scrub_values(owner, values);
        }
    }
    action.insert(
        "stats".into(),
        Value::String(Value::Object(stats).to_string()),
    );
}

/// The columns of a Delta schema string whose statistics may be kept, and the number of
/// top-level columns.
fn stats_columns(owner: &Owner, schema: &str) -> Option<(Vec<String>, usize)> {
    let schema: Value = serde_json::from_str(schema).ok()?;
    let fields = schema.get("fields")?.as_array()?;
    let mut keep = Vec::new();
    for field in fields {
        let Some(name) = field.get("name").and_then(Value::as_str) else {
            continue;
        };
        let hint = match field.get("type") {
            Some(Value::String(t)) => match t.as_str() {
                "long" | "integer" | "short" | "byte" => DataType::Int64,
                "double" | "float" => DataType::Float64,
                "boolean" => DataType::Boolean,
                "date" => DataType::Date32,
                "timestamp" | "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
                t if t.starts_with("decimal") => DataType::Float64,
                _ => DataType::Utf8,
            },
            // Structs, arrays and maps: no statistics kept for them.
            _ => continue,
        };
        if keeps_stats(owner, name, &hint) {
            keep.push(name.to_string());
        }
    }
    Some((keep, fields.len()))
}

fn scrub_metadata(owner: &Owner, metadata: &mut Map<String, Value>) {
    let Some((keep, _)) = metadata
        .get("schemaString")
        .and_then(Value::as_str)
        .and_then(|schema| stats_columns(owner, schema))
    else {
        return;
    };
    let configuration = metadata
        .entry("configuration")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(configuration) = configuration else {
        return;
    };
    if keep.is_empty() {
        configuration.remove("delta.dataSkippingStatsColumns");
        configuration.insert("delta.dataSkippingNumIndexedCols".into(), "0".into());
    } else {
        configuration.insert(
            "delta.dataSkippingStatsColumns".into(),
            Value::String(keep.join(",")),
        );
    }
}

fn scrub_commit_info(info: &mut Map<String, Value>) {
    if let Some(Value::Object(parameters)) = info.get_mut("operationParameters") {
        parameters.retain(|key, _| !key.to_ascii_lowercase().contains("predicate"));
    }
}

/// Rewrites one commit (newline-delimited JSON actions); lines that do not parse stay.
pub(crate) fn scrub_commit(path: &Path, content: &[u8]) -> Option<Vec<u8>> {
    let owner = commit_owner(path)?;
    let text = std::str::from_utf8(content).ok()?;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(mut action)) => {
                for (kind, value) in action.iter_mut() {
                    let Value::Object(inner) = value else {
                        continue;
                    };
                    match kind.as_str() {
                        "add" | "remove" => scrub_stats(&owner, inner),
                        "metaData" => scrub_metadata(&owner, inner),
                        "commitInfo" => scrub_commit_info(inner),
                        _ => {}
                    }
                }
                out.push_str(&Value::Object(action).to_string());
            }
            _ => out.push_str(body),
        }
        out.push_str(newline);
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_lose_identifier_statistics_and_predicates() {
        let stats = serde_json::json!({
            "numRecords": 2,
            "minValues": {"last_name": "Adams", "mrn": "M1", "sex": "F", "state": "IL",
                          "birth_date": "1928-04-05", "zip": 61602, "charge": 10.5,
                          "_loaded_at": "2026-01-01T00:00:00Z", "_source_file": "./a.csv"},
            "maxValues": {"last_name": "Young", "ssn": "999-94-8049", "sex": "M"},
            "nullCount": {"last_name": 0, "mrn": 0}
        });
        let schema = serde_json::json!({"type": "struct", "fields": [
            {"name": "last_name", "type": "string", "nullable": true, "metadata": {}},
            {"name": "sex", "type": "string", "nullable": true, "metadata": {}},
            {"name": "charge", "type": "double", "nullable": true, "metadata": {}},
            {"name": "birth_date", "type": "date", "nullable": true, "metadata": {}},
            {"name": "", "type": "long", "nullable": true, "metadata": {}},
            {"name": "odd name", "type": "long", "nullable": true, "metadata": {}}
        ]});
        let commit = format!(
            "{}\n{}\n{}\n",
            serde_json::json!({"commitInfo": {"operation": "DELETE",
                "operationParameters": {"predicate": "last_name = 'Adams'"}}}),
            serde_json::json!({"metaData": {"id": "x", "schemaString": schema.to_string(),
                "configuration": {}}}),
            serde_json::json!({"add": {"path": "p.parquet", "stats": stats.to_string()}}),
        );
        let path = Path::from("lake/raw/patients/_delta_log/00000000000000000003.json");
        let out = String::from_utf8(scrub_commit(&path, commit.as_bytes()).unwrap()).unwrap();
        for gone in ["Adams", "Young", "M1", "999-94", "1928", "61602", "./a.csv"] {
            assert!(!out.contains(gone), "{gone} left in {out}");
        }
        for kept in [
            "\\\"sex\\\":\\\"F\\\"",
            "\\\"state\\\":\\\"IL\\\"",
            "10.5",
            "numRecords",
            "nullCount",
            "2026-01-01",
        ] {
            assert!(out.contains(kept), "{kept} missing in {out}");
        }
        assert!(
            out.contains("\"delta.dataSkippingStatsColumns\":\"sex,charge\""),
            "{out}"
        );
        assert_eq!(out.lines().count(), 3);
        // Data files and other objects are left alone.
        assert!(scrub_commit(&Path::from("lake/raw/patients/p.parquet"), b"x").is_none());
        assert!(
            commit_owner(&Path::from(
                "lake/_carelake/users/_delta_log/00000000000000000000.json"
            )) == Some(Owner::System)
        );
    }
}
