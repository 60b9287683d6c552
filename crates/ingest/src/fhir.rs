//! FHIR R4 into the lake: every resource kept raw, one table per resource type
//! (`raw.fhir_patient`, `raw.fhir_encounter`, …: id, versionId, lastUpdated, a deleted flag and
//! the resource JSON), then flattened by SQL-on-FHIR v2 ViewDefinitions into `curated` tables.
//!
//! Input files are Bundles (batch, transaction, collection, searchset, history…), single
//! resources, or bulk-export NDJSON. A Bundle entry that deletes a resource is kept as a
//! tombstone row. The views show, for each resource id, its newest version — by lastUpdated,
//! then versionId, then load order — and leave out resources whose newest version is a
//! deletion. The shipped default views cover fourteen resource types; users add their own
//! ViewDefinition JSON files with [`add_view`], stored in the lake under `_carelake/fhir_views/`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::{Principal, TableName, Zone};
use carelake_fhir::ViewDefinition;
use carelake_lake::{Lake, Provenance, TableWrite, TimeTravel, WriteMode};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clinical::{
    ClinicalParser, FileParse, RoundContext, SourceFile, TableSpec, clip, table_index,
};
use crate::columns::{ColumnSpec, Kind, Lineage, TableRows, col as column};
use crate::rows::Reject;
use crate::staged::RowSink;
use crate::{Error, Result};

/// Folder under `_carelake/` with users' ViewDefinitions.
const VIEWS_FOLDER: &str = "fhir_views";

const RESOURCE_COLUMNS: &[ColumnSpec] = &[
    column("id", Kind::Text),
    column("version_id", Kind::Text),
    column("last_updated", Kind::Timestamp),
    column("deleted", Kind::Bool),
    column("full_url", Kind::Text),
    column("resource", Kind::Text),
];

/// The raw table of a resource type: `fhir_` and the type in snake case.
pub(crate) fn raw_table_of(resource_type: &str) -> String {
    let mut name = String::from("fhir_");
    for (i, c) in resource_type.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

fn valid_resource_type(resource_type: &str) -> bool {
    let mut chars = resource_type.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && resource_type.len() <= 64
}

fn parse_instant(text: Option<&str>) -> Option<DateTime<Utc>> {
    let text = text?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The file loader's FHIR parser.
#[derive(Debug, Default)]
pub(crate) struct FhirParser;

impl FhirParser {
    fn add(
        tables: &mut Vec<(TableSpec, TableRows)>,
        resource: Option<&Value>,
        meta: &carelake_fhir::ResourceMeta,
        full_url: Option<&str>,
        deleted: bool,
        lineage: &Lineage<'_>,
    ) -> std::result::Result<(), String> {
        if !valid_resource_type(&meta.resource_type) {
            return Err("resourceType is not a FHIR resource type name".into());
        }
        let name = raw_table_of(&meta.resource_type);
        let description = format!(
            "FHIR R4 {} resources as received (every version), with their JSON",
            meta.resource_type
        );
        let index = table_index(tables, &name, &description, RESOURCE_COLUMNS);
        let json = resource.map(|r| r.to_string());
        tables[index]
            .1
            .row()
            .text(meta.id.as_deref())
            .text(meta.version_id.as_deref())
            .timestamp(parse_instant(meta.last_updated.as_deref()))
            .bool(Some(deleted))
            .text(full_url)
            .text(json.as_deref())
            .end(lineage);
        Ok(())
    }
}

impl ClinicalParser for FhirParser {
    fn parse_file(
        &mut self,
        file: &SourceFile,
        context: &RoundContext,
        tables: &mut RowSink,
    ) -> FileParse {
        let mut parse = FileParse::default();
        let lineage = |line: usize| Lineage {
            file: &file.label,
            line: line as i64,
            load_id: &context.load_id,
            loaded_at: context.loaded_at,
        };
        let content = file
            .content
            .strip_prefix(b"\xef\xbb\xbf")
            .unwrap_or(&file.content);
        // A whole JSON document (a Bundle or one resource), else NDJSON.
        let whole: Option<Value> = if content.trim_ascii_start().starts_with(b"{") {
            serde_json::from_slice(content).ok()
        } else {
            None
        };
        if let Some(document) = whole {
            let is_bundle = document.get("resourceType").and_then(Value::as_str) == Some("Bundle");
            if is_bundle {
                match carelake_fhir::read_bundle(&document) {
                    Ok(entries) => {
                        for (i, entry) in entries.iter().enumerate() {
                            parse.records += 1;
                            let added = match &entry.problem {
                                Some(problem) => Err(problem.clone()),
                                None => Self::add(
                                    tables,
                                    entry.resource.as_ref(),
                                    &entry.meta,
                                    entry.full_url.as_deref(),
                                    entry.deleted,
                                    &lineage(i + 1),
                                ),
                            };
                            tables.flush_full();
                            if let Err(reason) = added {
                                parse.rejects.push(Reject {
                                    line: (i + 1) as u64,
                                    reason: format!("FHIR entry {} rejected: {reason}", i + 1),
                                    raw: entry
                                        .resource
                                        .as_ref()
                                        .map(|r| clip(&r.to_string()))
                                        .unwrap_or_default(),
                                });
                            }
                        }
                    }
                    Err(e) => {
                        parse.records += 1;
                        parse.whole_file_rejected = true;
                        parse.rejects.push(Reject {
                            line: 1,
                            reason: format!("FHIR Bundle rejected: {e}"),
                            raw: clip(&String::from_utf8_lossy(content)),
                        });
                    }
                }
            } else {
                parse.records += 1;
                self.one_resource(&document, tables, &mut parse, &lineage(1), content);
            }
            return parse;
        }
        for (i, line) in content.split(|b| *b == b'\n').enumerate() {
            let line_text = line.trim_ascii();
            if line_text.is_empty() {
                continue;
            }
            parse.records += 1;
            let number = i + 1;
            let text = match std::str::from_utf8(line_text) {
                Ok(t) => t,
                Err(_) => {
                    parse.rejects.push(Reject {
                        line: number as u64,
                        reason: "line is not valid UTF-8".into(),
                        raw: clip(&String::from_utf8_lossy(line_text)),
                    });
                    continue;
                }
            };
            match carelake_fhir::read_ndjson_line(text) {
                Ok(resource) => {
                    self.one_resource(&resource, tables, &mut parse, &lineage(number), line_text);
                    tables.flush_full();
                }
                Err(e) => parse.rejects.push(Reject {
                    line: number as u64,
                    reason: format!("FHIR resource rejected: {e}"),
                    raw: clip(text),
                }),
            }
        }
        parse
    }

    fn commit_order(&self, tables: &mut [(TableSpec, SchemaRef)]) {
        tables.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    }
}

impl FhirParser {
    fn one_resource(
        &self,
        resource: &Value,
        tables: &mut Vec<(TableSpec, TableRows)>,
        parse: &mut FileParse,
        lineage: &Lineage<'_>,
        raw: &[u8],
    ) {
        let result = carelake_fhir::ResourceMeta::of(resource)
            .map_err(|e| e.to_string())
            .and_then(|meta| Self::add(tables, Some(resource), &meta, None, false, lineage));
        if let Err(reason) = result {
            parse.rejects.push(Reject {
                line: lineage.line as u64,
                reason: format!("FHIR resource rejected: {reason}"),
                raw: clip(&String::from_utf8_lossy(raw)),
            });
        }
    }
}

/// Every ViewDefinition in force: the shipped defaults, then the lake's own (which replace a
/// default of the same name).
pub async fn views(lake: &Lake) -> Result<Vec<ViewDefinition>> {
    let mut views: Vec<ViewDefinition> = carelake_fhir::default_views();
    for (file, content) in lake.system_files(VIEWS_FOLDER).await? {
        let json: Value = serde_json::from_slice(&content).map_err(|e| Error::FhirView {
            name: file.clone(),
            reason: e.to_string(),
        })?;
        let view = ViewDefinition::from_json(&json).map_err(|e| Error::FhirView {
            name: file.clone(),
            reason: e.to_string(),
        })?;
        views.retain(|v| v.name() != view.name());
        views.push(view);
    }
    Ok(views)
}

/// The curated table a view fills.
fn view_table(view: &ViewDefinition) -> Result<TableName> {
    Ok(TableName::new(Zone::Curated, view.name())?)
}

/// Adds (or replaces) a user ViewDefinition in the lake and materialises it. Returns its table
/// and row count.
pub async fn add_view(
    lake: &Lake,
    principal: &Principal,
    json: &Value,
) -> Result<(TableName, u64)> {
    let view = ViewDefinition::from_json(json).map_err(|e| Error::FhirView {
        name: "(new view)".into(),
        reason: e.to_string(),
    })?;
    if !view.has_name() {
        return Err(Error::FhirView {
            name: "(new view)".into(),
            reason: "a view added to the lake needs a `name`: it names its table, curated.<name>"
                .into(),
        });
    }
    let table = view_table(&view)?;
    let pretty = serde_json::to_vec_pretty(json).map_err(|e| Error::FhirView {
        name: view.name().to_string(),
        reason: e.to_string(),
    })?;
    lake.put_system_file(&format!("{VIEWS_FOLDER}/{}.json", view.name()), pretty)
        .await?;
    let rows = materialize(lake, principal, &view).await?;
    Ok((table, rows))
}

/// Recomputes every view that is behind: its table missing, not in the catalog or behind its
/// catalog entry, or computed from another version of its raw table or another definition.
/// A view table's commit records what it was computed from (see [`view_source_id`]), so a load
/// stopped after its raw commit but before its views are written (a crash) is completed by the
/// next load or refresh, whether or not that one brings anything new.
pub(crate) async fn refresh_views(lake: &Lake, principal: &Principal) -> Result<()> {
    for view in views(lake).await? {
        let raw = TableName::new(Zone::Raw, raw_table_of(view.resource()))?;
        let Some(raw_table) = lake
            .load_delta(&lake.table_url(&raw)?, TimeTravel::Latest)
            .await?
        else {
            continue;
        };
        let target = view_table(&view)?;
        let current = match lake
            .load_delta(&lake.table_url(&target)?, TimeTravel::Latest)
            .await?
        {
            None => false,
            Some(table) => {
                let source = carelake_lake::app_version(&table, &view_source_id(&view)).await?;
                let listed = lake
                    .catalog()
                    .get(&target)
                    .await?
                    .is_some_and(|e| e.table_version >= table.version().map(|v| v as i64));
                listed && source == raw_table.version().map(|v| v as i64)
            }
        };
        if !current {
            materialize(lake, principal, &view).await?;
        }
    }
    Ok(())
}

/// The application-transaction id a view table's commits carry: it names the view's definition
/// (a hash of its JSON); its version is the version of the raw table the rows were computed from.
fn view_source_id(view: &ViewDefinition) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(view.json().to_string().as_bytes());
    format!(
        "carelake-view:{}:{}",
        view.name(),
        hex::encode(&digest[..16])
    )
}

/// Recomputes every view from the raw tables; returns (view table, rows).
pub async fn refresh_all_views(
    lake: &Lake,
    principal: &Principal,
) -> Result<Vec<(TableName, u64)>> {
    let mut out = Vec::new();
    for view in views(lake).await? {
        let rows = materialize(lake, principal, &view).await?;
        out.push((view_table(&view)?, rows));
    }
    Ok(out)
}

/// What orders the versions of one resource.
#[derive(Debug, Clone, Copy)]
struct VersionKey {
    /// `meta.lastUpdated`, microseconds.
    last_updated: Option<i64>,
    /// `meta.versionId` when it is a number.
    version: Option<i64>,
    /// When and where the row was loaded: (load time, source line).
    loaded: (i64, i64),
}

impl VersionKey {
    /// Whether this version supersedes `other`: by lastUpdated when both have it, else by a
    /// numeric versionId when both have one, else the later load (a DELETE entry carries
    /// neither, so it wins over what was loaded before it).
    fn newer_than(&self, other: &VersionKey) -> bool {
        if let (Some(a), Some(b)) = (self.last_updated, other.last_updated)
            && a != b
        {
            return a > b;
        }
        if let (Some(a), Some(b)) = (self.version, other.version)
            && a != b
        {
            return a > b;
        }
        self.loaded >= other.loaded
    }
}

/// The newest version of a resource, with the load that brought it.
struct Current {
    /// The resource's JSON text, parsed only when the view reads it (a parsed resource takes
    /// several times the memory of its text).
    json: String,
    load_id: Option<String>,
    /// Microseconds since the epoch.
    loaded_at: Option<i64>,
}

/// The newest version of each resource of a type, deletions left out.
/// Returns them with the version of the raw table read.
async fn current_resources(
    lake: &Lake,
    resource_type: &str,
) -> Result<Option<(Vec<Current>, i64)>> {
    let name = TableName::new(Zone::Raw, raw_table_of(resource_type))?;
    let Some(table) = lake
        .load_delta(&lake.table_url(&name)?, TimeTravel::Latest)
        .await?
    else {
        return Ok(None);
    };
    let version = table.version().map_or(-1, |v| v as i64);
    // Streamed, so that memory holds one batch and the newest text of each resource.
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let mut batches = ctx
        .read_table(table.table_provider().await?)?
        .select_columns(&[
            "id",
            "version_id",
            "last_updated",
            "deleted",
            "resource",
            "_loaded_at",
            "_source_line",
            "_load_id",
        ])?
        .execute_stream()
        .await?;
    // id → (version key, resource JSON or None when deleted, load id, loaded at)
    type Newest = (VersionKey, Option<String>, Option<String>, Option<i64>);
    let mut newest: HashMap<String, Newest> = HashMap::new();
    while let Some(batch) = futures::StreamExt::next(&mut batches).await {
        let batch = batch?;
        let utf8 = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Utf8);
        let (id, version, resource) = (utf8(0)?, utf8(1)?, utf8(4)?);
        let (id, version, resource) = (
            id.as_string::<i32>(),
            version.as_string::<i32>(),
            resource.as_string::<i32>(),
        );
        let updated = arrow::compute::cast(batch.column(2), &DataType::Int64)?;
        let updated = updated.as_primitive::<arrow::datatypes::Int64Type>();
        let deleted = batch.column(3).as_boolean();
        let loaded = arrow::compute::cast(batch.column(5), &DataType::Int64)?;
        let loaded = loaded.as_primitive::<arrow::datatypes::Int64Type>();
        let line = batch
            .column(6)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let load_id = utf8(7)?;
        let load_id = load_id.as_string::<i32>();
        for row in 0..batch.num_rows() {
            if id.is_null(row) {
                continue;
            }
            let key = VersionKey {
                last_updated: (!updated.is_null(row)).then(|| updated.value(row)),
                version: (!version.is_null(row))
                    .then(|| version.value(row).parse::<i64>().ok())
                    .flatten(),
                loaded: (
                    if loaded.is_null(row) {
                        0
                    } else {
                        loaded.value(row)
                    },
                    if line.is_null(row) {
                        0
                    } else {
                        line.value(row)
                    },
                ),
            };
            let is_deleted = !deleted.is_null(row) && deleted.value(row);
            let json =
                (!is_deleted && !resource.is_null(row)).then(|| resource.value(row).to_string());
            match newest.get(id.value(row)) {
                Some((existing, ..)) if !key.newer_than(existing) => {}
                _ => {
                    let load = (!load_id.is_null(row)).then(|| load_id.value(row).to_string());
                    let at = (!loaded.is_null(row)).then(|| loaded.value(row));
                    newest.insert(id.value(row).to_string(), (key, json, load, at));
                }
            }
        }
    }
    let mut ids: Vec<_> = newest.into_iter().collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    let mut resources = Vec::with_capacity(ids.len());
    for (_, (_, json, load_id, loaded_at)) in ids {
        if let Some(json) = json {
            resources.push(Current {
                json,
                load_id,
                loaded_at,
            });
        }
    }
    Ok(Some((resources, version)))
}

/// The Arrow type of a view column from its FHIR type.
fn arrow_type(fhir_type: Option<&str>) -> DataType {
    match fhir_type {
        Some("boolean") => DataType::Boolean,
        Some("integer" | "positiveInt" | "unsignedInt" | "integer64") => DataType::Int64,
        Some("decimal") => DataType::Float64,
        _ => DataType::Utf8,
    }
}

fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

enum ViewColumn {
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    List(ListBuilder<StringBuilder>),
}

impl ViewColumn {
    fn push(&mut self, value: &Value) {
        match self {
            ViewColumn::Text(b) => b.append_option(json_text(value)),
            ViewColumn::Int(b) => b.append_option(value.as_i64()),
            ViewColumn::Float(b) => b.append_option(value.as_f64()),
            ViewColumn::Bool(b) => b.append_option(value.as_bool()),
            ViewColumn::List(b) => match value {
                Value::Null => b.append_null(),
                Value::Array(items) => {
                    for item in items {
                        b.values().append_option(json_text(item));
                    }
                    b.append(true);
                }
                other => {
                    b.values().append_option(json_text(other));
                    b.append(true);
                }
            },
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ViewColumn::Text(b) => Arc::new(b.finish()),
            ViewColumn::Int(b) => Arc::new(b.finish()),
            ViewColumn::Float(b) => Arc::new(b.finish()),
            ViewColumn::Bool(b) => Arc::new(b.finish()),
            ViewColumn::List(b) => Arc::new(b.finish()),
        }
    }
}

/// Evaluates a view over the current resources and replaces its curated table; returns the
/// number of rows. A view whose resources have never been loaded is left alone.
pub async fn materialize(lake: &Lake, principal: &Principal, view: &ViewDefinition) -> Result<u64> {
    let Some((resources, source_version)) = current_resources(lake, view.resource()).await? else {
        return Ok(0);
    };
    let columns = view.columns();
    let mut fields = Vec::new();
    let mut builders = Vec::new();
    for c in &columns {
        if c.collection {
            fields.push(Field::new(
                &c.name,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ));
            builders.push(ViewColumn::List(ListBuilder::new(StringBuilder::new())));
        } else {
            let data_type = arrow_type(c.fhir_type.as_deref());
            builders.push(match data_type {
                DataType::Boolean => ViewColumn::Bool(BooleanBuilder::new()),
                DataType::Int64 => ViewColumn::Int(Int64Builder::new()),
                DataType::Float64 => ViewColumn::Float(Float64Builder::new()),
                _ => ViewColumn::Text(StringBuilder::new()),
            });
            fields.push(Field::new(&c.name, data_type, true));
        }
    }
    // Lineage of each row: the load that brought its resource's version, so that pipeline
    // models can read the view incrementally.
    fields.push(Field::new("_load_id", DataType::Utf8, true));
    fields.push(Field::new(
        "_loaded_at",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    let mut load_ids = StringBuilder::new();
    let mut loaded_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let schema = Arc::new(Schema::new(fields));
    let mut rows = 0u64;
    let mut failures = 0u64;
    let mut first_failure = None;
    for current in resources {
        let Ok(resource) = serde_json::from_str::<Value>(&current.json) else {
            continue;
        };
        drop(current.json);
        match view.evaluate(&resource) {
            Ok(out) => {
                for row in out {
                    for (builder, value) in builders.iter_mut().zip(row.iter()) {
                        builder.push(value);
                    }
                    load_ids.append_option(current.load_id.as_deref());
                    loaded_at.append_option(current.loaded_at);
                    rows += 1;
                }
            }
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(reason) = first_failure {
        tracing::warn!(view = view.name(), resources = failures, %reason, "A view could not flatten some resources; they are left out of it.");
    }
    let mut arrays: Vec<ArrayRef> = builders.iter_mut().map(ViewColumn::finish).collect();
    arrays.push(Arc::new(load_ids.finish()));
    arrays.push(Arc::new(loaded_at.finish()));
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
    let name = view_table(view)?;
    let description = view.description().map(str::to_string).unwrap_or_else(|| {
        format!(
            "{} resources flattened by a SQL-on-FHIR view",
            view.resource()
        )
    });
    let provenance = Provenance::new(
        format!("SQL-on-FHIR view {}", view.name()),
        principal.name.clone(),
    )
    .described(description)
    .upstream(vec![TableName::new(
        Zone::Raw,
        raw_table_of(view.resource()),
    )?]);
    TableWrite::new(name, WriteMode::Replace, provenance)
        .transaction(view_source_id(view), source_version)
        .batches(lake, None, vec![batch])
        .await?;
    tracing::info!(view = view.name(), rows, "FHIR view materialised.");
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_table_names() {
        assert_eq!(raw_table_of("Patient"), "fhir_patient");
        assert_eq!(raw_table_of("MedicationRequest"), "fhir_medication_request");
        assert_eq!(
            raw_table_of("ExplanationOfBenefit"),
            "fhir_explanation_of_benefit"
        );
        assert!(valid_resource_type("AllergyIntolerance"));
        assert!(!valid_resource_type("patient"));
        assert!(!valid_resource_type("Pat ient"));
    }

    #[test]
    fn version_order() {
        let v = |last_updated, version, loaded| VersionKey {
            last_updated,
            version,
            loaded: (loaded, 0),
        };
        // lastUpdated decides over load order (an old export loaded late does not win).
        assert!(!v(Some(1), None, 9).newer_than(&v(Some(2), None, 1)));
        assert!(v(Some(1), Some(3), 1).newer_than(&v(Some(1), Some(2), 9)));
        // A deletion (no meta) loaded later wins.
        assert!(v(None, None, 5).newer_than(&v(Some(2), Some(1), 1)));
        assert!(!v(None, None, 0).newer_than(&v(Some(2), Some(1), 1)));
    }
}
