//! The rewrite that makes a model incremental: every reference to the driving table becomes the
//! rows of loads not yet processed, those whose `_load_id` is absent from the version the last
//! run read.

use std::ops::ControlFlow;

use carelake_common::TableName;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, TableAlias, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

struct Rewrite<'a> {
    table: &'a TableName,
    new_rows: &'a str,
    replaced: usize,
}

fn names_table(name: &ObjectName, table: &TableName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(ident) => Some(ident.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [zone, name] => zone == table.zone.as_str() && *name == table.name,
        [name] => table.zone == carelake_common::Zone::Raw && *name == table.name,
        _ => false,
    }
}

impl VisitorMut for Rewrite<'_> {
    type Break = String;

    // After the children: the subquery put in place is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<String> {
        if let TableFactor::Table { name, alias, .. } = factor
            && names_table(name, self.table)
        {
            let alias = alias.clone().unwrap_or_else(|| TableAlias {
                explicit: true,
                name: Ident::new(self.table.name.clone()),
                columns: Vec::new(),
                at: None,
            });
            let subquery = match Parser::parse_sql(&GenericDialect {}, self.new_rows) {
                Ok(mut statements) if statements.len() == 1 => match statements.remove(0) {
                    datafusion::sql::sqlparser::ast::Statement::Query(q) => q,
                    _ => return ControlFlow::Break("not a query".into()),
                },
                Ok(_) => return ControlFlow::Break("not one query".into()),
                Err(e) => return ControlFlow::Break(e.to_string()),
            };
            *factor = TableFactor::Derived {
                lateral: false,
                subquery,
                alias: Some(alias),
                sample: None,
            };
            self.replaced += 1;
        }
        ControlFlow::Continue(())
    }
}

/// The query reading only the rows of `table` loaded after `version`.
pub(crate) fn new_rows_query(table: &TableName, version: i64) -> String {
    format!(
        "SELECT * FROM {zone}.\"{name}\" WHERE _load_id NOT IN (SELECT DISTINCT _load_id FROM {zone}.\"{name}@v{version}\")",
        zone = table.zone,
        name = table.name
    )
}

/// `sql` with every reference to `table` replaced by [`new_rows_query`].
pub(crate) fn rewrite(sql: &str, table: &TableName, version: i64) -> Result<String, String> {
    let new_rows = new_rows_query(table, version);
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| e.to_string())?;
    if statements.len() != 1 {
        return Err("a model is one query".into());
    }
    let Some(DFStatement::Statement(mut statement)) = statements.pop_front() else {
        return Err("a model is one query".into());
    };
    let mut visitor = Rewrite {
        table,
        new_rows: &new_rows,
        replaced: 0,
    };
    if let ControlFlow::Break(reason) = statement.visit(&mut visitor) {
        return Err(reason);
    }
    if visitor.replaced == 0 {
        return Err(format!("the SQL does not read {table}"));
    }
    Ok(statement.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driving_table_becomes_its_new_rows() {
        let table: TableName = "raw.encounters".parse().unwrap();
        let sql = "SELECT e.id, p.name FROM raw.encounters e JOIN curated.patients p ON e.p = p.id";
        let out = rewrite(sql, &table, 7).unwrap();
        assert!(out.contains("FROM (SELECT * FROM raw.\"encounters\" WHERE _load_id NOT IN (SELECT DISTINCT _load_id FROM raw.\"encounters@v7\")) e"), "{out}");
        assert!(out.contains("JOIN curated.patients p"), "{out}");
        // Unqualified names are in raw; an unaliased reference keeps the table's name.
        let out = rewrite("SELECT encounters.id FROM encounters", &table, 1).unwrap();
        assert!(out.contains(") AS encounters"), "{out}");
        assert!(rewrite("SELECT 1 FROM raw.other", &table, 1).is_err());
    }
}
