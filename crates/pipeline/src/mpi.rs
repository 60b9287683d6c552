//! The master patient index as a built-in model: person records in, `mpi_links` (linked
//! pairs), `mpi_review` (possible matches for a person to decide), `person_xref` (each record's
//! `person_key`) and `person` (one golden record per person) out. Person keys of the last run
//! are read back so that they stay stable.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field as ArrowField, Schema};
use carelake_common::TableName;
use carelake_link::{
    Field, LinkConfig, RecordSet, SurvivorshipRules, cluster, golden_records, link,
};
use carelake_sql::Session;

use crate::error::{Error, Result};
use crate::project::{Builtin, Model};

const SOURCE_COLUMNS: [&str; 3] = ["source", "source_system", "system"];
const ID_COLUMNS: [&str; 3] = ["record_id", "id", "mrn"];
const UPDATED_COLUMNS: [&str; 2] = ["updated_at", "last_updated"];

fn strings(batch: &RecordBatch, index: usize) -> Result<StringArray> {
    let array = cast(batch.column(index), &DataType::Utf8)?;
    Ok(array
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .unwrap_or_else(|| StringArray::from(vec![None::<&str>; batch.num_rows()])))
}

/// Runs the model; returns rows read and persons written.
pub(crate) async fn run(session: &Session, model: &Model) -> Result<(u64, u64)> {
    let Some(Builtin::Mpi { input }) = &model.builtin else {
        return Err(Error::Model {
            model: model.name.clone(),
            reason: "not the mpi model".into(),
        });
    };
    let model_error = |reason: String| Error::Model {
        model: model.name.clone(),
        reason,
    };
    let result = session
        .sql(&format!("SELECT * FROM {}.\"{}\"", input.zone, input.name))
        .await?;
    let schema = Arc::clone(&result.schema);
    let find = |names: &[&str]| {
        schema
            .fields()
            .iter()
            .position(|f| names.contains(&f.name().to_ascii_lowercase().as_str()))
    };
    let source_at = find(&SOURCE_COLUMNS).ok_or_else(|| {
        model_error(format!(
            "{input} needs a source column (source or source_system)"
        ))
    })?;
    let id_at = find(&ID_COLUMNS)
        .ok_or_else(|| model_error(format!("{input} needs a record_id column")))?;
    let updated_at = find(&UPDATED_COLUMNS);
    let mut fields: Vec<(usize, Field)> = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i == source_at || i == id_at || Some(i) == updated_at {
            continue;
        }
        if let Some(field) = Field::from_column(f.name())
            && !fields.iter().any(|(_, g)| *g == field)
        {
            fields.push((i, field));
        }
    }
    if fields.is_empty() {
        return Err(model_error(format!(
            "{input} has no person fields (first_name, last_name, birth_date, …)"
        )));
    }
    // Latest version of each record.
    struct Row {
        source: String,
        id: String,
        updated: String,
        values: Vec<String>,
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut latest: HashMap<(String, String), usize> = HashMap::new();
    for batch in &result.batches {
        let source = strings(batch, source_at)?;
        let id = strings(batch, id_at)?;
        let updated = updated_at.map(|u| strings(batch, u)).transpose()?;
        let values: Vec<StringArray> = fields
            .iter()
            .map(|(i, _)| strings(batch, *i))
            .collect::<Result<_>>()?;
        for r in 0..batch.num_rows() {
            if source.is_null(r) || id.is_null(r) {
                continue;
            }
            let row = Row {
                source: source.value(r).to_string(),
                id: id.value(r).to_string(),
                updated: updated
                    .as_ref()
                    .filter(|u| !u.is_null(r))
                    .map_or_else(String::new, |u| u.value(r).to_string()),
                values: values
                    .iter()
                    .map(|v| {
                        if v.is_null(r) {
                            String::new()
                        } else {
                            v.value(r).to_string()
                        }
                    })
                    .collect(),
            };
            let key = (row.source.clone(), row.id.clone());
            match latest.get(&key) {
                Some(kept) if rows[*kept].updated > row.updated => {}
                Some(kept) => {
                    let kept = *kept;
                    rows[kept] = row;
                }
                None => {
                    latest.insert(key, rows.len());
                    rows.push(row);
                }
            }
        }
    }
    let rows_in = result.row_count() as u64;
    let field_list: Vec<Field> = fields.iter().map(|(_, f)| *f).collect();
    let mut builder = RecordSet::builder(&field_list);
    for row in &rows {
        let values: Vec<&str> = row.values.iter().map(String::as_str).collect();
        builder.push(&row.source, &row.id, &row.updated, &values)?;
    }
    let records = builder.build()?;

    let zone = model.target.zone;
    let table = |name: &str| TableName {
        zone,
        name: name.to_string(),
    };
    let xref_name = table("person_xref");
    let previous = previous_keys(session, &xref_name).await;
    let linkage = tokio::task::block_in_place(|| link(&records, &LinkConfig::default()))?;
    let clusters = cluster(&records, linkage.links().map(|p| (p.a, p.b)), &previous);
    let golden = golden_records(&records, &clusters, &SurvivorshipRules::default());
    let upstream = vec![input.clone()];

    // person_xref
    let members = clusters.members();
    let size_of: Vec<i64> = (0..records.len())
        .map(|i| members[clusters.cluster_of(i)].len() as i64)
        .collect();
    let source_of = |i: usize| records.sources()[records.source_of(i)].clone();
    let xref = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            ArrowField::new("source", DataType::Utf8, false),
            ArrowField::new("record_id", DataType::Utf8, false),
            ArrowField::new("person_key", DataType::Utf8, false),
            ArrowField::new("cluster_size", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..records.len()).map(source_of),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..records.len()).map(|i| records.id(i).to_string()),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..records.len()).map(|i| clusters.person_key(i).to_string()),
            )),
            Arc::new(Int64Array::from(size_of)),
        ],
    )?;
    session
        .replace_table(
            &xref_name,
            xref.schema(),
            vec![xref],
            "mpi",
            upstream.clone(),
            Some("Master patient index: each source record's person_key.".into()),
        )
        .await?;

    // mpi_links and mpi_review
    let pair_batch = |pairs: Vec<&carelake_link::ScoredPair>| -> Result<RecordBatch> {
        let side = |f: &dyn Fn(&carelake_link::ScoredPair) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| f(p))))
        };
        let levels = |p: &carelake_link::ScoredPair| {
            linkage
                .comparisons
                .iter()
                .enumerate()
                .map(|(k, c)| format!("{}={}", c.name(), c.level_labels()[p.level(k) as usize]))
                .collect::<Vec<_>>()
                .join("; ")
        };
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                ArrowField::new("source_a", DataType::Utf8, false),
                ArrowField::new("record_id_a", DataType::Utf8, false),
                ArrowField::new("person_key_a", DataType::Utf8, false),
                ArrowField::new("source_b", DataType::Utf8, false),
                ArrowField::new("record_id_b", DataType::Utf8, false),
                ArrowField::new("person_key_b", DataType::Utf8, false),
                ArrowField::new("match_probability", DataType::Float64, false),
                ArrowField::new("match_weight", DataType::Float64, false),
                ArrowField::new("agreement", DataType::Utf8, false),
            ])),
            vec![
                side(&|p| source_of(p.a as usize)),
                side(&|p| records.id(p.a as usize).to_string()),
                side(&|p| clusters.person_key(p.a as usize).to_string()),
                side(&|p| source_of(p.b as usize)),
                side(&|p| records.id(p.b as usize).to_string()),
                side(&|p| clusters.person_key(p.b as usize).to_string()),
                Arc::new(Float64Array::from_iter_values(
                    pairs.iter().map(|p| p.probability),
                )),
                Arc::new(Float64Array::from_iter_values(
                    pairs.iter().map(|p| p.weight),
                )),
                side(&levels),
            ],
        )?)
    };
    let links = pair_batch(linkage.links().collect())?;
    session
        .replace_table(
            &table("mpi_links"),
            links.schema(),
            vec![links],
            "mpi",
            upstream.clone(),
            Some("Master patient index: record pairs linked as the same person.".into()),
        )
        .await?;
    let reviews = pair_batch(linkage.reviews().collect())?;
    session
        .replace_table(
            &table("mpi_review"),
            reviews.schema(),
            vec![reviews],
            "mpi",
            upstream.clone(),
            Some(
                "Master patient index: possible matches below the link threshold, for review."
                    .into(),
            ),
        )
        .await?;

    // person: the golden records
    let mut columns: Vec<ArrowField> = vec![
        ArrowField::new("person_key", DataType::Utf8, false),
        ArrowField::new("record_count", DataType::Int64, false),
        ArrowField::new("source_count", DataType::Int64, false),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            golden.iter().map(|g| g.person_key.clone()),
        )),
        Arc::new(Int64Array::from_iter_values(
            golden.iter().map(|g| g.record_count as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            golden.iter().map(|g| g.source_count as i64),
        )),
    ];
    for field in records.fields() {
        columns.push(ArrowField::new(field.name(), DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from_iter(golden.iter().map(|g| {
            let v = g.value(*field);
            (!v.is_empty()).then(|| v.to_string())
        }))));
    }
    let person = RecordBatch::try_new(Arc::new(Schema::new(columns)), arrays)?;
    let persons = session
        .replace_table(
            &table("person"),
            person.schema(),
            vec![person],
            "mpi",
            upstream,
            Some("Master patient index: one golden record per person (survivorship: most trusted source for identity, most recent for contact).".into()),
        )
        .await?;
    tracing::info!(
        records = records.len(),
        persons,
        links = linkage.links().count(),
        reviews = linkage.reviews().count(),
        "Master patient index built."
    );
    Ok((rows_in, persons))
}

/// The person keys of the last run, by `source:record_id`; none when there was no run.
async fn previous_keys(session: &Session, xref: &TableName) -> HashMap<String, String> {
    let sql = format!(
        "SELECT source, record_id, person_key FROM {}.\"{}\"",
        xref.zone, xref.name
    );
    let Ok(result) = session.sql(&sql).await else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for batch in &result.batches {
        let col = |i: usize| strings(batch, i).ok();
        if let (Some(s), Some(r), Some(k)) = (col(0), col(1), col(2)) {
            for i in 0..batch.num_rows() {
                out.insert(
                    format!("{}:{}", s.value(i), r.value(i)),
                    k.value(i).to_string(),
                );
            }
        }
    }
    out
}
