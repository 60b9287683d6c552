//! The lake's zones as DataFusion schemas: tables are opened from Delta on each lookup (so
//! other processes' commits are seen), views come from the catalog, and `name@v3` or
//! `name@2026-01-01T00:00:00Z` reads an earlier version.
//!
//! This is where the policy layer sits: a zone of a session lists and resolves only what its
//! principal holds a privilege on, and for a principal who is not an admin every table
//! resolves to a [`ProtectedTable`] (today's rules, for every version read).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use async_trait::async_trait;
use carelake_common::{TableName, Zone};
use carelake_lake::{Lake, TimeTravel};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionState;

use crate::policy::{ProtectedTable, Rules};

/// What a session's zones need to apply its principal's rules: the rules (replaced at each
/// refresh) and the session's state, to plan policies with its functions.
#[derive(Debug)]
pub(crate) struct Guard {
    rules: RwLock<Arc<Rules>>,
    state: Weak<parking_lot::RwLock<SessionState>>,
}

impl Guard {
    pub(crate) fn new(rules: Rules, state: Weak<parking_lot::RwLock<SessionState>>) -> Self {
        Self {
            rules: RwLock::new(Arc::new(rules)),
            state,
        }
    }

    /// The rules in force.
    pub(crate) fn rules(&self) -> Arc<Rules> {
        Arc::clone(&self.rules.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn set_rules(&self, rules: Rules) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
    }
}

/// Turns a carelake error into one DataFusion carries (and gives back unchanged).
pub(crate) fn external(e: crate::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One zone of the lake.
#[derive(Debug)]
pub(crate) struct ZoneSchema {
    lake: Lake,
    zone: Zone,
    /// Table and view names known from the catalog, refreshed after each statement.
    names: RwLock<Vec<String>>,
    /// Views by name.
    views: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    /// External tables by name (files read in place), unprotected: wrapped like Delta tables.
    externals: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    /// The session's rules; `None` for the unprotected zones policies are planned over.
    guard: Option<Arc<Guard>>,
}

impl ZoneSchema {
    pub(crate) fn new(lake: Lake, zone: Zone, guard: Arc<Guard>) -> Self {
        Self {
            lake,
            zone,
            names: RwLock::new(Vec::new()),
            views: RwLock::new(HashMap::new()),
            externals: RwLock::new(HashMap::new()),
            guard: Some(guard),
        }
    }

    /// A zone with no rules and no views, for planning row and masking policies (whose
    /// subqueries read mapping tables as the admin who wrote them).
    pub(crate) fn unprotected(lake: Lake, zone: Zone) -> Self {
        Self {
            lake,
            zone,
            names: RwLock::new(Vec::new()),
            views: RwLock::new(HashMap::new()),
            externals: RwLock::new(HashMap::new()),
            guard: None,
        }
    }

    /// Every table and view name of the zone in the catalog, visible or not.
    pub(crate) fn table_names_all(&self) -> Vec<String> {
        self.names.read().map(|n| n.clone()).unwrap_or_default()
    }

    /// Whether the rules let the principal see `name` at all.
    fn visible(&self, name: &str) -> bool {
        match &self.guard {
            None => true,
            Some(guard) => {
                let rules = guard.rules();
                rules.admin || TableName::new(self.zone, name).is_ok_and(|n| rules.sees(&n))
            }
        }
    }

    pub(crate) fn set_names(&self, names: Vec<String>) {
        if let Ok(mut n) = self.names.write() {
            *n = names;
        }
    }

    pub(crate) fn set_externals(&self, externals: HashMap<String, Arc<dyn TableProvider>>) {
        if let Ok(mut e) = self.externals.write() {
            *e = externals;
        }
    }

    /// Whether `name` is an external table of this zone.
    pub(crate) fn is_external(&self, name: &str) -> bool {
        self.externals
            .read()
            .map(|e| e.contains_key(name))
            .unwrap_or(false)
    }

    /// A table as stored, without rules: an external table, or the Delta table's version `at`.
    /// `table()` wraps it for the principal; on its own it only tells a column that exists but
    /// is not granted from one that does not exist, and is never handed to a plan.
    pub(crate) async fn stored(
        &self,
        table_name: &TableName,
        at: TimeTravel,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let lake_error = |e: carelake_lake::Error| DataFusionError::External(Box::new(e));
        if let Some(external) = self
            .externals
            .read()
            .ok()
            .and_then(|e| e.get(&table_name.name).cloned())
        {
            if at != TimeTravel::Latest {
                return Err(DataFusionError::Plan(format!(
                    "{table_name} is an external table: it has no versions to read"
                )));
            }
            return Ok(Some(external));
        }
        let url = self.lake.table_url(table_name).map_err(lake_error)?;
        let Some(table) = self.lake.load_delta(&url, at).await.map_err(lake_error)? else {
            return Ok(None);
        };
        let version = table.version().unwrap_or_default();
        let provider = table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(Arc::new(crate::cluster::LakeTable::new(
            table_name.clone(),
            version,
            provider,
        ))))
    }

    pub(crate) fn set_view(&self, name: &str, view: Option<Arc<dyn TableProvider>>) {
        if let Ok(mut views) = self.views.write() {
            match view {
                Some(v) => {
                    views.insert(name.to_string(), v);
                }
                None => {
                    views.remove(name);
                }
            }
        }
    }
}

impl ZoneSchema {
    /// A table as the principal may read it: as is for admins and the unprotected zones, else
    /// behind today's rules.
    async fn guarded(
        &self,
        table_name: TableName,
        provider: Arc<dyn TableProvider>,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let Some(guard) = &self.guard else {
            return Ok(provider);
        };
        let rules = guard.rules();
        if rules.admin {
            return Ok(provider);
        }
        let Some(state) = guard.state.upgrade() else {
            return Err(DataFusionError::Internal("the session has ended".into()));
        };
        let state = state.read().clone();
        let protected =
            ProtectedTable::new(table_name, provider, &rules, &state, &self.lake).await?;
        Ok(Arc::new(protected))
    }
}

/// Splits `claims@v3` / `claims@2026-01-01T00:00:00Z` into the name and the version to read.
pub(crate) fn parse_time_travel(name: &str) -> DfResult<(&str, TimeTravel)> {
    let Some((base, at)) = name.split_once('@') else {
        return Ok((name, TimeTravel::Latest));
    };
    if let Some(v) = at.strip_prefix('v').and_then(|v| v.parse::<u64>().ok()) {
        return Ok((base, TimeTravel::Version(v)));
    }
    if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(at) {
        return Ok((base, TimeTravel::Timestamp(ts.with_timezone(&chrono::Utc))));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(at, "%Y-%m-%d") {
        let ts = date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        return Ok((base, TimeTravel::Timestamp(ts)));
    }
    Err(DataFusionError::Plan(format!(
        "cannot read version '{at}': use name@v<N> or name@<RFC 3339 timestamp>"
    )))
}

#[async_trait]
impl SchemaProvider for ZoneSchema {
    fn table_names(&self) -> Vec<String> {
        let names = self.names.read().map(|n| n.clone()).unwrap_or_default();
        names.into_iter().filter(|n| self.visible(n)).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let (base, at) = parse_time_travel(name)?;
        let Ok(table_name) = TableName::new(self.zone, base) else {
            return Ok(None);
        };
        let known = self
            .names
            .read()
            .map(|n| n.iter().any(|n| n == base))
            .unwrap_or(false);
        if self.guard.is_some() && !self.visible(base) {
            // Say so only for what exists: others' tables stay unknown by name alone.
            if known {
                return Err(external(crate::Error::PermissionDenied(format!(
                    "SELECT on {table_name}"
                ))));
            }
            return Ok(None);
        }
        if let Some(view) = self.views.read().ok().and_then(|v| v.get(name).cloned()) {
            return Ok(Some(view));
        }
        match self.stored(&table_name, at).await? {
            Some(provider) => self.guarded(table_name, provider).await.map(Some),
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|n| n == name)
    }
}
