//! Linkage speed: FEBRL 4 (when `../shared/data/febrl` is present) and generated patient
//! records, 1,000,000 by default (`CARELAKE_LINK_BENCH_PATIENTS`), end to end from CSV: read,
//! normalise, block, compare, estimate u, EM, score, cluster. Prints figures; asserts nothing
//! about time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use carelake_generate::{GeneratorConfig, generate_people};
use carelake_link::{
    Accuracy, CsvInput, LinkConfig, LinkMode, cluster, link, pairs_within, read_csv,
};

fn main() {
    let febrl = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/febrl");
    if febrl.is_dir() {
        let started = Instant::now();
        let input = |name: &str, source: &str| CsvInput {
            path: Box::leak(febrl.join(name).into_boxed_path()),
            source: source.into(),
            source_column: None,
            id_column: "rec_id".into(),
            updated_column: None,
            map: &[],
        };
        let records =
            read_csv(&[input("dataset4a.csv", "a"), input("dataset4b.csv", "b")]).unwrap();
        let linkage = link(
            &records,
            &LinkConfig {
                mode: LinkMode::Link,
                ..LinkConfig::default()
            },
        )
        .unwrap();
        let links: Vec<(&str, &str)> = linkage
            .links()
            .map(|p| (records.id(p.a as usize), records.id(p.b as usize)))
            .collect();
        let elapsed = started.elapsed();
        let truth = std::fs::read_to_string(febrl.join("febrl4_true_links.DERIVED.csv")).unwrap();
        let accuracy = Accuracy::measure(
            links,
            truth.lines().skip(1).filter_map(|l| l.split_once(',')),
        );
        println!(
            "FEBRL 4 (10,000 records): {:.3} s end to end; {accuracy}",
            elapsed.as_secs_f64()
        );
    } else {
        println!("FEBRL 4: skipped ({} is absent)", febrl.display());
    }

    let patients: u64 = std::env::var("CARELAKE_LINK_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    generate_people(&GeneratorConfig {
        patients,
        seed: 42,
        out: dir.path().into(),
        flat_only: false,
    })
    .unwrap();
    println!(
        "generated {patients} people in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let records = read_csv(&[CsvInput {
        path: &dir.path().join("patients.csv"),
        source: "patients".into(),
        source_column: Some("source_system".into()),
        id_column: "mrn".into(),
        updated_column: Some("updated_at".into()),
        map: &[],
    }])
    .unwrap();
    let read = started.elapsed();
    let linkage = link(&records, &LinkConfig::default()).unwrap();
    let clusters = cluster(
        &records,
        linkage.links().map(|p| (p.a, p.b)),
        &HashMap::new(),
    );
    let total = started.elapsed();
    let t = &linkage.timings;
    println!(
        "linked {} records into {} persons in {:.1} s (read {:.1} s, u {:.1} s, block+compare {:.1} s, EM {:.2} s, score {:.1} s); {} candidates",
        records.len(),
        clusters.len(),
        total.as_secs_f64(),
        read.as_secs_f64(),
        t.estimate_u.as_secs_f64(),
        t.compare.as_secs_f64(),
        t.train.as_secs_f64(),
        t.score.as_secs_f64(),
        linkage.candidates,
    );
    for (rule, pairs) in &linkage.blocking.rules {
        println!("  blocking {rule}: {pairs} pairs");
    }
    // Accuracy against the generator's truth: pairs of records of the same person.
    let truth = std::fs::read_to_string(dir.path().join("_truth/person_records.csv")).unwrap();
    let mut people: HashMap<&str, Vec<String>> = HashMap::new();
    for line in truth.lines().skip(1) {
        let parts: Vec<&str> = line.split(',').collect();
        people
            .entry(parts[2])
            .or_default()
            .push(format!("{}:{}", parts[0], parts[1]));
    }
    let mut found: HashMap<&str, Vec<String>> = HashMap::new();
    for i in 0..records.len() {
        found
            .entry(clusters.person_key(i))
            .or_default()
            .push(records.key(i));
    }
    let pairs =
        |groups: &HashMap<&str, Vec<String>>| pairs_within(groups.values().map(Vec::as_slice));
    let (true_pairs, found_pairs) = (pairs(&people), pairs(&found));
    let accuracy = Accuracy::measure(
        found_pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        true_pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    println!("  against the generator's truth, links (p >= 0.9): {accuracy}");
    // With the review band (0.5 <= p < 0.9) accepted too, as a reviewer confirming every
    // possible match would.
    let with_review = cluster(
        &records,
        linkage.pairs.iter().map(|p| (p.a, p.b)),
        &HashMap::new(),
    );
    let mut found: HashMap<&str, Vec<String>> = HashMap::new();
    for i in 0..records.len() {
        found
            .entry(with_review.person_key(i))
            .or_default()
            .push(records.key(i));
    }
    let found_pairs = pairs(&found);
    let accuracy = Accuracy::measure(
        found_pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        true_pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    println!(
        "  links and review band (p >= 0.5, {} pairs for review): {accuracy}",
        linkage.reviews().count()
    );
    if linkage.blocking.oversized_blocks > 0 {
        println!(
            "  {} oversized blocks skipped",
            linkage.blocking.oversized_blocks
        );
    }
}
