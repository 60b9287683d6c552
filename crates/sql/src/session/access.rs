//! What a session may do: the check of every plan, write and ownership, the refusal of a
//! column not granted, and resolving names to lake tables.

use std::collections::BTreeSet;

use carelake_common::TableName;
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::sqlparser::ast::ObjectName;

use super::{CATALOG, DEFAULT_ZONE, SYSTEM_SCHEMA, Session};
use crate::policy::ProtectedTable;
use crate::surface::{Allow, check_plan};
use crate::{Error, Result};

/// The column of a "no field named" planning error, with the table it was qualified with.
fn missing_column(error: &datafusion::error::DataFusionError) -> Option<(Option<String>, String)> {
    use datafusion::common::SchemaError;
    use datafusion::error::DataFusionError;
    match error {
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::FieldNotFound { field, .. } => Some((
                field.relation.as_ref().map(|r| r.table().to_string()),
                field.name.clone(),
            )),
            _ => None,
        },
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            missing_column(inner)
        }
        _ => None,
    }
}

/// Finds a permission refusal anywhere in an error's chain of sources.
pub(crate) fn denial_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(m) = crate::error::carried_in(error, |e| match e {
        Error::PermissionDenied(m) => Some(m.clone()),
        _ => None,
    }) {
        return Some(m);
    }
    // A layer that carried the refusal on as text.
    let text = error.to_string();
    text.split_once("permission denied: ")
        .map(|(_, rest)| rest.lines().next().unwrap_or_default().to_string())
}

impl Session {
    /// A planning error for a column the principal was not granted, as the refusal it is:
    /// `SELECT on zone.table.column` (as Postgres answers "permission denied" for a column
    /// not granted). `None` when the column is unknown, or the error is another.
    pub async fn column_denial(&self, error: &datafusion::error::DataFusionError) -> Option<Error> {
        let (relation, column) = missing_column(error)?;
        let rules = self.guard.rules();
        if rules.admin {
            return None;
        }
        let column = column.to_ascii_lowercase();
        let tables: Vec<TableName> = self
            .zones
            .iter()
            .flat_map(|(zone, schema)| {
                datafusion::catalog::SchemaProvider::table_names(schema.as_ref())
                    .into_iter()
                    .filter_map(|name| TableName::new(*zone, name).ok())
            })
            .collect();
        // The qualifier may be the table's name or an alias: with an alias, any table counts.
        let named: Vec<&TableName> = tables
            .iter()
            .filter(|t| relation.as_deref() == Some(t.name.as_str()))
            .collect();
        let candidates = if named.is_empty() {
            tables.iter().collect()
        } else {
            named
        };
        for table in candidates {
            let crate::policy::ColumnAccess::Some(visible) = rules.columns(table) else {
                continue;
            };
            if visible.contains(&column) {
                continue;
            }
            let Ok(Some(provider)) = self.zones[&table.zone]
                .stored(table, carelake_lake::TimeTravel::Latest)
                .await
            else {
                continue;
            };
            if provider
                .schema()
                .fields()
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(&column))
            {
                return Some(Error::PermissionDenied(format!(
                    "SELECT on {table}.{column}"
                )));
            }
        }
        None
    }

    /// What the closed surface allows this session beyond queries.
    pub(crate) fn allow(&self) -> Allow {
        Allow {
            set_options: self.origin.local && self.guard.rules().admin,
        }
    }

    /// The single check point for statements, on every interface: statements run through
    /// [`Session::sql`] pass here, and interfaces that plan queries themselves (the Postgres
    /// wire protocol) call it with their plan. The plan must be one the closed surface allows
    /// (see `surface.rs`); the `system` schema is read-only; writes and DDL need their
    /// privilege on the target. Reads are enforced where tables resolve (the policy layer).
    pub fn authorize(&self, plan: &LogicalPlan) -> Result<()> {
        check_plan(plan, self.allow())?;
        let target = match plan {
            LogicalPlan::Dml(dml) => Some(&dml.table_name),
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(c)) => Some(&c.name),
            LogicalPlan::Ddl(DdlStatement::CreateView(c)) => Some(&c.name),
            LogicalPlan::Ddl(DdlStatement::DropTable(d)) => Some(&d.name),
            LogicalPlan::Ddl(DdlStatement::DropView(d)) => Some(&d.name),
            _ => None,
        };
        let Some(target) = target else {
            return Ok(());
        };
        if target.schema() == Some(SYSTEM_SCHEMA) {
            return Err(Error::PermissionDenied(format!("{target} is read-only")));
        }
        let name = self.resolve(target)?;
        let rules = self.guard.rules();
        match plan {
            LogicalPlan::Dml(_) => self.require(carelake_lake::Privilege::Insert, &name),
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_))
            | LogicalPlan::Ddl(DdlStatement::CreateView(_)) => {
                let exists = rules.owners.contains_key(&name)
                    || self.zones[&name.zone]
                        .table_names_all()
                        .contains(&name.name);
                if exists && !(rules.admin || rules.owns(&name)) {
                    Err(Error::PermissionDenied(format!(
                        "replacing {name}: only its owner or an admin"
                    )))
                } else if !exists
                    && !rules.allows_on(
                        carelake_lake::Privilege::Create,
                        name.zone.as_str(),
                        &name.name,
                    )
                {
                    Err(Error::PermissionDenied(format!(
                        "CREATE in {} (GRANT CREATE ON {}.* TO a role of yours)",
                        name.zone, name.zone
                    )))
                } else {
                    Ok(())
                }
            }
            _ => self.require_owner(&name, "DROP"),
        }
    }

    /// Refuses unless the principal may write rows to `name` outside SQL (streamed events, a
    /// FHIR body): INSERT on it, or CREATE in its zone while it does not exist yet.
    pub fn authorize_write(&self, name: &TableName) -> Result<()> {
        let rules = self.guard.rules();
        let exists = self.zones[&name.zone]
            .table_names_all()
            .contains(&name.name);
        if exists {
            self.require(carelake_lake::Privilege::Insert, name)
        } else if rules.allows_on(
            carelake_lake::Privilege::Create,
            name.zone.as_str(),
            &name.name,
        ) || rules.allows(carelake_lake::Privilege::Insert, name)
        {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "CREATE in {} (the table {name} does not exist yet)",
                name.zone
            )))
        }
    }

    /// Refuses unless the principal holds `privilege` on `name`.
    pub(crate) fn require(
        &self,
        privilege: carelake_lake::Privilege,
        name: &TableName,
    ) -> Result<()> {
        if self.guard.rules().allows(privilege, name) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("{privilege} on {name}")))
        }
    }

    /// Refuses unless the principal owns `name` or is an admin.
    pub(crate) fn require_owner(&self, name: &TableName, what: &str) -> Result<()> {
        let rules = self.guard.rules();
        if rules.admin || rules.owns(name) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{what} of {name}: only its owner or an admin"
            )))
        }
    }

    /// Refuses unless the principal is an admin.
    pub(crate) fn require_admin(&self, what: &str) -> Result<()> {
        if self.guard.rules().admin {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{what} needs the admin role"
            )))
        }
    }

    pub(crate) fn resolve(&self, reference: &TableReference) -> Result<TableName> {
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

    pub(crate) fn resolve_object(&self, name: &ObjectName) -> Result<TableName> {
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
}

/// The lake tables a plan reads (lineage), without duplicates.
pub(crate) fn tables_read(plan: &LogicalPlan, session: &Session) -> Result<Vec<TableName>> {
    let mut names = BTreeSet::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = source_as_provider(&scan.source)
                .ok()
                .and_then(|p| p.downcast_ref::<ProtectedTable>().map(|t| t.name().clone()))
                .or_else(|| session.resolve(&scan.table_name).ok());
            if let Some(name) = name {
                names.insert(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(names.into_iter().collect())
}
