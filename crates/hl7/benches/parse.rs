//! Parse throughput on the shared Microsoft sample messages (`cargo bench -p carelake-hl7`):
//! messages/s and MB/s for a full parse (every segment's fields indexed, every component of
//! every field split, as python-hl7 builds its tree) and for parse plus typed extraction.
//! Compare with `scripts/bench_python_hl7.py` on the same messages.

use std::time::{Duration, Instant};

use carelake_hl7::Message;

fn main() {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/hl7v2/microsoft-fhir-converter"
    ));
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("skipped: {} is absent (shared test data)", dir.display());
        return;
    };
    let mut messages: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("hl7"))
        .map(|p| {
            // The same normalisation as the Python script: CR segment separators.
            let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
            text.trim_start_matches('\u{feff}')
                .replace("\r\n", "\r")
                .replace('\n', "\r")
        })
        .collect();
    messages.sort();
    let bytes: usize = messages.iter().map(String::len).sum();
    println!(
        "{} messages, {:.1} KB each on average",
        messages.len(),
        bytes as f64 / messages.len() as f64 / 1e3
    );

    let run = |name: &str, work: &dyn Fn(&str) -> usize| {
        let mut rounds = 0u64;
        let mut sink = 0usize;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            for m in &messages {
                sink = sink.wrapping_add(work(m));
            }
            rounds += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let count = rounds as f64 * messages.len() as f64;
        println!(
            "{name:<28} {:>12.0} messages/s {:>9.1} MB/s   (checksum {sink})",
            count / secs,
            rounds as f64 * bytes as f64 / 1e6 / secs
        );
    };
    run("parse (all components)", &|m| {
        let message = Message::parse(m).expect("sample parses");
        message.segments().map(|s| s.components()).sum()
    });
    run("parse + extract", &|m| {
        let message = Message::parse(m).expect("sample parses");
        let e = message.extract();
        e.observations.len() + e.diagnoses.len() + e.patient.map_or(0, |p| p.identifiers.len())
    });
}
