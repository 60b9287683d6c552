use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use carelake_common::{Principal, TableName, Zone};
use carelake_ingest::{Format, LoadRequest, Loader};
use carelake_lake::{CatalogEntry, CatalogEvent, EntryKind, Lake, TimeTravel, row_count};
use datafusion::catalog::{CatalogProvider, MemTable, MemoryCatalogProvider};
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::ViewTable;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, FromTable, MergeAction, MergeClauseKind, MergeInsertKind, ObjectName,
    Statement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use deltalake::DeltaTable;
use deltalake::delta_datafusion::DeltaSessionContext;
use deltalake::operations::optimize::OptimizeType;
use deltalake::protocol::SaveMode;

use crate::schema::ZoneSchema;
use crate::statement::{Custom, parse_custom, split_statements};
use crate::{Error, Result};

/// The catalog name under which the zones appear in SQL.
const CATALOG: &str = "carelake";
/// Schema of an unqualified table name.
const DEFAULT_ZONE: &str = "raw";
/// Read-only schema exposing the catalog and load history.
const SYSTEM_SCHEMA: &str = "system";

/// The outcome of one statement: rows, or a message for statements that change things.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Schema of the rows.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// What a statement did ("INSERT 3", "CREATE TABLE"), when it returns no rows of its own.
    pub message: Option<String>,
}

impl QueryResult {
    fn message(message: impl Into<String>) -> Self {
        Self {
            schema: Arc::new(Schema::empty()),
            batches: Vec::new(),
            message: Some(message.into()),
        }
    }

    /// Total rows.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A SQL session over a lake, acting as one principal.
pub struct Session {
    ctx: SessionContext,
    lake: Lake,
    principal: Principal,
    zones: HashMap<Zone, Arc<ZoneSchema>>,
    system: Arc<datafusion::catalog::MemorySchemaProvider>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lake", &self.lake.display_location())
            .field("principal", &self.principal.name)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session on `lake` for `principal`, loading the catalog and its views.
    pub async fn open(lake: Lake, principal: Principal) -> Result<Self> {
        let overrides = HashMap::from([
            (
                "datafusion.catalog.default_catalog".to_string(),
                CATALOG.to_string(),
            ),
            (
                "datafusion.catalog.default_schema".to_string(),
                DEFAULT_ZONE.to_string(),
            ),
            (
                "datafusion.catalog.information_schema".to_string(),
                "true".to_string(),
            ),
        ]);
        let ctx = DeltaSessionContext::new_with_session_overrides(&overrides)?.into_inner();
        crate::functions::register(&ctx);
        let catalog = MemoryCatalogProvider::new();
        let mut zones = HashMap::new();
        for zone in Zone::ALL {
            let schema = Arc::new(ZoneSchema::new(lake.clone(), zone));
            catalog.register_schema(zone.as_str(), Arc::clone(&schema) as _)?;
            zones.insert(zone, schema);
        }
        let system = Arc::new(datafusion::catalog::MemorySchemaProvider::new());
        catalog.register_schema(SYSTEM_SCHEMA, Arc::clone(&system) as _)?;
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        let session = Self {
            ctx,
            lake,
            principal,
            zones,
            system,
        };
        session.refresh().await?;
        Ok(session)
    }

    /// The acting principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The DataFusion context (for interfaces that plan queries themselves).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs a script of one or more statements and returns the result of each.
    pub async fn sql_all(&self, script: &str) -> Result<Vec<QueryResult>> {
        let mut results = Vec::new();
        for statement in split_statements(script) {
            results.push(self.execute(&statement).await?);
        }
        Ok(results)
    }

    /// Runs a script and returns the last statement's result.
    pub async fn sql(&self, script: &str) -> Result<QueryResult> {
        self.sql_all(script)
            .await?
            .pop()
            .ok_or_else(|| Error::Syntax("no SQL statement given".into()))
    }

    /// Reloads table names and views from the catalog, and the system tables.
    pub async fn refresh(&self) -> Result<()> {
        let entries = self.lake.catalog().list().await?;
        for (zone, schema) in &self.zones {
            let names = entries
                .iter()
                .filter(|e| e.name.zone == *zone)
                .map(|e| e.name.name.clone())
                .collect();
            schema.set_names(names);
        }
        self.register_system_tables(&entries).await?;
        // Views may depend on views: plan until nothing more can be planned.
        let mut pending: Vec<&CatalogEntry> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::View)
            .collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut failed = Vec::new();
            for entry in pending {
                let sql = entry.view_sql.clone().unwrap_or_default();
                match self.ctx.state().create_logical_plan(&sql).await {
                    Ok(plan) => self.zones[&entry.name.zone].set_view(
                        &entry.name.name,
                        Some(Arc::new(ViewTable::new(plan, Some(sql)))),
                    ),
                    Err(_) => failed.push(entry),
                }
            }
            if failed.len() == before {
                for entry in failed {
                    tracing::warn!(view = %entry.name, "View cannot be planned (a table it reads is gone?).");
                }
                break;
            }
            pending = failed;
        }
        Ok(())
    }

    async fn register_system_tables(&self, entries: &[CatalogEntry]) -> Result<()> {
        let n = entries.len();
        let schema = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("zone", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, true),
            Field::new("owner", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, true),
            Field::new("row_count", DataType::Int64, true),
            Field::new("table_version", DataType::Int64, true),
            Field::new("upstream", DataType::Utf8, true),
            Field::new("created_at", DataType::Utf8, false),
            Field::new("updated_at", DataType::Utf8, false),
        ]));
        let strings = |f: &dyn Fn(&CatalogEntry) -> Option<String>| -> Arc<StringArray> {
            Arc::new(entries.iter().map(f).collect::<StringArray>())
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                strings(&|e| Some(e.name.to_string())),
                strings(&|e| Some(e.name.zone.to_string())),
                strings(&|e| {
                    Some(
                        if e.kind == EntryKind::View {
                            "view"
                        } else {
                            "table"
                        }
                        .to_string(),
                    )
                }),
                strings(&|e| e.description.clone()),
                strings(&|e| e.owner.clone()),
                strings(&|e| e.source.clone()),
                Arc::new(entries.iter().map(|e| e.row_count).collect::<Int64Array>()),
                Arc::new(
                    entries
                        .iter()
                        .map(|e| e.table_version)
                        .collect::<Int64Array>(),
                ),
                strings(&|e| {
                    Some(
                        e.upstream
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                }),
                strings(&|e| Some(e.created_at.to_rfc3339())),
                strings(&|e| Some(e.updated_at.to_rfc3339())),
            ],
        )?;
        debug_assert_eq!(batch.num_rows(), n);
        let tables = MemTable::try_new(schema, vec![vec![batch]])?;
        datafusion::catalog::SchemaProvider::deregister_table(&*self.system, "tables")?;
        datafusion::catalog::SchemaProvider::register_table(
            &*self.system,
            "tables".into(),
            Arc::new(tables),
        )?;
        for (name, url) in [
            ("loads", self.lake.load_history().url()?),
            ("runs", self.lake.run_history().url()?),
        ] {
            if let Some(history) = self.lake.load_delta(&url, TimeTravel::Latest).await? {
                datafusion::catalog::SchemaProvider::deregister_table(&*self.system, name)?;
                datafusion::catalog::SchemaProvider::register_table(
                    &*self.system,
                    name.into(),
                    history.table_provider().await?,
                )?;
            }
        }
        Ok(())
    }

    /// Runs one statement.
    async fn execute(&self, sql: &str) -> Result<QueryResult> {
        if let Some(custom) = parse_custom(sql, DEFAULT_ZONE)? {
            return self.execute_custom(custom).await;
        }
        let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
            .map_err(|e| Error::Syntax(e.to_string()))?;
        if statements.len() != 1 {
            return Err(Error::Syntax("expected one statement".into()));
        }
        let statement = statements.pop_front().expect("one statement");
        let mut view_query = None;
        if let DFStatement::Statement(inner) = &statement {
            match inner.as_ref() {
                Statement::Update(update) => return self.update(update).await,
                Statement::Delete(delete) => return self.delete(delete).await,
                Statement::Merge(merge) => return self.merge(merge).await,
                Statement::CreateView(view) => view_query = Some(view.query.to_string()),
                Statement::CreateSchema { .. } | Statement::CreateDatabase { .. } => {
                    return Err(Error::Unsupported(
                        "creating schemas: the zones raw, curated and analytics are the schemas"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        self.authorize(&plan)?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                let name = self.resolve(&create.name)?;
                self.create_table(
                    name,
                    create.input.as_ref().clone(),
                    create.if_not_exists,
                    create.or_replace,
                )
                .await
            }
            LogicalPlan::Ddl(DdlStatement::CreateView(view)) => {
                let name = self.resolve(&view.name)?;
                let sql = view_query.unwrap_or_default();
                self.create_view(name, sql, view.input.as_ref(), view.or_replace)
                    .await
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(drop)) => {
                self.drop(self.resolve(&drop.name)?, EntryKind::Table, drop.if_exists)
                    .await
            }
            LogicalPlan::Ddl(DdlStatement::DropView(drop)) => {
                self.drop(self.resolve(&drop.name)?, EntryKind::View, drop.if_exists)
                    .await
            }
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
                let name = self.resolve(&dml.table_name)?;
                let df = self.ctx.execute_logical_plan(LogicalPlan::Dml(dml)).await?;
                let batches = df.collect().await?;
                let count = batches
                    .first()
                    .and_then(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<arrow::array::UInt64Array>()
                            .map(|a| a.value(0))
                    })
                    .unwrap_or(0);
                let table = self.lake.open_table(&name).await?;
                self.record_write(&name, &table, None).await?;
                Ok(QueryResult::message(format!("INSERT {count}")))
            }
            plan => {
                let df = self.ctx.execute_logical_plan(plan).await?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await?;
                Ok(QueryResult {
                    schema,
                    batches,
                    message: None,
                })
            }
        }
    }

    /// The single place where access rules apply, for every interface: statements run through
    /// [`Session::sql`] pass here, and interfaces that plan queries themselves (the Postgres wire
    /// protocol) call it with their plan. Today: the `system` schema is read-only and only
    /// tables of the lake's own catalog can be written.
    pub fn authorize(&self, plan: &LogicalPlan) -> Result<()> {
        let target = match plan {
            LogicalPlan::Dml(dml) => Some(&dml.table_name),
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(c)) => Some(&c.name),
            LogicalPlan::Ddl(DdlStatement::CreateView(c)) => Some(&c.name),
            LogicalPlan::Ddl(DdlStatement::DropTable(d)) => Some(&d.name),
            _ => None,
        };
        if let Some(target) = target
            && target.schema() == Some(SYSTEM_SCHEMA)
        {
            return Err(Error::PermissionDenied(format!("{target} is read-only")));
        }
        Ok(())
    }

    fn resolve(&self, reference: &TableReference) -> Result<TableName> {
        if let Some(catalog) = reference.catalog()
            && catalog != CATALOG
        {
            return Err(Error::Syntax(format!("unknown catalog {catalog}")));
        }
        let zone = reference.schema().unwrap_or(DEFAULT_ZONE);
        Ok(TableName::new(
            zone.parse()?,
            reference.table().to_ascii_lowercase(),
        )?)
    }

    fn resolve_object(&self, name: &ObjectName) -> Result<TableName> {
        let text = name.to_string().replace('"', "");
        let parts: Vec<&str> = text.split('.').collect();
        let reference = match parts.as_slice() {
            [t] => TableReference::bare(*t),
            [s, t] => TableReference::partial(*s, *t),
            [c, s, t] => TableReference::full(*c, *s, *t),
            _ => return Err(Error::Syntax(format!("invalid table name {text}"))),
        };
        self.resolve(&reference)
    }

    /// Records a write in the catalog (row count and version of the snapshot the write
    /// returned; lineage when given) and refreshes the session's view of it.
    async fn record_write(
        &self,
        name: &TableName,
        table: &DeltaTable,
        upstream: Option<Vec<TableName>>,
    ) -> Result<()> {
        let mut event = CatalogEvent::written(name.clone(), table);
        event.upstream = upstream;
        self.lake.catalog().record(&[event]).await?;
        self.refresh().await
    }

    async fn create_table(
        &self,
        name: TableName,
        input: LogicalPlan,
        if_not_exists: bool,
        or_replace: bool,
    ) -> Result<QueryResult> {
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
    async fn write_table(
        &self,
        name: &TableName,
        existing: Option<deltalake::DeltaTable>,
        input: LogicalPlan,
        or_replace: bool,
        source: &str,
        upstream: Vec<TableName>,
        description: Option<String>,
    ) -> Result<u64> {
        let url = self.lake.table_url(name)?;
        let handle = match existing {
            Some(t) => t,
            None => self.lake.delta_handle(&url)?,
        };
        let mut write = handle
            .write(Vec::new())
            .with_input_plan(input)
            .with_session_state(Arc::new(self.ctx.state()))
            .with_table_name(name.name.clone())
            .with_save_mode(if or_replace {
                SaveMode::Overwrite
            } else {
                SaveMode::ErrorIfExists
            });
        if or_replace {
            write = write.with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite);
        }
        let table = write.await?;
        let mut event = CatalogEvent::written(name.clone(), &table);
        event.owner = Some(self.principal.name.clone());
        event.source = Some(source.to_string());
        event.upstream = Some(upstream);
        if description.is_some() {
            event.description = description;
        }
        self.lake.catalog().record(&[event]).await?;
        self.refresh().await?;
        Ok(row_count(&table).unwrap_or(0).max(0) as u64)
    }

    async fn create_view(
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

    async fn drop(&self, name: TableName, kind: EntryKind, if_exists: bool) -> Result<QueryResult> {
        let entry = self.lake.catalog().get(&name).await?;
        let exists = match kind {
            EntryKind::View => entry.as_ref().is_some_and(|e| e.kind == EntryKind::View),
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
        if kind == EntryKind::Table {
            self.lake.delete_table_files(&name).await?;
        } else {
            self.zones[&name.zone].set_view(&name.name, None);
        }
        self.lake
            .catalog()
            .record(&[CatalogEvent::drop(kind, name)])
            .await?;
        self.refresh().await?;
        Ok(QueryResult::message(match kind {
            EntryKind::Table => "DROP TABLE",
            EntryKind::View => "DROP VIEW",
        }))
    }

    fn target_of(&self, factor: &TableFactor) -> Result<(TableName, Option<String>)> {
        match factor {
            TableFactor::Table { name, alias, .. } => Ok((
                self.resolve_object(name)?,
                alias.as_ref().map(|a| a.name.value.clone()),
            )),
            _ => Err(Error::Unsupported(
                "this statement needs a table as its target".into(),
            )),
        }
    }

    async fn update(
        &self,
        update: &datafusion::sql::sqlparser::ast::Update,
    ) -> Result<QueryResult> {
        let (name, _) = self.target_of(&update.table.relation)?;
        if update.from.is_some() || !update.table.joins.is_empty() {
            return Err(Error::Unsupported("UPDATE … FROM; use MERGE".into()));
        }
        let table = self.lake.open_table(&name).await?;
        let mut builder = table
            .update()
            .with_session_state(Arc::new(self.ctx.state()));
        if let Some(selection) = &update.selection {
            builder = builder.with_predicate(selection.to_string());
        }
        for assignment in &update.assignments {
            let AssignmentTarget::ColumnName(column) = &assignment.target else {
                return Err(Error::Unsupported("tuple assignments".into()));
            };
            builder = builder.with_update(last_ident(column), assignment.value.to_string());
        }
        let (table, metrics) = builder.await?;
        self.record_write(&name, &table, None).await?;
        Ok(QueryResult::message(format!(
            "UPDATE {}",
            metrics.num_updated_rows
        )))
    }

    async fn delete(
        &self,
        delete: &datafusion::sql::sqlparser::ast::Delete,
    ) -> Result<QueryResult> {
        let tables = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let [target] = tables.as_slice() else {
            return Err(Error::Unsupported("DELETE from several tables".into()));
        };
        if delete.using.is_some() {
            return Err(Error::Unsupported("DELETE … USING; use MERGE".into()));
        }
        let (name, _) = self.target_of(&target.relation)?;
        let table = self.lake.open_table(&name).await?;
        let mut builder = table
            .delete()
            .with_session_state(Arc::new(self.ctx.state()));
        if let Some(selection) = &delete.selection {
            builder = builder.with_predicate(selection.to_string());
        }
        let (table, metrics) = builder.await?;
        self.record_write(&name, &table, None).await?;
        let count = metrics
            .num_deleted_rows
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into());
        Ok(QueryResult::message(format!("DELETE {count}")))
    }

    async fn merge(&self, merge: &datafusion::sql::sqlparser::ast::Merge) -> Result<QueryResult> {
        let (name, target_alias) = self.target_of(&merge.table)?;
        let target_alias = target_alias.unwrap_or_else(|| name.name.clone());
        let (source, source_alias) = match &merge.source {
            TableFactor::Table { name, alias, .. } => {
                let source_name = self.resolve_object(name)?;
                let df = self
                    .ctx
                    .table(TableReference::partial(
                        source_name.zone.as_str(),
                        source_name.name.as_str(),
                    ))
                    .await?;
                (
                    df,
                    alias
                        .as_ref()
                        .map(|a| a.name.value.clone())
                        .unwrap_or(source_name.name),
                )
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let df = self.ctx.sql(&subquery.to_string()).await?;
                (
                    df,
                    alias
                        .as_ref()
                        .map(|a| a.name.value.clone())
                        .unwrap_or_else(|| "source".into()),
                )
            }
            _ => {
                return Err(Error::Unsupported(
                    "MERGE source must be a table or a subquery".into(),
                ));
            }
        };
        let upstream = tables_read(source.logical_plan(), self)?;
        let table = self.lake.open_table(&name).await?;
        let mut builder = table
            .merge(source, merge.on.to_string())
            .with_source_alias(source_alias)
            .with_target_alias(target_alias)
            .with_session_state(Arc::new(self.ctx.state()));
        for clause in &merge.clauses {
            if let MergeAction::Update(update) = &clause.action
                && update
                    .assignments
                    .iter()
                    .any(|a| !matches!(a.target, AssignmentTarget::ColumnName(_)))
            {
                return Err(Error::Unsupported("tuple assignments in MERGE".into()));
            }
            let predicate = clause.predicate.as_ref().map(ToString::to_string);
            builder = match (&clause.clause_kind, &clause.action) {
                (MergeClauseKind::Matched, MergeAction::Update(update)) => builder
                    .when_matched_update(|b| merge_update(b, &predicate, &update.assignments))?,
                (MergeClauseKind::Matched, MergeAction::Delete { .. }) => {
                    builder.when_matched_delete(|b| merge_delete(b, &predicate))?
                }
                (
                    MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget,
                    MergeAction::Insert(insert),
                ) => {
                    let MergeInsertKind::Values(values) = &insert.kind else {
                        return Err(Error::Unsupported(
                            "MERGE INSERT ROW; list the columns and VALUES".into(),
                        ));
                    };
                    let [row] = values.rows.as_slice() else {
                        return Err(Error::Syntax("MERGE INSERT takes one VALUES row".into()));
                    };
                    let row = &row.content;
                    if insert.columns.len() != row.len() {
                        return Err(Error::Syntax(
                            "MERGE INSERT needs as many columns as values".into(),
                        ));
                    }
                    builder.when_not_matched_insert(|mut b| {
                        if let Some(p) = &predicate {
                            b = b.predicate(p.clone());
                        }
                        for (column, value) in insert.columns.iter().zip(row) {
                            b = b.set(last_ident(column), value.to_string());
                        }
                        b
                    })?
                }
                (MergeClauseKind::NotMatchedBySource, MergeAction::Update(update)) => builder
                    .when_not_matched_by_source_update(|b| {
                        merge_update(b, &predicate, &update.assignments)
                    })?,
                (MergeClauseKind::NotMatchedBySource, MergeAction::Delete { .. }) => {
                    builder.when_not_matched_by_source_delete(|b| merge_delete(b, &predicate))?
                }
                (kind, _) => {
                    return Err(Error::Unsupported(format!(
                        "MERGE clause WHEN {kind} with this action"
                    )));
                }
            };
        }
        let (table, metrics) = builder.await?;
        let mut upstream = upstream;
        upstream.retain(|t| t != &name);
        let mut known = self
            .lake
            .catalog()
            .get(&name)
            .await?
            .map(|e| e.upstream)
            .unwrap_or_default();
        for t in upstream {
            if !known.contains(&t) {
                known.push(t);
            }
        }
        self.record_write(&name, &table, Some(known)).await?;
        Ok(QueryResult::message(format!(
            "MERGE inserted {}, updated {}, deleted {}",
            metrics.num_target_rows_inserted,
            metrics.num_target_rows_updated,
            metrics.num_target_rows_deleted
        )))
    }

    async fn execute_custom(&self, custom: Custom) -> Result<QueryResult> {
        match custom {
            Custom::CopyFrom {
                table,
                path,
                format,
                max_reject_ratio,
            } => {
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
                table: name,
                retain_hours,
                dry_run,
            } => {
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
            Custom::Optimize {
                table: name,
                zorder,
            } => {
                let table = self.lake.open_table(&name).await?;
                let mut builder = table.optimize();
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
    }
}

/// Applies a MERGE clause's condition and `SET` list to deltalake's update builder.
fn merge_update(
    mut builder: deltalake::operations::merge::UpdateBuilder,
    predicate: &Option<String>,
    assignments: &[datafusion::sql::sqlparser::ast::Assignment],
) -> deltalake::operations::merge::UpdateBuilder {
    if let Some(p) = predicate {
        builder = builder.predicate(p.clone());
    }
    for assignment in assignments {
        if let AssignmentTarget::ColumnName(column) = &assignment.target {
            builder = builder.update(last_ident(column), assignment.value.to_string());
        }
    }
    builder
}

/// Applies a MERGE clause's condition to deltalake's delete builder.
fn merge_delete(
    builder: deltalake::operations::merge::DeleteBuilder,
    predicate: &Option<String>,
) -> deltalake::operations::merge::DeleteBuilder {
    match predicate {
        Some(p) => builder.predicate(p.clone()),
        None => builder,
    }
}

fn last_ident(name: &ObjectName) -> String {
    name.to_string()
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .replace('"', "")
}

/// The lake tables a plan reads (lineage), without duplicates.
fn tables_read(plan: &LogicalPlan, session: &Session) -> Result<Vec<TableName>> {
    let mut names = BTreeSet::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(name) = session.resolve(&scan.table_name)
        {
            names.insert(name);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(names.into_iter().collect())
}
