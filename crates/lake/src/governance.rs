//! Who may see what: roles, privileges, row policies, masking policies and user attributes,
//! kept as an append-only Delta table of events at `<lake>/_carelake/governance` and folded in
//! time order (like the users and the catalog), so that every process of one lake agrees.
//!
//! The model is deny by default: a user holds roles; a role holds privileges on tables, on a
//! whole zone (`raw.*`) or on columns of a table; the `admin` role may do everything. A table
//! with row policies returns to a non-admin only the rows some policy for one of their roles
//! allows; a masking policy replaces a column's value for the roles it names.

use std::collections::{BTreeMap, BTreeSet};

use carelake_common::Principal;
use serde::{Deserialize, Serialize};

use crate::util::{append_events, read_events};
use crate::{ADMIN_ROLE, Error, Lake, Result};

/// The role that may read the audit log (besides admins).
pub const AUDITOR_ROLE: &str = "auditor";

/// Roles every lake has.
pub const BUILTIN_ROLES: [&str; 2] = [ADMIN_ROLE, AUDITOR_ROLE];

/// A privilege on a table, a zone or the system schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// Read rows (of all columns, or of the columns granted).
    Select,
    /// Add rows.
    Insert,
    /// Change rows.
    Update,
    /// Remove rows.
    Delete,
    /// Create tables and views in a zone (whose creator then owns them).
    Create,
}

impl Privilege {
    /// Every privilege, for `ALL`.
    pub const ALL: [Privilege; 5] = [
        Privilege::Select,
        Privilege::Insert,
        Privilege::Update,
        Privilege::Delete,
        Privilege::Create,
    ];

    /// The SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Create => "CREATE",
        }
    }
}

impl std::str::FromStr for Privilege {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "SELECT" => Privilege::Select,
            "INSERT" => Privilege::Insert,
            "UPDATE" => Privilege::Update,
            "DELETE" => Privilege::Delete,
            "CREATE" => Privilege::Create,
            other => {
                return Err(Error::Governance(format!(
                    "unknown privilege {other}: SELECT, INSERT, UPDATE, DELETE, CREATE or ALL"
                )));
            }
        })
    }
}

impl std::fmt::Display for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a grant is on: `zone.table`, `zone.*` (every table of the zone, present and future),
/// or a table of the `system` schema (`system.loads`, `system.*`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Securable {
    /// The schema: a zone or `system`.
    pub schema: String,
    /// The table, or `None` for every table of the schema.
    pub table: Option<String>,
}

impl Securable {
    /// Parses `zone.table`, `zone.*`, `system.name` (lower case).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim().replace('"', "").to_ascii_lowercase();
        let Some((schema, table)) = text.split_once('.') else {
            return Err(Error::Governance(format!(
                "{text}: name a table as zone.table, or every table of a zone as zone.*"
            )));
        };
        if !matches!(schema, "raw" | "curated" | "analytics" | "system") {
            return Err(Error::Governance(format!(
                "{text}: the schemas are raw, curated, analytics and system"
            )));
        }
        let valid = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '-')
        };
        let table = match table {
            "*" => None,
            t if valid(t) => Some(t.to_string()),
            _ => return Err(Error::Governance(format!("{text}: not a table name"))),
        };
        Ok(Self {
            schema: schema.to_string(),
            table,
        })
    }

    /// Whether this covers `schema.table`.
    pub fn covers(&self, schema: &str, table: &str) -> bool {
        self.schema == schema && self.table.as_deref().is_none_or(|t| t == table)
    }
}

impl std::fmt::Display for Securable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}",
            self.schema,
            self.table.as_deref().unwrap_or("*")
        )
    }
}

/// A privilege held by a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The role holding it.
    pub role: String,
    /// The privilege.
    pub privilege: Privilege,
    /// On what.
    pub on: Securable,
    /// For SELECT on a table: only these columns (lower case); `None` for all.
    pub columns: Option<BTreeSet<String>>,
}

/// `CREATE ROW POLICY name ON table FOR role USING (predicate)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowPolicy {
    /// Its name (unique in the lake).
    pub name: String,
    /// The table, `zone.table`.
    pub table: String,
    /// The role it applies to.
    pub role: String,
    /// A SQL predicate over the table's columns (and `current_user()`, …).
    pub predicate: String,
}

/// `CREATE MASKING POLICY name ON table (column) FOR role USING (expression)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskPolicy {
    /// Its name (unique in the lake).
    pub name: String,
    /// The table, `zone.table`.
    pub table: String,
    /// The column masked (lower case).
    pub column: String,
    /// The role it applies to.
    pub role: String,
    /// The SQL expression that replaces the column's value.
    pub expression: String,
}

/// One change to the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GovernanceEvent {
    /// A role was created.
    CreateRole {
        /// The role.
        role: String,
    },
    /// A role was dropped (with its grants and policies).
    DropRole {
        /// The role.
        role: String,
    },
    /// A privilege was granted.
    Grant(Grant),
    /// A privilege was revoked: the role's grants of `privilege` on `on`, or only the listed
    /// columns of a column grant.
    Revoke(Grant),
    /// A row policy was created (or replaced).
    CreateRowPolicy(RowPolicy),
    /// A row policy was dropped.
    DropRowPolicy {
        /// Its name.
        name: String,
    },
    /// A masking policy was created (or replaced).
    CreateMask(MaskPolicy),
    /// A masking policy was dropped.
    DropMask {
        /// Its name.
        name: String,
    },
    /// A user attribute was set (or removed, with `value: None`).
    SetAttribute {
        /// The user.
        user: String,
        /// The attribute (lower case).
        key: String,
        /// Its value.
        value: Option<String>,
    },
}

/// The rules as the events leave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Governance {
    /// Roles created with `CREATE ROLE` (the built-in ones are not listed).
    pub roles: BTreeSet<String>,
    /// Every grant.
    pub grants: Vec<Grant>,
    /// Row policies by name.
    pub row_policies: BTreeMap<String, RowPolicy>,
    /// Masking policies by name.
    pub masks: BTreeMap<String, MaskPolicy>,
    /// User attributes: user → key → value.
    pub attributes: BTreeMap<String, BTreeMap<String, String>>,
}

impl Governance {
    /// Whether `role` exists (built in or created).
    pub fn role_exists(&self, role: &str) -> bool {
        BUILTIN_ROLES.contains(&role) || self.roles.contains(role)
    }

    /// Applies one event.
    pub fn apply(&mut self, event: GovernanceEvent) {
        match event {
            GovernanceEvent::CreateRole { role } => {
                self.roles.insert(role);
            }
            GovernanceEvent::DropRole { role } => {
                self.roles.remove(&role);
                self.grants.retain(|g| g.role != role);
                self.row_policies.retain(|_, p| p.role != role);
                self.masks.retain(|_, m| m.role != role);
            }
            GovernanceEvent::Grant(grant) => {
                if let Some(existing) = self.grants.iter_mut().find(|g| {
                    g.role == grant.role && g.privilege == grant.privilege && g.on == grant.on
                }) {
                    existing.columns = match (existing.columns.take(), grant.columns) {
                        (Some(mut a), Some(b)) => {
                            a.extend(b);
                            Some(a)
                        }
                        _ => None,
                    };
                } else {
                    self.grants.push(grant);
                }
            }
            GovernanceEvent::Revoke(revoke) => {
                let same = |g: &Grant| {
                    g.role == revoke.role && g.privilege == revoke.privilege && g.on == revoke.on
                };
                match revoke.columns {
                    None => self.grants.retain(|g| !same(g)),
                    Some(columns) => {
                        for g in self.grants.iter_mut().filter(|g| same(g)) {
                            if let Some(held) = &mut g.columns {
                                held.retain(|c| !columns.contains(c));
                            }
                        }
                        self.grants
                            .retain(|g| g.columns.as_ref().is_none_or(|c| !c.is_empty()));
                    }
                }
            }
            GovernanceEvent::CreateRowPolicy(policy) => {
                self.row_policies.insert(policy.name.clone(), policy);
            }
            GovernanceEvent::DropRowPolicy { name } => {
                self.row_policies.remove(&name);
            }
            GovernanceEvent::CreateMask(mask) => {
                self.masks.insert(mask.name.clone(), mask);
            }
            GovernanceEvent::DropMask { name } => {
                self.masks.remove(&name);
            }
            GovernanceEvent::SetAttribute { user, key, value } => {
                let attributes = self.attributes.entry(user).or_default();
                match value {
                    Some(v) => {
                        attributes.insert(key, v);
                    }
                    None => {
                        attributes.remove(&key);
                    }
                }
            }
        }
    }

    /// The row policies on `table` (`zone.table`).
    pub fn row_policies_on<'a>(
        &'a self,
        table: &str,
    ) -> impl Iterator<Item = &'a RowPolicy> + use<'a> {
        let table = table.to_string();
        self.row_policies.values().filter(move |p| p.table == table)
    }

    /// The masking policies on `table` (`zone.table`).
    pub fn masks_on<'a>(&'a self, table: &str) -> impl Iterator<Item = &'a MaskPolicy> + use<'a> {
        let table = table.to_string();
        self.masks.values().filter(move |m| m.table == table)
    }
}

/// The governance store of a lake.
#[derive(Debug, Clone)]
pub struct GovernanceStore {
    lake: Lake,
}

/// A role or attribute name: lower-case letters, digits and '_', starting with a letter.
pub fn check_role_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(Error::Governance(format!(
            "invalid name {name:?}: lower-case letters, digits and '_', starting with a letter"
        )))
    }
}

impl GovernanceStore {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// Appends events in one commit.
    pub async fn record(&self, events: &[GovernanceEvent], by: &Principal) -> Result<()> {
        append_events(
            &self.lake,
            "governance",
            "carelake roles, grants, row and masking policies, user attributes",
            events,
            by,
            Error::Governance,
        )
        .await
    }

    /// The current rules (empty for a lake that has none yet).
    pub async fn load(&self) -> Result<Governance> {
        let events: Vec<GovernanceEvent> =
            read_events(&self.lake, "governance", Error::Governance).await?;
        let mut governance = Governance::default();
        for event in events {
            governance.apply(event);
        }
        Ok(governance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: &str, privilege: Privilege, on: &str, columns: Option<&[&str]>) -> Grant {
        Grant {
            role: role.into(),
            privilege,
            on: Securable::parse(on).unwrap(),
            columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn folds_grants_and_revokes() {
        let mut g = Governance::default();
        g.apply(GovernanceEvent::CreateRole {
            role: "analyst".into(),
        });
        g.apply(GovernanceEvent::Grant(grant(
            "analyst",
            Privilege::Select,
            "curated.patients",
            Some(&["a", "b"]),
        )));
        g.apply(GovernanceEvent::Grant(grant(
            "analyst",
            Privilege::Select,
            "curated.patients",
            Some(&["c"]),
        )));
        assert_eq!(g.grants.len(), 1);
        assert_eq!(g.grants[0].columns.as_ref().unwrap().len(), 3);
        g.apply(GovernanceEvent::Revoke(grant(
            "analyst",
            Privilege::Select,
            "curated.patients",
            Some(&["a", "b", "c"]),
        )));
        assert!(g.grants.is_empty());
        g.apply(GovernanceEvent::Grant(grant(
            "analyst",
            Privilege::Select,
            "raw.*",
            None,
        )));
        assert!(g.grants[0].on.covers("raw", "x"));
        assert!(!g.grants[0].on.covers("curated", "x"));
        g.apply(GovernanceEvent::DropRole {
            role: "analyst".into(),
        });
        assert!(g.grants.is_empty() && !g.role_exists("analyst"));
        assert!(g.role_exists("admin") && g.role_exists("auditor"));
    }

    #[test]
    fn parses_securables() {
        assert_eq!(Securable::parse("RAW.*").unwrap().to_string(), "raw.*");
        assert_eq!(
            Securable::parse("\"curated\".\"patients\"")
                .unwrap()
                .to_string(),
            "curated.patients"
        );
        assert!(Securable::parse("other.t").is_err());
        assert!(Securable::parse("raw.a/../b").is_err());
        assert!(Securable::parse("patients").is_err());
    }
}
