//! The lake's zones as DataFusion schemas: tables are opened from Delta on each lookup (so
//! other processes' commits are seen), views come from the catalog, and `name@v3` or
//! `name@2026-01-01T00:00:00Z` reads an earlier version.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use carelake_common::{TableName, Zone};
use carelake_lake::{Lake, TimeTravel};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};

/// One zone of the lake.
#[derive(Debug)]
pub(crate) struct ZoneSchema {
    lake: Lake,
    zone: Zone,
    /// Table and view names known from the catalog, refreshed after each statement.
    names: RwLock<Vec<String>>,
    /// Views by name.
    views: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl ZoneSchema {
    pub(crate) fn new(lake: Lake, zone: Zone) -> Self {
        Self {
            lake,
            zone,
            names: RwLock::new(Vec::new()),
            views: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn set_names(&self, names: Vec<String>) {
        if let Ok(mut n) = self.names.write() {
            *n = names;
        }
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
        self.names.read().map(|n| n.clone()).unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(view) = self.views.read().ok().and_then(|v| v.get(name).cloned()) {
            return Ok(Some(view));
        }
        let (base, at) = parse_time_travel(name)?;
        let Ok(table_name) = TableName::new(self.zone, base) else {
            return Ok(None);
        };
        let url = self
            .lake
            .table_url(&table_name)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let table = self
            .lake
            .load_delta(&url, at)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        match table {
            None => Ok(None),
            Some(table) => Ok(Some(
                table
                    .table_provider()
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?,
            )),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|n| n == name)
    }
}
