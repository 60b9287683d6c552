//! The HTTP API's access rules and streamed ingest.

use crate::support::Served;

const VISITS: &str =
    "patient_id,facility,ssn\nP1,F01,123-45-6789\nP2,F02,987-65-4321\nP3,F01,555-12-3456\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_is_closed_until_a_grant_opens_it_and_policies_shape_what_it_returns() {
    let mut s = Served::start().await;
    s.load_csv("raw.visits", VISITS).await;
    s.admin_sql("CREATE ROLE nurse").await;
    s.add_user("nina", &["nurse"]).await;

    let anonymous = s.query(None, "SELECT count(*) FROM raw.visits").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    // Signed in but granted nothing: refused, and the table is not even listed.
    let refused = s
        .query(Some("nina"), "SELECT count(*) FROM raw.visits")
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let listed = s
        .request("GET", "/api/v1/tables", Some("nina"), &[], b"")
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(!listed.body.contains("visits"), "{}", listed.body);

    s.admin_sql("GRANT SELECT ON raw.visits TO nurse").await;
    s.admin_sql("CREATE ROW POLICY f01 ON raw.visits FOR nurse USING (facility = 'F01')")
        .await;
    s.admin_sql("CREATE MASKING POLICY ssn ON raw.visits (ssn) FOR nurse USING (mask_last4(ssn))")
        .await;
    // A server's sessions take up changes to grants and policies within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let seen = s
        .query(
            Some("nina"),
            "SELECT patient_id, ssn FROM raw.visits ORDER BY patient_id",
        )
        .await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(
        seen.body.contains("P1") && seen.body.contains("P3"),
        "{}",
        seen.body
    );
    assert!(
        !seen.body.contains("P2"),
        "the row policy hides F02: {}",
        seen.body
    );
    assert!(
        !seen.body.contains("123-45"),
        "the mask hides the SSN: {}",
        seen.body
    );
    assert!(seen.body.contains("6789"), "{}", seen.body);
    // A subquery or a view is no way around the policy.
    let counted = s
        .query(
            Some("nina"),
            "SELECT count(*) AS n FROM (SELECT * FROM raw.visits) v",
        )
        .await;
    assert!(
        counted.body.lines().any(|l| l.trim() == "2"),
        "{}",
        counted.body
    );
    // The administrator sees everything.
    let all = s
        .query(Some("ana"), "SELECT count(*) AS n FROM raw.visits")
        .await;
    assert!(all.body.lines().any(|l| l.trim() == "3"), "{}", all.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_reads_a_file_outside_the_lake_or_the_lakes_own_tables() {
    let mut s = Served::start().await;
    let lake_dir = s.dir.path().join("lake");
    let outside = s.dir.path().join("outside.csv");
    std::fs::write(&outside, "secret\nvalue\n").unwrap();
    let attempts = [
        format!("SELECT * FROM '{}'", outside.display()),
        format!("SELECT * FROM '{}/_carelake/users/'", lake_dir.display()),
        format!(
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{}'",
            outside.display()
        ),
        format!("COPY (SELECT 1) TO '{}/copied.csv'", s.dir.path().display()),
        "SELECT * FROM _carelake.users".to_string(),
    ];
    for sql in &attempts {
        // Even the administrator, over the network, reaches no file by a path.
        let reply = s.query(Some("ana"), sql).await;
        assert!(
            (400..500).contains(&reply.status),
            "{sql}: {} {}",
            reply.status,
            reply.body
        );
        assert!(!reply.body.contains("secret"), "{sql}: {}", reply.body);
        assert!(!reply.body.contains("argon2"), "{sql}: {}", reply.body);
    }
    assert!(!s.dir.path().join("copied.csv").exists());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_are_in_the_lake_once() {
    let mut s = Served::start().await;
    let body: String = (0..200)
        .map(|i| {
            format!(
                "{{\"event_id\":\"e{i}\",\"device\":\"MON-{}\",\"value\":{i}}}\n",
                i % 7
            )
        })
        .collect();
    let headers = [("Content-Type", "application/x-ndjson")];
    let first = s
        .request(
            "POST",
            "/api/v1/ingest/vitals",
            Some("ana"),
            &headers,
            body.as_bytes(),
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(first.body.contains("\"accepted\":200"), "{}", first.body);
    // The same events again (a client retrying after a lost answer) are stored once.
    let again = s
        .request(
            "POST",
            "/api/v1/ingest/vitals",
            Some("ana"),
            &headers,
            body.as_bytes(),
        )
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert!(again.body.contains("\"duplicates\":200"), "{}", again.body);
    s.stop().await;
    let session =
        carelake_sql::Session::open(s.lake.clone(), carelake_common::Principal::local_admin())
            .await
            .unwrap();
    let result = session
        .sql("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM raw.vitals")
        .await
        .unwrap();
    let batch = &result.batches[0];
    let n = arrow::util::display::array_value_to_string(batch.column(0), 0).unwrap();
    let ids = arrow::util::display::array_value_to_string(batch.column(1), 0).unwrap();
    assert_eq!((n.as_str(), ids.as_str()), ("200", "200"));
}
