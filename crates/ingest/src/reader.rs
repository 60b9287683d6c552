//! Opening input files: expanding files, folders and globs, decompressing `.gz`/`.zst`, hashing
//! the content, counting bytes for progress, and spotting binary files.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::format::Compression;
use crate::load::Progress;
use crate::{Error, Result};

/// Expands files, folders (their files, recursively, skipping hidden ones) and glob patterns into
/// a sorted list without duplicates.
pub fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if path.is_dir() {
            collect_dir(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.to_path_buf());
        } else if input.contains(['*', '?', '[']) {
            let matches = glob::glob(input).map_err(|e| Error::Pattern {
                pattern: input.clone(),
                reason: e.to_string(),
            })?;
            for entry in matches {
                let entry = entry.map_err(|e| Error::ReadFile {
                    path: e.path().to_path_buf(),
                    source: io::Error::other(e.to_string()),
                })?;
                if entry.is_file() {
                    files.push(entry);
                }
            }
        } else {
            return Err(Error::ReadFile {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(Error::NoInput(inputs.join(" ")));
    }
    Ok(files)
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let read_err = |source| Error::ReadFile {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with(['.', '_']);
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Hashes (SHA-256) everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left and returns the hex digest and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Reports bytes read from the file on disk to the progress callback.
struct ProgressReader<R> {
    inner: R,
    progress: Option<Arc<dyn Progress>>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(progress) = &self.progress {
            progress.bytes_read(n as u64);
        }
        Ok(n)
    }
}

/// Opens a file for reading its decompressed content.
pub(crate) fn open_decompressed(
    path: &Path,
    progress: Option<Arc<dyn Progress>>,
) -> Result<Box<dyn Read + Send>> {
    let read_err = |source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let raw = BufReader::with_capacity(
        256 * 1024,
        ProgressReader {
            inner: file,
            progress,
        },
    );
    Ok(match Compression::from_path(path) {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(raw).map_err(read_err)?)
        }
    })
}
