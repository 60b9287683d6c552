//! Column tags: explicit roles kept as an append-only Delta table of events at
//! `<lake>/_carelake/column_tags` (a tag set or removed, when and by whom); the current tags
//! are the fold of the events in time order. Explicit tags override [`default_role`].

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use carelake_common::{Principal, TableName};
use carelake_lake::{Lake, TimeTravel};
use serde::{Deserialize, Serialize};

use crate::roles::{ColumnRole, default_role};
use crate::{Error, Result};

/// The folder of the tag table under the lake root.
pub(crate) const TAGS_TABLE: &str = "_carelake/column_tags";

static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("event", DataType::Utf8, false),
        Field::new("by", DataType::Utf8, false),
    ]))
});

/// A change to the tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum TagEvent {
    /// `column` of `table` has `role`.
    Set {
        table: String,
        column: String,
        role: String,
    },
    /// The explicit tag is gone; the default applies again.
    Removed { table: String, column: String },
}

/// A column's role and whether somebody tagged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRole {
    /// The column.
    pub column: String,
    /// The role an export applies.
    pub role: ColumnRole,
    /// Tagged explicitly (`carelake tag`), rather than the default.
    pub explicit: bool,
}

/// The column tags of a lake.
#[derive(Debug, Clone)]
pub struct TagStore {
    lake: Lake,
}

/// URL of a folder under the lake root, without a trailing slash (as Delta expects).
pub(crate) fn lake_folder(lake: &Lake, relative: &str) -> Result<url::Url> {
    Ok(lake.folder_url(relative)?)
}

impl TagStore {
    /// The tags of `lake`.
    pub fn new(lake: Lake) -> Self {
        Self { lake }
    }

    async fn append(&self, event: &TagEvent, by: &Principal) -> Result<()> {
        let text = serde_json::to_string(event)
            .map_err(|e| Error::Tags(format!("encoding a tag event: {e}")))?;
        let batch = RecordBatch::try_new(
            Arc::clone(&EVENTS),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![chrono::Utc::now().timestamp_micros()])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![text])),
                Arc::new(StringArray::from(vec![by.name.clone()])),
            ],
        )?;
        let url = lake_folder(&self.lake, TAGS_TABLE)?;
        let table = match self.lake.load_delta(&url, TimeTravel::Latest).await? {
            Some(table) => table,
            None => self.lake.delta_handle(&url)?,
        };
        carelake_lake::append_batches(table, vec![batch]).await?;
        Ok(())
    }

    /// The explicit tags, by (table, column).
    pub async fn explicit(&self) -> Result<BTreeMap<(String, String), ColumnRole>> {
        let url = lake_folder(&self.lake, TAGS_TABLE)?;
        let Some(table) = self.lake.load_delta(&url, TimeTravel::Latest).await? else {
            return Ok(BTreeMap::new());
        };
        let mut events: Vec<(i64, TagEvent)> = Vec::new();
        for batch in carelake_lake::read_table(&table).await? {
            let at = arrow::compute::cast(
                batch
                    .column_by_name("at")
                    .ok_or_else(|| Error::Tags("the tag table has no 'at'".into()))?,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            let at = at.as_primitive::<TimestampMicrosecondType>();
            let text = arrow::compute::cast(
                batch
                    .column_by_name("event")
                    .ok_or_else(|| Error::Tags("the tag table has no 'event'".into()))?,
                &DataType::Utf8,
            )?;
            let text = text.as_string::<i32>();
            for i in 0..batch.num_rows() {
                if text.is_null(i) {
                    continue;
                }
                let event: TagEvent = serde_json::from_str(text.value(i))
                    .map_err(|e| Error::Tags(format!("an unreadable tag event: {e}")))?;
                events.push((at.value(i), event));
            }
        }
        events.sort_by_key(|(at, _)| *at);
        let mut tags = BTreeMap::new();
        for (_, event) in events {
            match event {
                TagEvent::Set {
                    table,
                    column,
                    role,
                } => {
                    tags.insert((table, column), role.parse()?);
                }
                TagEvent::Removed { table, column } => {
                    tags.remove(&(table, column));
                }
            }
        }
        Ok(tags)
    }

    /// Tags `column` of `table` (which must exist and have that column) with `role`.
    pub async fn set(
        &self,
        table: &TableName,
        column: &str,
        role: ColumnRole,
        by: &Principal,
    ) -> Result<()> {
        let column = self.existing_column(table, column).await?;
        self.append(
            &TagEvent::Set {
                table: table.to_string(),
                column,
                role: role.as_str().into(),
            },
            by,
        )
        .await
    }

    /// Removes the explicit tag of a column; false when it had none.
    pub async fn remove(&self, table: &TableName, column: &str, by: &Principal) -> Result<bool> {
        let explicit = self.explicit().await?;
        let Some(column) = explicit
            .keys()
            .find(|(t, c)| *t == table.to_string() && c.eq_ignore_ascii_case(column))
            .map(|(_, c)| c.clone())
        else {
            return Ok(false);
        };
        self.append(
            &TagEvent::Removed {
                table: table.to_string(),
                column,
            },
            by,
        )
        .await?;
        Ok(true)
    }

    async fn existing_column(&self, table: &TableName, column: &str) -> Result<String> {
        let delta = self.lake.open_table(table).await?;
        let schema = delta.snapshot()?.snapshot().arrow_schema();
        schema
            .fields()
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(column))
            .map(|f| f.name().to_string())
            .ok_or_else(|| Error::Tags(format!("{table} has no column {column}")))
    }

    /// The role of every column of `schema` (the columns of `table`): explicit tags first,
    /// then the default.
    pub fn effective(
        table: &TableName,
        schema: &Schema,
        explicit: &BTreeMap<(String, String), ColumnRole>,
    ) -> Vec<EffectiveRole> {
        schema
            .fields()
            .iter()
            .map(|f| {
                let key = (table.to_string(), f.name().to_string());
                match explicit.get(&key) {
                    Some(role) => EffectiveRole {
                        column: f.name().clone(),
                        role: *role,
                        explicit: true,
                    },
                    None => EffectiveRole {
                        column: f.name().clone(),
                        role: default_role(table, f.name(), f.data_type()),
                        explicit: false,
                    },
                }
            })
            .collect()
    }
}
