//! Writers racing on one table, each with its own lake handle (its own catalog and snapshot
//! caches, as separate processes have): every file lands once, and the catalog agrees with
//! the table. (The CLI crate races real processes.)

use crate::support::{TestLake, load_into};

fn rows(prefix: &str, n: usize) -> String {
    let mut s = String::from("id,value\n");
    for i in 0..n {
        s.push_str(&format!("{prefix}{i},{i}\n"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_loads_of_different_files_all_land() {
    let t = TestLake::new().await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let file = t.write(&format!("f{i}.csv"), rows(&format!("f{i}-"), 500));
        let lake = t.reopen().await;
        tasks.push(tokio::spawn(async move {
            load_into(&lake, &[&file], "raw.shared", None).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().rows_loaded, 500);
    }
    assert_eq!(t.scalar("SELECT count(*) FROM raw.shared").await, "2000");
    assert_eq!(
        t.scalar("SELECT count(DISTINCT _load_id) FROM raw.shared")
            .await,
        "4"
    );
    // The catalog keeps the row count of the newest version, whatever order writers record in.
    assert_eq!(
        t.scalar("SELECT row_count FROM system.tables WHERE table_name = 'raw.shared'")
            .await,
        "2000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_loads_of_the_same_file_load_it_once() {
    let t = TestLake::new().await;
    // The table exists first so that the writers race on appends, not on creation.
    let seed = t.write("seed.csv", rows("s", 10));
    t.load(&[&seed], "raw.once").await.unwrap();
    let file = t.write("same.csv", rows("x", 2000));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (lake, file) = (t.reopen().await, file.clone());
        tasks.push(tokio::spawn(async move {
            load_into(&lake, &[&file], "raw.once", None).await
        }));
    }
    let mut loaded = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().rows_loaded == 2000 {
            loaded += 1;
        }
    }
    assert_eq!(loaded, 1, "exactly one writer loads the file");
    assert_eq!(t.scalar("SELECT count(*) FROM raw.once").await, "2010");
}
