//! FEBRL 4 (dataset4a: 5,000 originals, dataset4b: 5,000 corrupted duplicates): the default
//! settings, untuned, against the 5,000 true links.

use std::time::Instant;

use carelake_link::{Accuracy, CsvInput, Field, LinkConfig, LinkMode, link, read_csv};

use crate::shared_data;

#[test]
fn febrl4_links_with_default_settings() {
    let Some(dir) = shared_data("febrl") else {
        return;
    };
    let started = Instant::now();
    let a = dir.join("dataset4a.csv");
    let b = dir.join("dataset4b.csv");
    let input = |path, source: &str| CsvInput {
        path,
        source: source.into(),
        source_column: None,
        id_column: "rec_id".into(),
        updated_column: None,
        map: &[],
    };
    let records = read_csv(&[input(&a, "a"), input(&b, "b")]).unwrap();
    assert_eq!(records.len(), 10_000);
    // Every FEBRL column is recognised by name.
    for f in [
        Field::FirstName,
        Field::LastName,
        Field::BirthDate,
        Field::NationalId,
        Field::StreetNumber,
        Field::Street,
        Field::Locality,
        Field::City,
        Field::Zip,
        Field::State,
    ] {
        assert!(records.has(f), "{f} not recognised");
    }
    let linkage = link(
        &records,
        &LinkConfig {
            mode: LinkMode::Link,
            ..LinkConfig::default()
        },
    )
    .unwrap();
    let elapsed = started.elapsed();
    let predicted: Vec<(&str, &str)> = linkage
        .links()
        .map(|p| (records.id(p.a as usize), records.id(p.b as usize)))
        .collect();
    let truth_text = std::fs::read_to_string(dir.join("febrl4_true_links.DERIVED.csv")).unwrap();
    let truth: Vec<(&str, &str)> = truth_text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .collect();
    let accuracy = Accuracy::measure(predicted, truth);
    println!(
        "FEBRL 4: {accuracy}; {} candidates, EM {} iterations, {:.3} s end to end",
        linkage.candidates,
        linkage.model.em_iterations,
        elapsed.as_secs_f64()
    );
    for (rule, pairs) in &linkage.blocking.rules {
        println!("  blocking {rule}: {pairs} pairs");
    }
    assert!(linkage.model.converged);
    assert!(
        accuracy.f1() >= 0.999,
        "F1 {:.4} below 0.999: {accuracy}",
        accuracy.f1()
    );
}

#[test]
#[ignore]
fn febrl4_debug() {
    let Some(dir) = shared_data("febrl") else {
        return;
    };
    let a = dir.join("dataset4a.csv");
    let b = dir.join("dataset4b.csv");
    let input = |path, source: &str| CsvInput {
        path,
        source: source.into(),
        source_column: None,
        id_column: "rec_id".into(),
        updated_column: None,
        map: &[],
    };
    let records = read_csv(&[input(&a, "a"), input(&b, "b")]).unwrap();
    let linkage = link(
        &records,
        &LinkConfig {
            mode: LinkMode::Link,
            review_threshold: 0.0,
            ..LinkConfig::default()
        },
    )
    .unwrap();
    println!("{:?}", linkage.timings);
    for c in &linkage.model.comparisons {
        println!(
            "{}: {:?}",
            c.name,
            c.levels
                .iter()
                .map(|l| format!("{} m={:.4} u={:.6} w={:.2}", l.label, l.m, l.u, l.weight()))
                .collect::<Vec<_>>()
        );
    }
    println!(
        "prior {} share {}",
        linkage.model.prior, linkage.model.candidate_match_share
    );
    let truth_text = std::fs::read_to_string(dir.join("febrl4_true_links.DERIVED.csv")).unwrap();
    let truth: std::collections::HashSet<(&str, &str)> = truth_text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .collect();
    let mut found = std::collections::HashSet::new();
    for p in &linkage.pairs {
        let (x, y) = (records.id(p.a as usize), records.id(p.b as usize));
        let is_true = truth.contains(&(x, y)) || truth.contains(&(y, x));
        if is_true {
            found.insert(if x < y { (x, y) } else { (y, x) });
        }
        if is_true != (p.probability >= 0.9) {
            println!(
                "{} {x} {y} p={:.4} w={:.2} levels={:?}",
                is_true,
                p.probability,
                p.weight,
                (0..linkage.comparisons.len())
                    .map(|k| p.level(k))
                    .collect::<Vec<_>>()
            );
        }
    }
    let idx: std::collections::HashMap<&str, usize> =
        (0..records.len()).map(|i| (records.id(i), i)).collect();
    for (x, y) in &truth {
        let k = if x < y { (*x, *y) } else { (*y, *x) };
        if !found.contains(&k) {
            let (i, j) = (idx[x], idx[y]);
            let show = |i: usize| {
                records
                    .fields()
                    .iter()
                    .map(|f| records.value(*f, i).to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            };
            println!(
                "not a candidate: {}\n                  {}",
                show(i),
                show(j)
            );
        }
    }
}
