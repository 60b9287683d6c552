//! What the tests of several crates share: the sqllogictest driver over a [`Session`], so
//! that the `.slt` suite in `crates/sql/tests/slt` runs the same way on one machine (the CLI
//! crate's tests) and on a cluster (`carelake-cluster`'s tests).

use std::future::Future;
use std::path::{Path, PathBuf};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use carelake_sql::Session;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// The `.slt` files of the suite, sorted.
pub fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

/// A session as sqllogictest's database: every value formatted as Arrow displays it,
/// `NULL` for nulls and `(empty)` for empty text.
pub struct SessionDb {
    session: Session,
}

impl std::fmt::Debug for SessionDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDb").finish_non_exhaustive()
    }
}

impl SessionDb {
    /// Wraps `session`.
    pub fn new(session: Session) -> Self {
        Self { session }
    }
}

/// An error as sqllogictest reports it.
#[derive(Debug)]
pub struct SltError(pub String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

#[async_trait::async_trait]
impl AsyncDB for SessionDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let result = self
            .session
            .sql(sql)
            .await
            .map_err(|e| SltError(e.to_string()))?;
        if result.message.is_some() || result.schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &result.batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<_, _>>()
                .map_err(|e| SltError(e.to_string()))?;
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| match f.value(row).to_string() {
                            s if s.is_empty() => "(empty)".to_string(),
                            s => s,
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; result.schema.fields().len()],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "carelake"
    }
}

/// Runs `file` with sessions from `open` (called once per connection the file names), or
/// with `complete` rewrites its expected results from what the sessions return.
pub async fn run_slt<F, Fut>(file: &Path, complete: bool, open: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Session, String>> + Send + 'static,
{
    let mut runner = sqllogictest::Runner::new(move || {
        let session = open();
        async move { Ok(SessionDb::new(session.await.map_err(SltError)?)) }
    });
    runner.with_column_validator(sqllogictest::default_column_validator);
    if complete {
        runner
            .update_test_file(
                file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    } else if let Err(e) = runner.run_file_async(file).await {
        panic!("{}: {}", file.display(), e.display(true));
    }
}
