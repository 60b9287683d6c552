//! A lake in a temporary folder, loads into it, and SQL over it through a session.

use std::path::PathBuf;

use carelake_common::{Principal, TableName};
use carelake_ingest::{LoadRequest, LoadSummary, Loader};
use carelake_lake::Lake;
use carelake_sql::Session;

pub(crate) struct TestLake {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) lake: Lake,
}

impl TestLake {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::init(&dir.path().join("lake").to_string_lossy())
            .await
            .unwrap();
        Self { dir, lake }
    }

    /// Another handle on the same lake, with caches of its own (as another process has).
    pub(crate) async fn reopen(&self) -> Lake {
        Lake::open(&self.dir.path().join("lake").to_string_lossy())
            .await
            .unwrap()
    }

    /// Writes a file under the test folder and returns its path.
    pub(crate) fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path.to_string_lossy().into_owned()
    }

    pub(crate) async fn load(
        &self,
        inputs: &[&str],
        table: &str,
    ) -> carelake_ingest::Result<LoadSummary> {
        load_into(&self.lake, inputs, table, None).await
    }

    /// The rows of a query, each as its values joined by commas (NULL as nothing).
    pub(crate) async fn query(&self, sql: &str) -> Vec<String> {
        let session = Session::open(self.lake.clone(), Principal::local_admin())
            .await
            .unwrap();
        let result = session
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        carelake_testkit::lines(&result)
    }

    /// The one value a query returns.
    pub(crate) async fn scalar(&self, sql: &str) -> String {
        let rows = self.query(sql).await;
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows.into_iter().next().unwrap()
    }
}

/// Loads files into a raw table as the local administrator.
pub(crate) async fn load_into(
    lake: &Lake,
    inputs: &[&str],
    table: &str,
    max_reject_ratio: Option<f64>,
) -> carelake_ingest::Result<LoadSummary> {
    let table: TableName = table.parse().unwrap();
    let mut request = LoadRequest::new(inputs.iter().map(|s| s.to_string()).collect(), table);
    request.max_reject_ratio = max_reject_ratio;
    Loader::new(lake.clone(), Principal::local_admin())
        .load(request)
        .await
}
