//! The read-only `system` schema: `system.tables` (the catalog, as far as the principal may
//! see it), `system.loads`, `system.runs` and `system.watch_files` (the load and run history
//! and what `serve --watch` has taken, to admins and those granted SELECT on them) and `system.audit` (the audit log, to admins and auditors).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use carelake_lake::{CatalogEntry, Privilege, TimeTravel};
use datafusion::catalog::{MemTable, SchemaProvider, Session as DfSession, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::schema::external;
use crate::session::Session;
use crate::{Error, Result};

/// The `system` schema of one session.
#[derive(Debug, Default)]
pub(crate) struct SystemSchema {
    tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    denied: RwLock<HashSet<String>>,
}

impl SystemSchema {
    fn set(&self, name: &str, table: Option<Arc<dyn TableProvider>>) {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        let mut denied = self.denied.write().unwrap_or_else(|e| e.into_inner());
        match table {
            Some(t) => {
                tables.insert(name.to_string(), t);
                denied.remove(name);
            }
            None => {
                tables.remove(name);
                denied.insert(name.to_string());
            }
        }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Some(Arc::clone(t)));
        }
        if self
            .denied
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
        {
            return Err(external(Error::PermissionDenied(format!(
                "SELECT on system.{name}"
            ))));
        }
        Ok(None)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }
}

/// A name the principal may not read (a view over a table denied to them): every scan fails
/// with the reason.
#[derive(Debug)]
pub(crate) struct DeniedTable {
    reason: String,
    schema: SchemaRef,
}

impl DeniedTable {
    pub(crate) fn new(reason: String) -> Self {
        Self {
            reason,
            schema: Arc::new(Schema::empty()),
        }
    }
}

#[async_trait]
impl TableProvider for DeniedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::External(Box::new(
            Error::PermissionDenied(self.reason.clone()),
        )))
    }
}

impl Session {
    /// Registers the system tables the principal may read.
    pub(crate) async fn register_system_tables(&self, entries: &[CatalogEntry]) -> Result<()> {
        let rules = self.guard.rules();
        let visible: Vec<&CatalogEntry> = entries
            .iter()
            .filter(|e| rules.admin || rules.sees(&e.name))
            .collect();
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
            Arc::new(visible.iter().map(|e| f(e)).collect::<StringArray>())
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                strings(&|e| Some(e.name.to_string())),
                strings(&|e| Some(e.name.zone.to_string())),
                strings(&|e| Some(e.kind.as_str().to_string())),
                strings(&|e| e.description.clone()),
                strings(&|e| e.owner.clone()),
                strings(&|e| e.source.clone()),
                // A row count would tell a principal with row policies how many rows are
                // hidden from them.
                Arc::new(
                    visible
                        .iter()
                        .map(|e| {
                            e.row_count
                                .filter(|_| rules.row_policies(&e.name).is_none())
                        })
                        .collect::<Int64Array>(),
                ),
                Arc::new(
                    visible
                        .iter()
                        .map(|e| e.table_version)
                        .collect::<Int64Array>(),
                ),
                strings(&|e| {
                    Some(
                        e.upstream
                            .iter()
                            .filter(|t| rules.admin || rules.sees(t))
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                }),
                strings(&|e| Some(e.created_at.to_rfc3339())),
                strings(&|e| Some(e.updated_at.to_rfc3339())),
            ],
        )?;
        self.system.set(
            "tables",
            Some(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?)),
        );
        for (name, url) in [
            ("loads", self.lake.load_history().url()?),
            ("runs", self.lake.run_history().url()?),
            ("watch_files", self.lake.watches().url()?),
        ] {
            if !rules.allows_on(Privilege::Select, "system", name) {
                self.system.set(name, None);
                continue;
            }
            if let Some(history) = self.lake.load_delta(&url, TimeTravel::Latest).await? {
                self.system.set(name, Some(history.table_provider().await?));
            }
        }
        let alerts = Self::alert_rows(&self.visible_alerts().await?)?;
        self.system.set(
            "alerts",
            Some(Arc::new(MemTable::try_new(
                alerts.schema,
                vec![vec![alerts.batch]],
            )?)),
        );
        if !rules.allows_on(Privilege::Select, "system", "alert_deliveries") {
            self.system.set("alert_deliveries", None);
        } else if let Some(deliveries) = self
            .lake
            .load_delta(&self.lake.alerts().deliveries_url()?, TimeTravel::Latest)
            .await?
        {
            self.system
                .set("alert_deliveries", Some(deliveries.table_provider().await?));
        }
        if !rules.allows_on(Privilege::Select, "system", "audit") {
            self.system.set("audit", None);
        } else if let Some(audit) = self.lake.audit_table().await? {
            self.system
                .set("audit", Some(audit.table_provider().await?));
        } else {
            self.system.set(
                "audit",
                Some(Arc::new(MemTable::try_new(
                    carelake_lake::audit_schema(),
                    vec![vec![]],
                )?)),
            );
        }
        Ok(())
    }
}
