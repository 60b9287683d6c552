//! DDL: `CREATE TABLE [AS]`, `CREATE VIEW`, `DROP`, and the table maintenance statements
//! `VACUUM` and `OPTIMIZE` (owners and admins only).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use carelake_common::TableName;
use carelake_lake::{
    CatalogEvent, EntryKind, Provenance, TableWrite, TimeTravel, WriteInput, WriteMode, row_count,
};
use datafusion::catalog::MemTable;
use datafusion::logical_expr::LogicalPlan;
use deltalake::DeltaTable;
use deltalake::operations::optimize::OptimizeType;

use crate::Result;
use crate::session::{QueryResult, Session, Touched, tables_read};

impl Session {
    /// The commit properties of this session's writes: the operation and the principal in
    /// the commit's metadata, and the lake's retry count.
    pub(crate) fn commit_properties(
        &self,
        operation: &str,
    ) -> deltalake::kernel::transaction::CommitProperties {
        carelake_lake::commit_properties(
            Vec::new(),
            vec![
                ("carelake.operation".to_string(), operation.into()),
                (
                    "carelake.principal".to_string(),
                    self.principal.name.clone().into(),
                ),
            ],
        )
    }

    /// Records a write in the catalog (row count and version of the snapshot the write
    /// returned; lineage when given) and refreshes the session's view of it.
    pub(crate) async fn record_write(
        &self,
        name: &TableName,
        table: &DeltaTable,
        upstream: Option<Vec<TableName>>,
    ) -> Result<()> {
        carelake_lake::clean_logs_when_due(table).await;
        let mut event = CatalogEvent::written(name.clone(), table);
        event.upstream = upstream;
        self.lake.catalog().record(&[event]).await?;
        self.refresh().await
    }

    pub(crate) async fn create_table(
        &self,
        name: TableName,
        input: LogicalPlan,
        if_not_exists: bool,
        or_replace: bool,
    ) -> Result<QueryResult> {
        if self.zones[&name.zone].is_external(&name.name) {
            if if_not_exists && !or_replace {
                return Ok(QueryResult::message("CREATE TABLE (exists)"));
            }
            return Err(carelake_lake::Error::TableExists(name.to_string()).into());
        }
        let url = self.lake.table_url(&name)?;
        let existing = self.lake.load_delta(&url, TimeTravel::Latest).await?;
        if existing.is_some() && !or_replace {
            if if_not_exists {
                return Ok(QueryResult::message("CREATE TABLE (exists)"));
            }
            return Err(carelake_lake::Error::TableExists(name.to_string()).into());
        }
        let upstream = tables_read(&input, self)?;
        let rows = self
            .write_table(
                &name,
                existing,
                input,
                or_replace,
                "CREATE TABLE",
                upstream,
                None,
            )
            .await?;
        Ok(QueryResult::message(format!("CREATE TABLE {rows} rows")))
    }

    /// Writes `batches` as the whole content of `name`, creating or replacing the table, and
    /// records the writer, the tables it was computed from and a description in the catalog.
    /// For results computed outside SQL, like the master patient index. Returns the rows
    /// written.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_table(
        &self,
        name: &TableName,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        source: &str,
        upstream: Vec<TableName>,
        description: Option<String>,
    ) -> Result<u64> {
        let memory = MemTable::try_new(schema, vec![batches])?;
        let input = self
            .ctx
            .read_table(Arc::new(memory))?
            .logical_plan()
            .clone();
        let url = self.lake.table_url(name)?;
        let existing = self.lake.load_delta(&url, TimeTravel::Latest).await?;
        self.write_table(name, existing, input, true, source, upstream, description)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_table(
        &self,
        name: &TableName,
        existing: Option<deltalake::DeltaTable>,
        input: LogicalPlan,
        or_replace: bool,
        source: &str,
        upstream: Vec<TableName>,
        description: Option<String>,
    ) -> Result<u64> {
        self.refuse_external(name)?;
        let mut provenance =
            Provenance::new(source, self.principal.name.clone()).upstream(upstream);
        provenance.takes_ownership = true;
        provenance.description = description;
        provenance.describes_every_write = true;
        let mode = if or_replace {
            WriteMode::Replace
        } else {
            WriteMode::Create
        };
        let table = TableWrite::new(name.clone(), mode, provenance)
            .write(
                &self.lake,
                existing,
                WriteInput::Plan(input, Some(Arc::new(self.ctx.state()))),
            )
            .await?;
        self.refresh().await?;
        Ok(row_count(&table).unwrap_or(0).max(0) as u64)
    }

    pub(crate) async fn create_view(
        &self,
        name: TableName,
        sql: String,
        input: &LogicalPlan,
        or_replace: bool,
    ) -> Result<QueryResult> {
        if !or_replace && self.lake.catalog().get(&name).await?.is_some() {
            return Err(carelake_lake::Error::TableExists(name.to_string()).into());
        }
        let upstream = tables_read(input, self)?;
        let mut event = CatalogEvent::view(name, sql, upstream);
        event.owner = Some(self.principal.name.clone());
        self.lake.catalog().record(&[event]).await?;
        self.refresh().await?;
        Ok(QueryResult::message("CREATE VIEW"))
    }

    pub(crate) async fn drop(
        &self,
        name: TableName,
        kind: EntryKind,
        if_exists: bool,
    ) -> Result<QueryResult> {
        let entry = self.lake.catalog().get(&name).await?;
        // `DROP TABLE` also drops an external table: its definition, never its files.
        let kind = match entry.as_ref().map(|e| e.kind) {
            Some(EntryKind::External) if kind == EntryKind::Table => EntryKind::External,
            _ => kind,
        };
        let exists = match kind {
            EntryKind::View | EntryKind::External => entry.as_ref().is_some_and(|e| e.kind == kind),
            EntryKind::Table => {
                entry.as_ref().is_some_and(|e| e.kind == EntryKind::Table)
                    || self
                        .lake
                        .open_table_at(&name, TimeTravel::Latest)
                        .await?
                        .is_some()
            }
        };
        if !exists {
            if if_exists {
                return Ok(QueryResult::message("DROP (absent)"));
            }
            return Err(carelake_lake::Error::TableNotFound(name.to_string()).into());
        }
        match kind {
            EntryKind::Table => {
                self.lake.delete_table_files(&name).await?;
                // A materialized view's definition goes with its table.
                if self
                    .lake
                    .matviews()
                    .list()
                    .await?
                    .contains_key(&name.to_string())
                {
                    self.lake
                        .matviews()
                        .record(
                            &carelake_lake::MatViewEvent::Dropped {
                                name: name.to_string(),
                            },
                            &self.principal,
                        )
                        .await?;
                }
            }
            EntryKind::View => self.zones[&name.zone].set_view(&name.name, None),
            EntryKind::External => {}
        }
        self.lake
            .catalog()
            .record(&[CatalogEvent::drop(kind, name)])
            .await?;
        self.refresh().await?;
        Ok(QueryResult::message(match kind {
            EntryKind::Table | EntryKind::External => "DROP TABLE",
            EntryKind::View => "DROP VIEW",
        }))
    }

    /// `VACUUM t [RETAIN n HOURS] [DRY RUN]`.
    pub(crate) async fn vacuum(
        &self,
        name: TableName,
        retain_hours: Option<u64>,
        dry_run: bool,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.tables.insert(name.to_string());
        self.require_owner(&name, "VACUUM")?;
        self.refuse_external(&name)?;
        let table = self.lake.open_table(&name).await?;
        let mut builder = table.vacuum().with_dry_run(dry_run);
        if let Some(hours) = retain_hours {
            builder = builder
                .with_retention_period(chrono::Duration::hours(hours as i64))
                .with_enforce_retention_duration(false);
        }
        let (_, metrics) = builder.await?;
        let verb = if dry_run { "would delete" } else { "deleted" };
        Ok(QueryResult::message(format!(
            "VACUUM {verb} {} file(s)",
            metrics.files_deleted.len()
        )))
    }

    /// `OPTIMIZE t [ZORDER BY (a, b)]`.
    pub(crate) async fn optimize(
        &self,
        name: TableName,
        zorder: Vec<String>,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.tables.insert(name.to_string());
        self.require_owner(&name, "OPTIMIZE")?;
        self.refuse_external(&name)?;
        let table = self.lake.open_table(&name).await?;
        let mut builder = table
            .optimize()
            .with_commit_properties(self.commit_properties("optimize"));
        if !zorder.is_empty() {
            builder = builder.with_type(OptimizeType::ZOrder(zorder));
        }
        let (table, metrics) = builder.await?;
        self.record_write(&name, &table, None).await?;
        Ok(QueryResult::message(format!(
            "OPTIMIZE removed {} file(s), added {}",
            metrics.num_files_removed, metrics.num_files_added
        )))
    }
}
