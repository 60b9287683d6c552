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
