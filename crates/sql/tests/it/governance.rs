//! Row policies, masks and column grants through a user's own session, in every shape of
//! query: views, CTEs, joins, correlated subqueries, unions, aggregates, time travel, a failing
//! cast, EXPLAIN, the catalog and information_schema. (The CLI crate runs the same rules over
//! `--as`, HTTP and the Postgres protocol.)
//!
//! Roles: `analyst1` (a column grant, masked identifiers), `clin1` (a clinician whose row policy
//! reads their `facility` attribute), `nurse1` (a row policy with a subquery on a mapping table).

use carelake_common::{Interface, Origin, Principal, TableName};
use carelake_ingest::{LoadRequest, Loader};
use carelake_lake::Lake;
use carelake_sql::{ErrorKind, FileAccess, Session};
use carelake_testkit::{GOVERNANCE_SCRIPT, GOVERNED_PATIENTS, GOVERNED_TEAMS, lines};

/// Values that only the rows hidden from `clin1` hold (F02, F03).
const HIDDEN_FROM_CLIN1: [&str; 4] = ["Bob", "Dan", "M2", "M4"];

const PASSWORD: &str = "a long governance test password";

struct Fixture {
    _dir: tempfile::TempDir,
    lake: Lake,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::init(&dir.path().join("lake").to_string_lossy())
            .await
            .unwrap();
        for (table, content) in [
            ("raw.patients", GOVERNED_PATIENTS),
            ("raw.facility_teams", GOVERNED_TEAMS),
        ] {
            let path = dir.path().join(format!("{table}.csv"));
            std::fs::write(&path, content).unwrap();
            let table: TableName = table.parse().unwrap();
            Loader::new(lake.clone(), Principal::local_admin())
                .load(LoadRequest::new(
                    vec![path.to_string_lossy().into_owned()],
                    table,
                ))
                .await
                .unwrap();
        }
        let fixture = Self { _dir: dir, lake };
        fixture.admin(GOVERNANCE_SCRIPT).await;
        for (user, role) in [
            ("analyst1", "analyst"),
            ("clin1", "clinician"),
            ("nurse1", "nurse"),
        ] {
            fixture
                .lake
                .users()
                .create(
                    user,
                    PASSWORD,
                    &[role.to_string()],
                    &Principal::local_admin(),
                )
                .await
                .unwrap();
        }
        fixture.admin("ALTER USER clin1 SET facility = 'F01'").await;
        fixture
    }

    async fn admin(&self, sql: &str) -> Vec<String> {
        let session = Session::open(self.lake.clone(), Principal::local_admin())
            .await
            .unwrap();
        lines(
            &session
                .sql(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        )
    }

    /// A user's session, as `carelake sql --as` opens it.
    async fn session(&self, user: &str) -> Session {
        let user = self.lake.users().get(user).await.unwrap().unwrap();
        let origin = Origin {
            interface: Interface::Cli,
            peer: None,
            local: false,
        };
        Session::open_with(
            self.lake.clone(),
            user.principal(),
            origin,
            FileAccess::default(),
        )
        .await
        .unwrap()
    }

    /// The rows of SQL run as `user`, which must succeed.
    async fn rows(&self, user: &str, sql: &str) -> Vec<String> {
        let session = self.session(user).await;
        match session.sql(sql).await {
            Ok(result) => lines(&result),
            Err(e) => panic!("{user}: {sql}: {e}"),
        }
    }

    /// SQL run as `user` must be refused for a missing privilege, in words that name no value.
    async fn denied(&self, user: &str, sql: &str) -> String {
        let session = self.session(user).await;
        let err = match session.sql(sql).await {
            Ok(result) => panic!("{user}: {sql} should be denied: {:?}", lines(&result)),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::Denied, "{user}: {sql}: {err}");
        let message = err.to_string();
        assert!(message.contains("permission denied"), "{message}");
        for secret in ["Alice", "Bob", "123-45", "M1"] {
            assert!(!message.contains(secret), "{message}");
        }
        message
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_policies_hold_in_every_shape_of_query() {
    let f = Fixture::new().await;
    let clin = async |sql: &str| f.rows("clin1", sql).await;
    // The clinician sees exactly their facility's rows, whatever the shape.
    assert_eq!(
        clin("SELECT mrn FROM raw.patients ORDER BY mrn").await,
        ["M1", "M3"]
    );
    assert_eq!(
        clin("SELECT mrn, name FROM curated.patient_view ORDER BY mrn").await,
        ["M1,Alice Smith", "M3,Carol White"]
    );
    assert_eq!(
        clin("WITH p AS (SELECT * FROM raw.patients) SELECT count(*) FROM p").await,
        ["2"]
    );
    assert_eq!(
        clin("SELECT count(*) FROM raw.patients a JOIN raw.patients b ON a.facility = b.facility")
            .await,
        ["4"]
    );
    assert_eq!(
        clin(
            "SELECT mrn FROM raw.patients p WHERE age > (SELECT avg(age) FROM raw.patients q \
             WHERE q.facility = p.facility) ORDER BY mrn"
        )
        .await,
        ["M1"]
    );
    assert_eq!(
        clin(
            "SELECT count(*) FROM (SELECT mrn FROM raw.patients UNION ALL SELECT mrn FROM raw.patients)"
        )
        .await,
        ["4"]
    );
    assert_eq!(
        clin("SELECT count(*), sum(age), max(age) FROM raw.patients").await,
        ["2,78,44"]
    );
    assert_eq!(
        clin("SELECT count(*) FROM raw.patients WHERE facility <> 'F01'").await,
        ["0"]
    );
    let version = f
        .admin("SELECT table_version FROM system.tables WHERE table_name = 'raw.patients'")
        .await;
    assert_eq!(
        clin(&format!(
            "SELECT count(*) FROM raw.\"patients@v{}\"",
            version[0]
        ))
        .await,
        ["2"]
    );
    // A user's failing cast never runs on the hidden rows (nor names their values).
    assert_eq!(
        clin(
            "SELECT count(*) FROM raw.patients WHERE CAST(CASE WHEN facility = 'F01' THEN '1' \
             ELSE name END AS INT) = 1"
        )
        .await,
        ["2"]
    );
    let everything = clin("SELECT * FROM raw.patients").await.join("\n");
    for hidden in HIDDEN_FROM_CLIN1 {
        assert!(!everything.contains(hidden), "{hidden} in {everything}");
    }
    // EXPLAIN shows the protected scan, not the policy; no row count from metadata.
    let explain = clin("EXPLAIN SELECT count(*) FROM raw.patients")
        .await
        .join("\n");
    assert!(explain.contains("ProtectedScan"), "{explain}");
    assert!(
        !explain.contains("current_user_attr") && !explain.contains("F01"),
        "{explain}"
    );
    let analyze = clin("EXPLAIN ANALYZE SELECT count(*) FROM raw.patients")
        .await
        .join("\n");
    assert!(!analyze.contains("F02"), "{analyze}");
    assert_eq!(
        clin("SELECT row_count IS NULL FROM system.tables WHERE table_name = 'raw.patients'").await,
        ["true"]
    );
    assert_eq!(
        clin(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_schema IN ('raw', 'curated') ORDER BY 1"
        )
        .await,
        ["curated.patient_view", "raw.patients"]
    );
    // A subquery on a mapping table in the policy, evaluated for the querying user.
    assert_eq!(
        f.rows("nurse1", "SELECT mrn FROM raw.patients ORDER BY mrn")
            .await,
        ["M1", "M3"]
    );
    f.denied("nurse1", "SELECT * FROM raw.facility_teams").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masks_apply_before_filters_and_aggregates_and_only_granted_columns_are_read() {
    let f = Fixture::new().await;
    let analyst = async |sql: &str| f.rows("analyst1", sql).await;
    let all = analyst("SELECT * FROM raw.patients ORDER BY age").await;
    assert_eq!(all.len(), 4);
    let text = all.join("\n");
    for secret in ["Alice", "Smith", "123-45", "M1,", "1980-02-03", "55455"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(
        analyst("SELECT ssn, facility, dob, zip FROM raw.patients ORDER BY age").await,
        [
            "***-**-3456,F01,1990-01-01,100",
            "***-**-6789,F01,1980-01-01,554",
            "***-**-4321,F02,1975-01-01,000",
            "***-**-4444,F03,1950-01-01,606",
        ]
    );
    let pseudonyms = analyst("SELECT mrn FROM raw.patients ORDER BY age").await;
    assert!(
        pseudonyms
            .iter()
            .all(|p| p.starts_with("p_") && p.len() == 22),
        "{pseudonyms:?}"
    );
    // Pseudonyms are stable: they join, and the same value gives the same pseudonym.
    assert_eq!(
        analyst("SELECT count(*) FROM raw.patients a JOIN raw.patients b ON a.mrn = b.mrn").await,
        ["4"]
    );
    assert_eq!(
        analyst("SELECT count(*) FROM raw.patients WHERE ssn = '123-45-6789'").await,
        ["0"]
    );
    assert_eq!(
        analyst("SELECT count(*) FROM raw.patients WHERE ssn = '***-**-6789'").await,
        ["1"]
    );
    assert_eq!(
        analyst("SELECT max(ssn) FROM raw.patients").await,
        ["***-**-6789"]
    );
    // A column not granted is refused by name, one that does not exist is another error.
    let hidden = f.denied("analyst1", "SELECT name FROM raw.patients").await;
    assert!(hidden.contains("SELECT on raw.patients.name"), "{hidden}");
    let in_filter = f
        .denied(
            "analyst1",
            "SELECT mrn FROM raw.patients p WHERE p.name LIKE 'A%'",
        )
        .await;
    assert!(in_filter.contains("raw.patients.name"), "{in_filter}");
    let unknown = f
        .session("analyst1")
        .await
        .sql("SELECT no_such_column FROM raw.patients")
        .await
        .unwrap_err();
    assert_ne!(unknown.kind(), ErrorKind::Denied, "{unknown}");
    // What the owner of the lake sees is untouched.
    assert_eq!(
        f.admin("SELECT ssn FROM raw.patients ORDER BY mrn").await[0],
        "123-45-6789"
    );
}

/// The lake's owner on the command line sets engine options for their session (the surface
/// allows it); a network user is refused (the CLI tests cover `--as` and Postgres).
#[tokio::test]
async fn the_owner_on_the_command_line_sets_engine_options() {
    let fixture = Fixture::new().await;
    let owner = Session::open(fixture.lake.clone(), Principal::local_admin())
        .await
        .unwrap();
    owner
        .sql("SET datafusion.execution.target_partitions = 3")
        .await
        .unwrap();
    let target_partitions = owner
        .context()
        .state()
        .config()
        .options()
        .execution
        .target_partitions;
    assert_eq!(target_partitions, 3);
    assert_eq!(
        lines(
            &owner
                .sql("SELECT count(*) FROM raw.patients")
                .await
                .unwrap()
        )
        .len(),
        1
    );
    let network = Session::open_with(
        fixture.lake.clone(),
        Principal::local_admin(),
        Origin::network(Interface::Http, None),
        FileAccess::default(),
    )
    .await
    .unwrap();
    let refused = network
        .sql("SET datafusion.execution.target_partitions = 3")
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Denied, "{refused}");
}
