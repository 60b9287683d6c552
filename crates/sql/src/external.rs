//! External tables: `CREATE EXTERNAL TABLE zone.t [(columns)] STORED AS PARQUET|CSV|JSON
//! LOCATION 'file or folder' [OPTIONS (…)]` reads files in place (Redshift Spectrum's job),
//! governed like every other table.
//!
//! - Only admins create them; a network session's location must be under the server's import
//!   folders, the command line's anywhere outside the lake (see [`crate::FileAccess`]).
//! - The catalog records each one with its owner, its canonical location and the statement
//!   that defines it (with that location); every session plans them from it, as it plans
//!   views, and the session's object store registry may read exactly those files — never
//!   write them.
//! - They resolve through the zone schemas like Delta tables, so grants, row policies and
//!   masks apply; they have no versions, and are read-only (`DROP TABLE` forgets the
//!   definition and leaves the files).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use carelake_common::TableName;
use carelake_lake::{CatalogEntry, CatalogEvent, EntryKind, TimeTravel};
use datafusion::catalog::{TableProvider, TableProviderFactory};
use datafusion::datasource::listing_table_factory::ListingTableFactory;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::parser::CreateExternalTable;
use datafusion::sql::sqlparser::ast::Value;

use crate::session::{QueryResult, Session, Touched};
use crate::surface::Direction;
use crate::{Error, Result};

/// The file formats an external table may have, as DataFusion names them.
fn file_format(stored_as: &str) -> Result<&'static str> {
    match stored_as.to_ascii_lowercase().as_str() {
        "parquet" => Ok("parquet"),
        "csv" => Ok("csv"),
        "json" | "ndjson" => Ok("json"),
        other => Err(Error::Unsupported(format!(
            "external tables are STORED AS PARQUET, CSV or JSON (newline-delimited), not {other}"
        ))),
    }
}

/// The statement the catalog keeps: the table's canonical name and location, the columns and
/// options as given.
fn definition(
    name: &TableName,
    create: &CreateExternalTable,
    format: &str,
    location: &str,
) -> String {
    let mut sql = format!("CREATE EXTERNAL TABLE {name} ");
    if !create.columns.is_empty() {
        let columns: Vec<String> = create.columns.iter().map(ToString::to_string).collect();
        sql.push_str(&format!("({}) ", columns.join(", ")));
    }
    sql.push_str(&format!(
        "STORED AS {} LOCATION {}",
        format.to_ascii_uppercase(),
        Value::SingleQuotedString(location.to_string())
    ));
    if !create.options.is_empty() {
        let options: Vec<String> = create
            .options
            .iter()
            .map(|(k, v)| format!("{} {v}", Value::SingleQuotedString(k.clone())))
            .collect();
        sql.push_str(&format!(" OPTIONS ({})", options.join(", ")));
    }
    sql
}

impl Session {
    /// `CREATE EXTERNAL TABLE`: admins only, the location confined like `COPY … FROM`'s; the
    /// files are read once here (the schema inferred when no columns are given), so that a
    /// table that cannot be read is refused now rather than at its first query.
    pub(crate) async fn create_external(
        &self,
        create: &CreateExternalTable,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.action = Some("statement");
        self.require_admin("CREATE EXTERNAL TABLE")?;
        let name = self.resolve_object(&create.name)?;
        touched.tables.insert(name.to_string());
        if create.unbounded || create.temporary {
            return Err(Error::Unsupported(
                "UNBOUNDED or TEMPORARY external tables".into(),
            ));
        }
        if !create.table_partition_cols.is_empty() || !create.order_exprs.is_empty() {
            return Err(Error::Unsupported(
                "PARTITIONED BY or WITH ORDER on external tables".into(),
            ));
        }
        let format = file_format(&create.file_type)?;
        let [location] = create.locations.as_slice() else {
            return Err(Error::Unsupported(
                "an external table has one LOCATION: a file or a folder".into(),
            ));
        };
        let location = match location.split_once("://") {
            None => location.as_str(),
            Some(("file", path)) => path,
            Some(_) => {
                return Err(Error::Unsupported(
                    "external tables read local files (under the import folders); object-store locations are not supported yet".into(),
                ));
            }
        };
        if location.contains(['*', '?', '[']) {
            return Err(Error::Unsupported(
                "glob patterns in an external table's location: name a file or a folder".into(),
            ));
        }
        let path = PathBuf::from(self.file_path(location, Direction::Import)?);
        if !path.exists() {
            return Err(Error::Syntax(
                "the external table's location does not exist".into(),
            ));
        }
        let mut location = path.to_string_lossy().into_owned();
        if path.is_dir() {
            location.push('/');
        }

        let entry = self.lake.catalog().get(&name).await?;
        let delta = self.lake.open_table_at(&name, TimeTravel::Latest).await?;
        let replaceable = entry
            .as_ref()
            .is_some_and(|e| e.kind == EntryKind::External);
        if entry.is_some() || delta.is_some() {
            if create.if_not_exists {
                return Ok(QueryResult::message("CREATE EXTERNAL TABLE (exists)"));
            }
            if !(create.or_replace && replaceable) {
                return Err(carelake_lake::Error::TableExists(name.to_string()).into());
            }
        }

        let definition = definition(&name, create, format, &location);
        let mut readable = self.external_paths(&self.lake.catalog().list().await?);
        readable.push(path);
        self.registry.set_external(&readable);
        self.external_provider(&definition).await?;
        let mut event = CatalogEvent::external(name, definition, location);
        event.owner = Some(self.principal.name.clone());
        self.lake.catalog().record(&[event]).await?;
        self.refresh().await?;
        Ok(QueryResult::message("CREATE EXTERNAL TABLE"))
    }

    /// A provider for an external table's defining statement, from the session's cache.
    async fn external_provider(&self, definition: &str) -> Result<Arc<dyn TableProvider>> {
        if let Some(provider) = self
            .externals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(definition)
        {
            return Ok(Arc::clone(provider));
        }
        let state = self.ctx.state();
        let plan = state.create_logical_plan(definition).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) = plan else {
            return Err(Error::Syntax(
                "an external table's definition is not CREATE EXTERNAL TABLE".into(),
            ));
        };
        let provider = ListingTableFactory::new().create(&state, &cmd).await?;
        self.externals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(definition.to_string(), Arc::clone(&provider));
        Ok(provider)
    }

    /// The local files and folders the catalog's external tables read.
    fn external_paths(&self, entries: &[CatalogEntry]) -> Vec<PathBuf> {
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::External)
            .filter_map(|e| e.source.as_deref())
            .map(|s| PathBuf::from(s.trim_end_matches('/')))
            .collect()
    }

    /// Plans the catalog's external tables into their zones (at each refresh), and lets the
    /// session's stores read their files. One that cannot be planned (its files gone) is
    /// left out, with a warning.
    pub(crate) async fn refresh_externals(&self, entries: &[CatalogEntry]) -> Result<()> {
        self.registry.set_external(&self.external_paths(entries));
        let mut by_zone: HashMap<_, HashMap<String, Arc<dyn TableProvider>>> = HashMap::new();
        for entry in entries.iter().filter(|e| e.kind == EntryKind::External) {
            let Some(definition) = &entry.view_sql else {
                continue;
            };
            match self.external_provider(definition).await {
                Ok(provider) => {
                    by_zone
                        .entry(entry.name.zone)
                        .or_default()
                        .insert(entry.name.name.clone(), provider);
                }
                Err(e) => {
                    tracing::warn!(table = %entry.name, error = %carelake_common::redact_literals(&e.to_string()), "External table cannot be read.");
                }
            }
        }
        for (zone, schema) in &self.zones {
            schema.set_externals(by_zone.remove(zone).unwrap_or_default());
        }
        Ok(())
    }

    /// Refuses writes to an external table: its files are read in place, never written.
    pub(crate) fn refuse_external(&self, name: &TableName) -> Result<()> {
        if self.zones[&name.zone].is_external(&name.name) {
            return Err(Error::Unsupported(format!(
                "{name} is an external table: its files are read in place, not written"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_the_three_we_read() {
        assert_eq!(file_format("PARQUET").unwrap(), "parquet");
        assert_eq!(file_format("ndjson").unwrap(), "json");
        assert!(file_format("AVRO").is_err());
    }
}
