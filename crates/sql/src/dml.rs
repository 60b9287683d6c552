//! DML: `INSERT` (through DataFusion into the table's provider, which checks row policies on
//! what is written), and `UPDATE`, `DELETE`, `MERGE` (sqlparser AST to deltalake's builders),
//! each with its privilege; for a principal with row policies on the table, UPDATE and DELETE
//! touch only the rows the policies let them see.

use std::sync::Arc;

use carelake_common::TableName;
use carelake_lake::Privilege;
use datafusion::common::TableReference;
use datafusion::logical_expr::{DmlStatement, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Expr as SqlExpr, FromTable, MergeAction, MergeClauseKind, MergeInsertKind,
    ObjectName, TableFactor, Visit, Visitor,
};

use crate::policy::ColumnAccess;
use crate::session::{QueryResult, Session, Touched, tables_read};
use crate::{Error, Result};

/// Identifiers an expression names (lower case, last part).
fn identifiers(expr: &SqlExpr) -> Vec<String> {
    struct Idents(Vec<String>);
    impl Visitor for Idents {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &SqlExpr) -> std::ops::ControlFlow<()> {
            match expr {
                SqlExpr::Identifier(i) => self.0.push(i.value.to_ascii_lowercase()),
                SqlExpr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        self.0.push(last.value.to_ascii_lowercase());
                    }
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut v = Idents(Vec::new());
    let _ = expr.visit(&mut v);
    v.0
}

impl Session {
    /// `INSERT`: the privilege is checked by [`Session::authorize`], the rows written against
    /// the row policies by the table's provider.
    pub(crate) async fn insert(
        &self,
        dml: DmlStatement,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        let name = self.resolve(&dml.table_name)?;
        touched.tables.insert(name.to_string());
        touched.read(&dml.input);
        self.refuse_external(&name)?;
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

    /// The row policies' predicate that a write by this principal on `name` must add, and a
    /// check that the statement's expressions name only columns it may see unmasked and do
    /// not change the columns the policies read.
    fn write_guard(
        &self,
        name: &TableName,
        read: &[&SqlExpr],
        assigned: &[String],
    ) -> Result<Option<String>> {
        let rules = self.guard.rules();
        if rules.admin {
            return Ok(None);
        }
        let masks = rules.masks(name);
        let columns = rules.columns(name);
        for expr in read {
            for ident in identifiers(expr) {
                if masks.contains_key(&ident) {
                    return Err(Error::PermissionDenied(format!(
                        "{name}.{ident} is masked for you: it cannot decide which rows are written"
                    )));
                }
                if let ColumnAccess::Some(visible) = &columns
                    && !visible.contains(&ident)
                {
                    return Err(Error::PermissionDenied(format!("SELECT on {name}.{ident}")));
                }
                if columns == ColumnAccess::None {
                    return Err(Error::PermissionDenied(format!("SELECT on {name}")));
                }
            }
        }
        for column in assigned {
            if masks.contains_key(column) {
                return Err(Error::PermissionDenied(format!(
                    "{name}.{column} is masked for you"
                )));
            }
        }
        let Some(policies) = rules.row_policies(name) else {
            return Ok(None);
        };
        if policies.is_empty() {
            return Ok(Some("false".into()));
        }
        let predicate = policies
            .iter()
            .map(|p| format!("({})", p.predicate))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut parser = datafusion::sql::sqlparser::parser::Parser::new(
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
        )
        .try_with_sql(&predicate)
        .map_err(|e| Error::Syntax(e.to_string()))?;
        let parsed = parser
            .parse_expr()
            .map_err(|e| Error::Syntax(e.to_string()))?;
        let read_by_policy = identifiers(&parsed);
        if let Some(column) = assigned.iter().find(|c| read_by_policy.contains(c)) {
            return Err(Error::PermissionDenied(format!(
                "changing {name}.{column}: your row policies read it"
            )));
        }
        Ok(Some(predicate))
    }

    pub(crate) fn target_of(&self, factor: &TableFactor) -> Result<(TableName, Option<String>)> {
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

    pub(crate) async fn update(
        &self,
        update: &datafusion::sql::sqlparser::ast::Update,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        let (name, _) = self.target_of(&update.table.relation)?;
        touched.tables.insert(name.to_string());
        self.require(Privilege::Update, &name)?;
        if update.from.is_some() || !update.table.joins.is_empty() {
            return Err(Error::Unsupported("UPDATE … FROM; use MERGE".into()));
        }
        let mut read: Vec<&SqlExpr> = update.assignments.iter().map(|a| &a.value).collect();
        read.extend(update.selection.as_ref());
        let assigned: Vec<String> = update
            .assignments
            .iter()
            .filter_map(|a| match &a.target {
                AssignmentTarget::ColumnName(c) => Some(last_ident(c).to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let policy = self.write_guard(&name, &read, &assigned)?;
        self.refuse_external(&name)?;
        let table = self.lake.open_table(&name).await?;
        let mut builder = table
            .update()
            .with_session_state(Arc::new(self.ctx.state()))
            .with_commit_properties(self.commit_properties("update"));
        if let Some(predicate) = guarded(policy, update.selection.as_ref()) {
            builder = builder.with_predicate(predicate);
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

    pub(crate) async fn delete(
        &self,
        delete: &datafusion::sql::sqlparser::ast::Delete,
        touched: &mut Touched,
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
        touched.tables.insert(name.to_string());
        self.require(Privilege::Delete, &name)?;
        let read: Vec<&SqlExpr> = delete.selection.iter().collect();
        let policy = self.write_guard(&name, &read, &[])?;
        self.refuse_external(&name)?;
        let table = self.lake.open_table(&name).await?;
        let mut builder = table
            .delete()
            .with_session_state(Arc::new(self.ctx.state()))
            .with_commit_properties(self.commit_properties("delete"));
        if let Some(predicate) = guarded(policy, delete.selection.as_ref()) {
            builder = builder.with_predicate(predicate);
        }
        let (table, metrics) = builder.await?;
        self.record_write(&name, &table, None).await?;
        let count = metrics
            .num_deleted_rows
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into());
        Ok(QueryResult::message(format!("DELETE {count}")))
    }

    pub(crate) async fn merge(
        &self,
        merge: &datafusion::sql::sqlparser::ast::Merge,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        let (name, target_alias) = self.target_of(&merge.table)?;
        touched.tables.insert(name.to_string());
        for clause in &merge.clauses {
            let privilege = match &clause.action {
                MergeAction::Update(_) => Privilege::Update,
                MergeAction::Delete { .. } => Privilege::Delete,
                _ => Privilege::Insert,
            };
            self.require(privilege, &name)?;
        }
        if self.guard.rules().restricts(&name) {
            return Err(Error::PermissionDenied(format!(
                "MERGE into {name}: rows, columns or masks of it are restricted for you; use INSERT, UPDATE and DELETE"
            )));
        }
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
        crate::surface::check_query(source.logical_plan())?;
        touched.read(source.logical_plan());
        let upstream = tables_read(source.logical_plan(), self)?;
        self.refuse_external(&name)?;
        let table = self.lake.open_table(&name).await?;
        let mut builder = table
            .merge(source, merge.on.to_string())
            .with_source_alias(source_alias)
            .with_target_alias(target_alias)
            .with_session_state(Arc::new(self.ctx.state()))
            .with_commit_properties(self.commit_properties("merge"));
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
}

/// The predicate of a write guarded by the row policies: the user's condition is evaluated
/// only on rows the policies let them see (a CASE, so that it never runs on the others).
fn guarded(policy: Option<String>, selection: Option<&SqlExpr>) -> Option<String> {
    match (policy, selection) {
        (None, s) => s.map(ToString::to_string),
        (Some(p), None) => Some(format!("({p})")),
        (Some(p), Some(s)) => Some(format!("CASE WHEN ({p}) THEN ({s}) ELSE false END")),
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
