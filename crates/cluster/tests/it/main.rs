//! A scheduler and two executors in this process, on loopback: the `.slt` suite and
//! governed queries give the same answers as one machine.

use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use carelake_cluster::{Executor, Scheduler};
use carelake_common::Principal;
use carelake_lake::Lake;
use carelake_sql::Session;

/// A lake in a temporary folder.
async fn temp_lake() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("lake").to_string_lossy().into_owned();
    Lake::init(&location).await.unwrap();
    (dir, location)
}

/// A scheduler for the lake at `location` with two in-process executors of two slots each.
async fn cluster(location: &str) -> Arc<Scheduler> {
    let lake = Lake::open(location).await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let scheduler = Scheduler::start(&lake, listener).await.unwrap();
    for _ in 0..2 {
        // Each executor opens the lake itself, as a separate process would.
        let own = Lake::open(location).await.unwrap();
        Executor::start_in_process(&own, &scheduler.url(), 2)
            .await
            .unwrap();
    }
    Arc::new(scheduler)
}

/// A session for `principal`, attached to `scheduler` when given.
async fn session(location: &str, principal: Principal, scheduler: Option<&Scheduler>) -> Session {
    session_with(location, principal, scheduler, None).await
}

/// A session for `principal`, attached to `scheduler` when given, whose distributed stages
/// have `partitions` partitions (the machine's cores when `None`).
async fn session_with(
    location: &str,
    principal: Principal,
    scheduler: Option<&Scheduler>,
    partitions: Option<usize>,
) -> Session {
    let lake = Lake::open(location).await.unwrap();
    let session = Session::open(lake.clone(), principal).await.unwrap();
    if let Some(scheduler) = scheduler {
        let options = carelake_cluster::ClusterOptions { partitions };
        carelake_cluster::attach_with(&session, &lake, &scheduler.url(), &options).unwrap();
    }
    session
}

/// `sql` as a query of its own for each number of partitions: the result cache keys answers
/// by plan, and the same query at other partitions must run again, not be answered from it.
fn uncached(sql: &str, partitions: Option<usize>) -> String {
    format!("SELECT * FROM ({sql}) AS at_{}", partitions.unwrap_or(0))
}

/// The rows of `sql`, each as its values displayed, sorted: types normalised to their text.
async fn rows(session: &Session, sql: &str) -> Result<Vec<String>, String> {
    let result = session.sql(sql).await.map_err(|e| e.to_string())?;
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in &result.batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let values: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(values.join("|"));
        }
    }
    out.sort();
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sql_suite_gives_the_same_answers_on_a_cluster() {
    for file in carelake_testkit::slt_files() {
        let (_dir, location) = temp_lake().await;
        let scheduler = cluster(&location).await;
        let before = carelake_sql::cluster::queries_sent();
        let (loc, sched) = (location.clone(), Arc::clone(&scheduler));
        carelake_testkit::run_slt(&file, false, move || {
            let (location, scheduler) = (loc.clone(), Arc::clone(&sched));
            async move {
                Ok(session(
                    &location,
                    Principal::new("slt", vec!["admin".into()]),
                    Some(&scheduler),
                )
                .await)
            }
        })
        .await;
        let sent = carelake_sql::cluster::queries_sent() - before;
        assert!(sent > 0, "{}: no query ran on the cluster", file.display());
        eprintln!("{}: {sent} queries on the cluster", file.display());
    }
}

/// Governed reads: column grants, masks, a row policy on the principal's name with a
/// subquery; the cluster returns what one machine returns, and refuses what it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policies_hold_on_a_cluster() {
    let (_dir, location) = temp_lake().await;
    let admin = session(
        &location,
        Principal::new("admin", vec!["admin".into()]),
        None,
    )
    .await;
    for statement in [
        "CREATE TABLE raw.patients AS SELECT * FROM (VALUES
            ('M1', '123-45-6789', 'F01', 34), ('M2', '987-65-4321', 'F02', 71),
            ('M3', '555-12-3456', 'F01', 58), ('M4', '222-33-4444', 'F03', 45))
            AS v(mrn, ssn, facility, age)",
        "CREATE TABLE raw.teams AS SELECT * FROM (VALUES ('nurse1', 'F01'), ('nurse2', 'F02'))
            AS v(user_name, facility)",
        "CREATE ROLE analyst",
        "CREATE ROLE nurse",
        "GRANT SELECT (mrn, ssn, facility) ON raw.patients TO analyst",
        "CREATE MASKING POLICY ssn_mask ON raw.patients (ssn) FOR analyst USING (mask_last4(ssn))",
        "CREATE MASKING POLICY mrn_p ON raw.patients (mrn) FOR analyst USING (pseudonym(mrn))",
        "CREATE ROW POLICY analyst_all ON raw.patients FOR analyst USING (true)",
        "GRANT SELECT ON raw.patients TO nurse",
        "CREATE ROW POLICY team ON raw.patients FOR nurse USING (facility IN
            (SELECT facility FROM raw.teams WHERE user_name = current_user()))",
    ] {
        admin.sql(statement).await.unwrap();
    }
    let scheduler = cluster(&location).await;
    let queries = [
        "SELECT * FROM raw.patients",
        "SELECT mrn, ssn FROM raw.patients WHERE ssn LIKE '%6789'",
        "SELECT facility, count(*) AS n, max(age) AS oldest FROM raw.patients GROUP BY facility",
        "SELECT p.mrn, t.user_name FROM raw.patients p JOIN raw.teams t ON p.facility = t.facility",
        "SELECT count(DISTINCT mrn) FROM raw.patients",
        "SELECT mrn, age FROM raw.patients",
        "SELECT * FROM raw.teams",
    ];
    // The machine's cores (two here), and what a client with more cores plans: a row policy's
    // subquery is a semi join whose build rows every task would emit if it were broadcast.
    for partitions in [None, Some(1), Some(4), Some(8)] {
        for (name, role) in [
            ("analyst1", "analyst"),
            ("nurse1", "nurse"),
            ("nobody", "none"),
        ] {
            let principal = Principal::new(name, vec![role.into()]);
            let local = session(&location, principal.clone(), None).await;
            let remote = session_with(&location, principal, Some(&scheduler), partitions).await;
            for sql in queries {
                let here = rows(&local, sql).await;
                let sent = carelake_sql::cluster::queries_sent();
                let there = rows(&remote, &uncached(sql, partitions)).await;
                assert_eq!(here, there, "{name}, {partitions:?} partitions: {sql}");
                if there.is_ok() {
                    assert!(
                        carelake_sql::cluster::queries_sent() > sent,
                        "{sql}: not sent"
                    );
                }
            }
        }
    }
    // The answers are the governed ones, not the table's.
    let nurse = session(
        &location,
        Principal::new("nurse1", vec!["nurse".into()]),
        Some(&scheduler),
    )
    .await;
    assert_eq!(
        rows(&nurse, "SELECT mrn FROM raw.patients").await.unwrap(),
        ["M1", "M3"]
    );
    let analyst = session(
        &location,
        Principal::new("analyst1", vec!["analyst".into()]),
        Some(&scheduler),
    )
    .await;
    let ssn = rows(&analyst, "SELECT ssn FROM raw.patients")
        .await
        .unwrap();
    assert!(ssn.iter().all(|s| !s.contains("123-45")), "{ssn:?}");
    assert!(
        rows(&analyst, "SELECT age FROM raw.patients")
            .await
            .is_err()
    );
    let before = carelake_sql::cluster::queries_sent();
    rows(&analyst, "SELECT mrn FROM raw.patients")
        .await
        .unwrap();
    assert!(carelake_sql::cluster::queries_sent() > before);
}

/// Joins that emit rows of their build side (outer, semi, anti, mark; equi and not) give
/// each row once on a cluster, whatever the partitions of its stages: a broadcast build side
/// would be emitted by every task that probes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_that_keep_build_rows_give_each_row_once() {
    let (_dir, location) = temp_lake().await;
    let admin = Principal::new("admin", vec!["admin".into()]);
    let setup = session(&location, admin.clone(), None).await;
    setup
        .sql(
            "CREATE TABLE raw.small AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c'),
             (NULL, 'n'), (900, 'z')) AS v(k, label)",
        )
        .await
        .unwrap();
    setup
        .sql("CREATE TABLE raw.big AS SELECT value AS k, value % 7 AS g FROM generate_series(2, 400) AS t(value)")
        .await
        .unwrap();
    // Several files, so that the big side's scan has several partitions.
    for start in [401, 801, 1201] {
        setup
            .sql(&format!(
                "INSERT INTO raw.big SELECT value AS k, value % 7 AS g \
                 FROM generate_series({start}, {}) AS t(value)",
                start + 399
            ))
            .await
            .unwrap();
    }
    let scheduler = cluster(&location).await;
    let queries = [
        "SELECT s.label, count(b.k) AS n FROM raw.small s LEFT JOIN raw.big b ON s.k = b.k GROUP BY s.label",
        "SELECT s.label, b.g FROM raw.small s LEFT JOIN raw.big b ON s.k = b.k",
        "SELECT s.label FROM raw.small s WHERE s.k IN (SELECT k FROM raw.big)",
        "SELECT s.label FROM raw.small s WHERE s.k NOT IN (SELECT k FROM raw.big)",
        "SELECT s.label FROM raw.small s WHERE EXISTS (SELECT 1 FROM raw.big b WHERE b.k = s.k)",
        "SELECT s.label FROM raw.small s WHERE NOT EXISTS (SELECT 1 FROM raw.big b WHERE b.k = s.k)",
        "SELECT s.label, b.k FROM raw.small s FULL JOIN raw.big b ON s.k = b.k WHERE b.k IS NULL OR b.k < 5",
        "SELECT s.label, count(b.k) AS n FROM raw.small s LEFT JOIN raw.big b ON b.k < s.k GROUP BY s.label",
        "SELECT s.label FROM raw.small s WHERE s.k IN (SELECT k FROM raw.big) OR s.label = 'z'",
        "SELECT b.k FROM raw.big b WHERE b.k IN (SELECT k FROM raw.small)",
    ];
    let local = session(&location, admin.clone(), None).await;
    let mut expected = Vec::new();
    for sql in queries {
        expected.push(rows(&local, sql).await.unwrap());
    }
    // Each answer is what it should be, not only what one machine says.
    assert_eq!(expected[2], ["b", "c", "z"]);
    assert_eq!(expected[3], ["a"]);
    assert_eq!(expected[5], ["a", "n"]);
    for partitions in [None, Some(1), Some(3), Some(4), Some(8)] {
        let remote = session_with(&location, admin.clone(), Some(&scheduler), partitions).await;
        for (sql, want) in queries.iter().zip(&expected) {
            let sent = carelake_sql::cluster::queries_sent();
            let got = rows(&remote, &uncached(sql, partitions))
                .await
                .unwrap_or_else(|e| panic!("{partitions:?} partitions: {sql}: {e}"));
            assert!(
                carelake_sql::cluster::queries_sent() > sent,
                "{sql}: not sent"
            );
            assert_eq!(&got, want, "{partitions:?} partitions: {sql}");
        }
    }
}
