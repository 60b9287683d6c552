//! What the tests of several crates share: the sqllogictest driver over a [`Session`], so
//! that the `.slt` suite in `crates/sql/tests/slt` runs the same way on one machine (the CLI
//! crate's tests) and on a cluster (`carelake-cluster`'s tests); the governance fixture that
//! the session tests (`carelake-sql`) and the interface tests (the CLI crate) both set up; and
//! query results as text lines.

use std::future::Future;
use std::path::{Path, PathBuf};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use carelake_sql::Session;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// Patients for the governance tests: four people in three facilities.
pub const GOVERNED_PATIENTS: &str = "mrn,name,ssn,facility,dob,zip,age\n\
M1,Alice Smith,123-45-6789,F01,1980-02-03,55455-0001,44\n\
M2,Bob Jones,987-65-4321,F02,1975-07-08,03601-0002,49\n\
M3,Carol White,555-12-3456,F01,1990-11-12,10001-0003,34\n\
M4,Dan Brown,222-33-4444,F03,1950-01-01,60601-0004,76\n";

/// Which facility each nurse's team covers (read by the `nurse` row policy).
pub const GOVERNED_TEAMS: &str = "user_name,facility\nnurse1,F01\nother,F02\n";

/// The governance of those tables, run by an administrator after loading them into
/// `raw.patients` and `raw.facility_teams`: `analyst` (a column grant, masked identifiers, all
/// rows), `clinician` (rows of the facility in their `facility` attribute, and a view),
/// `nurse` (a row policy with a subquery on the mapping table).
pub const GOVERNANCE_SCRIPT: &str = "CREATE ROLE analyst; CREATE ROLE clinician; CREATE ROLE nurse;
 GRANT SELECT (mrn, ssn, facility, dob, zip, age) ON raw.patients TO analyst;
 CREATE MASKING POLICY ssn_mask ON raw.patients (ssn) FOR analyst USING (mask_last4(ssn));
 CREATE MASKING POLICY mrn_pseudonym ON raw.patients (mrn) FOR analyst USING (pseudonym(mrn));
 CREATE MASKING POLICY dob_year ON raw.patients (dob) FOR analyst USING (year_only(dob));
 CREATE MASKING POLICY zip_3 ON raw.patients (zip) FOR analyst USING (zip3(zip));
 CREATE ROW POLICY analyst_all_rows ON raw.patients FOR analyst USING (true);
 GRANT SELECT, INSERT, UPDATE, DELETE ON raw.patients TO clinician;
 CREATE ROW POLICY by_facility ON raw.patients FOR clinician
     USING (facility = current_user_attr('facility'));
 GRANT SELECT ON raw.patients TO nurse;
 CREATE ROW POLICY nurse_team ON raw.patients FOR nurse
     USING (facility IN (SELECT facility FROM raw.facility_teams WHERE user_name = current_user()));
 CREATE VIEW curated.patient_view AS SELECT mrn, name, facility, age FROM raw.patients;
 GRANT SELECT ON curated.patient_view TO clinician";

/// Each row of a result as its values joined by commas (NULL as nothing), as
/// `carelake sql --format csv` prints values that need no quoting.
pub fn lines(result: &carelake_sql::QueryResult) -> Vec<String> {
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in &result.batches {
        let columns: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formattable"))
            .collect();
        for i in 0..batch.num_rows() {
            let values: Vec<String> = columns.iter().map(|c| c.value(i).to_string()).collect();
            rows.push(values.join(","));
        }
    }
    rows
}

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
