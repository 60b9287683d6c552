//! Two processes writing the same lake at once must not corrupt it or load anything twice.

use std::process::{Command, Stdio};

use crate::support::Workspace;

fn spawn_load(ws: &Workspace, file: &str, table: &str) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("carelake"))
        .current_dir(ws.dir.path())
        .env("CARELAKE_LAKE", ws.lake())
        .args(["load", file, "--into", table])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn carelake")
}

fn rows(prefix: &str, n: usize) -> String {
    let mut s = String::from("id,value\n");
    for i in 0..n {
        s.push_str(&format!("{prefix}{i},{i}\n"));
    }
    s
}

#[test]
fn concurrent_loads_of_different_files_all_land() {
    let ws = Workspace::new();
    let files: Vec<String> = (0..4)
        .map(|i| ws.write(&format!("f{i}.csv"), rows(&format!("f{i}-"), 500)))
        .collect();
    let children: Vec<_> = files
        .iter()
        .map(|f| spawn_load(&ws, f, "raw.shared"))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.shared"), "2000");
    assert_eq!(
        ws.scalar("SELECT count(DISTINCT _load_id) FROM raw.shared"),
        "4"
    );
    // The catalog keeps the row count of the newest version, whatever order writers record in.
    assert_eq!(
        ws.scalar("SELECT row_count FROM system.tables WHERE table_name = 'raw.shared'"),
        "2000"
    );
}

#[test]
fn concurrent_loads_of_the_same_file_load_it_once() {
    let ws = Workspace::new();
    // The table exists first so that both writers race on appends, not on creation.
    let seed = ws.write("seed.csv", rows("s", 10));
    ws.ok(&["load", &seed, "--into", "raw.once"]);
    let file = ws.write("same.csv", rows("x", 2000));
    let children: Vec<_> = (0..3).map(|_| spawn_load(&ws, &file, "raw.once")).collect();
    let mut loaded = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if String::from_utf8_lossy(&out.stdout).contains("Loaded 2000 rows") {
            loaded += 1;
        }
    }
    assert_eq!(loaded, 1, "exactly one process loads the file");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.once"), "2010");
}
