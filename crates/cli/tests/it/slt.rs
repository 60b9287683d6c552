//! The SQL surface as sqllogictest files in `tests/slt/`. Set `CARELAKE_SLT_COMPLETE=1` to
//! rewrite the expected results from what carelake returns.

use std::path::PathBuf;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use carelake_common::Principal;
use carelake_lake::Lake;
use carelake_sql::Session;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

struct LakeDb {
    session: Session,
}

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

#[async_trait::async_trait]
impl AsyncDB for LakeDb {
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
                        .map(|f| {
                            let s = f.value(row).to_string();
                            if s.is_empty() {
                                "(empty)".to_string()
                            } else {
                                s
                            }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let complete = std::env::var_os("CARELAKE_SLT_COMPLETE").is_some();
    for file in files {
        let lake_dir = tempfile::tempdir().unwrap();
        let location = lake_dir.path().join("lake").to_string_lossy().into_owned();
        Lake::init(&location).await.unwrap();
        let mut runner = sqllogictest::Runner::new(move || {
            let location = location.clone();
            async move {
                let lake = Lake::open(&location)
                    .await
                    .map_err(|e| SltError(e.to_string()))?;
                let session = Session::open(lake, Principal::new("slt", vec!["admin".into()]))
                    .await
                    .map_err(|e| SltError(e.to_string()))?;
                Ok(LakeDb { session })
            }
        });
        runner.with_column_validator(sqllogictest::default_column_validator);
        if complete {
            runner
                .update_test_file(
                    &file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        } else if let Err(e) = runner.run_file_async(&file).await {
            panic!("{}: {}", file.display(), e.display(true));
        }
    }
}
