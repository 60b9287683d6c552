//! `carelake link` on files a user brings: FEBRL 4 linked across its two files and scored
//! against the true links; a file deduplicated; bad arguments refused with a reason.

use crate::support::{Workspace, shared_data};

/// The F1 printed on the `Against …` line.
fn printed_f1(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("Against "))
        .unwrap_or_else(|| panic!("no accuracy line in {out}"));
    let at = line.find("F1 ").expect("F1 in the accuracy line") + 3;
    line[at..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn febrl4_two_files_linked_and_scored() {
    let Some(dir) = shared_data("febrl") else {
        return;
    };
    let ws = Workspace::new();
    let a = dir.join("dataset4a.csv").to_string_lossy().into_owned();
    let b = dir.join("dataset4b.csv").to_string_lossy().into_owned();
    let truth = dir
        .join("febrl4_true_links.DERIVED.csv")
        .to_string_lossy()
        .into_owned();
    let out_dir = ws.path("febrl-out").to_string_lossy().into_owned();
    let out = ws.ok(&[
        "link",
        &a,
        &b,
        "--id-column",
        "rec_id",
        "--truth",
        &truth,
        "--out",
        &out_dir,
    ]);
    println!("{out}");
    assert!(
        out.contains("Linked 10000 records from 2 source(s)"),
        "{out}"
    );
    let f1 = printed_f1(&out);
    assert!(f1 >= 0.999, "F1 {f1}: {out}");
    // Every record has a person key; linked pairs share one.
    let clusters = std::fs::read_to_string(ws.path("febrl-out/clusters.csv")).unwrap();
    assert_eq!(clusters.lines().count(), 10_001);
    let pairs = std::fs::read_to_string(ws.path("febrl-out/pairs.csv")).unwrap();
    assert!(pairs.starts_with("source_a,id_a,source_b,id_b,match_probability"));
    let model = std::fs::read_to_string(ws.path("febrl-out/model.csv")).unwrap();
    assert!(model.contains("birth_date,exact,"), "{model}");
}

#[test]
fn one_file_is_deduplicated_with_a_column_map() {
    let ws = Workspace::new();
    let file = ws.write(
        "roster.csv",
        "member,fn,ln,born,postal,tel\n\
         1,William,Smith,1980-03-07,97201,503-555-0101\n\
         2,Bill,Smith,1980-03-07,97201,503-555-0101\n\
         3,Maria,Lopez,1975-11-02,10001,212-555-0199\n\
         4,Mario,Lopes,1961-01-30,60601,312-555-0142\n\
         5,Ana,Ng,1990-05-05,94110,415-555-0111\n",
    );
    let out_dir = ws.path("out").to_string_lossy().into_owned();
    let out = ws.ok(&[
        "link",
        &file,
        "--id-column",
        "member",
        "--map",
        "fn=first_name,ln=last_name,born=birth_date,postal=zip,tel=phone",
        "--out",
        &out_dir,
    ]);
    assert!(out.contains("Linked 5 records from 1 source(s)"), "{out}");
    let clusters = std::fs::read_to_string(ws.path("out/clusters.csv")).unwrap();
    let key = |id: &str| {
        clusters
            .lines()
            .find(|l| l.split(',').nth(1) == Some(id))
            .and_then(|l| l.split(',').nth(2))
            .unwrap()
            .to_string()
    };
    assert_eq!(key("1"), key("2"), "{clusters}");
    assert_ne!(key("3"), key("4"));
    assert_ne!(key("1"), key("5"));
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let ws = Workspace::new();
    let file = ws.write("p.csv", "id,first_name\n1,Ann\n");
    let out_dir = ws.path("out").to_string_lossy().into_owned();
    let err = ws.fails(&["link", &file, "--id-column", "nope", "--out", &out_dir]);
    assert!(err.contains("no column \"nope\""), "{err}");
    let err = ws.fails(&[
        "link",
        &file,
        "--id-column",
        "id",
        "--map",
        "first_name=shoe_size",
        "--out",
        &out_dir,
    ]);
    assert!(err.contains("'shoe_size' is not a field"), "{err}");
}
