//! FHIR throughput on the shared Synthea Bundles: Bundle reading (JSON parse + entry checks)
//! and flattening through the fourteen default views, in resources per second.
//!
//! `cargo bench -p carelake-fhir` (skips when `../shared/data` is absent).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

fn main() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/fhir-r4-synthea"
    ));
    let Ok(read) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    };
    let mut files: Vec<Vec<u8>> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    files.sort();
    let bytes: usize = files.iter().map(Vec::len).sum();
    let views = carelake_fhir::default_views();
    let budget = Duration::from_secs(3);

    // Parse and read the Bundles.
    let start = Instant::now();
    let (mut rounds, mut resources) = (0u64, 0u64);
    while start.elapsed() < budget {
        for file in &files {
            let json: Value = serde_json::from_slice(file).expect("the shared Bundles are JSON");
            resources += carelake_fhir::read_bundle(&json)
                .map(|e| e.len())
                .unwrap_or(0) as u64;
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "read Bundles: {:.0} resources/s, {:.1} MB/s ({} files, {} resources per round, {rounds} rounds)",
        resources as f64 / secs,
        (bytes as f64 * rounds as f64) / secs / 1e6,
        files.len(),
        resources / rounds.max(1)
    );

    // Flatten through every default view (each resource meets every view; only its own
    // type's views produce rows).
    let all: Vec<Value> = files
        .iter()
        .flat_map(|f| {
            let json: Value = serde_json::from_slice(f).expect("JSON");
            carelake_fhir::read_bundle(&json)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| e.resource)
        })
        .collect();
    let start = Instant::now();
    let (mut rounds, mut rows) = (0u64, 0u64);
    while start.elapsed() < budget {
        for resource in &all {
            let kind = resource.get("resourceType").and_then(Value::as_str);
            for view in views.iter().filter(|v| Some(v.resource()) == kind) {
                rows += view.evaluate(resource).map(|r| r.len()).unwrap_or(0) as u64;
            }
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "flatten through the default views: {:.0} resources/s ({} rows per round)",
        (all.len() as u64 * rounds) as f64 / secs,
        rows / rounds.max(1)
    );
}
