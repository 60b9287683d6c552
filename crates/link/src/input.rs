//! Person records from CSV files: columns mapped to fields by name (with common synonyms) or
//! by an explicit map, the latest version of each record kept.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::field::Field;
use crate::records::RecordSet;

/// One CSV file of person records.
#[derive(Debug, Clone)]
pub struct CsvInput<'a> {
    /// The file.
    pub path: &'a Path,
    /// The source name of its records (unless `source_column` gives one per row).
    pub source: String,
    /// A column naming each row's source system, for files that hold several.
    pub source_column: Option<String>,
    /// The column with each record's id in its source.
    pub id_column: String,
    /// A column with the time the record was last updated; of rows sharing a source and id,
    /// the latest is kept (without it, the last row).
    pub updated_column: Option<String>,
    /// Columns mapped to fields explicitly (`their_column` → field); others are recognised by
    /// name ([`Field::from_column`]).
    pub map: &'a [(String, Field)],
}

struct Row {
    source: String,
    id: String,
    updated: String,
    values: HashMap<Field, String>,
}

/// Reads the files into one record set. Every field any file carries is compared; a file
/// without one gives empty values for it.
pub fn read_csv(inputs: &[CsvInput<'_>]) -> Result<RecordSet> {
    let mut rows: Vec<Row> = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    for input in inputs {
        let path = input.path.display().to_string();
        let read_error = |e: csv::Error| Error::Read {
            path: path.clone(),
            reason: match e.position() {
                Some(p) => format!("CSV error at line {}", p.line()),
                None => "CSV error".into(),
            },
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .trim(csv::Trim::All)
            .from_path(input.path)
            .map_err(|e| Error::Read {
                path: path.clone(),
                reason: match e.kind() {
                    csv::ErrorKind::Io(io) => io.to_string(),
                    _ => "cannot open".into(),
                },
            })?;
        let headers = reader.headers().map_err(read_error)?.clone();
        let column = |name: &str| -> Result<usize> {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| Error::MissingColumn {
                    path: path.clone(),
                    column: name.to_string(),
                })
        };
        let id = column(&input.id_column)?;
        let source = input.source_column.as_deref().map(column).transpose()?;
        let updated = input.updated_column.as_deref().map(column).transpose()?;
        for (theirs, _) in input.map {
            column(theirs)?;
        }
        let mut mapped: Vec<(usize, Field)> = Vec::new();
        for (i, header) in headers.iter().enumerate() {
            if i == id || Some(i) == source || Some(i) == updated {
                continue;
            }
            let field = input
                .map
                .iter()
                .find(|(theirs, _)| theirs == header)
                .map(|(_, f)| *f)
                .or_else(|| Field::from_column(header));
            if let Some(field) = field
                && !mapped.iter().any(|(_, f)| *f == field)
            {
                mapped.push((i, field));
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
        }
        for record in reader.records() {
            let record = record.map_err(read_error)?;
            rows.push(Row {
                source: source.map_or_else(|| input.source.clone(), |s| record[s].to_string()),
                id: record[id].to_string(),
                updated: updated.map_or_else(String::new, |u| record[u].to_string()),
                values: mapped
                    .iter()
                    .map(|(i, f)| (*f, record[*i].to_string()))
                    .collect(),
            });
        }
    }
    if fields.is_empty() {
        return Err(Error::NoComparableFields);
    }
    // The latest version of each record.
    let mut latest: HashMap<(&str, &str), usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        latest
            .entry((row.source.as_str(), row.id.as_str()))
            .and_modify(|kept| {
                if rows[*kept].updated <= row.updated {
                    *kept = i;
                }
            })
            .or_insert(i);
    }
    let mut keep: Vec<usize> = latest.into_values().collect();
    keep.sort_unstable();
    let mut builder = RecordSet::builder(&fields);
    let mut values: Vec<&str> = Vec::with_capacity(fields.len());
    for i in keep {
        let row = &rows[i];
        values.clear();
        values.extend(
            fields
                .iter()
                .map(|f| row.values.get(f).map_or("", String::as_str)),
        );
        builder.push(&row.source, &row.id, &row.updated, &values)?;
    }
    builder.build()
}
