//! The web UI in headless Chromium (Debian's chromium driven by playwright-core from npm): on a
//! demo lake, every page loads, the charts draw, a query runs and downloads as CSV, and each
//! page's screenshot is kept (`artifacts/ui-screenshots/`, or `$CARELAKE_SCREENSHOTS`).
//!
//! `scripts/test.sh` installs Chromium and playwright-core; without `CARELAKE_REQUIRE_INTEROP`
//! their absence skips the test with a message.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Workspace, served_at, spawn_serve};

const USER: &str = "viewer";
const PASSWORD: &str = "a long viewer password";

fn skip_or_fail(test: &str, why: &str) {
    assert!(
        std::env::var_os("CARELAKE_REQUIRE_INTEROP").is_none(),
        "CARELAKE_REQUIRE_INTEROP is set but {why}"
    );
    eprintln!("SKIPPED {test}: {why} (scripts/test.sh installs it)");
}

/// The password the test gives the demo's example users.
const EXAMPLE_PASSWORD: &str = "an example user's long password";

/// What `ui-as-user.cjs` saw as `user`, by kind (`overview`, `worklist`, `catalog`, and `sqlN`
/// for the N-th statement).
fn ui_as_user(
    chromium: &str,
    base: &str,
    user: &str,
    queries: &[&str],
    outreach: Option<&str>,
) -> std::collections::HashMap<String, serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui/ui-as-user.cjs");
    let mut node = Command::new("node");
    node.arg(script)
        .args([base, user, EXAMPLE_PASSWORD])
        .args(queries)
        .env("CARELAKE_CHROMIUM", chromium);
    if let Some(outcome) = outreach {
        node.env("CARELAKE_OUTREACH", outcome);
    }
    let out = node.output().expect("run node");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the UI as {user} failed:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = std::collections::HashMap::new();
    let mut sql = 0;
    for line in report.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let mut what = value["what"].as_str().unwrap_or_default().to_string();
        if what == "sql" {
            what = format!("sql{sql}");
            sql += 1;
        }
        seen.insert(what, value);
    }
    seen
}

#[test]
fn every_page_loads_charts_draw_and_a_query_runs_in_chromium() {
    let test = "every_page_loads_charts_draw_and_a_query_runs_in_chromium";
    let chromium =
        std::env::var("CARELAKE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).is_file() {
        return skip_or_fail(test, "Chromium is not installed");
    }
    let has_playwright = Command::new("node")
        .args(["-e", "require('playwright-core')"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_playwright {
        return skip_or_fail(test, "node cannot load playwright-core (NODE_PATH)");
    }

    let ws = Workspace::new();
    let demo = ws
        .command(&[
            "demo",
            "--patients",
            "500",
            "--no-serve",
            "--data",
            &ws.path("demo-data").to_string_lossy(),
        ])
        .env("CARELAKE_CLINICIAN_PASSWORD", EXAMPLE_PASSWORD)
        .env("CARELAKE_ANALYST_PASSWORD", EXAMPLE_PASSWORD)
        .output()
        .expect("run the demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    ws.add_user(USER, PASSWORD, "admin");
    // The demo's example users: one facility for the clinician, masked names for the analyst,
    // on the tables behind the dashboards and the worklist.
    let as_user = |user: &str, sql: &str| {
        let out = ws.run(&["sql", sql, "--format", "csv", "--as", user]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for table in [
        "analytics.fact_encounter",
        "analytics.readmission_risk",
        "analytics.mart_census",
        "analytics.mart_readmissions",
        "analytics.mart_length_of_stay",
    ] {
        assert_eq!(
            as_user(
                "clinician",
                &format!("SELECT count(DISTINCT facility_id) FROM {table}")
            ),
            ["1"],
            "{table}"
        );
    }
    assert_eq!(
        as_user(
            "clinician",
            "SELECT count(*) FROM analytics.worklist_readmission_risk w \
             WHERE w.facility_id <> current_user_attr('facility')"
        ),
        ["0"]
    );
    assert_eq!(
        as_user(
            "analyst",
            "SELECT DISTINCT first_name FROM analytics.dim_patient"
        ),
        ["****"]
    );
    let facilities = ws.query("SELECT count(DISTINCT facility_id) FROM analytics.fact_encounter");
    assert_ne!(
        facilities,
        ["1"],
        "the demo has one facility only: the check above says nothing"
    );
    let (mut child, lines) = spawn_serve(&ws, &["--http-listen", "127.0.0.1:0"]);
    let base = served_at(&lines, "http").unwrap_or_else(|| panic!("no address in {lines:?}"));

    let shots = std::env::var_os("CARELAKE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../artifacts/ui-screenshots"
            ))
        });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui/ui-test.cjs");
    let result = Command::new("node")
        .args([script, &base, USER, PASSWORD, &shots.to_string_lossy()])
        .env("CARELAKE_CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let report = String::from_utf8_lossy(&result.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&result.stderr));
    if !result.status.success() {
        let _ = child.kill();
        panic!("the UI test failed:\n{report}");
    }

    // The example users in the same browser: the clinician's dashboards, worklist, catalog
    // and SQL page show their facility only; the analyst's CSV download is masked.
    let facility = as_user("clinician", "SELECT current_user_attr('facility')").remove(0);
    let admin_tables = ws
        .query("SELECT count(*) FROM system.tables")
        .remove(0)
        .parse::<usize>()
        .unwrap();
    let seen = ui_as_user(
        &chromium,
        &base,
        "clinician",
        &[
            "SELECT DISTINCT facility_id FROM analytics.fact_encounter",
            "SELECT count(*) FROM raw.encounters",
        ],
        Some("reached"),
    );
    let worklist = &seen["worklist"];
    assert_eq!(worklist["status"], 200);
    let header: Vec<&str> = worklist["header"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    let column = header
        .iter()
        .position(|h| *h == "facility_id")
        .unwrap_or_else(|| panic!("no facility_id in the worklist: {header:?}"));
    let rows = worklist["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "the clinician's worklist is empty");
    for row in rows {
        assert_eq!(row[column].as_str(), Some(facility.as_str()), "{row}");
    }
    // The outreach form wrote one event, which the stream lands in the lake once.
    assert_eq!(
        seen["outreach"]["error"],
        serde_json::Value::Null,
        "{}",
        seen["outreach"]
    );
    let mut landed = Vec::new();
    for _ in 0..60 {
        let out = ws.run(&[
            "sql",
            "SELECT outcome, recorded_by FROM raw.outreach_events",
            "--format",
            "csv",
        ]);
        if out.status.success() {
            landed = String::from_utf8_lossy(&out.stdout)
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect();
            if !landed.is_empty() {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(
        landed,
        ["reached,clinician"],
        "the outreach event in the lake"
    );
    let catalog = seen["catalog"]["rows"].as_array().unwrap().len();
    assert!(
        catalog > 0 && catalog < admin_tables,
        "the clinician's catalog lists {catalog} of {admin_tables} tables"
    );
    assert_eq!(
        seen["sql0"]["csv"],
        serde_json::json!(["facility_id", facility])
    );
    let refused = seen["sql1"]["error"].as_str().unwrap_or_default();
    assert!(refused.contains("permission denied"), "{}", seen["sql1"]);
    let seen = ui_as_user(
        &chromium,
        &base,
        "analyst",
        &["SELECT DISTINCT first_name FROM analytics.dim_patient"],
        None,
    );
    assert_eq!(
        seen["sql0"]["csv"],
        serde_json::json!(["first_name", "****"])
    );
    let _ = child.kill();
    let _ = child.wait();
    for page in [
        "login",
        "overview",
        "worklist",
        "catalog",
        "catalog-table",
        "sql",
        "runs",
    ] {
        let file = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is missing or empty", file.display());
    }
}
