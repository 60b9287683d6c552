//! The generator's patients (two EHRs, typos, nicknames, moves, swapped birth days) linked with
//! the default settings and scored against `_truth/person_records.csv`.

use std::collections::HashMap;

use carelake_generate::{GeneratorConfig, generate_people};
use carelake_link::{
    Accuracy, CsvInput, LinkConfig, RecordSet, SurvivorshipRules, cluster, golden_records, link,
    pairs_within, read_csv,
};

fn patients(dir: &std::path::Path) -> RecordSet {
    read_csv(&[CsvInput {
        path: &dir.join("patients.csv"),
        source: "patients".into(),
        source_column: Some("source_system".into()),
        id_column: "mrn".into(),
        updated_column: Some("updated_at".into()),
        map: &[],
    }])
    .unwrap()
}

/// All pairs of records in the same group.
fn pairs_of_groups(groups: HashMap<&str, Vec<String>>) -> Vec<(String, String)> {
    pairs_within(groups.values().map(Vec::as_slice))
}

#[test]
fn generated_people_link_to_their_truth() {
    let dir = tempfile::tempdir().unwrap();
    generate_people(&GeneratorConfig {
        patients: 20_000,
        seed: 7,
        out: dir.path().into(),
        flat_only: false,
    })
    .unwrap();
    let records = patients(dir.path());
    let linkage = link(&records, &LinkConfig::default()).unwrap();
    let clusters = cluster(
        &records,
        linkage.links().map(|p| (p.a, p.b)),
        &HashMap::new(),
    );

    let truth_text = std::fs::read_to_string(dir.path().join("_truth/person_records.csv")).unwrap();
    let mut truth: HashMap<&str, Vec<String>> = HashMap::new();
    for line in truth_text.lines().skip(1) {
        let parts: Vec<&str> = line.split(',').collect();
        truth
            .entry(parts[2])
            .or_default()
            .push(format!("{}:{}", parts[0], parts[1]));
    }
    let mut predicted: HashMap<&str, Vec<String>> = HashMap::new();
    for i in 0..records.len() {
        predicted
            .entry(clusters.person_key(i))
            .or_default()
            .push(records.key(i));
    }
    let truth_pairs = pairs_of_groups(truth);
    let predicted_pairs = pairs_of_groups(predicted);
    let accuracy = Accuracy::measure(
        predicted_pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str())),
        truth_pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    println!(
        "generated 20,000 people, {} records: {accuracy}; {} persons, {} in review",
        records.len(),
        clusters.len(),
        linkage.reviews().count()
    );
    assert!(accuracy.f1() >= 0.98, "{accuracy}");

    // Golden records: one per person, the most recent address.
    let golden = golden_records(&records, &clusters, &SurvivorshipRules::default());
    assert_eq!(golden.len(), clusters.len());
    assert!(golden.iter().any(|g| g.source_count == 2));
}

#[test]
fn person_keys_survive_a_rerun_with_more_records() {
    let dir = tempfile::tempdir().unwrap();
    generate_people(&GeneratorConfig {
        patients: 3_000,
        seed: 11,
        out: dir.path().into(),
        flat_only: false,
    })
    .unwrap();
    let records = patients(dir.path());
    let linkage = link(&records, &LinkConfig::default()).unwrap();
    let first = cluster(
        &records,
        linkage.links().map(|p| (p.a, p.b)),
        &HashMap::new(),
    );
    let previous: HashMap<String, String> = (0..records.len())
        .map(|i| (records.key(i), first.person_key(i).to_string()))
        .collect();
    let again = cluster(&records, linkage.links().map(|p| (p.a, p.b)), &previous);
    for i in 0..records.len() {
        assert_eq!(first.person_key(i), again.person_key(i));
    }
}

/// A handful of records: too few to estimate u from; the typical values carry it.
#[test]
fn a_small_file_links_its_obvious_duplicates() {
    use carelake_link::Field;
    let fields = [
        Field::FirstName,
        Field::LastName,
        Field::BirthDate,
        Field::NationalId,
        Field::Zip,
        Field::Phone,
    ];
    let mut b = RecordSet::builder(&fields);
    let rows: [(&str, [&str; 6]); 6] = [
        (
            "1",
            [
                "William",
                "Smith",
                "1980-03-07",
                "912-70-1234",
                "97201",
                "503-555-0101",
            ],
        ),
        (
            "2",
            ["Bill", "Smith", "1980-03-07", "", "97201", "503-555-0101"],
        ),
        (
            "3",
            [
                "Maria",
                "Lopez",
                "1975-11-02",
                "913-71-2222",
                "10001",
                "212-555-0199",
            ],
        ),
        (
            "4",
            ["Mario", "Lopes", "1961-01-30", "", "60601", "312-555-0142"],
        ),
        (
            "5",
            [
                "Ana",
                "Ng",
                "1990-05-05",
                "914-72-3333",
                "94110",
                "415-555-0111",
            ],
        ),
        (
            "6",
            ["Wiliam", "Smith", "1980-03-07", "912-70-1234", "", ""],
        ),
    ];
    for (id, values) in &rows {
        b.push("s", id, "", values).unwrap();
    }
    let records = b.build().unwrap();
    let linkage = link(&records, &LinkConfig::default()).unwrap();
    let clusters = cluster(
        &records,
        linkage.links().map(|p| (p.a, p.b)),
        &HashMap::new(),
    );
    let key = |i: usize| clusters.person_key(i).to_string();
    assert_eq!(key(0), key(1), "{:?}", linkage.pairs);
    assert_eq!(key(0), key(5), "{:?}", linkage.pairs);
    assert_ne!(key(2), key(3));
    assert_ne!(key(0), key(4));
    assert_eq!(clusters.len(), 4);
}
