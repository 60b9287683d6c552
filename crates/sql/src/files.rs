//! Statements that name files on the server: `COPY t FROM 'path'` (a load), `COPY (query) TO
//! 'path'` (an export, written by carelake itself after the query ran through the policy
//! layer) and `CREATE EXTERNAL TABLE`. Only admins may use them; the command line's own user
//! anywhere outside the lake, everyone else only under the folders the server's configuration
//! names (see [`crate::FileAccess`]).

use std::path::PathBuf;

use carelake_ingest::{Format, LoadRequest, Loader};
use datafusion::sql::parser::{CopyToSource, CopyToStatement};

use crate::session::{QueryResult, Session, Touched};
use crate::statement::Custom;
use crate::surface::{Direction, check_query, confine};
use crate::{Error, Result};

impl Session {
    pub(crate) async fn execute_custom(
        &self,
        custom: Custom,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        match custom {
            Custom::CopyFrom {
                table,
                path,
                format,
                max_reject_ratio,
            } => {
                touched.action = Some("import");
                touched.tables.insert(table.to_string());
                self.require_admin("COPY … FROM a file")?;
                self.require(carelake_lake::Privilege::Insert, &table)?;
                self.refuse_external(&table)?;
                let path = self.file_path(&path, Direction::Import)?;
                let mut request = LoadRequest::new(vec![path], table);
                request.format = format
                    .map(|f| f.parse::<Format>().map_err(Error::Syntax))
                    .transpose()?;
                request.max_reject_ratio = max_reject_ratio;
                let summary = Loader::new(self.lake.clone(), self.principal.clone())
                    .load(request)
                    .await?;
                self.refresh().await?;
                let skipped = summary
                    .files
                    .iter()
                    .filter(|f| f.status == carelake_lake::LoadStatus::Skipped)
                    .count();
                Ok(QueryResult::message(format!(
                    "COPY {} ({} rejected, {} file(s) already loaded)",
                    summary.rows_loaded, summary.rows_rejected, skipped
                )))
            }
            Custom::Vacuum {
                table,
                retain_hours,
                dry_run,
            } => self.vacuum(table, retain_hours, dry_run, touched).await,
            Custom::Optimize { table, zorder } => self.optimize(table, zorder, touched).await,
        }
    }

    /// The path a file statement may use, as text for the loader.
    pub(crate) fn file_path(&self, path: &str, direction: Direction) -> Result<String> {
        let lake_root = self.lake.local_root();
        let roots = match direction {
            Direction::Import => &self.files.import_roots,
            Direction::Export => &self.files.export_roots,
        };
        let roots = (!self.origin.local).then_some(roots.as_slice());
        let is_glob = path.contains(['*', '?', '[']);
        if is_glob {
            if roots.is_some() {
                return Err(Error::Unsupported(
                    "glob patterns in a network session: name a file or a folder".into(),
                ));
            }
            // The folder before the first wildcard must not be inside the lake.
            let fixed: PathBuf = PathBuf::from(path)
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                .collect();
            confine(
                fixed.to_str().unwrap_or("."),
                None,
                lake_root.as_deref(),
                Direction::Import,
            )?;
            return Ok(path.to_string());
        }
        Ok(confine(path, roots, lake_root.as_deref(), direction)?
            .to_string_lossy()
            .into_owned())
    }

    /// `COPY (query) TO 'file' [STORED AS csv|parquet|json]`.
    pub(crate) async fn copy_to(
        &self,
        copy: &CopyToStatement,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.action = Some("export");
        self.require_admin("COPY … TO a file")?;
        if !copy.partitioned_by.is_empty() {
            return Err(Error::Unsupported("PARTITIONED BY in COPY … TO".into()));
        }
        let target = self.file_path(&copy.target, Direction::Export)?;
        let format = copy
            .stored_as
            .clone()
            .or_else(|| {
                std::path::Path::new(&target)
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        let sql = match &copy.source {
            CopyToSource::Relation(name) => format!("SELECT * FROM {name}"),
            CopyToSource::Query(query) => query.to_string(),
        };
        let plan = self.ctx.state().create_logical_plan(&sql).await?;
        check_query(&plan)?;
        let result = self.run_query_plan(plan, touched).await?;
        let rows = result.row_count();
        let temp = format!("{target}.carelake-partial");
        {
            let file = std::fs::File::create(&temp)
                .map_err(|e| Error::Syntax(format!("cannot write the export: {e}")))?;
            match format.as_str() {
                "csv" => {
                    let mut writer = arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(file);
                    for batch in &result.batches {
                        writer.write(batch)?;
                    }
                }
                "json" | "ndjson" => {
                    let mut writer = arrow::json::LineDelimitedWriter::new(file);
                    for batch in &result.batches {
                        writer.write(batch)?;
                    }
                    writer.finish()?;
                }
                "parquet" => {
                    let mut writer = parquet::arrow::ArrowWriter::try_new(
                        file,
                        std::sync::Arc::clone(&result.schema),
                        None,
                    )
                    .map_err(|e| Error::Syntax(format!("writing parquet: {e}")))?;
                    for batch in &result.batches {
                        writer
                            .write(batch)
                            .map_err(|e| Error::Syntax(format!("writing parquet: {e}")))?;
                    }
                    writer
                        .close()
                        .map_err(|e| Error::Syntax(format!("writing parquet: {e}")))?;
                }
                _ => {
                    let _ = std::fs::remove_file(&temp);
                    return Err(Error::Syntax(
                        "COPY … TO writes csv, json or parquet: STORED AS one of them".into(),
                    ));
                }
            }
        }
        std::fs::rename(&temp, &target)
            .map_err(|e| Error::Syntax(format!("cannot write the export: {e}")))?;
        Ok(QueryResult::message(format!("COPY {rows}")))
    }
}
