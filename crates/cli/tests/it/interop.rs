//! An independent Delta reader (the Python `deltalake` package) reads the demo's tables and
//! agrees with carelake on row counts and a column checksum. `scripts/test.sh` installs the
//! reader and sets `CARELAKE_REQUIRE_INTEROP=1`; elsewhere the test skips when it is missing.

use std::process::Command;

use crate::support::{Workspace, python_with};

const READER: &str = r#"
import sys, json
from deltalake import DeltaTable
import pyarrow.compute as pc
out = {}
for path in sys.argv[1:]:
    t = DeltaTable(path).to_pyarrow_table()
    lines = pc.sum(t.column("_source_line")).as_py() if "_source_line" in t.column_names else 0
    out[path] = [t.num_rows, int(lines or 0)]
print(json.dumps(out))
# The reader's native threads can abort the interpreter's teardown under load; the answer is out.
sys.stdout.flush()
import os
os._exit(0)
"#;

#[test]
fn python_deltalake_reads_what_carelake_wrote() {
    let Some(python) = python_with(
        "deltalake, pyarrow",
        "python_deltalake_reads_what_carelake_wrote",
    ) else {
        return;
    };
    let ws = Workspace::new();
    ws.ok(&[
        "demo",
        "--no-serve",
        "--patients",
        "300",
        "--data",
        &ws.path("demo-data").to_string_lossy(),
    ]);
    let tables = ws.query(
        "SELECT table_name, row_count FROM system.tables WHERE kind = 'table' ORDER BY table_name",
    );
    assert!(tables.len() >= 12, "{tables:?}");
    let mut paths = Vec::new();
    let mut expected = Vec::new();
    for row in &tables {
        let (name, catalog_count) = row.split_once(',').unwrap();
        let count = ws.scalar(&format!("SELECT count(*) FROM {name}"));
        assert_eq!(count, catalog_count, "{name}: catalog row count");
        // Loaded tables carry lineage columns; derived ones (the FHIR views) are checked by
        // their row counts.
        let has_lineage = ws.scalar(&format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema || '.' || table_name = '{name}' AND column_name = '_source_line'"
        )) == "1";
        let checksum = if has_lineage {
            ws.scalar(&format!(
                "SELECT coalesce(sum(_source_line), 0) FROM {name}"
            ))
        } else {
            "0".to_string()
        };
        let path = ws
            .path("lake")
            .join(name.replace('.', "/"))
            .to_string_lossy()
            .into_owned();
        expected.push((path.clone(), count, checksum));
        paths.push(path);
    }
    let out = Command::new(python)
        .arg("-c")
        .arg(READER)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (path, count, checksum) in expected {
        let pair = &seen[&path];
        assert_eq!(pair[0].to_string(), count, "{path} rows");
        assert_eq!(pair[1].to_string(), checksum, "{path} checksum");
    }
}
