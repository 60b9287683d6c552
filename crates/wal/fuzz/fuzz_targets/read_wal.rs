#![no_main]
//! Any bytes as a write-ahead log segment, read as the log reads one after a crash: the reader
//! must stop at the first unsound record without panicking or allocating what a damaged length
//! claims, and what it keeps must be exactly the records that encode to the sound prefix.

use carelake_wal::{HEADER, encode_records, read_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (records, sound) = read_records(data).expect("reading from memory cannot fail");
    assert!(sound as usize <= data.len());
    assert_eq!(
        sound as usize,
        records.iter().map(|r| HEADER + r.payload.len()).sum::<usize>()
    );
    for pair in records.windows(2) {
        assert_eq!(pair[0].seq + 1, pair[1].seq, "sequence numbers follow on");
    }
    if let Some(first) = records.first() {
        let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
        let mut encoded = Vec::new();
        encode_records(first.seq, &payloads, &mut encoded);
        assert_eq!(encoded.as_slice(), &data[..sound as usize], "records re-encode to the prefix");
    }
    // Appending good records after the sound prefix is what the log does after cutting a torn
    // tail: they must all read back.
    let mut healed = data[..sound as usize].to_vec();
    let next = records.last().map_or(1, |r| r.seq.saturating_add(1));
    if next < u64::MAX - 2 {
        encode_records(next, &[b"after".as_slice(), b""], &mut healed);
        let (again, _) = read_records(healed.as_slice()).expect("reading from memory");
        assert_eq!(again.len(), records.len() + 2);
    }
});
