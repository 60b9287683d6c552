//! A flush of one stream: its pending events typed (as a file load of the same NDJSON types
//! them) and written to `raw.<stream>` in one commit through the lake's commit path, with the
//! highest log sequence number as the commit's application transaction.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use carelake_common::Principal;
use carelake_lake::{Lake, Provenance, TableWrite, TimeTravel, WriteMode};

use chrono::Utc;
use serde_json::Value;

use carelake_ingest::{Result, quarantine};
use carelake_rows::infer::{ColumnStats, ColumnType};
use carelake_rows::{
    BatchBuilder, Cell, LINEAGE_COLUMNS, Reject, classify_json, json_text, parse_cell,
};

use crate::events::{Pending, STREAM_APP, stream_table};

/// The columns of one flush: the table's own, in order, then the new keys of its events, each
/// with the type a file load of the same NDJSON would give it (carelake-rows: the same
/// classification of every value and the same inference, so the same events get the same
/// columns however they arrive). Keys are normalised as a file load normalises them
/// (`heartRate` → `heart_rate`), except a key that names an existing column as it is.
struct StreamColumns {
    names: Vec<String>,
    /// `None`: an existing column of a type streamed events cannot fill (no value goes in).
    types: Vec<Option<ColumnType>>,
    existing: usize,
    stats: Vec<ColumnStats>,
    by_key: HashMap<String, usize>,
}

impl StreamColumns {
    fn new(existing: Option<&Schema>) -> Self {
        let mut columns = Self {
            names: Vec::new(),
            types: Vec::new(),
            existing: 0,
            stats: Vec::new(),
            by_key: HashMap::new(),
        };
        for field in existing.into_iter().flat_map(|s| s.fields().iter()) {
            if LINEAGE_COLUMNS.contains(&field.name().as_str()) {
                continue;
            }
            columns.names.push(field.name().clone());
            columns
                .types
                .push(ColumnType::from_arrow(field.data_type()));
            columns.stats.push(ColumnStats::default());
        }
        columns.existing = columns.names.len();
        columns
    }

    /// The column of `key`, added when new.
    fn index(&mut self, key: &str) -> usize {
        if let Some(i) = self.by_key.get(key) {
            return *i;
        }
        let i = match self.names.iter().position(|n| n == key) {
            Some(i) => i,
            None => {
                let mut name = carelake_common::normalize_identifier(key);
                if name.is_empty() || LINEAGE_COLUMNS.contains(&name.as_str()) {
                    name = format!("field_{name}").trim_end_matches('_').to_string();
                }
                match self.names.iter().position(|n| *n == name) {
                    Some(i) => i,
                    None => {
                        self.names.push(name);
                        self.types.push(None);
                        self.stats.push(ColumnStats::default());
                        self.names.len() - 1
                    }
                }
            }
        };
        self.by_key.insert(key.to_string(), i);
        i
    }

    fn observe(&mut self, object: &serde_json::Map<String, Value>) {
        for (key, value) in object {
            let i = self.index(key);
            self.stats[i].observe(classify_json(value));
        }
    }

    /// Fixes the new columns' types (all-null ones are text) once every event was observed.
    fn infer(&mut self) {
        for i in self.existing..self.names.len() {
            self.types[i] = Some(match self.stats[i].infer() {
                ColumnType::Null => ColumnType::Text,
                other => other,
            });
        }
    }

    /// The columns written (those of a type streams fill), as indexes, and the batch schema:
    /// each as nullable, text as plain strings, then the lineage columns.
    fn written(&self, existing: Option<&Schema>) -> (Vec<usize>, SchemaRef, Vec<ColumnType>) {
        let mut indexes = Vec::new();
        let mut fields = Vec::new();
        let mut types = Vec::new();
        for (i, (name, column_type)) in self.names.iter().zip(&self.types).enumerate() {
            let Some(column_type) = column_type else {
                continue;
            };
            let data_type = match existing.and_then(|s| s.field_with_name(name).ok()) {
                // Decode into the table's type (plain strings for the views Delta hands back).
                Some(f) => match f.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                    other => other.clone(),
                },
                None => column_type.arrow_type(),
            };
            indexes.push(i);
            fields.push(Field::new(name, data_type, true));
            types.push(*column_type);
        }
        fields.extend(carelake_rows::lineage_fields());
        (indexes, Arc::new(Schema::new(fields)), types)
    }

    /// The cells of one event in the written columns' order, or the column its value does not
    /// fit.
    fn cells<'a>(
        &mut self,
        object: &'a serde_json::Map<String, Value>,
        texts: &'a [Option<std::borrow::Cow<'a, str>>],
        positions: &[Option<usize>],
    ) -> std::result::Result<Vec<Cell<'a>>, usize> {
        let mut cells = vec![Cell::Null; positions.iter().flatten().count()];
        for ((key, value), text) in object.iter().zip(texts) {
            let column = self.index(key);
            let Some(text) = text else {
                continue;
            };
            let (Some(position), Some(column_type)) = (positions[column], self.types[column])
            else {
                return Err(column);
            };
            cells[position] = parse_cell(text, classify_json(value), column_type).ok_or(column)?;
        }
        Ok(cells)
    }
}

/// Writes one stream's records to `raw.<stream>` in one commit; returns the rows written and
/// the events rejected.
pub(crate) async fn write_stream(
    lake: &Lake,
    principal: &Principal,
    stream: &str,
    records: &[Pending],
) -> Result<(u64, u64)> {
    let name = stream_table(stream)?;
    let url = lake.table_url(&name)?;
    let existing = lake.load_delta(&url, TimeTravel::Latest).await?;
    let done = match &existing {
        Some(t) => carelake_lake::app_version(t, STREAM_APP)
            .await?
            .unwrap_or(0),
        None => 0,
    };
    // Records a crash left behind after their commit are in the table already.
    let records: Vec<&Pending> = records.iter().filter(|p| p.seq as i64 > done).collect();
    let Some(last_seq) = records.iter().map(|p| p.seq).max() else {
        return Ok((0, 0));
    };
    let existing_schema = match &existing {
        Some(t) => Some(t.snapshot()?.snapshot().arrow_schema().as_ref().clone()),
        None => None,
    };
    let label = format!("http:{stream}");
    let mut rejects: Vec<(String, Reject)> = Vec::new();
    let mut events: Vec<(&Pending, serde_json::Map<String, Value>)> =
        Vec::with_capacity(records.len());
    for p in &records {
        match serde_json::from_str::<Value>(&p.envelope.event) {
            Ok(Value::Object(object)) => events.push((*p, object)),
            _ => rejects.push((
                label.clone(),
                Reject {
                    line: p.seq,
                    reason: "not a JSON object".into(),
                    raw: p.envelope.event.clone(),
                },
            )),
        }
    }
    let mut columns = StreamColumns::new(existing_schema.as_ref());
    for (_, object) in &events {
        columns.observe(object);
    }
    columns.infer();
    let (written_columns, schema, types) = columns.written(existing_schema.as_ref());
    let mut positions = vec![None; columns.names.len()];
    for (position, column) in written_columns.iter().enumerate() {
        positions[*column] = Some(position);
    }
    let load_id = uuid::Uuid::new_v4().to_string();
    let loaded_at = Utc::now().timestamp_micros();
    let mut builder = BatchBuilder::new(Arc::clone(&schema), types, load_id.clone(), loaded_at);
    builder.file_label = label.clone();
    for (p, object) in &events {
        let texts: Vec<Option<std::borrow::Cow<'_, str>>> =
            object.values().map(json_text).collect();
        match columns.cells(object, &texts, &positions) {
            Ok(cells) => builder.append_row(p.seq, &cells),
            Err(column) => rejects.push((
                label.clone(),
                Reject {
                    line: p.seq,
                    reason: match columns.types[column] {
                        Some(t) => format!(
                            "a value does not fit the {t} column {} of {name}",
                            columns.names[column]
                        ),
                        None => format!(
                            "the column {} of {name} has a type streamed events cannot fill",
                            columns.names[column]
                        ),
                    },
                    raw: p.envelope.event.clone(),
                },
            )),
        }
    }
    let batch = builder.finish()?;
    let n = batch.num_rows();
    let rejected = rejects.len() as u64;
    if !rejects.is_empty() {
        quarantine(
            lake,
            principal,
            &name.to_string(),
            &load_id,
            rejects,
            Vec::new(),
        )
        .await?;
    }
    let provenance = Provenance::new("HTTP ingest", principal.name.clone())
        .described(format!("Events streamed to /api/v1/ingest/{stream}"));
    // A commit a second: the small files are compacted as they pile up.
    TableWrite::new(name.clone(), WriteMode::Append, provenance)
        .transaction(STREAM_APP, last_seq as i64)
        .compact(carelake_lake::AutoCompact::STREAMED)
        .coalesce_catalog()
        .batches(lake, existing, vec![batch])
        .await?;
    tracing::debug!(table = %name, rows = n, last_seq, "Streamed events flushed.");
    Ok((n as u64, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_the_table_and_type_new_keys_as_a_file_load_does() {
        let existing = Schema::new(vec![
            Field::new("event_id", DataType::Utf8View, true),
            Field::new("value", DataType::Float64, true),
            Field::new("_load_id", DataType::Utf8, true),
        ]);
        let events: Vec<serde_json::Map<String, Value>> = [
            serde_json::json!({"event_id": "a", "value": 1, "note": {"x": 1}, "takenAt": "2024-01-31T10:00:00Z", "site": "arm"}),
            serde_json::json!({"event_id": "b", "value": 2.5, "takenAt": "2024-02-01T10:00:00Z", "site": 3, "reading": [1, {"a": 1}]}),
        ]
        .into_iter()
        .map(|v| match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        })
        .collect();
        let mut columns = StreamColumns::new(Some(&existing));
        for e in &events {
            columns.observe(e);
        }
        columns.infer();
        let (written, schema, types) = columns.written(Some(&existing));
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "event_id",
                "value",
                "note",
                "site",
                "taken_at",
                "reading",
                "_source_file",
                "_source_line",
                "_load_id",
                "_loaded_at"
            ]
        );
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(types[1], ColumnType::Double);
        assert_eq!(types[2], ColumnType::Text, "nested values are JSON text");
        assert!(
            matches!(types[4], ColumnType::Timestamp(_)),
            "{:?}",
            types[4]
        );
        assert_eq!(types[3], ColumnType::Text, "values that disagree are text");
        let mut positions = vec![None; columns.names.len()];
        for (p, c) in written.iter().enumerate() {
            positions[*c] = Some(p);
        }
        let mut builder = BatchBuilder::new(Arc::clone(&schema), types, "load".into(), 0);
        for (line, e) in events.iter().enumerate() {
            let texts: Vec<_> = e.values().map(json_text).collect();
            let cells = columns.cells(e, &texts, &positions).unwrap();
            builder.append_row(line as u64, &cells);
        }
        assert_eq!(builder.finish().unwrap().num_rows(), 2);
        // A value that does not fit an existing column's type is the event's reject.
        let bad = match serde_json::json!({"value": "high"}) {
            Value::Object(o) => o,
            _ => unreachable!(),
        };
        let texts: Vec<_> = bad.values().map(json_text).collect();
        assert_eq!(columns.cells(&bad, &texts, &positions).unwrap_err(), 1);
    }
}
