use std::path::Path;
use std::str::FromStr;

use crate::{Error, Result};

/// An input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Delimited text with a header row (comma, tab, semicolon or pipe).
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }

    /// Tells the format from a file name, looking through `.gz` and `.zst`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = Compression::from_path(path).strip_suffix(&name);
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match ext {
            "csv" | "tsv" | "txt" | "psv" => Ok(Format::Csv),
            "ndjson" | "jsonl" | "json" => Ok(Format::Ndjson),
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(Error::UnknownFormat(path.to_path_buf())),
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" | "json" => Ok(Format::Ndjson),
            "parquet" => Ok(Format::Parquet),
            other => Err(format!("unknown format '{other}' (csv, ndjson or parquet)")),
        }
    }
}

/// Compression of an input file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn from_path(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".gz") || name.ends_with(".gzip") {
            Compression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    fn strip_suffix(self, name: &str) -> &str {
        match self {
            Compression::None => name,
            Compression::Gzip | Compression::Zstd => {
                name.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_names() {
        assert_eq!(
            Format::from_path(Path::new("a/claims.csv")).unwrap(),
            Format::Csv
        );
        assert_eq!(
            Format::from_path(Path::new("claims.CSV.gz")).unwrap(),
            Format::Csv
        );
        assert_eq!(
            Format::from_path(Path::new("v.ndjson.zst")).unwrap(),
            Format::Ndjson
        );
        assert_eq!(
            Format::from_path(Path::new("p.parquet")).unwrap(),
            Format::Parquet
        );
        assert!(Format::from_path(Path::new("notes.docx")).is_err());
    }
}
