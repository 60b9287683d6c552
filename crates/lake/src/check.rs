//! `carelake check`: every Delta table of the lake opens, every file its newest version reads
//! is there with the size its log recorded and a Parquet footer that agrees with the log's row
//! count (with `full`, every page is decoded too; an encrypted lake's files are authenticated as
//! they are read), the catalog matches the tables, and the audit log's chain is whole.

use std::collections::BTreeSet;

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
#[allow(deprecated)] // deltalake 1.1 still reads through it; replace with the SpawnedReader
// path when deltalake moves.
use parquet::arrow::async_reader::ParquetObjectReader;

use crate::catalog::EntryKind;
use crate::{Lake, Result, TimeTravel, Verification};

/// Files checked at once.
const PARALLEL: usize = 8;

/// What `carelake check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Every Delta table, by folder.
    pub tables: Vec<TableCheck>,
    /// What is wrong (nothing, for a sound lake).
    pub problems: Vec<Problem>,
    /// What is unusual but not wrong (a table another engine wrote, unknown to the catalog).
    pub warnings: Vec<Problem>,
    /// Audit records checked, when the chain is whole.
    pub audit_records: Option<usize>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One table as checked.
#[derive(Debug, Clone)]
pub struct TableCheck {
    /// The table's folder, e.g. `curated.encounters` as `curated/encounters`.
    pub path: String,
    /// Its newest version.
    pub version: Option<u64>,
    /// Data files that version reads.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Rows, from the log's statistics.
    pub rows: Option<i64>,
}

/// Something wrong (or unusual) in the lake.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The table folder, or `catalog` / `audit`.
    pub place: String,
    /// The file, when it is about one.
    pub file: Option<String>,
    /// What is wrong.
    pub what: String,
}

impl Problem {
    fn new(place: &str, file: Option<&str>, what: impl Into<String>) -> Self {
        Self {
            place: place.to_string(),
            file: file.map(str::to_string),
            what: what.into(),
        }
    }
}

impl Lake {
    /// Checks the lake; `full` decodes every page of every data file.
    pub async fn check(&self, full: bool) -> Result<CheckReport> {
        let store = self.lake_store()?;
        let listing: Vec<_> = store.list(None).try_collect().await?;
        let folders: BTreeSet<String> = listing
            .iter()
            .filter_map(|m| {
                let path = m.location.as_ref();
                path.find("/_delta_log/").map(|i| path[..i].to_string())
            })
            .collect();
        let mut report = CheckReport::default();
        for folder in &folders {
            let (table, problems) = self.check_table(&store, folder, full).await;
            report.tables.push(table);
            report.problems.extend(problems);
        }

        // The catalog against the tables.
        match self.catalog().list().await {
            Ok(entries) => {
                let mut catalogued = BTreeSet::new();
                for entry in entries.iter().filter(|e| e.kind == EntryKind::Table) {
                    let folder = entry.name.relative_path();
                    catalogued.insert(folder.clone());
                    let Some(table) = report.tables.iter().find(|t| t.path == folder) else {
                        report.problems.push(Problem::new(
                            "catalog",
                            None,
                            format!("{} is in the catalog but has no Delta table", entry.name),
                        ));
                        continue;
                    };
                    if let (Some(recorded), Some(version)) = (entry.table_version, table.version)
                        && recorded > version as i64
                    {
                        report.problems.push(Problem::new(
                            "catalog",
                            None,
                            format!(
                                "{} is at version {version} but the catalog recorded version \
                                 {recorded}",
                                entry.name
                            ),
                        ));
                    }
                }
                for table in &report.tables {
                    if !table.path.starts_with("_carelake/") && !catalogued.contains(&table.path) {
                        report.warnings.push(Problem::new(
                            &table.path,
                            None,
                            "a Delta table the catalog does not list (written by another \
                             engine, or left by a drop that did not finish)",
                        ));
                    }
                }
            }
            Err(e) => report.problems.push(Problem::new(
                "catalog",
                None,
                format!("cannot be read: {e}"),
            )),
        }

        match self.audit_verify().await {
            Ok(Verification::Intact { records }) => report.audit_records = Some(records),
            Ok(Verification::Broken { seq, reason }) => report.problems.push(Problem::new(
                "audit",
                None,
                format!("the chain is broken at record {seq}: {reason}"),
            )),
            Err(e) => {
                report
                    .problems
                    .push(Problem::new("audit", None, format!("cannot be read: {e}")))
            }
        }
        report.problems.sort();
        report.warnings.sort();
        Ok(report)
    }

    /// Checks one table: its log opens and every file of its newest version is sound.
    async fn check_table(
        &self,
        store: &std::sync::Arc<dyn ObjectStore>,
        folder: &str,
        full: bool,
    ) -> (TableCheck, Vec<Problem>) {
        let mut check = TableCheck {
            path: folder.to_string(),
            version: None,
            files: 0,
            bytes: 0,
            rows: None,
        };
        let table = match self.folder_url(folder) {
            Ok(url) => self.load_delta(&url, TimeTravel::Latest).await,
            Err(e) => Err(e),
        };
        let table = match table {
            Ok(Some(table)) => table,
            Ok(None) => {
                return (
                    check,
                    vec![Problem::new(folder, None, "its Delta log has no commit")],
                );
            }
            Err(e) => {
                return (
                    check,
                    vec![Problem::new(
                        folder,
                        None,
                        format!("its Delta log cannot be read: {e}"),
                    )],
                );
            }
        };
        check.version = table.version();
        check.rows = crate::util::row_count(&table);
        let files: Vec<(StorePath, u64, Option<usize>)> = match table.snapshot() {
            Ok(snapshot) => snapshot
                .log_data()
                .iter()
                .map(|f| {
                    (
                        StorePath::from(format!("{folder}/{}", f.object_store_path())),
                        f.size() as u64,
                        f.num_records(),
                    )
                })
                .collect(),
            Err(e) => {
                return (
                    check,
                    vec![Problem::new(folder, None, format!("no snapshot: {e}"))],
                );
            }
        };
        check.files = files.len();
        check.bytes = files.iter().map(|f| f.1).sum();
        let problems: Vec<Problem> = futures::stream::iter(files)
            .map(|(path, size, rows)| {
                let store = std::sync::Arc::clone(store);
                async move {
                    check_file(store, &path, size, rows, full)
                        .await
                        .err()
                        .map(|what| Problem::new(folder, Some(path.as_ref()), what))
                }
            })
            .buffer_unordered(PARALLEL)
            .filter_map(|p| async move { p })
            .collect()
            .await;
        (check, problems)
    }
}

/// Checks one data file; the error says what is wrong.
#[allow(deprecated)]
async fn check_file(
    store: std::sync::Arc<dyn ObjectStore>,
    path: &StorePath,
    size: u64,
    rows: Option<usize>,
    full: bool,
) -> std::result::Result<(), String> {
    let meta = match store.head(path).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Err("missing".into()),
        Err(e) => return Err(format!("cannot be reached: {e}")),
    };
    if meta.size != size {
        return Err(format!("{} bytes where the log recorded {size}", meta.size));
    }
    let reader = ParquetObjectReader::new(store, path.clone()).with_file_size(size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let in_footer = builder.metadata().file_metadata().num_rows() as usize;
    if let Some(rows) = rows
        && rows != in_footer
    {
        return Err(format!(
            "{in_footer} rows in its footer where the log recorded {rows}"
        ));
    }
    if full {
        let stream = builder
            .build()
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        let decoded: usize = stream
            .map_ok(|batch| batch.num_rows())
            .try_fold(0, |total, n| async move { Ok(total + n) })
            .await
            .map_err(|e| format!("a page cannot be decoded: {e}"))?;
        if decoded != in_footer {
            return Err(format!(
                "{decoded} rows decoded where its footer says {in_footer}"
            ));
        }
    }
    Ok(())
}
