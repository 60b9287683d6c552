//! Bulk loads: rejects with their reasons and raw text, lineage columns, exactly-once by
//! content, quarantine of bad files, the reject ratio, compression and schema evolution.

use std::io::Write;

use carelake_lake::LoadStatus;

use crate::support::{TestLake, load_into};

/// A 1,000-row CSV with three bad rows: a wrong field count (data row 100), invalid UTF-8
/// (row 500) and an unparsable amount (row 900).
fn thousand_rows_three_bad() -> Vec<u8> {
    let mut out = b"patient_id,amount,visit_date,note\n".to_vec();
    for i in 1..=1000u32 {
        match i {
            100 => out.extend_from_slice(format!("P{i:05},12.50,2024-03-01\n").as_bytes()),
            500 => {
                out.extend_from_slice(format!("P{i:05},12.50,2024-03-01,caf").as_bytes());
                out.extend_from_slice(&[0xE9, 0xFF]);
                out.push(b'\n');
            }
            900 => out.extend_from_slice(format!("P{i:05},abc,2024-03-01,ok\n").as_bytes()),
            _ => out.extend_from_slice(
                format!(
                    "P{i:05},{}.{:02},2024-03-{:02},\"note, {i}\"\n",
                    i % 300,
                    i % 100,
                    1 + i % 28
                )
                .as_bytes(),
            ),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_rejected_with_reasons_and_the_rest_load() {
    let t = TestLake::new().await;
    let file = t.write("visits.csv", thousand_rows_three_bad());
    let summary = t.load(&[&file], "raw.visits").await.unwrap();
    assert_eq!((summary.rows_loaded, summary.rows_rejected), (997, 3));
    assert_eq!(t.scalar("SELECT count(*) FROM raw.visits").await, "997");
    assert_eq!(
        t.scalar(
            "SELECT arrow_typeof(amount) || ' ' || arrow_typeof(visit_date) FROM raw.visits LIMIT 1"
        )
        .await,
        "Float64 Date32"
    );
    let rejects = t
        .query("SELECT line, reason FROM raw._rejects ORDER BY line")
        .await;
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    assert!(
        rejects[0].starts_with("101,expected 4 fields, found 3"),
        "{rejects:?}"
    );
    assert!(
        rejects[1].starts_with("501,invalid UTF-8 in field note"),
        "{rejects:?}"
    );
    assert!(
        rejects[2].starts_with("901,column amount: value is not a valid double"),
        "{rejects:?}"
    );
    // The raw text is kept for the person who fixes the file.
    assert_eq!(
        t.scalar("SELECT raw_text FROM raw._rejects WHERE line = 901")
            .await,
        "P00900,abc,2024-03-01,ok"
    );
    // Lineage columns on every row.
    assert_eq!(
        t.scalar(
            "SELECT count(DISTINCT _load_id) || '|' || min(_source_line) || '|' || max(_source_line) \
             FROM raw.visits"
        )
        .await,
        "1|2|1001"
    );
    assert!(
        t.scalar("SELECT DISTINCT _source_file FROM raw.visits")
            .await
            .ends_with("visits.csv")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_content_loads_once_per_table() {
    let t = TestLake::new().await;
    let file = t.write("a.csv", "id,name\n1,x\n2,y\n");
    t.load(&[&file], "raw.t").await.unwrap();
    let again = t.load(&[&file], "raw.t").await.unwrap();
    assert_eq!(again.rows_loaded, 0);
    assert!(
        matches!(again.files[0].status, LoadStatus::Skipped),
        "{again:?}"
    );
    // Same content under another name is the same file.
    let copy = t.write("copy-of-a.csv", "id,name\n1,x\n2,y\n");
    let copied = t.load(&[&copy], "raw.t").await.unwrap();
    assert!(
        matches!(copied.files[0].status, LoadStatus::Skipped),
        "{copied:?}"
    );
    assert_eq!(t.scalar("SELECT count(*) FROM raw.t").await, "2");
    assert_eq!(
        t.query("SELECT status, count(*) FROM system.loads GROUP BY status ORDER BY status")
            .await,
        vec!["loaded,1", "skipped,2"]
    );
    // Another table may load the same file.
    t.load(&[&file], "raw.t2").await.unwrap();
    assert_eq!(t.scalar("SELECT count(*) FROM raw.t2").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_quarantined_and_good_ones_load() {
    let t = TestLake::new().await;
    t.write("in/1-empty.csv", "");
    t.write("in/2-header-only.csv", "id,name\n");
    let mut garbage = vec![0u8, 159, 146, 150, 0, 0, 1, 2, 3, 255];
    garbage.extend(std::iter::repeat_n(7u8, 4000));
    t.write("in/3-garbage.csv", garbage);
    let huge = "x".repeat(2 << 20);
    t.write(
        "in/4-huge-field.csv",
        format!("id,name\n1,ok\n2,{huge}\n3,fine\n"),
    );
    let folder = t.dir.path().join("in").to_string_lossy().into_owned();
    let summary = t.load(&[&folder], "raw.people").await.unwrap();
    assert_eq!((summary.rows_loaded, summary.files.len()), (2, 4));
    assert_eq!(
        t.query("SELECT id FROM raw.people ORDER BY id").await,
        vec!["1", "3"]
    );
    let rejects = t
        .query("SELECT reason FROM raw._rejects ORDER BY source_file")
        .await;
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert!(rejects[0].contains("binary content"), "{rejects:?}");
    assert!(
        rejects[1].contains("over the 1048576 byte limit"),
        "{rejects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_rejects_commit_nothing() {
    let t = TestLake::new().await;
    let good = t.write("good.csv", "id,name\n1,a\n2,b\n");
    t.load(&[&good], "raw.t").await.unwrap();
    let bad = t.write("bad.csv", "id,name\n3,c\n4\n5\n6,f\n");
    let err = load_into(&t.lake, &[&bad], "raw.t", Some(0.1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            carelake_ingest::Error::TooManyRejects {
                rejected: 2,
                total: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(t.scalar("SELECT count(*) FROM raw.t").await, "2");
    assert_eq!(
        t.scalar("SELECT count(*) FROM system.tables WHERE table_name = 'raw._rejects'")
            .await,
        "0"
    );
    // A new table is not created either.
    load_into(&t.lake, &[&bad], "raw.fresh", Some(0.1))
        .await
        .unwrap_err();
    let tables = t.query("SELECT table_name FROM system.tables").await;
    assert!(!tables.iter().any(|t| t == "raw.fresh"), "{tables:?}");
    // Within the ratio, the load goes through.
    load_into(&t.lake, &[&bad], "raw.t", Some(0.6))
        .await
        .unwrap();
    assert_eq!(t.scalar("SELECT count(*) FROM raw.t").await, "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_inputs_load() {
    let t = TestLake::new().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"id,city\n1,Peoria\n2,Normal\n").unwrap();
    let a = t.write("a.csv.gz", gz.finish().unwrap());
    let b = t.write(
        "b.csv.zst",
        zstd::encode_all(&b"id,city\n3,Quincy\n"[..], 3).unwrap(),
    );
    assert!(a.ends_with(".gz") && b.ends_with(".zst"));
    let pattern = t.dir.path().join("*.csv.*").to_string_lossy().into_owned();
    let summary = t.load(&[&pattern], "raw.cities").await.unwrap();
    assert_eq!(summary.rows_loaded, 3);
    assert_eq!(
        t.query("SELECT city FROM raw.cities ORDER BY id").await,
        vec!["Peoria", "Normal", "Quincy"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_loads_add_columns_and_widen_types() {
    let t = TestLake::new().await;
    let first = t.write("1.csv", "id,score\n1,10\n2,20\n");
    t.load(&[&first], "raw.scores").await.unwrap();
    assert_eq!(
        t.scalar("SELECT arrow_typeof(score) FROM raw.scores LIMIT 1")
            .await,
        "Int32"
    );
    let second = t.write("2.csv", "id,score,ward\n3,7.5,ICU\n");
    let summary = t.load(&[&second], "raw.scores").await.unwrap();
    let changes = summary.schema_changes.join("; ");
    assert!(
        changes.contains("widened score from Int32 to Float64"),
        "{changes}"
    );
    assert!(changes.contains("added column ward"), "{changes}");
    assert_eq!(
        t.query("SELECT id, score, ward FROM raw.scores ORDER BY id")
            .await,
        vec!["1,10.0,", "2,20.0,", "3,7.5,ICU"]
    );
    let third = t.write("3.csv", "id,score\n4,9999999999\n5,not recorded\n");
    t.load(&[&third], "raw.scores").await.unwrap();
    assert!(
        t.scalar("SELECT arrow_typeof(score) FROM raw.scores LIMIT 1")
            .await
            .starts_with("Utf8")
    );
    assert_eq!(t.scalar("SELECT count(*) FROM raw.scores").await, "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_in_us_and_european_forms() {
    let t = TestLake::new().await;
    let file = t.write("d.csv", "us,eu,dot,ambiguous,ts\n01/31/2024,31/01/2024,31.01.2024,01/02/2024,2024-01-31 08:15:00\n02/01/2024,01/02/2024,01.02.2024,03/04/2024,2024-02-01T09:00:00Z\n");
    t.load(&[&file], "raw.dates").await.unwrap();
    assert_eq!(
        t.query("SELECT us, eu, dot, ambiguous, ts FROM raw.dates ORDER BY us")
            .await,
        vec![
            "2024-01-31,2024-01-31,2024-01-31,01/02/2024,2024-01-31T08:15:00Z",
            "2024-02-01,2024-02-01,2024-02-01,03/04/2024,2024-02-01T09:00:00Z"
        ]
    );
    // Dashes day first (as public datasets write them), month names, two-digit years, times
    // with AM/PM; a column whose values need both readings stays text.
    let file = t.write(
        "more.csv",
        "dash_eu,dash_us,named,oracle,short_us,ampm,mixed\n\
         17-11-2022,11-17-2022,\"Nov 17, 2022\",17-NOV-22,11/17/22,17/11/2022 10:15 PM,17/11/2022\n\
         01-12-2022,12-01-2022,December 1 2022,01-DEC-22,12/01/22,01/12/2022 08:00 AM,11/17/2022\n",
    );
    t.load(&[&file], "raw.more_dates").await.unwrap();
    assert_eq!(
        t.query(
            "SELECT dash_eu, dash_us, named, oracle, short_us, ampm, mixed FROM raw.more_dates ORDER BY dash_eu"
        )
        .await,
        vec![
            "2022-11-17,2022-11-17,2022-11-17,2022-11-17,2022-11-17,2022-11-17T22:15:00Z,17/11/2022",
            "2022-12-01,2022-12-01,2022-12-01,2022-12-01,2022-12-01,2022-12-01T08:00:00Z,11/17/2022"
        ]
    );
}
