//! `carelake load --cdc`: a change feed applied in commit order with MERGE; deletes reach the
//! analytics tables built from the curated one; a feed loaded twice changes nothing.

use crate::support::Workspace;

#[test]
fn change_feeds_insert_update_and_delete_in_commit_order() {
    let ws = Workspace::new();
    let first = ws.write(
        "feed1.csv",
        "op,commit_ts,patient_id,name,city\n\
         I,2024-01-01T00:00:00,P1,Ann,Peoria\n\
         I,2024-01-01T00:00:01,P2,Bob,Quincy\n\
         I,2024-01-01T00:00:02,P3,Cy,Decatur\n\
         U,2024-01-01T00:00:03,P2,Bob,Springfield\n",
    );
    let args = |file: &str| {
        vec![
            "load".to_string(),
            file.to_string(),
            "--cdc".into(),
            "--into".into(),
            "curated.patients_cdc".into(),
            "--key".into(),
            "patient_id".into(),
        ]
    };
    let run = |file: &str| {
        let a = args(file);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ws.ok(&a)
    };
    let out = run(&first);
    assert!(
        out.contains("Applied 4 change(s) to curated.patients_cdc (created): 3 rows now."),
        "{out}"
    );
    // An analytics table over the curated one.
    let project = ws.path("proj");
    std::fs::create_dir_all(project.join("models/analytics")).unwrap();
    std::fs::write(
        project.join("models/analytics/cities.sql"),
        "SELECT city, count(*) AS patients FROM curated.patients_cdc GROUP BY city",
    )
    .unwrap();
    let project = project.to_string_lossy().into_owned();
    ws.ok(&["run", "--project", &project]);
    assert_eq!(
        ws.query("SELECT city FROM analytics.cities ORDER BY city"),
        ["Decatur", "Peoria", "Springfield"]
    );
    // The next feed: a delete, an update, a late update older than what the table holds.
    let second = ws.write(
        "feed2.csv",
        "op,commit_ts,patient_id,name,city\n\
         D,2024-01-02T00:00:00,P3,Cy,Decatur\n\
         U,2024-01-02T00:00:01,P1,Ann,Chicago\n\
         U,2023-12-31T00:00:00,P2,Bob,Nowhere\n",
    );
    let out = run(&second);
    assert!(
        out.contains("Applied 3 change(s) to curated.patients_cdc: 2 rows now."),
        "{out}"
    );
    assert_eq!(
        ws.query("SELECT patient_id, city FROM curated.patients_cdc ORDER BY patient_id"),
        ["P1,Chicago", "P2,Springfield"]
    );
    ws.ok(&["run", "--project", &project]);
    assert_eq!(
        ws.query("SELECT city FROM analytics.cities ORDER BY city"),
        ["Chicago", "Springfield"]
    );
    // The same feed again: loaded once, applied once.
    let again = run(&second);
    assert!(again.contains("No new changes"), "{again}");
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.patients_cdc"), "2");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.patients_cdc_changes"),
        "7"
    );
}

/// A feed loaded into its raw table by a run that stopped before applying it (as a crash
/// between the two steps leaves it) is applied by the next `load --cdc`, with the loads after it
/// and even when that one brings nothing new.
#[test]
fn a_feed_loaded_but_never_applied_is_applied_by_the_next_run() {
    let ws = Workspace::new();
    let cdc = |file: &str| {
        ws.ok(&[
            "load",
            file,
            "--cdc",
            "--into",
            "curated.members_cdc",
            "--key",
            "member_id",
        ])
    };
    let first = ws.write(
        "feed1.csv",
        "op,commit_ts,member_id,plan\nI,1,M1,gold\nI,2,M2,silver\nI,3,M3,bronze\n",
    );
    cdc(&first);
    // Loaded into the feed table, never applied (the first run stopped there).
    let second = ws.write(
        "feed2.csv",
        "op,commit_ts,member_id,plan\nD,4,M3,bronze\nU,5,M1,platinum\n",
    );
    ws.ok(&["load", &second, "--into", "raw.members_cdc_changes"]);
    assert_eq!(ws.scalar("SELECT count(*) FROM curated.members_cdc"), "3");
    // Run again: the file is not loaded twice, yet its changes are applied.
    let out = cdc(&second);
    assert!(out.contains("Applied 2 change(s)"), "{out}");
    assert_eq!(
        ws.query("SELECT member_id, plan FROM curated.members_cdc ORDER BY member_id"),
        ["M1,platinum", "M2,silver"]
    );
    // Another stopped run, then a new feed: both applied, latest change per key winning.
    let third = ws.write(
        "feed3.csv",
        "op,commit_ts,member_id,plan\nU,6,M2,gold\nI,7,M4,gold\n",
    );
    ws.ok(&["load", &third, "--into", "raw.members_cdc_changes"]);
    let fourth = ws.write(
        "feed4.csv",
        "op,commit_ts,member_id,plan\nD,8,M4,gold\nI,9,M5,silver\n",
    );
    let out = cdc(&fourth);
    assert!(out.contains("Applied 4 change(s)"), "{out}");
    assert_eq!(
        ws.query("SELECT member_id, plan FROM curated.members_cdc ORDER BY member_id"),
        ["M1,platinum", "M2,gold", "M5,silver"]
    );
    let again = cdc(&fourth);
    assert!(again.contains("No new changes"), "{again}");
}
