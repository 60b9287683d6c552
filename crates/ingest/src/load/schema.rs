//! Schema planning: the target table's columns from the crawler's statistics and the
//! table's own schema (new columns, widened types, the casts that carry old rows across).

use std::collections::HashMap;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::{Expr, cast, col, lit};
use datafusion::scalar::ScalarValue;

use crate::format::Format;
use crate::infer::{ColumnStats, ColumnType, timestamp_type};
use crate::{Error, Result};

use super::{FileScan, LINEAGE_COLUMNS, TargetColumn};

/// Projection of the existing table's columns into the new schema.
pub(super) fn cast_to(target: &Schema, existing: &Schema) -> Vec<Expr> {
    target
        .fields()
        .iter()
        .map(|field| {
            let expr = if existing.field_with_name(field.name()).is_ok() {
                col(datafusion::common::Column::new_unqualified(field.name()))
            } else {
                lit(ScalarValue::Null)
            };
            cast(expr, field.data_type().clone()).alias(field.name())
        })
        .collect()
}

pub(super) fn with_lineage(columns: &[TargetColumn]) -> Schema {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.clone(), true))
        .collect();
    fields.extend(crate::rows::lineage_fields());
    Schema::new(fields)
}

/// Incoming columns of the files to load, with one inferred type each.
pub(super) fn infer_incoming(
    format: Format,
    scans: &[&FileScan],
) -> Result<Vec<(String, DataType, ColumnType)>> {
    let mut order: Vec<String> = Vec::new();
    if format == Format::Parquet {
        let mut types: HashMap<String, DataType> = HashMap::new();
        for scan in scans {
            let Some(Ok(schema)) = &scan.parquet else {
                continue;
            };
            for field in schema.fields() {
                let name = field.name().clone();
                let data_type = field.data_type().clone();
                match types.get(&name) {
                    None => {
                        order.push(name.clone());
                        types.insert(name, data_type);
                    }
                    Some(prev) => {
                        let merged = merge_types(&name, prev, &data_type)?;
                        types.insert(name, merged);
                    }
                }
            }
        }
        return Ok(order
            .into_iter()
            .map(|name| {
                let dt = types.remove(&name).unwrap_or(DataType::Utf8);
                let parse_as = ColumnType::from_arrow(&dt).unwrap_or(ColumnType::Text);
                (name, dt, parse_as)
            })
            .collect());
    }
    let mut stats: HashMap<String, ColumnStats> = HashMap::new();
    for scan in scans {
        for (name, s) in &scan.columns {
            match stats.get_mut(name) {
                Some(total) => total.merge(s),
                None => {
                    order.push(name.clone());
                    stats.insert(name.clone(), s.clone());
                }
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let column_type = stats[&name].infer();
            (name, column_type.arrow_type(), column_type)
        })
        .collect())
}

/// Types Delta stores directly; others are mapped (unsigned to wider signed, any timestamp to
/// microseconds UTC, large/view strings to strings).
pub(super) fn delta_friendly(data_type: &DataType) -> DataType {
    match data_type {
        DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Timestamp(_, _) => timestamp_type(),
        DataType::Date64 => DataType::Date32,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => delta_friendly(value),
        DataType::Null => DataType::Utf8,
        other => other.clone(),
    }
}

/// The type that holds values of both, or an error when none does.
pub(super) fn merge_types(column: &str, table: &DataType, incoming: &DataType) -> Result<DataType> {
    if table == incoming || incoming == &DataType::Null {
        return Ok(table.clone());
    }
    let (Some(a), Some(b)) = (
        ColumnType::from_arrow(table),
        ColumnType::from_arrow(incoming),
    ) else {
        return Err(Error::IncompatibleColumn {
            column: column.to_string(),
            table_type: table.to_string(),
            file_type: incoming.to_string(),
        });
    };
    let widened = a.widen(b);
    // Keep the table's exact type when it already holds the incoming values.
    if std::mem::discriminant(&widened) == std::mem::discriminant(&a) {
        Ok(table.clone())
    } else {
        Ok(widened.arrow_type())
    }
}

pub(super) struct SchemaPlan {
    pub(super) columns: Vec<TargetColumn>,
    pub(super) rewrite: bool,
    pub(super) changes: Vec<String>,
}

pub(super) fn plan_schema(
    existing: Option<&Schema>,
    incoming: &[(String, DataType, ColumnType)],
) -> Result<SchemaPlan> {
    let incoming_types: HashMap<&str, (&DataType, ColumnType)> = incoming
        .iter()
        .map(|(n, dt, ct)| (n.as_str(), (dt, *ct)))
        .collect();
    let mut columns = Vec::new();
    let mut rewrite = false;
    let mut changes = Vec::new();
    if let Some(schema) = existing {
        for field in schema.fields() {
            if LINEAGE_COLUMNS.contains(&field.name().as_str()) {
                continue;
            }
            let (data_type, parse_as) = match incoming_types.get(field.name().as_str()) {
                None => (field.data_type().clone(), ColumnType::Null),
                Some((dt, ct)) => {
                    let merged = merge_types(field.name(), field.data_type(), &delta_friendly(dt))?;
                    if &merged != field.data_type() {
                        rewrite = true;
                        changes.push(format!(
                            "widened {} from {} to {}",
                            field.name(),
                            field.data_type(),
                            merged
                        ));
                    }
                    (merged.clone(), parse_type_for(&merged, *ct))
                }
            };
            columns.push(TargetColumn {
                name: field.name().clone(),
                data_type,
                parse_as,
            });
        }
    }
    for (name, data_type, parse_as) in incoming {
        if columns.iter().any(|c| &c.name == name) {
            continue;
        }
        let data_type = delta_friendly(data_type);
        if existing.is_some() {
            changes.push(format!("added column {name} ({data_type})"));
        }
        columns.push(TargetColumn {
            name: name.clone(),
            parse_as: parse_type_for(&data_type, *parse_as),
            data_type,
        });
    }
    Ok(SchemaPlan {
        columns,
        rewrite,
        changes,
    })
}

/// How to parse text for a column stored as `data_type`, keeping the crawler's date order.
pub(super) fn parse_type_for(data_type: &DataType, inferred: ColumnType) -> ColumnType {
    let order = match inferred {
        ColumnType::Date(o) | ColumnType::Timestamp(o) => o,
        _ => None,
    };
    match ColumnType::from_arrow(data_type) {
        Some(ColumnType::Date(_)) => ColumnType::Date(order),
        Some(ColumnType::Timestamp(_)) => ColumnType::Timestamp(order),
        Some(other) => other,
        None => ColumnType::Text,
    }
}
