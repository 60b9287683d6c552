//! Dependencies between models, read from the tables each model's SQL reads, and the order
//! they run in.

use std::collections::{HashMap, HashSet};

use carelake_common::{TableName, Zone};
use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::error::{Error, Result};
use crate::project::{Builtin, Project};

/// The models' dependency graph.
#[derive(Debug, Clone)]
pub struct Dag {
    /// Per model: the tables it reads.
    pub inputs: Vec<Vec<TableName>>,
    /// Per model: the models it reads from.
    pub upstream: Vec<Vec<usize>>,
    /// Models in an order where each comes after those it reads.
    pub order: Vec<usize>,
}

/// The tables a query reads (`zone.table`; unqualified names are in `raw`, as in the SQL
/// session; `system` tables and CTEs are left out; `name@v3` is the table `name`).
pub fn tables_read(sql: &str) -> std::result::Result<Vec<TableName>, String> {
    let statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for statement in &statements {
        let (tables, _ctes) =
            resolve_table_references(statement, true).map_err(|e| e.to_string())?;
        for table in tables {
            let zone = match table.schema() {
                Some("system") => continue,
                Some(schema) => schema.parse::<Zone>().map_err(|e| e.to_string())?,
                None => Zone::Raw,
            };
            let name = table.table();
            let name = name.split_once('@').map_or(name, |(n, _)| n);
            let name = TableName::new(zone, name).map_err(|e| e.to_string())?;
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    Ok(out)
}

impl Dag {
    /// Builds the graph; a model reading a table another model writes depends on it.
    pub fn build(project: &Project) -> Result<Dag> {
        let mut writer: HashMap<TableName, usize> = HashMap::new();
        for (i, model) in project.models.iter().enumerate() {
            for output in model.outputs() {
                writer.insert(output, i);
            }
        }
        let mut inputs = Vec::new();
        let mut upstream = Vec::new();
        for (i, model) in project.models.iter().enumerate() {
            let read = match &model.builtin {
                Some(Builtin::Mpi { input }) => vec![input.clone()],
                Some(Builtin::Dq { inputs }) => inputs.clone(),
                None => tables_read(&model.sql).map_err(|reason| Error::Model {
                    model: model.name.clone(),
                    reason: format!("cannot read its SQL: {reason}"),
                })?,
            };
            for (setting, tables) in [
                ("incremental_on", &model.incremental_on),
                ("optional", &model.optional),
            ] {
                if let Some(t) = tables.iter().find(|t| !read.contains(t)) {
                    return Err(Error::Model {
                        model: model.name.clone(),
                        reason: format!("{setting} names {t}, which the SQL does not read"),
                    });
                }
            }
            let mut ups: Vec<usize> = read
                .iter()
                .filter_map(|t| writer.get(t).copied())
                .filter(|u| *u != i)
                .collect();
            ups.sort_unstable();
            ups.dedup();
            if read.iter().any(|t| writer.get(t) == Some(&i)) && model.builtin.is_none() {
                return Err(Error::Cycle(format!("{} reads its own table", model.name)));
            }
            inputs.push(read);
            upstream.push(ups);
        }
        // Kahn's algorithm, taking ready models in file order.
        let n = project.models.len();
        let mut remaining: Vec<usize> = upstream.iter().map(Vec::len).collect();
        let mut downstream = vec![Vec::new(); n];
        for (i, ups) in upstream.iter().enumerate() {
            for u in ups {
                downstream[*u].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|i| remaining[*i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(next) = ready.first().copied() {
            ready.remove(0);
            order.push(next);
            for d in &downstream[next] {
                remaining[*d] -= 1;
                if remaining[*d] == 0 {
                    ready.push(*d);
                    ready.sort_unstable();
                }
            }
        }
        if order.len() < n {
            let stuck: Vec<&str> = (0..n)
                .filter(|i| remaining[*i] > 0)
                .map(|i| project.models[i].name.as_str())
                .collect();
            return Err(Error::Cycle(stuck.join(", ")));
        }
        Ok(Dag {
            inputs,
            upstream,
            order,
        })
    }

    /// Models downstream of `model`, transitively.
    pub fn descendants(&self, model: usize) -> HashSet<usize> {
        let mut out = HashSet::new();
        let mut stack = vec![model];
        while let Some(m) = stack.pop() {
            for (i, ups) in self.upstream.iter().enumerate() {
                if ups.contains(&m) && out.insert(i) {
                    stack.push(i);
                }
            }
        }
        out
    }

    /// Models upstream of `model`, transitively.
    pub fn ancestors(&self, model: usize) -> HashSet<usize> {
        let mut out = HashSet::new();
        let mut stack = vec![model];
        while let Some(m) = stack.pop() {
            for u in &self.upstream[m] {
                if out.insert(*u) {
                    stack.push(*u);
                }
            }
        }
        out
    }

    /// Which models a selection runs: none given is all; `name` is the model, `name+` adds
    /// its descendants, `+name` its ancestors.
    pub fn select(&self, project: &Project, selectors: &[String]) -> Result<Vec<bool>> {
        let n = project.models.len();
        if selectors.is_empty() {
            return Ok(vec![true; n]);
        }
        let mut selected = vec![false; n];
        for selector in selectors {
            let with_ancestors = selector.starts_with('+');
            let with_descendants = selector.ends_with('+');
            let name = selector.trim_matches('+');
            let i = project
                .models
                .iter()
                .position(|m| m.name == name)
                .ok_or_else(|| Error::UnknownModel(name.to_string()))?;
            selected[i] = true;
            if with_descendants {
                for d in self.descendants(i) {
                    selected[d] = true;
                }
            }
            if with_ancestors {
                for a in self.ancestors(i) {
                    selected[a] = true;
                }
            }
        }
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::project::Model;

    fn model(name: &str, zone: Zone, sql: &str) -> Model {
        Model::parse(name, zone, sql, PathBuf::from(format!("{name}.sql"))).unwrap()
    }

    #[test]
    fn reads_and_order() {
        let mut read: Vec<String> = tables_read(
                "WITH x AS (SELECT * FROM raw.a) SELECT * FROM x JOIN curated.b USING (k) JOIN c ON true JOIN raw.\"d@v3\" ON true JOIN system.tables ON true"
            )
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        read.sort();
        assert_eq!(read, ["curated.b", "raw.a", "raw.c", "raw.d"]);
        let project = Project::new(
            vec![
                model(
                    "fact",
                    Zone::Analytics,
                    "SELECT * FROM curated.clean JOIN curated.dim ON true",
                ),
                model("clean", Zone::Curated, "SELECT * FROM raw.src"),
                model("dim", Zone::Curated, "SELECT * FROM curated.clean"),
            ],
            "test".into(),
        )
        .unwrap();
        let dag = Dag::build(&project).unwrap();
        let names: Vec<&str> = dag
            .order
            .iter()
            .map(|i| project.models[*i].name.as_str())
            .collect();
        assert_eq!(names, ["clean", "dim", "fact"]);
        let selected = dag.select(&project, &["dim+".into()]).unwrap();
        assert_eq!(selected, [true, false, true]);
        let selected = dag.select(&project, &["+dim".into()]).unwrap();
        assert_eq!(selected, [false, true, true]);
        assert!(dag.select(&project, &["nope".into()]).is_err());
    }

    #[test]
    fn cycles_are_refused() {
        let project = Project::new(
            vec![
                model("a", Zone::Curated, "SELECT * FROM curated.b"),
                model("b", Zone::Curated, "SELECT * FROM curated.a"),
            ],
            "test".into(),
        )
        .unwrap();
        let e = Dag::build(&project).unwrap_err();
        assert!(e.to_string().contains("cycle: a, b"), "{e}");
    }
}
