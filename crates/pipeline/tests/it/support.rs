//! A lake in a temporary folder, CSV loads into it, and a project written from strings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carelake_common::{Principal, TableName};
use carelake_ingest::{LoadRequest, Loader};
use carelake_lake::Lake;
use carelake_pipeline::{Project, RunOptions, RunSummary, run};
use carelake_sql::Session;

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) lake: Lake,
    pub(crate) session: Arc<Session>,
    loads: usize,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::init(&dir.path().join("lake").to_string_lossy())
            .await
            .unwrap();
        let session = Arc::new(
            Session::open(lake.clone(), Principal::local_admin())
                .await
                .unwrap(),
        );
        Self {
            dir,
            lake,
            session,
            loads: 0,
        }
    }

    /// Loads CSV text into a raw table (one load, one `_load_id`).
    pub(crate) async fn load(&mut self, table: &str, csv: &str) {
        self.loads += 1;
        let path = self.dir.path().join(format!("load{}.csv", self.loads));
        std::fs::write(&path, csv).unwrap();
        let table: TableName = table.parse().unwrap();
        Loader::new(self.lake.clone(), Principal::local_admin())
            .load(LoadRequest::new(
                vec![path.to_string_lossy().into_owned()],
                table,
            ))
            .await
            .unwrap();
        self.session.refresh().await.unwrap();
    }

    /// Writes model files under `<dir>/<name>/models/` and loads the project.
    pub(crate) fn project(&self, name: &str, models: &[(&str, &str)]) -> Arc<Project> {
        let root = self.dir.path().join(name);
        for (path, text) in models {
            let file: PathBuf = root.join("models").join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, text).unwrap();
        }
        Arc::new(Project::load(Path::new(&root)).unwrap())
    }

    pub(crate) async fn run(&self, project: &Arc<Project>, select: &[&str]) -> RunSummary {
        run(
            Arc::clone(&self.session),
            Arc::clone(project),
            &RunOptions {
                select: select.iter().map(|s| s.to_string()).collect(),
                backoff: Duration::from_millis(5),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap()
    }

    /// Rows of a query as lines of `|`-separated values, sorted.
    pub(crate) async fn rows(&self, sql: &str) -> Vec<String> {
        let result = self.session.sql(sql).await.unwrap();
        let mut out = Vec::new();
        for batch in &result.batches {
            for r in 0..batch.num_rows() {
                let cells: Vec<String> = (0..batch.num_columns())
                    .map(|c| {
                        arrow::util::display::array_value_to_string(batch.column(c), r).unwrap()
                    })
                    .collect();
                out.push(cells.join("|"));
            }
        }
        out.sort();
        out
    }

    pub(crate) async fn scalar(&self, sql: &str) -> String {
        self.rows(sql).await.into_iter().next().unwrap_or_default()
    }

    /// The Delta version of a table.
    pub(crate) async fn version(&self, table: &str) -> i64 {
        let name: TableName = table.parse().unwrap();
        self.lake
            .open_table(&name)
            .await
            .unwrap()
            .version()
            .unwrap() as i64
    }
}
