//! HL7 v2 files into the lake: the shared samples, duplicates, bad files and the SQL function.

use crate::support::{Workspace, shared_data};

#[test]
fn microsoft_samples_load_once_with_typed_tables() {
    let Some(dir) = shared_data("hl7v2/microsoft-fhir-converter") else {
        return;
    };
    let ws = Workspace::new();
    let dir = dir.to_string_lossy().into_owned();
    let out = ws.ok(&["load", &dir]);
    assert!(
        out.contains("Loaded 139 messages from 139 file(s)"),
        "{out}"
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "139");
    let events: u64 = ws
        .scalar("SELECT count(*) FROM raw.hl7_patient_events")
        .parse()
        .unwrap();
    let observations: u64 = ws
        .scalar("SELECT count(*) FROM raw.hl7_observations")
        .parse()
        .unwrap();
    assert!(
        events > 100 && observations > 100,
        "{events} {observations}"
    );
    // Every message type arrived, with its header fields.
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM raw.hl7_messages WHERE message_type IS NULL OR control_id IS NULL"
        ),
        "0"
    );
    assert!(
        ws.scalar("SELECT count(DISTINCT message_type) FROM raw.hl7_messages")
            .parse::<u64>()
            .unwrap()
            >= 10
    );
    // The field-path function agrees with the typed columns.
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.hl7_messages WHERE hl7_field(raw_text, 'MSH-10') <> control_id"),
        "0"
    );
    assert_eq!(
        ws.scalar("SELECT hl7_field('MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5' || chr(13) || 'PID|1||7^^^H^MR~8^^^S^SS||Doe^Jane', 'PID-3(2).1')"),
        "8"
    );
    // Loading again adds nothing.
    let again = ws.ok(&["load", &dir]);
    assert!(again.contains("Loaded 0 messages"), "{again}");
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "139");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.hl7_patient_events"),
        events.to_string()
    );
}

#[test]
fn resent_messages_are_stored_once_and_bad_files_quarantined() {
    let ws = Workspace::new();
    let message = |id: &str| {
        let mut pv1 = vec![""; 46];
        pv1[0] = "PV1";
        pv1[1] = "1";
        pv1[2] = "I";
        pv1[3] = "W^1^A^HOSP";
        pv1[7] = "123^Smith^Ann";
        pv1[10] = "MED";
        let visit = format!("V{id}");
        pv1[19] = &visit;
        pv1[44] = "20240101110000";
        format!(
            "MSH|^~\\&|EHR|HOSP|LAKE|HOSP|20240101120000||ADT^A01|{id}|P|2.5.1\rEVN|A01|20240101120000\rPID|1||100{id}^^^HOSP^MR||Doe^Jane||19800101|F\r{}\r",
            pv1.join("|")
        )
    };
    // A batch with a resend of message 2, then a later file resending message 1.
    let first = format!(
        "BHS|^~\\&\r{}{}{}BTS|3\r",
        message("1"),
        message("2"),
        message("2")
    );
    let first = ws.write("in/a.hl7", first);
    let out = ws.ok(&["load", &first]);
    assert!(
        out.contains("Loaded 3 messages") && out.contains("1 already in the lake"),
        "{out}"
    );
    let second = ws.write("in/b.hl7", format!("{}{}", message("1"), message("3")));
    ws.ok(&["load", &second]);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "3");
    assert_eq!(
        ws.scalar("SELECT string_agg(control_id, '-' ORDER BY control_id) FROM raw.hl7_messages"),
        "1-2-3"
    );
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw.hl7_patient_events"),
        "3"
    );
    assert_eq!(
        ws.scalar("SELECT CAST(admit_time AS VARCHAR) || ' ' || visit_number FROM raw.hl7_patient_events WHERE control_id = '1'"),
        "2024-01-01T11:00:00Z V1"
    );
    assert_eq!(
        ws.scalar("SELECT attending_family_name || '/' || patient_class || '/' || CAST(birth_date AS VARCHAR) FROM raw.hl7_patient_events WHERE control_id = '3'"),
        "Smith/I/1980-01-01"
    );

    // A broken batch is rejected whole, once, with its reason.
    let bad = ws.write(
        "in/bad.hl7",
        format!("BHS|^~\\&\rEVN|A04\r{}BTS|1\r", message("9")),
    );
    let out = ws.ok(&["load", &bad]);
    assert!(out.contains("Rejected"), "{out}");
    ws.ok(&["load", &bad]);
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw._rejects WHERE reason LIKE '%outside any message%'"),
        "1"
    );
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "3");
    // A message that is not HL7 inside a good file is quarantined; the rest load.
    let mixed = ws.write(
        "in/mixed.hl7",
        format!("{}MSH|^^\\&|bad delimiters\r", message("4")),
    );
    ws.ok(&["load", &mixed]);
    assert_eq!(ws.scalar("SELECT count(*) FROM raw.hl7_messages"), "4");
    assert_eq!(
        ws.scalar("SELECT count(*) FROM raw._rejects WHERE reason LIKE 'HL7 message rejected%'"),
        "1"
    );
}

#[test]
fn python_hl7_bad_samples_are_quarantined_with_reasons() {
    let Some(dir) = shared_data("hl7v2/python-hl7") else {
        return;
    };
    let ws = Workspace::new();
    let mut bad = 0;
    let mut good = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("hl7") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let out = ws.ok(&["load", &path.to_string_lossy()]);
        if name.contains("bad") {
            bad += 1;
            assert!(out.contains("Rejected"), "{name}: {out}");
        } else {
            good += 1;
            assert!(!out.contains("Rejected"), "{name}: {out}");
        }
    }
    assert_eq!((bad, good), (6, 15));
    assert_eq!(
        ws.scalar(
            "SELECT count(*) FROM raw._rejects WHERE reason LIKE 'HL7 file rejected: line %'"
        ),
        "6"
    );
}
