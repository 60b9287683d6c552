//! The clinical formats, and telling them from a file's first bytes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::reader::open_decompressed;
use crate::{Error, Result};

/// A clinical message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClinicalFormat {
    /// HL7 v2 messages, single or in FHS/BHS batches.
    Hl7,
    /// FHIR R4 JSON: Bundles, single resources, or bulk-export NDJSON.
    Fhir,
    /// X12 837 claims (professional and institutional).
    X12,
}

impl ClinicalFormat {
    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClinicalFormat::Hl7 => "hl7",
            ClinicalFormat::Fhir => "fhir",
            ClinicalFormat::X12 => "x12",
        }
    }

    /// Tells a clinical format from the start of a file's content: `MSH`/`FHS`/`BHS` is HL7 v2;
    /// a JSON object with a `resourceType` before its first line ends (a Bundle, a resource or
    /// an NDJSON line) is FHIR. `None` for anything else.
    /// The format of the first file, in order, that has one.
    pub fn sniff_first(paths: &[PathBuf]) -> Result<Option<Self>> {
        for path in paths {
            if let Some(format) = Self::sniff(path)? {
                return Ok(Some(format));
            }
        }
        Ok(None)
    }

    /// The clinical format of one file, from its first 4 KB.
    pub fn sniff(path: &Path) -> Result<Option<Self>> {
        let mut reader = open_decompressed(path, None)?;
        let mut head = vec![0u8; 4096];
        let mut filled = 0;
        while filled < head.len() {
            let n = reader
                .read(&mut head[filled..])
                .map_err(|source| Error::ReadFile {
                    path: path.to_path_buf(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        head.truncate(filled);
        Ok(Self::sniff_bytes(&head))
    }

    fn sniff_bytes(head: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(head);
        let text = text.trim_start_matches('\u{feff}').trim_start();
        if text.starts_with("MSH") || text.starts_with("FHS") || text.starts_with("BHS") {
            return Some(ClinicalFormat::Hl7);
        }
        // X12 starts with ISA; a file starting with a GS or ST segment is X12 that lost its
        // interchange header, and is loaded so that the parser can refuse it with the reason.
        if carelake_x12::sniff(head) || text.starts_with("GS*") || text.starts_with("ST*837*") {
            return Some(ClinicalFormat::X12);
        }
        if text.starts_with('{') {
            // FHIR writers put `resourceType` first, or near it; look in the first 4 KB.
            if text.contains("\"resourceType\"") {
                return Some(ClinicalFormat::Fhir);
            }
        }
        None
    }
}

impl FromStr for ClinicalFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "hl7" | "hl7v2" => Ok(ClinicalFormat::Hl7),
            "fhir" | "ndjson-fhir" => Ok(ClinicalFormat::Fhir),
            "x12" | "837" => Ok(ClinicalFormat::X12),
            other => Err(format!(
                "unknown clinical format '{other}' (hl7, fhir, x12)"
            )),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn sniffs_formats() {
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"\xef\xbb\xbfMSH|^~\\&|"),
            Some(ClinicalFormat::Hl7)
        );
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"FHS|^~\\&"),
            Some(ClinicalFormat::Hl7)
        );
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"ISA*00*"),
            Some(ClinicalFormat::X12)
        );
        assert_eq!(ClinicalFormat::sniff_bytes(b"ISAAC,NEWTON"), None);
        assert_eq!(
            ClinicalFormat::sniff_bytes(br#"{"resourceType":"Bundle","type":"batch"}"#),
            Some(ClinicalFormat::Fhir)
        );
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"  {\"id\": 1, \"resourceType\": \"Patient\"}\n{"),
            Some(ClinicalFormat::Fhir)
        );
        assert_eq!(ClinicalFormat::sniff_bytes(br#"{"a": 1}"#), None);
        assert_eq!(ClinicalFormat::sniff_bytes(b"a,b,c\n1,2,3"), None);
    }
}
