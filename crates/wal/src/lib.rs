//! The write-ahead log of streamed events: numbered records in segment files, each written
//! and fsynced before its event is acknowledged, read back after a crash.
//!
//! A record is `[length u32][crc32 u32][sequence u64][payload]` (little-endian; the CRC covers
//! sequence and payload). Segments are named after their first sequence number
//! (`00000000000000000001.wal`) and rolled at a size; a segment whose every record reached the
//! lake is deleted. A torn record at the end of the last segment (the process died while
//! writing it, so it was never acknowledged) is cut off when the log is opened.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let (mut wal, replay) = carelake_wal::Wal::open(dir.path(), 1 << 20).unwrap();
//! assert!(replay.is_empty());
//! assert_eq!(wal.append(&[b"first".to_vec(), b"second".to_vec()]).unwrap(), 1);
//! drop(wal);
//! let (_, replay) = carelake_wal::Wal::open(dir.path(), 1 << 20).unwrap();
//! assert_eq!(replay[1].payload, b"second");
//! ```
//!
//! Its own crate (std and a CRC only) so that the record reader can be fuzzed without building
//! the lake.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Largest record payload (an event is capped well below this by the HTTP layer).
pub const MAX_PAYLOAD: u32 = 64 << 20;
/// Bytes before a record's payload.
pub const HEADER: usize = 16;

/// A failed file operation on the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or listing a segment failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (a path inside the log's folder, never event content).
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The result of log operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Its sequence number (1, 2, … over the life of the log).
    pub seq: u64,
    /// What was appended.
    pub payload: Vec<u8>,
}

/// An open log: appends go to the last segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    /// First sequence number of each segment, oldest first (the last one is open).
    segments: Vec<u64>,
    segment_bytes: u64,
    max_segment_bytes: u64,
    next_seq: u64,
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.wal"))
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Appends the records for `payloads`, numbered from `first_seq`, to `out`.
pub fn encode_records<P: AsRef<[u8]>>(first_seq: u64, payloads: &[P], out: &mut Vec<u8>) {
    // Not `(first_seq..)`: that range panics past u64::MAX (found by the read_wal fuzz target
    // on a record numbered u64::MAX); a log never gets there, and wrapping keeps this total.
    for (i, payload) in payloads.iter().enumerate() {
        let seq = first_seq.wrapping_add(i as u64);
        let payload = payload.as_ref();
        let seq_bytes = seq.to_le_bytes();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&seq_bytes);
        hasher.update(payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&hasher.finalize().to_le_bytes());
        out.extend_from_slice(&seq_bytes);
        out.extend_from_slice(payload);
    }
}

/// Reads records from the start of a segment's bytes; returns them and the length of the sound
/// prefix they came from. Reading stops at the first record that is incomplete, too long, fails
/// its checksum or does not follow on from the record before it; only an I/O error other than
/// the end of the input is an error.
pub fn read_records<R: Read>(reader: R) -> std::io::Result<(Vec<WalRecord>, u64)> {
    let mut reader = BufReader::new(reader);
    let mut records: Vec<WalRecord> = Vec::new();
    let mut sound = 0u64;
    loop {
        let mut header = [0u8; HEADER];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3, seq_bytes @ ..] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        let seq = u64::from_le_bytes(seq_bytes);
        if len > MAX_PAYLOAD
            || records
                .last()
                .is_some_and(|r| r.seq.checked_add(1) != Some(seq))
        {
            break;
        }
        // Read through `take` rather than into a buffer of the claimed size: a damaged length
        // costs no more memory than the bytes that are really there.
        let mut payload = Vec::new();
        match (&mut reader).take(u64::from(len)).read_to_end(&mut payload) {
            Ok(n) if n == len as usize => {}
            Ok(_) => break,
            Err(e) => return Err(e),
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&seq_bytes);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            break;
        }
        records.push(WalRecord { seq, payload });
        sound += (HEADER + len as usize) as u64;
    }
    Ok((records, sound))
}

/// Reads the records of one segment file.
fn read_segment(path: &Path) -> Result<(Vec<WalRecord>, u64)> {
    let file = File::open(path).map_err(io_error(format!("opening {}", path.display())))?;
    read_records(file).map_err(io_error(format!("reading {}", path.display())))
}

impl Wal {
    /// Opens (or starts) the log in the folder `dir`, which must exist, and returns every record
    /// in it, oldest first.
    pub fn open(dir: &Path, max_segment_bytes: u64) -> Result<(Self, Vec<WalRecord>)> {
        let mut segments: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io_error(format!("listing {}", dir.display())))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".wal")
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .collect();
        segments.sort_unstable();
        let mut records = Vec::new();
        let mut last_sound = 0u64;
        for (i, first) in segments.iter().enumerate() {
            let path = segment_path(dir, *first);
            let (mut read, sound) = read_segment(&path)?;
            let len = std::fs::metadata(&path)
                .map_err(io_error(format!("reading {}", path.display())))?
                .len();
            if sound < len {
                if i + 1 == segments.len() {
                    tracing::warn!(segment = %path.display(), cut = len - sound, "Cutting a torn record off the end of the write-ahead log.");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_error(format!("opening {}", path.display())))?;
                    f.set_len(sound)
                        .and_then(|()| f.sync_all())
                        .map_err(io_error(format!("truncating {}", path.display())))?;
                } else {
                    return Err(Error::Io {
                        context: format!("reading {}", path.display()),
                        source: std::io::Error::other(
                            "a damaged record in the middle of the write-ahead log",
                        ),
                    });
                }
            }
            last_sound = sound;
            records.append(&mut read);
        }
        let next_seq = records
            .last()
            .map_or_else(|| segments.last().copied().unwrap_or(1), |r| r.seq + 1);
        let (file, segment_bytes) = match segments.last() {
            Some(first) => {
                let path = segment_path(dir, *first);
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io_error(format!("opening {}", path.display())))?;
                (file, last_sound)
            }
            None => {
                segments.push(next_seq);
                (Self::create_segment(dir, next_seq)?, 0)
            }
        };
        Ok((
            Self {
                dir: dir.to_path_buf(),
                file,
                segments,
                segment_bytes,
                max_segment_bytes,
                next_seq,
            },
            records,
        ))
    }

    fn create_segment(dir: &Path, first: u64) -> Result<File> {
        let path = segment_path(dir, first);
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(io_error(format!("creating {}", path.display())))?;
        // The new name must survive a crash too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(file)
    }

    /// Appends payloads as consecutive records and fsyncs; returns the first sequence number.
    pub fn append(&mut self, payloads: &[Vec<u8>]) -> Result<u64> {
        if self.segment_bytes >= self.max_segment_bytes {
            self.file = Self::create_segment(&self.dir, self.next_seq)?;
            self.segments.push(self.next_seq);
            self.segment_bytes = 0;
        }
        let first = self.next_seq;
        let mut buffer = Vec::with_capacity(payloads.iter().map(|p| p.len() + HEADER).sum());
        encode_records(first, payloads, &mut buffer);
        self.next_seq += payloads.len() as u64;
        let path = segment_path(&self.dir, *self.segments.last().unwrap_or(&first));
        self.file
            .write_all(&buffer)
            .and_then(|()| self.file.sync_data())
            .map_err(io_error(format!("writing {}", path.display())))?;
        self.segment_bytes += buffer.len() as u64;
        Ok(first)
    }

    /// Deletes the segments whose every record has a sequence number up to `seq`.
    pub fn remove_through(&mut self, seq: u64) -> Result<()> {
        // A segment ends where the next begins; the open (last) one is kept.
        while self.segments.len() > 1 && self.segments[1] <= seq + 1 {
            let path = segment_path(&self.dir, self.segments[0]);
            std::fs::remove_file(&path)
                .map_err(io_error(format!("removing {}", path.display())))?;
            self.segments.remove(0);
        }
        Ok(())
    }

    /// Segment files kept.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(n: usize, tag: &str) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
    }

    #[test]
    fn records_survive_reopening_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, read) = Wal::open(dir.path(), 100).unwrap();
        assert!(read.is_empty());
        assert_eq!(wal.append(&payloads(3, "a")).unwrap(), 1);
        assert_eq!(wal.append(&payloads(2, "b")).unwrap(), 4);
        drop(wal);
        let (mut wal, read) = Wal::open(dir.path(), 100).unwrap();
        assert_eq!(
            read.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(read[3].payload, b"b-0");
        // Rolled segments; removing what reached the lake keeps the rest readable.
        for i in 0..20 {
            wal.append(&payloads(1, &format!("c{i}"))).unwrap();
        }
        assert!(wal.segment_count() > 2);
        wal.remove_through(10).unwrap();
        drop(wal);
        let (_, read) = Wal::open(dir.path(), 100).unwrap();
        assert!(read.first().unwrap().seq <= 11);
        assert_eq!(read.last().unwrap().seq, 25);
        // A torn last record (a crash mid-write) is cut off; the next append follows on.
        let last = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .max()
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let (mut wal, read) = Wal::open(dir.path(), 100).unwrap();
        assert_eq!(read.last().unwrap().seq, 25);
        assert_eq!(wal.append(&payloads(1, "d")).unwrap(), 26);
        drop(wal);
        let (_, read) = Wal::open(dir.path(), 100).unwrap();
        assert_eq!(read.last().unwrap().payload, b"d-0");
    }

    #[test]
    fn reading_stops_at_damage_and_keeps_the_sound_prefix() {
        let mut bytes = Vec::new();
        encode_records(7, &[b"one".as_slice(), b"two", b"three"], &mut bytes);
        let whole = bytes.len() as u64;
        let (records, sound) = read_records(bytes.as_slice()).unwrap();
        assert_eq!(sound, whole);
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [7, 8, 9]);

        // A flipped payload byte in the second record: only the first survives.
        let mut damaged = bytes.clone();
        damaged[HEADER + 3 + HEADER] ^= 0xff;
        let (records, sound) = read_records(damaged.as_slice()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(sound, (HEADER + 3) as u64);

        // A length claiming far more than is there costs nothing and ends the read.
        let mut huge = bytes[..HEADER + 3].to_vec();
        huge.extend_from_slice(&(MAX_PAYLOAD).to_le_bytes());
        huge.extend_from_slice(&[0; 12]);
        let (records, _) = read_records(huge.as_slice()).unwrap();
        assert_eq!(records.len(), 1);

        // The last sequence number there is (a fuzzing find: encoding it panicked).
        let mut last = Vec::new();
        encode_records(u64::MAX, &[b"end"], &mut last);
        let (records, _) = read_records(last.as_slice()).unwrap();
        assert_eq!(records[0].seq, u64::MAX);

        // A record that does not follow on (a sequence gap) ends the sound prefix.
        let mut gap = bytes[..HEADER + 3].to_vec();
        encode_records(20, &[b"late"], &mut gap);
        let (records, sound) = read_records(gap.as_slice()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(sound, (HEADER + 3) as u64);
    }
}
