//! Materialized views, kept as an append-only Delta table of events at
//! `<lake>/_carelake/matviews`: a definition (query, refresh rule, owner), each refresh with
//! the Delta versions of the tables it read, and drops. The rows themselves are an ordinary
//! Delta table in their zone, read and granted like any other.

use std::collections::BTreeMap;

use carelake_common::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::util::{append_events, read_events};
use crate::{Error, Lake, Result};

const TABLE: &str = "matviews";

/// When a materialized view is refreshed, besides `REFRESH MATERIALIZED VIEW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refresh {
    /// Only on request.
    Manual,
    /// When this many seconds have passed since the last refresh (by `carelake serve`).
    Every {
        /// The interval.
        seconds: u64,
    },
    /// As soon as a table it reads has a new version (checked by `carelake serve` every few
    /// seconds and after each `carelake load`).
    OnLoad,
}

impl std::fmt::Display for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refresh::Manual => f.write_str("manual"),
            Refresh::Every { seconds } => write!(f, "every {seconds} s"),
            Refresh::OnLoad => f.write_str("on load"),
        }
    }
}

/// A materialized view's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatView {
    /// `zone.name` of its table.
    pub name: String,
    /// The defining query.
    pub sql: String,
    /// When it is refreshed.
    pub refresh: Refresh,
    /// Who defined it: refreshes run with this user's rights.
    pub owner: String,
    /// Whether the owner was the local admin of the command line (who holds no lake user).
    pub owner_local: bool,
}

/// A change to the materialized views of a lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MatViewEvent {
    /// Defined or redefined.
    Defined(MatView),
    /// Its rows were computed again from these versions of the tables it reads.
    Refreshed {
        /// The view.
        name: String,
        /// `zone.name` → Delta version, for each table read.
        versions: BTreeMap<String, i64>,
        /// Rows written.
        rows: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// Dropped.
    Dropped {
        /// The view.
        name: String,
    },
}

/// A materialized view and its last refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct MatViewState {
    /// The definition.
    pub view: MatView,
    /// When it was last refreshed.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The versions of the tables read at the last refresh.
    pub versions: BTreeMap<String, i64>,
    /// Rows at the last refresh.
    pub rows: u64,
}

/// The materialized views of a lake.
#[derive(Debug, Clone)]
pub struct MatViewStore {
    lake: Lake,
}

impl MatViewStore {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// Appends an event.
    pub async fn record(&self, event: &MatViewEvent, by: &Principal) -> Result<()> {
        append_events(
            &self.lake,
            TABLE,
            "carelake materialized views",
            std::slice::from_ref(event),
            by,
            Error::MatViews,
        )
        .await
    }

    /// The live views by name.
    pub async fn list(&self) -> Result<BTreeMap<String, MatViewState>> {
        let events: Vec<MatViewEvent> = read_events(&self.lake, TABLE, Error::MatViews).await?;
        let mut views: BTreeMap<String, MatViewState> = BTreeMap::new();
        for event in events {
            match event {
                MatViewEvent::Defined(view) => {
                    views.insert(
                        view.name.clone(),
                        MatViewState {
                            view,
                            refreshed_at: None,
                            versions: BTreeMap::new(),
                            rows: 0,
                        },
                    );
                }
                MatViewEvent::Refreshed {
                    name,
                    versions,
                    rows,
                    at,
                } => {
                    if let Some(state) = views.get_mut(&name) {
                        state.refreshed_at = Some(at);
                        state.versions = versions;
                        state.rows = rows;
                    }
                }
                MatViewEvent::Dropped { name } => {
                    views.remove(&name);
                }
            }
        }
        Ok(views)
    }
}
