//! The policy layer: what the session's principal may do and see, and the one place it is
//! enforced for reads — every base table resolved through a zone schema is wrapped in a
//! [`ProtectedTable`] for a principal who is not an admin (`table.rs`), so that views, CTEs,
//! subqueries, joins, prepared statements and pipelines all read through it.
//!
//! [`Rules`] is the fold of the lake's governance events for one principal: their roles
//! (from the users table, re-read at each refresh), grants, row policies, masks and
//! attributes, and the owners of tables from the catalog.

pub(crate) mod functions;
pub(crate) mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use carelake_common::TableName;
use carelake_lake::{ADMIN_ROLE, AUDITOR_ROLE, Governance, MaskPolicy, Privilege, RowPolicy};

pub(crate) use table::ProtectedTable;

/// Which columns of a table a principal may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnAccess {
    /// Every column.
    All,
    /// Only these (lower case).
    Some(BTreeSet<String>),
    /// None: no SELECT on the table.
    None,
}

/// The rules in force for one principal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    /// The user name.
    pub(crate) user: String,
    /// Roles held (from the users table; the principal's own for the local owner).
    pub(crate) roles: BTreeSet<String>,
    /// Whether the principal holds `admin`.
    pub(crate) admin: bool,
    /// The user's attributes.
    pub(crate) attributes: BTreeMap<String, String>,
    /// The lake's governance.
    pub(crate) governance: Governance,
    /// Owners of tables and views (from the catalog).
    pub(crate) owners: HashMap<TableName, String>,
}

impl Rules {
    /// Rules for `user` holding `roles`.
    pub(crate) fn new(
        user: &str,
        roles: impl IntoIterator<Item = String>,
        governance: Governance,
        owners: HashMap<TableName, String>,
    ) -> Self {
        let roles: BTreeSet<String> = roles.into_iter().collect();
        let attributes = governance.attributes.get(user).cloned().unwrap_or_default();
        Self {
            user: user.to_string(),
            admin: roles.contains(ADMIN_ROLE),
            roles,
            attributes,
            governance,
            owners,
        }
    }

    /// Whether the principal owns `name` (created it).
    pub(crate) fn owns(&self, name: &TableName) -> bool {
        self.owners.get(name).is_some_and(|o| *o == self.user)
    }

    /// Whether the principal holds `privilege` on `schema.table` (any column grant counts for
    /// SELECT). Admins hold everything; owners hold everything on what they own.
    pub(crate) fn allows_on(&self, privilege: Privilege, schema: &str, table: &str) -> bool {
        if self.admin {
            return true;
        }
        if schema == "system" && table == "audit" && self.roles.contains(AUDITOR_ROLE) {
            return privilege == Privilege::Select;
        }
        if let Some(name) = schema
            .parse()
            .ok()
            .and_then(|zone| TableName::new(zone, table).ok())
            && self.owns(&name)
        {
            return true;
        }
        self.governance.grants.iter().any(|g| {
            g.privilege == privilege && self.roles.contains(&g.role) && g.on.covers(schema, table)
        })
    }

    /// [`Rules::allows_on`] for a lake table.
    pub(crate) fn allows(&self, privilege: Privilege, name: &TableName) -> bool {
        self.allows_on(privilege, name.zone.as_str(), &name.name)
    }

    /// Whether the principal holds any privilege on the table (so that it is listed and
    /// resolves).
    pub(crate) fn sees(&self, name: &TableName) -> bool {
        [
            Privilege::Select,
            Privilege::Insert,
            Privilege::Update,
            Privilege::Delete,
        ]
        .into_iter()
        .any(|p| self.allows(p, name))
    }

    /// The columns the principal may read.
    pub(crate) fn columns(&self, name: &TableName) -> ColumnAccess {
        if self.admin || self.owns(name) {
            return ColumnAccess::All;
        }
        let mut some = BTreeSet::new();
        let mut any = false;
        for g in &self.governance.grants {
            if g.privilege != Privilege::Select
                || !self.roles.contains(&g.role)
                || !g.on.covers(name.zone.as_str(), &name.name)
            {
                continue;
            }
            any = true;
            match &g.columns {
                None => return ColumnAccess::All,
                Some(c) => some.extend(c.iter().cloned()),
            }
        }
        if any {
            ColumnAccess::Some(some)
        } else {
            ColumnAccess::None
        }
    }

    /// The row policies that restrict the principal on `name`: `None` when the table has no
    /// policy (or the principal is an admin), else the policies for the principal's roles —
    /// possibly none, and then no row is visible.
    pub(crate) fn row_policies(&self, name: &TableName) -> Option<Vec<&RowPolicy>> {
        if self.admin {
            return None;
        }
        let key = name.to_string();
        let all: Vec<&RowPolicy> = self.governance.row_policies_on(&key).collect();
        if all.is_empty() {
            return None;
        }
        Some(
            all.into_iter()
                .filter(|p| self.roles.contains(&p.role))
                .collect(),
        )
    }

    /// The mask applying to each column of `name` for the principal (the first by policy
    /// name when several roles mask one column).
    pub(crate) fn masks(&self, name: &TableName) -> BTreeMap<String, &MaskPolicy> {
        let mut masks = BTreeMap::new();
        if self.admin {
            return masks;
        }
        let key = name.to_string();
        for mask in self.governance.masks_on(&key) {
            if self.roles.contains(&mask.role) {
                masks.entry(mask.column.clone()).or_insert(mask);
            }
        }
        masks
    }

    /// Whether anything restricts what the principal reads of `name` beyond table access.
    pub(crate) fn restricts(&self, name: &TableName) -> bool {
        self.row_policies(name).is_some()
            || !self.masks(name).is_empty()
            || self.columns(name) != ColumnAccess::All
    }
}
