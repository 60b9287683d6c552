//! The audit record of what a session does: what a statement touched, and the record of each
//! statement and each action outside SQL.

use std::collections::BTreeSet;

use carelake_common::TableName;
use carelake_lake::AuditRecord;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;

use super::Session;
use crate::policy::ProtectedTable;
use crate::{Error, Result};

/// What the audit record of a statement says it touched.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub(crate) action: Option<&'static str>,
    pub(crate) tables: BTreeSet<String>,
    pub(crate) columns: BTreeSet<String>,
    pub(crate) policies: BTreeSet<String>,
}

impl Touched {
    /// Adds what `plan` reads: its lake tables, the columns its scans project (after
    /// optimisation, exact) and the policies applied.
    pub(crate) fn read(&mut self, plan: &LogicalPlan) {
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let table = scan.table_name.to_string();
                if let Ok(provider) = source_as_provider(&scan.source)
                    && let Some(protected) = provider.downcast_ref::<ProtectedTable>()
                {
                    self.policies.extend(protected.applied().iter().cloned());
                    self.tables.insert(protected.name().to_string());
                } else {
                    self.tables.insert(table.clone());
                }
                if let Some(projection) = &scan.projection {
                    let schema = scan.source.schema();
                    for i in projection {
                        if let Some(f) = schema.fields().get(*i) {
                            self.columns.insert(format!("{table}.{}", f.name()));
                        }
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
}

fn joined(set: &BTreeSet<String>) -> Option<String> {
    (!set.is_empty()).then(|| set.iter().cloned().collect::<Vec<_>>().join(", "))
}

impl Session {
    /// Appends one record to the audit log for this session.
    pub(crate) async fn audit(
        &self,
        action: &str,
        sql: Option<&str>,
        touched: &Touched,
        rows: Option<i64>,
        error: Option<&Error>,
    ) -> Result<()> {
        let mut record = AuditRecord::new(
            self.principal.name.clone(),
            self.origin.interface.as_str(),
            action,
        );
        record.peer = self.origin.peer.clone();
        record.statement = sql.map(|s| carelake_common::redact_literals(s.trim()));
        record.tables = joined(&touched.tables);
        record.columns = joined(&touched.columns);
        record.policies = joined(&touched.policies);
        record.rows = rows;
        if let Some(e) = error {
            record.outcome = if matches!(e, Error::PermissionDenied(_)) {
                "denied".into()
            } else {
                "error".into()
            };
            record.detail = Some(carelake_common::redact_literals(&e.to_string()));
        }
        self.lake.audit_append(vec![record]).await.map_err(|e| {
            Error::Lake(carelake_lake::Error::Audit(format!(
                "the statement is refused because its audit record could not be written: {e}"
            )))
        })
    }

    /// Records a statement an interface planned and ran itself (the Postgres protocol's
    /// reads): what it read, the rows it returned, its outcome.
    pub async fn record_statement(
        &self,
        sql: &str,
        plan: Option<&LogicalPlan>,
        rows: Option<usize>,
        error: Option<&Error>,
    ) -> Result<()> {
        let mut touched = Touched::default();
        if let Some(plan) = plan
            && let Ok(optimized) = self.ctx.state().optimize(plan)
        {
            touched.read(&optimized);
        }
        self.audit(
            "statement",
            Some(sql),
            &touched,
            rows.map(|r| r as i64),
            error,
        )
        .await
    }

    /// Records something done outside SQL (streamed events, a FHIR body, a download) in the
    /// audit log; an error if the record cannot be written.
    pub async fn record_action(
        &self,
        action: &str,
        tables: &[TableName],
        rows: Option<i64>,
        error: Option<&Error>,
    ) -> Result<()> {
        let mut touched = Touched::default();
        touched
            .tables
            .extend(tables.iter().map(ToString::to_string));
        self.audit(action, None, &touched, rows, error).await
    }
}
