//! Models trained in SQL, kept as an append-only Delta table of events at
//! `<lake>/_carelake/models`: each `CREATE MODEL` adds a version (the fitted model, its
//! features, training query and metrics as one JSON document the SQL layer writes and reads),
//! `DROP MODEL` hides the name; earlier versions stay in the table's history.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use carelake_common::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::create_system_table;
use crate::util::{append_to_system_table, read_table, text_column, time_column};
use crate::{Error, Lake, Result, TimeTravel};

static MODELS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("at", ts, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("by", DataType::Utf8, false),
    ]))
});

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
        create_system_table(
            &self.lake,
            "models",
            &MODELS_SCHEMA,
            "carelake models trained in SQL, every version",
        )
        .await?;
        let row = (
            Utc::now(),
            serde_json::to_string(event)
                .map_err(|e| Error::Models(format!("encoding a model: {e}")))?,
        );
        let rows = [row];
        let batch = RecordBatch::try_new(
            Arc::clone(&MODELS_SCHEMA),
            vec![
                time_column(&rows, |r| r.0),
                text_column(&rows, |r| Some(r.1.clone())),
                text_column(&rows, |_| Some(by.name.clone())),
            ],
        )?;
        append_to_system_table(&self.lake, "models", batch).await
    }

    async fn fold(&self) -> Result<Folded> {
        let url = self.lake.system_table_url("models")?;
        let mut folded = Folded::default();
        let Some(table) = self.lake.load_delta(&url, TimeTravel::Latest).await? else {
            return Ok(folded);
        };
        let mut events: Vec<(i64, ModelEvent)> = Vec::new();
        for batch in read_table(&table).await? {
            let column = |name: &str, t: &DataType| -> Result<_> {
                let c = batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::Models(format!("the models table has no {name}")))?;
                Ok(arrow::compute::cast(c, t)?)
            };
            let at = column(
                "at",
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            let at = at
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .cloned()
                .ok_or_else(|| Error::Models("unreadable event times".into()))?;
            let text = column("event", &DataType::Utf8)?;
            let text = text
                .as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or_else(|| Error::Models("unreadable model events".into()))?;
            for i in 0..batch.num_rows() {
                if text.is_null(i) {
                    continue;
                }
                let event = serde_json::from_str::<ModelEvent>(text.value(i)).map_err(|e| {
                    Error::Models(format!(
                        "an unreadable model event (written by a newer carelake?): {e}"
                    ))
                })?;
                events.push((at.value(i), event));
            }
        }
        events.sort_by_key(|(at, _)| *at);
        for (_, event) in events {
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
