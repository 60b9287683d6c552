//! One table's export: the column plans, batch by batch through the transforms into the
//! target table, and the equivalence classes of its quasi-identifiers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use carelake_common::TableName;
use carelake_lake::{CatalogEvent, Lake};
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::DeltaTable;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use futures::StreamExt;

use super::options::{ExportOptions, KAnonymity, Mode, TableReport};
use super::patients::{Anchor, Patients};
use super::{K_THRESHOLD, ROWS_PER_COMMIT};
use crate::roles::{ColumnRole, key_domain};
use crate::tags::TagStore;
use crate::transform::{self, Surrogates};
use crate::{Error, Result};

/// How one column goes out.
#[derive(Debug, Clone)]
enum Action {
    Keep,
    Surrogate(String),
    Year,
    BirthYear,
    Shift,
    CapAge,
    Zip3,
}

#[derive(Debug)]
struct ColumnPlan {
    name: String,
    action: Action,
    quasi: bool,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn export_table(
    source: &Lake,
    target: &Lake,
    name: &TableName,
    options: &ExportOptions,
    explicit: &BTreeMap<(String, String), ColumnRole>,
    patients: &Patients,
    surrogates: &mut Surrogates,
    export_id: &str,
) -> Result<TableReport> {
    let delta = source.open_table(name).await?;
    let source_version = delta.version().map(|v| v as i64);
    let schema = delta.snapshot()?.snapshot().arrow_schema();
    let roles = TagStore::effective(name, &schema, explicit);
    let mut report = TableReport {
        table: name.to_string(),
        source_version,
        rows: 0,
        removed: Vec::new(),
        surrogated: Vec::new(),
        generalised: Vec::new(),
        shifted: Vec::new(),
        kept: Vec::new(),
        ninety_plus: 0,
        k_anonymity: None,
    };
    let safe_harbor = options.mode == Mode::SafeHarbor;
    let mut plans = Vec::new();
    let mut anchors: Vec<(Anchor, String)> = Vec::new();
    for role in &roles {
        let column = role.column.clone();
        let field = schema.field_with_name(&column)?;
        let action = match role.role {
            ColumnRole::Identifier | ColumnRole::FreeText => None,
            ColumnRole::City if safe_harbor => None,
            ColumnRole::Key => {
                let t = transform::plain_type(field.data_type());
                let text_list = matches!(&t, DataType::List(f) if f.data_type() == &DataType::Utf8);
                if text_list
                    || (!t.is_nested() && arrow::compute::can_cast_types(&t, &DataType::Utf8))
                {
                    let domain = key_domain(name, &column);
                    let kind = match domain.as_str() {
                        "person_key" => Some(Anchor::Person),
                        "mrn" => Some(Anchor::Mrn),
                        "encounter_id" => Some(Anchor::Encounter),
                        _ => None,
                    };
                    if let Some(kind) = kind
                        && !text_list
                    {
                        anchors.push((kind, column.clone()));
                    }
                    Some(Action::Surrogate(domain))
                } else {
                    None
                }
            }
            ColumnRole::Date if safe_harbor => Some(Action::Year),
            ColumnRole::Date => Some(Action::Shift),
            ColumnRole::BirthDate if safe_harbor => Some(Action::BirthYear),
            ColumnRole::BirthDate => Some(Action::Shift),
            ColumnRole::Age if safe_harbor => Some(Action::CapAge),
            ColumnRole::Zip if safe_harbor => Some(Action::Zip3),
            ColumnRole::Age | ColumnRole::Zip | ColumnRole::City => Some(Action::Keep),
            ColumnRole::QuasiIdentifier | ColumnRole::Keep => Some(Action::Keep),
        };
        let Some(action) = action else {
            report.removed.push(column);
            continue;
        };
        match &action {
            Action::Keep => report.kept.push(column.clone()),
            Action::Surrogate(_) => report.surrogated.push(column.clone()),
            Action::Year | Action::BirthYear | Action::CapAge | Action::Zip3 => {
                report.generalised.push(column.clone())
            }
            Action::Shift => report.shifted.push(column.clone()),
        }
        let quasi = if options.quasi_identifiers.is_empty() {
            matches!(
                role.role,
                ColumnRole::QuasiIdentifier | ColumnRole::Zip | ColumnRole::BirthDate
            )
        } else {
            options
                .quasi_identifiers
                .iter()
                .any(|q| q.eq_ignore_ascii_case(&column))
        };
        plans.push(ColumnPlan {
            name: column,
            action,
            quasi,
        });
    }
    anchors.sort();
    if plans.is_empty() {
        return Err(Error::Export(format!(
            "every column of {name} would be removed; leave it out with --tables"
        )));
    }

    let config = SessionConfig::new().set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    );
    let ctx = SessionContext::new_with_config(config);
    delta.update_datafusion_session(&ctx.state())?;
    let columns: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    let frame = ctx
        .read_table(delta.table_provider().await?)?
        .select_columns(&columns)?;
    let mut stream = frame.execute_stream().await?;

    let url = target.table_url(name)?;
    let mut out_table: Option<DeltaTable> = None;
    let mut out_schema: Option<SchemaRef> = None;
    let mut buffer: Vec<RecordBatch> = Vec::new();
    let mut buffered = 0usize;
    let mut classes: HashMap<String, u64> = HashMap::new();
    let this_year = transform::this_year();
    let properties = writer_properties(options.uncompressed);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let offsets = if safe_harbor {
            Vec::new()
        } else {
            row_offsets(&batch, &anchors, patients, surrogates)?
        };
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for plan in &plans {
            let input = batch
                .column_by_name(&plan.name)
                .ok_or_else(|| Error::Export(format!("{name}: column {} not read", plan.name)))?;
            let array: ArrayRef = match &plan.action {
                Action::Keep => transform::plain(input)?,
                Action::Surrogate(domain) => transform::surrogate(input, domain, surrogates)?,
                Action::Year => Arc::new(transform::year(input)?),
                Action::BirthYear => {
                    let (years, ninety) = transform::birth_year(input, this_year)?;
                    report.ninety_plus += ninety;
                    Arc::new(years)
                }
                Action::CapAge => {
                    let (ages, ninety) = transform::cap_age(input)?;
                    report.ninety_plus += ninety;
                    ages
                }
                Action::Zip3 => transform::zip3(input)?,
                Action::Shift => transform::shift(input, &offsets)?,
            };
            fields.push(Field::new(&plan.name, array.data_type().clone(), true));
            arrays.push(array);
        }
        let schema = Arc::clone(out_schema.get_or_insert_with(|| Arc::new(Schema::new(fields))));
        let out = RecordBatch::try_new(schema, arrays)?;
        count_classes(&out, &plans, &mut classes)?;
        report.rows += out.num_rows() as u64;
        buffered += out.num_rows();
        buffer.push(out);
        if buffered >= ROWS_PER_COMMIT {
            out_table = Some(
                append(
                    target,
                    &url,
                    out_table,
                    std::mem::take(&mut buffer),
                    &properties,
                )
                .await?,
            );
            buffered = 0;
        }
    }
    if !buffer.is_empty() || out_table.is_none() {
        if buffer.is_empty() {
            let schema = match out_schema {
                Some(s) => s,
                None => Arc::new(empty_schema(&plans, &schema)),
            };
            buffer.push(RecordBatch::new_empty(schema));
        }
        out_table = Some(append(target, &url, out_table, buffer, &properties).await?);
    }
    let written = out_table.ok_or_else(|| Error::Export(format!("{name}: nothing written")))?;

    let quasi: Vec<String> = plans
        .iter()
        .filter(|p| p.quasi)
        .map(|p| p.name.clone())
        .collect();
    if !quasi.is_empty() && report.rows > 0 {
        report.k_anonymity = Some(KAnonymity {
            quasi_identifiers: quasi,
            k: classes.values().copied().min().unwrap_or(0),
            classes: classes.len() as u64,
            rows_below_threshold: classes.values().filter(|c| **c < K_THRESHOLD).sum(),
            threshold: K_THRESHOLD,
        });
    }
    target
        .catalog()
        .record(&[CatalogEvent {
            description: Some(format!(
                "De-identified ({}) export {export_id} of {name} at version {}",
                options.mode.as_str(),
                source_version.map(|v| v.to_string()).unwrap_or_default()
            )),
            source: Some(format!(
                "carelake export --deidentify {}",
                options.mode.as_str()
            )),
            owner: None,
            ..CatalogEvent::written(name.clone(), &written)
        }])
        .await?;
    Ok(report)
}

/// The output schema of a table with no rows.
fn empty_schema(plans: &[ColumnPlan], schema: &Schema) -> Schema {
    let fields: Vec<Field> = plans
        .iter()
        .map(|p| {
            let input = schema
                .field_with_name(&p.name)
                .map(|f| transform::plain_type(f.data_type()))
                .unwrap_or(DataType::Utf8);
            let t = match &p.action {
                Action::Keep | Action::Shift => input,
                Action::Surrogate(_) => match input {
                    DataType::List(_) => {
                        DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))
                    }
                    _ => DataType::Utf8,
                },
                Action::Year | Action::BirthYear => DataType::Int32,
                Action::CapAge => DataType::Int64,
                Action::Zip3 => DataType::Utf8,
            };
            Field::new(&p.name, t, true)
        })
        .collect();
    Schema::new(fields)
}

fn writer_properties(uncompressed: bool) -> WriterProperties {
    let compression = if uncompressed {
        Compression::UNCOMPRESSED
    } else {
        Compression::SNAPPY
    };
    WriterProperties::builder()
        .set_compression(compression)
        .build()
}

/// Appends to the target table (made by the first append).
pub(super) async fn append(
    target: &Lake,
    url: &url::Url,
    table: Option<DeltaTable>,
    batches: Vec<RecordBatch>,
    properties: &WriterProperties,
) -> Result<DeltaTable> {
    let table = match table {
        Some(t) => t,
        None => target.delta_handle(url)?,
    };
    Ok(table
        .write(batches)
        .with_save_mode(SaveMode::Append)
        .with_writer_properties(properties.clone())
        .with_commit_properties(carelake_lake::commit_properties(
            Vec::new(),
            vec![("carelake.operation".to_string(), "export".into())],
        ))
        .await?)
}

/// The date offset of each row: of its person, MRN or encounter (the first such column with a
/// value), or the export's one offset for rows about nobody known.
fn row_offsets(
    batch: &RecordBatch,
    anchors: &[(Anchor, String)],
    patients: &Patients,
    surrogates: &mut Surrogates,
) -> Result<Vec<Option<i32>>> {
    let columns: Vec<(Anchor, StringArray)> = anchors
        .iter()
        .filter_map(|(kind, c)| batch.column_by_name(c).map(|a| (*kind, a)))
        .map(|(kind, a)| Ok((kind, transform::as_text(a)?)))
        .collect::<Result<_>>()?;
    let mut offsets = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let anchor = columns
            .iter()
            .find(|(_, a)| a.is_valid(row))
            .map(|(kind, a)| patients.anchor(*kind, a.value(row)))
            .unwrap_or_else(|| "export".to_string());
        offsets.push(Some(surrogates.offset(&anchor)));
    }
    Ok(offsets)
}

/// Counts rows per combination of the quasi-identifier values.
fn count_classes(
    batch: &RecordBatch,
    plans: &[ColumnPlan],
    classes: &mut HashMap<String, u64>,
) -> Result<()> {
    let quasi: Vec<StringArray> = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| p.quasi)
        .map(|(i, _)| {
            let column = batch.column(i);
            if column.data_type().is_nested() {
                let text = arrow::util::display::ArrayFormatter::try_new(
                    column.as_ref(),
                    &arrow::util::display::FormatOptions::default(),
                )?;
                Ok((0..column.len())
                    .map(|r| column.is_valid(r).then(|| text.value(r).to_string()))
                    .collect())
            } else {
                transform::as_text(column)
            }
        })
        .collect::<Result<_>>()?;
    if quasi.is_empty() {
        return Ok(());
    }
    let mut key = String::new();
    for row in 0..batch.num_rows() {
        key.clear();
        for column in &quasi {
            if column.is_valid(row) {
                key.push_str(column.value(row));
            } else {
                key.push('\u{0}');
            }
            key.push('\u{1f}');
        }
        *classes.entry(key.clone()).or_default() += 1;
    }
    Ok(())
}
