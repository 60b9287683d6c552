//! Running the governance statements (`govern.rs` parses them): admins change the rules;
//! anyone may see their own grants.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use carelake_common::TableName;
use carelake_lake::{BUILTIN_ROLES, GovernanceEvent, Grant, MaskPolicy, RowPolicy, Securable};

use crate::govern::Governed;
use crate::session::{QueryResult, Session, Touched};
use crate::{Error, Result};

fn table_of(securable: &Securable) -> Result<TableName> {
    let table = securable
        .table
        .as_deref()
        .ok_or_else(|| Error::Syntax("name one table".into()))?;
    Ok(TableName::new(securable.schema.parse()?, table)?)
}

fn rows(columns: &[&str], values: Vec<Vec<Option<String>>>) -> Result<QueryResult> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays = (0..columns.len())
        .map(|i| Arc::new(values.iter().map(|r| r[i].clone()).collect::<StringArray>()) as _)
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
    Ok(QueryResult {
        schema,
        batches: vec![batch],
        message: None,
    })
}

impl Session {
    pub(crate) async fn governed(
        &self,
        governed: Governed,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.action = Some(match &governed {
            Governed::ShowGrants(_) | Governed::ShowRoles | Governed::ShowPolicies(_) => {
                "statement"
            }
            Governed::CreateRowPolicy { .. }
            | Governed::CreateMask { .. }
            | Governed::DropRowPolicy(_)
            | Governed::DropMask(_) => "policy",
            Governed::SetAttribute { .. } | Governed::GrantRoles { .. } => "user",
            Governed::RevokeRoles { .. } => "user-revoke",
            _ => "grant",
        });
        let rules = self.guard.rules();
        match &governed {
            Governed::ShowGrants(None) => {}
            Governed::ShowGrants(Some(user)) if *user == self.principal.name => {}
            _ => self.require_admin("changing or listing roles, grants and policies")?,
        }
        let governance = &rules.governance;
        let role_must_exist = |role: &str| -> Result<()> {
            if governance.role_exists(role) {
                Ok(())
            } else {
                Err(Error::Syntax(format!(
                    "no role {role}: CREATE ROLE {role} first"
                )))
            }
        };
        let event = match governed {
            Governed::CreateRole(role) => {
                if governance.role_exists(&role) {
                    return Err(Error::Syntax(format!("role {role} exists")));
                }
                GovernanceEvent::CreateRole { role }
            }
            Governed::DropRole(role) => {
                if BUILTIN_ROLES.contains(&role.as_str()) {
                    return Err(Error::Syntax(format!("{role} is built in")));
                }
                role_must_exist(&role)?;
                GovernanceEvent::DropRole { role }
            }
            Governed::GrantRoles { roles, user } | Governed::RevokeRoles { roles, user } => {
                let revoking = touched.action == Some("user-revoke");
                touched.action = Some("user");
                for role in &roles {
                    role_must_exist(role)?;
                }
                let users = self.lake.users();
                let current = users
                    .get(&user)
                    .await?
                    .ok_or_else(|| Error::Syntax(format!("no user {user}")))?;
                let mut held = current.roles.clone();
                // A REVOKE names the roles to take away; a GRANT those to add.
                if revoking {
                    held.retain(|r| !roles.contains(r));
                } else {
                    for role in roles {
                        if !held.contains(&role) {
                            held.push(role);
                        }
                    }
                }
                users.set_roles(&user, &held, &self.principal).await?;
                self.refresh().await?;
                return Ok(QueryResult::message(if revoking {
                    "REVOKE"
                } else {
                    "GRANT"
                }));
            }
            Governed::Grant {
                privileges,
                on,
                role,
                revoke,
            } => {
                role_must_exist(&role)?;
                let events: Vec<GovernanceEvent> = privileges
                    .into_iter()
                    .map(|(privilege, columns)| {
                        let grant = Grant {
                            role: role.clone(),
                            privilege,
                            on: on.clone(),
                            columns,
                        };
                        if revoke {
                            GovernanceEvent::Revoke(grant)
                        } else {
                            GovernanceEvent::Grant(grant)
                        }
                    })
                    .collect();
                self.lake
                    .governance()
                    .record(&events, &self.principal)
                    .await?;
                self.refresh().await?;
                return Ok(QueryResult::message(if revoke {
                    "REVOKE"
                } else {
                    "GRANT"
                }));
            }
            Governed::CreateRowPolicy {
                name,
                table,
                role,
                predicate,
            } => {
                role_must_exist(&role)?;
                let t = table_of(&table)?;
                touched.tables.insert(t.to_string());
                // It must plan against the table as it is.
                self.ctx
                    .sql(&format!(
                        "SELECT * FROM {}.{} WHERE ({predicate}) LIMIT 0",
                        t.zone,
                        crate::policy::table::quote(&t.name)
                    ))
                    .await
                    .map_err(|e| {
                        Error::Syntax(format!(
                            "the row policy does not apply to {t}: {}",
                            e.strip_backtrace().lines().next().unwrap_or_default()
                        ))
                    })?;
                GovernanceEvent::CreateRowPolicy(RowPolicy {
                    name,
                    table: t.to_string(),
                    role,
                    predicate,
                })
            }
            Governed::CreateMask {
                name,
                table,
                column,
                role,
                expression,
            } => {
                role_must_exist(&role)?;
                let t = table_of(&table)?;
                touched.tables.insert(t.to_string());
                let df = self
                    .ctx
                    .sql(&format!(
                        "SELECT ({expression}) AS masked, {} FROM {}.{} LIMIT 0",
                        crate::policy::table::quote(&column),
                        t.zone,
                        crate::policy::table::quote(&t.name)
                    ))
                    .await
                    .map_err(|e| {
                        Error::Syntax(format!(
                            "the mask does not apply to {t}.{column}: {}",
                            e.strip_backtrace().lines().next().unwrap_or_default()
                        ))
                    })?;
                let _ = df;
                GovernanceEvent::CreateMask(MaskPolicy {
                    name,
                    table: t.to_string(),
                    column,
                    role,
                    expression,
                })
            }
            Governed::DropRowPolicy(name) => {
                if !governance.row_policies.contains_key(&name) {
                    return Err(Error::Syntax(format!("no row policy {name}")));
                }
                GovernanceEvent::DropRowPolicy { name }
            }
            Governed::DropMask(name) => {
                if !governance.masks.contains_key(&name) {
                    return Err(Error::Syntax(format!("no masking policy {name}")));
                }
                GovernanceEvent::DropMask { name }
            }
            Governed::SetAttribute { user, key, value } => {
                if self.lake.users().get(&user).await?.is_none() {
                    return Err(Error::Syntax(format!("no user {user}")));
                }
                GovernanceEvent::SetAttribute { user, key, value }
            }
            Governed::ShowRoles => {
                let mut values: Vec<Vec<Option<String>>> = BUILTIN_ROLES
                    .iter()
                    .map(|r| vec![Some(r.to_string()), Some("built in".into())])
                    .collect();
                values.extend(governance.roles.iter().map(|r| vec![Some(r.clone()), None]));
                return rows(&["role", "note"], values);
            }
            Governed::ShowGrants(user) => return self.show_grants(user).await,
            Governed::ShowPolicies(on) => {
                let on = on.map(|s| s.to_string());
                let mut values = Vec::new();
                for p in governance.row_policies.values() {
                    if on.as_ref().is_none_or(|t| *t == p.table) {
                        values.push(vec![
                            Some(p.name.clone()),
                            Some("row".into()),
                            Some(p.table.clone()),
                            None,
                            Some(p.role.clone()),
                            Some(p.predicate.clone()),
                        ]);
                    }
                }
                for m in governance.masks.values() {
                    if on.as_ref().is_none_or(|t| *t == m.table) {
                        values.push(vec![
                            Some(m.name.clone()),
                            Some("mask".into()),
                            Some(m.table.clone()),
                            Some(m.column.clone()),
                            Some(m.role.clone()),
                            Some(m.expression.clone()),
                        ]);
                    }
                }
                return rows(
                    &[
                        "name",
                        "kind",
                        "table_name",
                        "column_name",
                        "role",
                        "expression",
                    ],
                    values,
                );
            }
        };
        self.lake
            .governance()
            .record(&[event], &self.principal)
            .await?;
        self.refresh().await?;
        Ok(QueryResult::message("OK"))
    }

    /// `SHOW GRANTS [FOR user]`: one row per privilege held (through which role), and a row
    /// per table owned.
    async fn show_grants(&self, user: Option<String>) -> Result<QueryResult> {
        let rules = self.guard.rules();
        let (name, roles) = match user {
            None => (
                self.principal.name.clone(),
                rules.roles.iter().cloned().collect::<Vec<_>>(),
            ),
            Some(u) if u == self.principal.name => {
                (u, rules.roles.iter().cloned().collect::<Vec<_>>())
            }
            Some(u) => {
                let found = self
                    .lake
                    .users()
                    .get(&u)
                    .await?
                    .ok_or_else(|| Error::Syntax(format!("no user {u}")))?;
                (u, found.roles)
            }
        };
        let mut values = Vec::new();
        for role in &roles {
            if role == carelake_lake::ADMIN_ROLE {
                values.push(vec![
                    Some(name.clone()),
                    Some(role.clone()),
                    Some("ALL".into()),
                    Some("everything".into()),
                    None,
                ]);
            }
            if role == carelake_lake::AUDITOR_ROLE {
                values.push(vec![
                    Some(name.clone()),
                    Some(role.clone()),
                    Some("SELECT".into()),
                    Some("system.audit".into()),
                    None,
                ]);
            }
            for g in rules.governance.grants.iter().filter(|g| g.role == *role) {
                values.push(vec![
                    Some(name.clone()),
                    Some(role.clone()),
                    Some(g.privilege.to_string()),
                    Some(g.on.to_string()),
                    g.columns
                        .as_ref()
                        .map(|c| c.iter().cloned().collect::<Vec<_>>().join(", ")),
                ]);
            }
        }
        let mut owned: Vec<&TableName> = rules
            .owners
            .iter()
            .filter(|(_, o)| **o == name)
            .map(|(t, _)| t)
            .collect();
        owned.sort();
        for t in owned {
            values.push(vec![
                Some(name.clone()),
                None,
                Some("OWNER".into()),
                Some(t.to_string()),
                None,
            ]);
        }
        rows(&["user_name", "role", "privilege", "on", "columns"], values)
    }
}
