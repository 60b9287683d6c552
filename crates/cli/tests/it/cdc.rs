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
