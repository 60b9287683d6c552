//! The export: the source lake's tables, table by table and batch by batch, through the
//! column roles into a new lake; the surrogate mapping into the source's `_carelake/deid_map`;
//! a report; an audit record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::{Principal, TableName, Zone};
use carelake_lake::{AuditRecord, CatalogEvent, EntryKind, Lake, TimeTravel};
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::DeltaTable;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use futures::StreamExt;
use serde::Serialize;

use crate::roles::{ColumnRole, key_domain};
use crate::tags::{TagStore, lake_folder};
use crate::transform::{self, Surrogates};
use crate::{Error, Result};

/// The mapping table of the source lake (export id, domain, original, surrogate).
pub const MAPPING_TABLE: &str = "_carelake/deid_map";

/// Where the report goes in the target, under `_carelake/`.
pub const REPORT_FILE: &str = "deid_report.json";

/// Equivalence classes smaller than this are counted in the report.
pub const K_THRESHOLD: u64 = 5;

/// Rows gathered before they are appended to the target table.
const ROWS_PER_COMMIT: usize = 250_000;

/// Which de-identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// HIPAA Safe Harbor (45 CFR 164.514(b)(2)).
    SafeHarbor,
    /// A limited data set (45 CFR 164.514(e)): direct identifiers removed, dates shifted.
    Limited,
}

impl Mode {
    /// The mode's name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SafeHarbor => "safe-harbor",
            Mode::Limited => "limited",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "safe-harbor" | "safeharbor" => Ok(Mode::SafeHarbor),
            "limited" => Ok(Mode::Limited),
            other => Err(Error::Export(format!(
                "unknown de-identification '{other}' (safe-harbor or limited)"
            ))),
        }
    }
}

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Safe Harbor or limited data set.
    pub mode: Mode,
    /// The target: a folder or `s3://…`; becomes a carelake lake.
    pub target: String,
    /// Only these tables (none: every table of the catalog).
    pub tables: Vec<TableName>,
    /// The quasi-identifiers of the k-anonymity figure (none: each table's
    /// `quasi_identifier`, ZIP and birth date columns).
    pub quasi_identifiers: Vec<String>,
    /// Replace the tables a non-empty target holds.
    pub replace: bool,
    /// Write Parquet without compression (so that the files can be checked byte by byte).
    pub uncompressed: bool,
}

/// The k-anonymity of a table over its quasi-identifiers.
#[derive(Debug, Clone, Serialize)]
pub struct KAnonymity {
    /// The columns (as exported).
    pub quasi_identifiers: Vec<String>,
    /// The smallest equivalence class (rows sharing all quasi-identifiers).
    pub k: u64,
    /// How many classes there are.
    pub classes: u64,
    /// Rows in classes smaller than `threshold`.
    pub rows_below_threshold: u64,
    /// See [`K_THRESHOLD`].
    pub threshold: u64,
}

/// What happened to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `zone.name`, the same in source and target.
    pub table: String,
    /// The source's Delta version that was read.
    pub source_version: Option<i64>,
    /// Rows exported.
    pub rows: u64,
    /// Columns left out (identifiers, free text, Safe Harbor cities).
    pub removed: Vec<String>,
    /// Columns whose values became surrogates.
    pub surrogated: Vec<String>,
    /// Columns generalised (years, ZIP3, ages capped at 90).
    pub generalised: Vec<String>,
    /// Columns moved by the per-patient offset (limited data set).
    pub shifted: Vec<String>,
    /// Columns kept as they were.
    pub kept: Vec<String>,
    /// Values for people 90 or older: ages shown as 90, birth years left out.
    pub ninety_plus: u64,
    /// Over the table's quasi-identifiers, when it has any.
    pub k_anonymity: Option<KAnonymity>,
}

/// A table that was not exported, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedTable {
    /// `zone.name`.
    pub table: String,
    /// Why (a view, an external table, the quarantine…).
    pub reason: String,
}

/// The report of one export (no values, only names and counts).
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The export's id (also in the mapping table and the audit log).
    pub export_id: String,
    /// Safe Harbor or limited.
    pub mode: Mode,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When it ended.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// The tables exported.
    pub tables: Vec<TableReport>,
    /// The tables left out.
    pub skipped: Vec<SkippedTable>,
    /// How dates and ages read in this mode.
    pub notes: Vec<String>,
}

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

/// Which column tells the patient of a row, for the per-patient date offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Anchor {
    Person,
    Mrn,
    Encounter,
}

/// Who a row is about, for date offsets: MRN → person key (from `curated.person_xref`),
/// encounter → MRN (from the encounter tables).
#[derive(Debug, Default)]
struct Patients {
    person_of_mrn: HashMap<String, String>,
    mrn_of_encounter: HashMap<String, String>,
}

impl Patients {
    async fn load(source: &Lake) -> Result<Self> {
        let mut patients = Self::default();
        let pairs = |table: &'static str, a: &'static str, b: &'static str| async move {
            let name: TableName = table.parse()?;
            let Some(delta) = source.open_table_at(&name, TimeTravel::Latest).await? else {
                return Ok::<_, Error>(Vec::new());
            };
            let schema = delta.snapshot()?.snapshot().arrow_schema();
            if schema.field_with_name(a).is_err() || schema.field_with_name(b).is_err() {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for batch in carelake_lake::read_columns(&delta, &[a, b]).await? {
                let x = transform::as_text(batch.column(0))?;
                let y = transform::as_text(batch.column(1))?;
                for (x, y) in x.iter().zip(y.iter()) {
                    if let (Some(x), Some(y)) = (x, y) {
                        out.push((x.to_string(), y.to_string()));
                    }
                }
            }
            Ok(out)
        };
        for (mrn, person) in pairs("curated.person_xref", "record_id", "person_key").await? {
            patients.person_of_mrn.insert(mrn, person);
        }
        for table in ["raw.encounters", "curated.encounters"] {
            for (encounter, mrn) in pairs(table, "encounter_id", "mrn").await? {
                patients.mrn_of_encounter.insert(encounter, mrn);
            }
        }
        for (encounter, mrn) in pairs("curated.fhir_encounter", "id", "patient_id").await? {
            patients.mrn_of_encounter.entry(encounter).or_insert(mrn);
        }
        Ok(patients)
    }

    fn anchor(&self, kind: Anchor, value: &str) -> String {
        let mrn = match kind {
            Anchor::Person => return format!("person_key:{value}"),
            Anchor::Mrn => value,
            Anchor::Encounter => match self.mrn_of_encounter.get(value) {
                Some(mrn) => mrn.as_str(),
                None => return format!("encounter_id:{value}"),
            },
        };
        match self.person_of_mrn.get(mrn) {
            Some(person) => format!("person_key:{person}"),
            None => format!("mrn:{mrn}"),
        }
    }
}

/// Exports `options.tables` (or every table) of `source` de-identified into
/// `options.target`; records the mapping in the source and the export in its audit log.
pub async fn export(
    source: &Lake,
    options: &ExportOptions,
    by: &Principal,
) -> Result<ExportReport> {
    let started_at = chrono::Utc::now();
    let export_id = uuid::Uuid::new_v4().simple().to_string();
    check_target(source, &options.target)?;

    // What to export.
    let entries = source.catalog().list().await?;
    let mut selected = Vec::new();
    let mut skipped = Vec::new();
    for entry in &entries {
        if !options.tables.is_empty() && !options.tables.contains(&entry.name) {
            continue;
        }
        let reason = match entry.kind {
            EntryKind::View => Some("a view (not exported; define it again over the export)"),
            EntryKind::External => Some("an external table (files outside the lake)"),
            EntryKind::Table if entry.name.name.starts_with('_') => {
                Some("the quarantine of rejected input (may hold anything)")
            }
            EntryKind::Table => None,
        };
        match reason {
            Some(reason) => skipped.push(SkippedTable {
                table: entry.name.to_string(),
                reason: reason.into(),
            }),
            None => selected.push(entry.name.clone()),
        }
    }
    for wanted in &options.tables {
        if !entries.iter().any(|e| &e.name == wanted) {
            return Err(Error::Export(format!("there is no table {wanted}")));
        }
    }

    // The target: a lake with no tables, unless they are to be replaced.
    let target = Lake::init(&options.target).await?;
    let mut existing = Vec::new();
    for zone in [Zone::Raw, Zone::Curated, Zone::Analytics] {
        existing.extend(target.discover_tables(zone).await?);
    }
    for entry in target.catalog().list().await? {
        if !existing.contains(&entry.name) {
            existing.push(entry.name);
        }
    }
    if !existing.is_empty() {
        if !options.replace {
            return Err(Error::Target(format!(
                "the target already holds {} table(s); use --replace to replace them",
                existing.len()
            )));
        }
        let mut drops = Vec::new();
        for name in existing {
            target.delete_table_files(&name).await?;
            drops.push(CatalogEvent::drop(EntryKind::Table, name));
        }
        target.catalog().record(&drops).await?;
    }

    let explicit = TagStore::new(source.clone()).explicit().await?;
    let patients = match options.mode {
        Mode::Limited => Patients::load(source).await?,
        Mode::SafeHarbor => Patients::default(),
    };
    let mut surrogates = Surrogates::default();
    let mut reports = Vec::new();
    for name in &selected {
        let report = export_table(
            source,
            &target,
            name,
            options,
            &explicit,
            &patients,
            &mut surrogates,
            &export_id,
        )
        .await?;
        write_mapping(source, &export_id, options.mode, &mut surrogates).await?;
        tracing::info!(table = %name, rows = report.rows, "Exported de-identified.");
        reports.push(report);
    }

    let report = ExportReport {
        export_id: export_id.clone(),
        mode: options.mode,
        started_at,
        finished_at: chrono::Utc::now(),
        tables: reports,
        skipped,
        notes: notes(options.mode),
    };
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::Export(format!("encoding the report: {e}")))?;
    target.put_system_file(REPORT_FILE, json).await?;

    let mut record = AuditRecord::new(by.name.clone(), "cli", "export");
    record.statement = Some(format!("export --deidentify {}", options.mode.as_str()));
    record.tables = Some(
        report
            .tables
            .iter()
            .map(|t| t.table.clone())
            .collect::<Vec<_>>()
            .join(","),
    );
    record.rows = Some(report.tables.iter().map(|t| t.rows as i64).sum());
    record.detail = Some(format!(
        "de-identified export {export_id} ({}): {} table(s), {} skipped",
        options.mode.as_str(),
        report.tables.len(),
        report.skipped.len()
    ));
    source.audit_append(vec![record]).await?;
    Ok(report)
}

fn notes(mode: Mode) -> Vec<String> {
    match mode {
        Mode::SafeHarbor => vec![
            "dates are their year (an integer); load times (_loaded_at) too".into(),
            "birth years of people 90 or older are left out (NULL); ages over 89 read 90, meaning 90 or older".into(),
            "ZIP codes are their first three digits; the 17 restricted prefixes read 000".into(),
            "keys are random surrogates, consistent across the tables of this export".into(),
        ],
        Mode::Limited => vec![
            "dates are moved by a random offset per patient (1 to 365 days either way), the same in every table; rows with no patient use one offset for the export".into(),
            "ZIP codes, cities and ages are kept".into(),
            "keys are random surrogates, consistent across the tables of this export".into(),
        ],
    }
}

/// Refuses a target inside (or equal to) the source lake, or holding it.
fn check_target(source: &Lake, target: &str) -> Result<()> {
    let target_root = Lake::root_url(target)?;
    let source_root = source.root().clone();
    let (a, b) = match (local_path(&source_root), local_path(&target_root)) {
        (Some(s), Some(t)) => (
            s.to_string_lossy().into_owned(),
            t.to_string_lossy().into_owned(),
        ),
        _ => (source_root.to_string(), target_root.to_string()),
    };
    let a = format!("{}/", a.trim_end_matches('/'));
    let b = format!("{}/", b.trim_end_matches('/'));
    if b.starts_with(&a) || a.starts_with(&b) {
        return Err(Error::Target(
            "the target must be outside the source lake (and not contain it)".into(),
        ));
    }
    Ok(())
}

/// A local lake's folder with symbolic links resolved (as far as it exists).
fn local_path(url: &url::Url) -> Option<std::path::PathBuf> {
    let path = (url.scheme() == "file").then(|| url.to_file_path().ok())??;
    let mut existing = path.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?.to_path_buf();
    }
    let mut resolved = std::fs::canonicalize(&existing).ok()?;
    for part in rest.into_iter().rev() {
        resolved.push(part);
    }
    Some(resolved)
}

#[allow(clippy::too_many_arguments)]
async fn export_table(
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
async fn append(
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

static MAPPING_SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("export_id", DataType::Utf8, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("original", DataType::Utf8, false),
        Field::new("surrogate", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
});

/// Appends the surrogates made since the last call to the source's mapping table.
async fn write_mapping(
    source: &Lake,
    export_id: &str,
    mode: Mode,
    surrogates: &mut Surrogates,
) -> Result<()> {
    if surrogates.pending.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(&mut surrogates.pending);
    let now = chrono::Utc::now().timestamp_micros();
    let n = rows.len();
    let batch = RecordBatch::try_new(
        Arc::clone(&MAPPING_SCHEMA),
        vec![
            Arc::new(StringArray::from(vec![export_id; n])),
            Arc::new(StringArray::from(vec![mode.as_str(); n])),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.0.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.1.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.2.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        ],
    )?;
    let url = lake_folder(source, MAPPING_TABLE)?;
    let table = match source.load_delta(&url, TimeTravel::Latest).await? {
        Some(t) => t,
        None => source.delta_handle(&url)?,
    };
    carelake_lake::append_batches(table, vec![batch]).await?;
    Ok(())
}

/// The mapping rows of one export, as (domain, original, surrogate) — for the lake owner
/// re-identifying a record under an agreement, and for tests.
pub async fn mapping(source: &Lake, export_id: &str) -> Result<Vec<(String, String, String)>> {
    let url = lake_folder(source, MAPPING_TABLE)?;
    let Some(table) = source.load_delta(&url, TimeTravel::Latest).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for batch in carelake_lake::read_table(&table).await? {
        let col = |c: &str| -> Result<StringArray> {
            transform::as_text(
                batch
                    .column_by_name(c)
                    .ok_or_else(|| Error::Export(format!("the mapping table has no {c}")))?,
            )
        };
        let (id, domain, original, surrogate) = (
            col("export_id")?,
            col("domain")?,
            col("original")?,
            col("surrogate")?,
        );
        for i in 0..batch.num_rows() {
            if id.is_valid(i) && id.value(i) == export_id {
                out.push((
                    domain.value(i).to_string(),
                    original.value(i).to_string(),
                    surrogate.value(i).to_string(),
                ));
            }
        }
    }
    Ok(out)
}
