//! [`Session`]: statement dispatch and the catalog and rules refresh. What a session may do
//! (the check of every plan, names resolved to tables) is in `access.rs`, the audit record of
//! every statement in `audit.rs`. DDL is in `ddl.rs`, DML in `dml.rs`, files in `files.rs`, governance
//! statements in `govern.rs` and `grants.rs`, the system schema in `system.rs`, the policy
//! layer in `policy/`, and the closed surface in `surface.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use carelake_common::{Origin, Principal, Zone};
use carelake_lake::{CatalogEntry, EntryKind, Lake};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use deltalake::delta_datafusion::DeltaSessionContext;

use crate::policy::Rules;
use crate::policy::functions::{Identity, register_identity, register_masks};
use crate::schema::{Guard, ZoneSchema};
use crate::statement::{Parsed, parse_statement, split_statements};
use crate::surface::{FileAccess, LakeRegistry};
use crate::system::SystemSchema;
use crate::{Error, Result};

mod access;
mod audit;

pub(crate) use access::{denial_in, tables_read};
pub(crate) use audit::Touched;

/// The catalog name under which the zones appear in SQL.
pub(crate) const CATALOG: &str = "carelake";
/// Schema of an unqualified table name.
pub(crate) const DEFAULT_ZONE: &str = "raw";
/// Read-only schema exposing the catalog, load and run history and the audit log.
pub(crate) const SYSTEM_SCHEMA: &str = "system";

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
    pub(crate) fn message(message: impl Into<String>) -> Self {
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
    pub(crate) ctx: SessionContext,
    pub(crate) lake: Lake,
    pub(crate) principal: Principal,
    pub(crate) origin: Origin,
    pub(crate) files: FileAccess,
    pub(crate) guard: Arc<Guard>,
    pub(crate) zones: HashMap<Zone, Arc<ZoneSchema>>,
    pub(crate) system: Arc<SystemSchema>,
    /// The context's object store registry (confined to the lake and the external tables).
    pub(crate) registry: Arc<LakeRegistry>,
    /// External tables planned so far, by defining statement.
    pub(crate) externals: std::sync::Mutex<HashMap<String, Arc<dyn TableProvider>>>,
    /// The models the principal may use, for `predict` and its kin.
    pub(crate) models: Arc<crate::model::ModelRegistry>,
    identity: std::sync::Mutex<Option<Identity>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lake", &self.lake.display_location())
            .field("principal", &self.principal.name)
            .field("interface", &self.origin.interface)
            .finish_non_exhaustive()
    }
}

/// The partitions a query's plan is split into, when `CARELAKE_TARGET_PARTITIONS` sets it
/// (DataFusion's default otherwise: the core count). Two per core made the queries of `carelake
/// bench compare` faster on a 2-core machine (datafusion 55 from PyPI on the same files); it is
/// not the default until carelake's own release build shows the gain (see docs/SCALE.md).
fn target_partitions() -> Option<usize> {
    std::env::var("CARELAKE_TARGET_PARTITIONS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

impl Session {
    /// Opens a session on `lake` for `principal` on the command line, acting as the lake's
    /// owner, loading the catalog and its views.
    pub async fn open(lake: Lake, principal: Principal) -> Result<Self> {
        Self::open_with(lake, principal, Origin::local_cli(), FileAccess::from_env()).await
    }

    /// Opens a session for `principal` coming from `origin`; `files` names the folders file
    /// statements may use (admins only).
    pub async fn open_with(
        lake: Lake,
        principal: Principal,
        origin: Origin,
        files: FileAccess,
    ) -> Result<Self> {
        let mut overrides = HashMap::from([
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
        if let Some(n) = target_partitions() {
            overrides.insert(
                "datafusion.execution.target_partitions".to_string(),
                n.to_string(),
            );
        }
        let delta = DeltaSessionContext::new_with_session_overrides(&overrides)?.into_inner();
        // The closed surface: no file-format table factories, stores confined to the lake.
        let registry = Arc::new(LakeRegistry::new(lake.table_root().clone()));
        let mut runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&registry) as _)
            .with_cache_manager(crate::limits::session_caches());
        if let Some(pool) = crate::limits::session_pool() {
            runtime = runtime.with_memory_pool(pool);
        }
        if lake.is_encrypted() {
            // Spill files would hold plaintext rows outside the lake: an encrypted lake's
            // queries stay within their memory share (and fail cleanly beyond it).
            runtime = runtime.with_disk_manager_builder(
                datafusion::execution::disk_manager::DiskManagerBuilder::default()
                    .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
            );
        }
        let runtime = runtime.build_arc()?;
        let state = SessionStateBuilder::new_from_existing(delta.state())
            .with_runtime_env(runtime)
            .with_table_factories(HashMap::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        crate::functions::register(&ctx);
        let models = Arc::new(crate::model::ModelRegistry::default());
        crate::model::register(&ctx, &models);
        register_masks(&ctx, &lake.secret().await?);
        let guard = Arc::new(Guard::new(Rules::default(), ctx.state_weak_ref()));
        let catalog = MemoryCatalogProvider::new();
        let mut zones = HashMap::new();
        for zone in Zone::ALL {
            let schema = Arc::new(ZoneSchema::new(lake.clone(), zone, Arc::clone(&guard)));
            catalog.register_schema(zone.as_str(), Arc::clone(&schema) as _)?;
            zones.insert(zone, schema);
        }
        let system = Arc::new(SystemSchema::default());
        catalog.register_schema(SYSTEM_SCHEMA, Arc::clone(&system) as _)?;
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        let session = Self {
            ctx,
            lake,
            principal,
            origin,
            files,
            guard,
            zones,
            system,
            registry,
            externals: std::sync::Mutex::new(HashMap::new()),
            models,
            identity: std::sync::Mutex::new(None),
        };
        session.refresh().await?;
        Ok(session)
    }

    /// The acting principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Where the session comes from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The DataFusion context (for interfaces that plan queries themselves: pass every plan to
    /// [`Session::authorize`] first). Its tables resolve through the session's policy layer
    /// and its stores are confined to the lake, whatever is run on it.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Sends the session's reads to a cluster: the plans [`crate::cluster::cluster_can_run`]
    /// allows are planned by `remote` (Ballista's query planner), the rest here as before.
    /// `config` adds what the cluster's client needs to the session's configuration.
    pub fn run_reads_on(
        &self,
        remote: Arc<dyn datafusion::execution::context::QueryPlanner + Send + Sync>,
        config: impl FnOnce(
            datafusion::execution::context::SessionConfig,
        ) -> datafusion::execution::context::SessionConfig,
    ) {
        let state_ref = self.ctx.state_ref();
        let mut state = state_ref.write();
        let local = Arc::clone(state.query_planner());
        let new = SessionStateBuilder::new_from_existing(state.clone())
            .with_config(config(state.config().clone()))
            .with_query_planner(Arc::new(crate::cluster::RoutingPlanner { remote, local }))
            .build();
        *state = new;
    }

    /// Whether the session's principal holds `admin` (as of the last refresh).
    pub fn is_admin(&self) -> bool {
        self.guard.rules().admin
    }

    /// The roles the principal holds (as of the last refresh).
    pub fn roles(&self) -> Vec<String> {
        self.guard.rules().roles.iter().cloned().collect()
    }

    /// Registers the identity functions again (after an interface registered its own
    /// `session_user`, as the Postgres catalog does).
    pub fn register_identity_functions(&self) {
        if let Some(identity) = self
            .identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            register_identity(&self.ctx, identity);
        }
    }

    /// Runs a script of one or more statements and returns the result of each.
    pub async fn sql_all(&self, script: &str) -> Result<Vec<QueryResult>> {
        let mut results = Vec::new();
        for statement in split_statements(script) {
            results.push(self.execute(&statement).await?);
        }
        Ok(results)
    }

    /// Runs a script with every query's result cut at `max_rows + 1` rows inside its plan
    /// (so that the caller can tell it was cut, and a result too large to send is never
    /// collected whole).
    pub async fn sql_all_limited(&self, script: &str, max_rows: usize) -> Result<Vec<QueryResult>> {
        crate::limits::ROW_LIMIT
            .scope(max_rows.saturating_add(1), self.sql_all(script))
            .await
    }

    /// Runs a script and returns the last statement's result.
    pub async fn sql(&self, script: &str) -> Result<QueryResult> {
        self.sql_all(script)
            .await?
            .pop()
            .ok_or_else(|| Error::Syntax("no SQL statement given".into()))
    }

    /// Reloads the principal's roles and the lake's rules, table names and views from the
    /// catalog, and the system tables.
    pub async fn refresh(&self) -> Result<()> {
        let entries = self.lake.catalog().list().await?;
        let rules = self.load_rules(&entries).await?;
        let identity = Identity {
            user: rules.user.clone(),
            roles: rules.roles.iter().cloned().collect(),
            attributes: rules
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        {
            let mut current = self.identity.lock().unwrap_or_else(|e| e.into_inner());
            if current.as_ref() != Some(&identity) {
                register_identity(&self.ctx, &identity);
                *current = Some(identity);
            }
        }
        self.guard.set_rules(rules);
        for (zone, schema) in &self.zones {
            let names = entries
                .iter()
                .filter(|e| e.name.zone == *zone)
                .map(|e| e.name.name.clone())
                .collect();
            schema.set_names(names);
        }
        self.register_system_tables(&entries).await?;
        self.refresh_externals(&entries).await?;
        self.refresh_models().await?;
        // Views may depend on views: plan until nothing more can be planned.
        let mut pending: Vec<&CatalogEntry> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::View)
            .collect();
        for entry in &pending {
            self.zones[&entry.name.zone].set_view(&entry.name.name, None);
        }
        let mut last_error = HashMap::new();
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
                    Err(e) => {
                        last_error.insert(entry.name.clone(), denial_in(&e));
                        failed.push(entry);
                    }
                }
            }
            if failed.len() == before {
                for entry in failed {
                    match last_error.get(&entry.name).cloned().flatten() {
                        // The view reads a table the principal may not read.
                        Some(denied) => self.zones[&entry.name.zone].set_view(
                            &entry.name.name,
                            Some(Arc::new(crate::system::DeniedTable::new(format!(
                                "{denied} (read by the view {})",
                                entry.name
                            )))),
                        ),
                        None => {
                            tracing::warn!(view = %entry.name, "View cannot be planned (a table it reads is gone?).")
                        }
                    }
                }
                break;
            }
            pending = failed;
        }
        Ok(())
    }

    async fn load_rules(&self, entries: &[CatalogEntry]) -> Result<Rules> {
        let governance = self.lake.governance().load().await?;
        let roles = if self.origin.local {
            self.principal.roles.clone()
        } else {
            match self.lake.users().get(&self.principal.name).await? {
                Some(user) if !user.disabled => user.roles,
                _ => Vec::new(),
            }
        };
        let owners = entries
            .iter()
            .filter_map(|e| e.owner.clone().map(|o| (e.name.clone(), o)))
            .collect();
        Ok(Rules::new(&self.principal.name, roles, governance, owners))
    }

    /// Runs one statement and records it in the audit log: if the record cannot be written,
    /// the statement fails.
    async fn execute(&self, sql: &str) -> Result<QueryResult> {
        let mut touched = Touched::default();
        let result = self.dispatch(sql, &mut touched).await;
        let result = match result {
            Err(Error::DataFusion(e)) => Err(match self.column_denial(&e).await {
                Some(denied) => denied,
                None => Error::DataFusion(e),
            }),
            other => other,
        };
        let result = result.map_err(|e| match denial_in(&e) {
            Some(m) if !matches!(e, Error::PermissionDenied(_)) => Error::PermissionDenied(m),
            _ => e,
        });
        let rows = result.as_ref().ok().map(|r| {
            if r.message.is_some() {
                r.message
                    .as_deref()
                    .and_then(|m| m.split_whitespace().find_map(|w| w.parse::<i64>().ok()))
                    .unwrap_or(0)
            } else {
                r.row_count() as i64
            }
        });
        self.audit(
            touched.action.unwrap_or("statement"),
            Some(sql),
            &touched,
            rows,
            result.as_ref().err(),
        )
        .await?;
        result
    }

    async fn dispatch(&self, sql: &str, touched: &mut Touched) -> Result<QueryResult> {
        let sql = &crate::statement::normalize_identity_calls(sql);
        let statement = match parse_statement(sql)? {
            Parsed::Alert(alert) => return self.alert_statement(alert, touched).await,
            Parsed::MatView(view) => return self.matview_statement(view, touched).await,
            Parsed::Model(model) => return self.model_statement(model, touched).await,
            Parsed::Governed(governed) => return self.governed(governed, touched).await,
            Parsed::Custom(custom) => return self.execute_custom(custom, touched).await,
            Parsed::Sql(statement) => *statement,
        };
        let mut view_query = None;
        match &statement {
            DFStatement::CopyTo(copy) => return self.copy_to(copy, touched).await,
            DFStatement::CreateExternalTable(create) => {
                return self.create_external(create, touched).await;
            }
            DFStatement::Statement(inner) => match inner.as_ref() {
                Statement::Update(update) => return self.update(update, touched).await,
                Statement::Delete(delete) => return self.delete(delete, touched).await,
                Statement::Merge(merge) => return self.merge(merge, touched).await,
                Statement::CreateView(view) => view_query = Some(view.query.to_string()),
                Statement::CreateSchema { .. } | Statement::CreateDatabase { .. } => {
                    return Err(Error::Unsupported(
                        "creating schemas: the zones raw, curated and analytics are the schemas"
                            .into(),
                    ));
                }
                _ => {}
            },
            _ => {}
        }
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        self.authorize(&plan)?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                let name = self.resolve(&create.name)?;
                touched.tables.insert(name.to_string());
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
                touched.tables.insert(name.to_string());
                let sql = view_query.unwrap_or_default();
                self.create_view(name, sql, view.input.as_ref(), view.or_replace)
                    .await
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(drop)) => {
                let name = self.resolve(&drop.name)?;
                touched.tables.insert(name.to_string());
                self.drop(name, EntryKind::Table, drop.if_exists).await
            }
            LogicalPlan::Ddl(DdlStatement::DropView(drop)) => {
                let name = self.resolve(&drop.name)?;
                touched.tables.insert(name.to_string());
                self.drop(name, EntryKind::View, drop.if_exists).await
            }
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
                self.insert(dml, touched).await
            }
            // Engine options (the surface lets only the lake's owner on the command line
            // get here): DataFusion's context sets them on the session's state.
            plan @ LogicalPlan::Statement(
                datafusion::logical_expr::Statement::SetVariable(_)
                | datafusion::logical_expr::Statement::ResetVariable(_),
            ) => {
                self.ctx.execute_logical_plan(plan).await?;
                Ok(QueryResult::message("SET"))
            }
            plan => self.run_query_plan(plan, touched).await,
        }
    }

    /// Runs a query plan: optimised once, what it reads noted for the audit, then executed.
    pub(crate) async fn run_query_plan(
        &self,
        plan: LogicalPlan,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        let state = self.ctx.state();
        let plan = match crate::limits::row_limit() {
            Some(limit) if !matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) => {
                datafusion::logical_expr::LogicalPlanBuilder::from(plan)
                    .limit(0, Some(limit))?
                    .build()?
            }
            _ => plan,
        };
        let optimized = state.optimize(&plan)?;
        touched.read(&optimized);
        // An answer computed before from the same versions of the same tables, under the
        // same policies, for the same principal.
        let cache_key = crate::cache::key(
            self.lake.root().as_str(),
            &self.principal.name,
            &format!("{:?}", state.query_planner()),
            &optimized,
        );
        if let Some((schema, batches)) = cache_key.as_ref().and_then(crate::cache::get) {
            return Ok(QueryResult {
                schema,
                batches,
                message: None,
            });
        }
        let schema: SchemaRef = Arc::new(optimized.schema().as_arrow().clone());
        let physical = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await?;
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
        if let Some(key) = cache_key {
            crate::cache::put(key, Arc::clone(&schema), &batches);
        }
        Ok(QueryResult {
            schema,
            batches,
            message: None,
        })
    }
}
