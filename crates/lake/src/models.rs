//! Models trained in SQL, kept as an append-only Delta table of events at
//! `<lake>/_carelake/models`: each `CREATE MODEL` adds a version (the fitted model, its
//! features, training query and metrics as one JSON document the SQL layer writes and reads),
//! `DROP MODEL` hides the name; earlier versions stay in the table's history.

use carelake_common::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::util::{append_events, read_events};
use crate::{Error, Lake, Result};

/// One version of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    /// The model's name (lower case).
    pub name: String,
    /// 1 for the first `CREATE MODEL` of the name, then one more each time.
    pub version: u32,
    /// `logistic` or `gbdt`.
    pub kind: String,
    /// Who trained it.
    pub owner: String,
    /// When it was trained.
    pub created_at: DateTime<Utc>,
    /// The tables its training query read: using the model takes SELECT on each.
    pub reads: Vec<String>,
    /// The training query.
    pub training_sql: String,
    /// The fitted model, its features and metrics (JSON, written by the SQL layer).
    pub body: String,
}

/// A change to the models of a lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ModelEvent {
    /// A version was trained.
    Saved(StoredModel),
    /// The name was dropped (its versions stay in the history).
    Dropped {
        /// The model.
        name: String,
    },
}

/// The models of a lake.
#[derive(Debug, Clone)]
pub struct ModelStore {
    lake: Lake,
}

/// What the events say: every version of each name, and the names dropped since their last
/// version.
#[derive(Debug, Default)]
struct Folded {
    versions: BTreeMap<String, Vec<StoredModel>>,
    live: BTreeMap<String, bool>,
}

impl ModelStore {
    pub(crate) fn new(lake: Lake) -> Self {
        Self { lake }
    }

    async fn append(&self, event: &ModelEvent, by: &Principal) -> Result<()> {
        append_events(
            &self.lake,
            "models",
            "carelake models trained in SQL, every version",
            std::slice::from_ref(event),
            by,
            Error::Models,
        )
        .await
    }

    async fn fold(&self) -> Result<Folded> {
        let mut folded = Folded::default();
        let events: Vec<ModelEvent> = read_events(&self.lake, "models", Error::Models).await?;
        for event in events {
            match event {
                ModelEvent::Saved(model) => {
                    folded.live.insert(model.name.clone(), true);
                    folded
                        .versions
                        .entry(model.name.clone())
                        .or_default()
                        .push(model);
                }
                ModelEvent::Dropped { name } => {
                    folded.live.insert(name, false);
                }
            }
        }
        Ok(folded)
    }

    /// The next version number of `name` (versions are never reused, also after a drop).
    pub async fn next_version(&self, name: &str) -> Result<u32> {
        let folded = self.fold().await?;
        Ok(folded
            .versions
            .get(name)
            .and_then(|v| v.iter().map(|m| m.version).max())
            .unwrap_or(0)
            + 1)
    }

    /// Records a trained version.
    pub async fn save(&self, model: StoredModel, by: &Principal) -> Result<()> {
        self.append(&ModelEvent::Saved(model), by).await
    }

    /// Hides `name`; false when there is no such model.
    pub async fn drop_model(&self, name: &str, by: &Principal) -> Result<bool> {
        let folded = self.fold().await?;
        if folded.live.get(name) != Some(&true) {
            return Ok(false);
        }
        self.append(
            &ModelEvent::Dropped {
                name: name.to_string(),
            },
            by,
        )
        .await?;
        Ok(true)
    }

    /// The latest version of every model not dropped, by name.
    pub async fn current(&self) -> Result<Vec<StoredModel>> {
        let mut folded = self.fold().await?;
        Ok(folded
            .live
            .iter()
            .filter(|(_, live)| **live)
            .filter_map(|(name, _)| folded.versions.get_mut(name).and_then(Vec::pop))
            .collect())
    }
}
