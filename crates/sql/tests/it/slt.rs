//! The SQL surface as sqllogictest files in `crates/sql/tests/slt/`. Set
//! `CARELAKE_SLT_COMPLETE=1` to rewrite the expected results from what carelake returns.
//! (`carelake-cluster`'s tests run the same files on a Ballista cluster.)

use carelake_common::Principal;
use carelake_lake::Lake;
use carelake_sql::Session;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let complete = std::env::var_os("CARELAKE_SLT_COMPLETE").is_some();
    for file in carelake_testkit::slt_files() {
        let lake_dir = tempfile::tempdir().unwrap();
        let location = lake_dir.path().join("lake").to_string_lossy().into_owned();
        Lake::init(&location).await.unwrap();
        carelake_testkit::run_slt(&file, complete, move || {
            let location = location.clone();
            async move {
                let lake = Lake::open(&location).await.map_err(|e| e.to_string())?;
                Session::open(lake, Principal::new("slt", vec!["admin".into()]))
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
    }
}
