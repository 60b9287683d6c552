//! The export: the source lake's tables, table by table and batch by batch, through the
//! column roles into a new lake; the surrogate mapping into the source's `_carelake/deid_map`;
//! a report; an audit record.

use carelake_common::{Principal, Zone};
use carelake_lake::{AuditRecord, CatalogEvent, EntryKind, Lake};

use crate::tags::TagStore;
use crate::transform::Surrogates;
use crate::{Error, Result};

mod mapping;
mod options;
mod patients;
mod table;

pub use mapping::mapping;
use mapping::write_mapping;
pub use options::{ExportOptions, ExportReport, KAnonymity, Mode, SkippedTable, TableReport};
use patients::Patients;
use table::export_table;

/// The mapping table of the source lake (export id, domain, original, surrogate).
pub const MAPPING_TABLE: &str = "_carelake/deid_map";

/// Where the report goes in the target, under `_carelake/`.
pub const REPORT_FILE: &str = "deid_report.json";

/// Equivalence classes smaller than this are counted in the report.
pub const K_THRESHOLD: u64 = 5;

/// Rows gathered before they are appended to the target table.
const ROWS_PER_COMMIT: usize = 250_000;

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
