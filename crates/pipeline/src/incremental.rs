//! Rewrites of a model's query before it runs:
//!
//! - incremental: every reference to a driving table becomes the rows of loads not yet
//!   processed, those whose `_load_id` is absent from the version the last run read;
//! - optional tables: the `UNION ALL` branches reading a table that does not exist are left
//!   out, so that one model can union feeds of which a lake has only some.

use std::ops::ControlFlow;

use carelake_common::TableName;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, SetOperator, Statement,
    TableAlias, TableFactor, VisitMut, VisitorMut,
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

/// `sql` with every reference to each driving table replaced by [`new_rows_query`] after the
/// version given with it.
pub(crate) fn rewrite(sql: &str, watermarks: &[(TableName, i64)]) -> Result<String, String> {
    let mut statement = one_statement(sql)?;
    for (table, version) in watermarks {
        let new_rows = new_rows_query(table, *version);
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
    }
    Ok(statement.to_string())
}

fn one_statement(sql: &str) -> Result<Statement, String> {
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| e.to_string())?;
    if statements.len() != 1 {
        return Err("a model is one query".into());
    }
    match statements.pop_front() {
        Some(DFStatement::Statement(statement)) => Ok(*statement),
        _ => Err("a model is one query".into()),
    }
}

/// Whether a query part reads any of `tables`.
fn reads_any(part: &SetExpr, tables: &[TableName]) -> bool {
    // A part that cannot be analysed is kept: the engine reports what is wrong with it.
    crate::dag::tables_read(&format!("SELECT * FROM ({part}) AS branch"))
        .is_ok_and(|read| read.iter().any(|t| tables.contains(t)))
}

/// The union with the branches reading `missing` tables left out; `None` when none is left.
fn prune_union(expr: SetExpr, missing: &[TableName]) -> Option<SetExpr> {
    match expr {
        SetExpr::SetOperation {
            op: SetOperator::Union,
            set_quantifier,
            left,
            right,
        } => match (prune_union(*left, missing), prune_union(*right, missing)) {
            (Some(left), Some(right)) => Some(SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier,
                left: Box::new(left),
                right: Box::new(right),
            }),
            (Some(one), None) | (None, Some(one)) => Some(one),
            (None, None) => None,
        },
        other if reads_any(&other, missing) => None,
        other => Some(other),
    }
}

/// The projection of the first `SELECT` of a union.
fn leftmost_select(expr: &mut SetExpr) -> Option<&mut Vec<SelectItem>> {
    match expr {
        SetExpr::Select(select) => Some(&mut select.projection),
        SetExpr::SetOperation { left, .. } => leftmost_select(left),
        SetExpr::Query(query) => leftmost_select(&mut query.body),
        _ => None,
    }
}

/// The name each projected column has (`None` for wildcards and unnamed expressions).
fn output_names(items: &[SelectItem]) -> Vec<Option<Ident>> {
    items
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.clone()),
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Some(ident.clone()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().cloned(),
            _ => None,
        })
        .collect()
}

fn rename(item: &mut SelectItem, name: Ident) {
    if output_names(std::slice::from_ref(item))[0].as_ref() == Some(&name) {
        return;
    }
    let expr = match item {
        SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) => expr.clone(),
        _ => return,
    };
    *item = SelectItem::ExprWithAlias { expr, alias: name };
}

struct Prune<'a> {
    missing: &'a [TableName],
}

impl VisitorMut for Prune<'_> {
    type Break = ();

    // Inner queries first; a union whose every branch reads a missing table is left whole
    // for an enclosing union to drop.
    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if matches!(
            *query.body,
            SetExpr::SetOperation {
                op: SetOperator::Union,
                ..
            }
        ) {
            let names = leftmost_select(&mut query.body).map(|items| output_names(items));
            if let Some(mut pruned) = prune_union((*query.body).clone(), self.missing) {
                // The first branch names the union's columns: a branch that takes its place
                // takes its names too.
                if let (Some(names), Some(items)) = (names, leftmost_select(&mut pruned))
                    && names.len() == items.len()
                {
                    for (item, name) in items.iter_mut().zip(names) {
                        if let Some(name) = name {
                            rename(item, name);
                        }
                    }
                }
                *query.body = pruned;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `sql` without the `UNION` branches that read a `missing` table; `None` when the query
/// cannot do without one (it is read outside a branch that can be left out).
pub(crate) fn without_missing(sql: &str, missing: &[TableName]) -> Result<Option<String>, String> {
    let mut statement = one_statement(sql)?;
    let _ = statement.visit(&mut Prune { missing });
    let out = statement.to_string();
    let read = crate::dag::tables_read(&out)?;
    Ok((!read.iter().any(|t| missing.contains(t))).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driving_table_becomes_its_new_rows() {
        let table: TableName = "raw.encounters".parse().unwrap();
        let sql = "SELECT e.id, p.name FROM raw.encounters e JOIN curated.patients p ON e.p = p.id";
        let out = rewrite(sql, &[(table.clone(), 7)]).unwrap();
        assert!(out.contains("FROM (SELECT * FROM raw.\"encounters\" WHERE _load_id NOT IN (SELECT DISTINCT _load_id FROM raw.\"encounters@v7\")) e"), "{out}");
        assert!(out.contains("JOIN curated.patients p"), "{out}");
        // Unqualified names are in raw; an unaliased reference keeps the table's name.
        let out = rewrite(
            "SELECT encounters.id FROM encounters",
            &[(table.clone(), 1)],
        )
        .unwrap();
        assert!(out.contains(") AS encounters"), "{out}");
        assert!(rewrite("SELECT 1 FROM raw.other", &[(table, 1)]).is_err());
    }

    #[test]
    fn union_branches_reading_missing_tables_are_left_out() {
        let missing: Vec<TableName> = vec!["raw.hl7".parse().unwrap(), "raw.fhir".parse().unwrap()];
        let sql = "SELECT id FROM (SELECT id FROM raw.csv UNION ALL SELECT id FROM raw.hl7 \
                   UNION ALL SELECT id FROM raw.fhir) AS u JOIN curated.p ON p.id = u.id";
        let out = without_missing(sql, &missing).unwrap().unwrap();
        assert!(
            !out.contains("raw.hl7") && !out.contains("raw.fhir"),
            "{out}"
        );
        assert!(
            out.contains("raw.csv") && out.contains("curated.p"),
            "{out}"
        );
        // The first branch may go: the next one takes its place.
        let out = without_missing(
            "SELECT id FROM raw.hl7 UNION ALL SELECT id FROM raw.csv",
            &missing,
        )
        .unwrap()
        .unwrap();
        assert_eq!(out, "SELECT id FROM raw.csv");
        // The branch that takes the first one's place takes its column names.
        let out = without_missing(
            "SELECT id AS person, 'csv' AS feed FROM raw.hl7 UNION ALL SELECT p.key, 'x' FROM raw.csv p",
            &missing,
        )
        .unwrap()
        .unwrap();
        assert_eq!(out, "SELECT p.key AS person, 'x' AS feed FROM raw.csv p");
        // Nothing left, or a missing table outside a union: the query cannot run.
        let none = without_missing(
            "SELECT id FROM raw.hl7 UNION ALL SELECT id FROM raw.fhir",
            &missing,
        );
        assert_eq!(none, Ok(None));
        let none = without_missing(
            "SELECT c.id FROM raw.csv c JOIN raw.hl7 h ON h.id = c.id",
            &missing,
        );
        assert_eq!(none, Ok(None));
        // A branch whose subquery reads the missing table goes as a whole.
        let out = without_missing(
            "SELECT a FROM raw.csv UNION ALL SELECT a FROM (SELECT a FROM raw.hl7 UNION ALL SELECT a FROM raw.fhir) AS x",
            &missing,
        )
        .unwrap()
        .unwrap();
        assert_eq!(out, "SELECT a FROM raw.csv");
    }
}
