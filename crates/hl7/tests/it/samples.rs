use carelake_hl7::{Message, split_batch};

use crate::shared_data;

fn read(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn every_microsoft_sample_parses_and_extracts() {
    let Some(dir) = shared_data("hl7v2/microsoft-fhir-converter") else {
        return;
    };
    let mut files = 0;
    let mut messages = 0;
    let mut observations = 0;
    let mut identifiers = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("hl7") {
            continue;
        }
        files += 1;
        let text = read(&path);
        let batch = split_batch(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for item in batch.messages {
            let message =
                Message::parse(item.text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let extracted = message.extract();
            assert!(
                extracted.header.control_id.is_some() || extracted.header.message_type.is_some(),
                "{}",
                path.display()
            );
            observations += extracted.observations.len();
            identifiers += extracted.patient.map_or(0, |p| p.identifiers.len());
            messages += 1;
        }
    }
    assert_eq!(files, 139);
    assert_eq!(messages, 139);
    eprintln!(
        "{messages} messages, {observations} observations, {identifiers} patient identifiers"
    );
    assert!(observations > 100, "{observations}");
    assert!(identifiers > 139, "{identifiers}");
}

#[test]
fn concrete_values_from_microsoft_samples() {
    let Some(dir) = shared_data("hl7v2/microsoft-fhir-converter") else {
        return;
    };
    let text = read(&dir.join("ADT-A01-01.hl7"));
    let m = Message::parse(&text).unwrap();
    let h = m.header();
    assert_eq!(h.message_type.as_deref(), Some("ADT"));
    assert_eq!(h.trigger_event.as_deref(), Some("A01"));
    let p = m.extract().patient.unwrap();
    assert!(!p.identifiers.is_empty());
    // ORU with numeric results.
    let text = read(&dir.join("ORU-R01-01.hl7"));
    let m = Message::parse(&text).unwrap();
    let e = m.extract();
    assert_eq!(e.header.message_type.as_deref(), Some("ORU"));
    assert!(!e.observations.is_empty());
}

#[test]
fn python_hl7_samples_split_or_are_rejected_for_the_right_reason() {
    let Some(dir) = shared_data("hl7v2/python-hl7") else {
        return;
    };
    let good = [
        ("sample_batch.hl7", 1),
        ("sample_batch1.hl7", 2),
        ("sample_batch2.hl7", 2),
        ("sample_batch3.hl7", 1),
        ("sample_batch4.hl7", 1),
        ("sample_file.hl7", 1),
        ("sample_file1.hl7", 3),
        ("sample_file2.hl7", 2),
        ("sample_file3.hl7", 1),
        ("sample_file4.hl7", 1),
        ("sample_file5.hl7", 1),
        ("sample_file6.hl7", 1),
        ("sample_hl7.hl7", 1),
        ("sample_msh.hl7", 1),
        ("rep_sample_hl7.hl7", 1),
    ];
    for (name, count) in good {
        let text = read(&dir.join(name));
        let batch = split_batch(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.messages.len(), count, "{name}");
        for m in batch.messages {
            Message::parse(m.text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    let bad = [
        ("sample_bad_batch.hl7", "outside any message"),
        ("sample_bad_batch1.hl7", "not closed with BTS"),
        ("sample_bad_file.hl7", "outside any message"),
        ("sample_bad_file1.hl7", "not closed with BTS"),
        ("sample_bad_file2.hl7", "must come first"),
        ("sample_bad_file3.hl7", "outside any message"),
    ];
    for (name, reason) in bad {
        let text = read(&dir.join(name));
        let err = split_batch(&text).expect_err(name).to_string();
        assert!(err.contains(reason), "{name}: {err}");
    }
    // Any file not listed must at least not panic.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let _ = split_batch(&read(&path));
    }
}
