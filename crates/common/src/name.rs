use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A zone of the lake. Each zone is a SQL schema and a folder `<lake>/<zone>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    /// Data as it arrived, with lineage columns.
    Raw,
    /// Cleaned, standardised and deduplicated data.
    Curated,
    /// Star schemas, KPIs and model outputs.
    Analytics,
}

impl Zone {
    /// Every zone, in data-flow order.
    pub const ALL: [Zone; 3] = [Zone::Raw, Zone::Curated, Zone::Analytics];

    /// The zone's SQL schema and folder name.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Raw => "raw",
            Zone::Curated => "curated",
            Zone::Analytics => "analytics",
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Zone {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(Zone::Raw),
            "curated" => Ok(Zone::Curated),
            "analytics" => Ok(Zone::Analytics),
            _ => Err(Error::UnknownZone(s.to_string())),
        }
    }
}

/// A table in a zone: `raw.claims`. Names are lower-case identifiers (`[a-z_][a-z0-9_]*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    /// The zone (SQL schema) the table lives in.
    pub zone: Zone,
    /// The table's name within the zone.
    pub name: String,
}

impl TableName {
    /// A table name, checking that `name` is a valid identifier.
    pub fn new(zone: Zone, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        validate_identifier(&name)?;
        Ok(Self { zone, name })
    }

    /// The folder of this table relative to the lake root: `raw/claims`.
    pub fn relative_path(&self) -> String {
        format!("{}/{}", self.zone, self.name)
    }
}

fn validate_identifier(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidTableName {
            name: name.to_string(),
            reason,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return invalid("the name is empty"),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return invalid("a name starts with a lower-case letter or '_'");
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return invalid("a name holds only lower-case letters, digits and '_'");
    }
    if name.len() > 128 {
        return invalid("a name is at most 128 characters");
    }
    Ok(())
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone, self.name)
    }
}

impl FromStr for TableName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let Some((zone, name)) = s.split_once('.') else {
            return Err(Error::InvalidTableName {
                name: s.to_string(),
                reason: "expected zone.table, e.g. raw.claims",
            });
        };
        let zone = zone.trim().trim_matches('"').parse()?;
        TableName::new(zone, name.trim().trim_matches('"').to_ascii_lowercase())
    }
}

/// Turns a free-form column header (`"Patient ID"`, `"DOB (mm/dd/yyyy)"`) into a snake_case
/// identifier (`patient_id`, `dob_mm_dd_yyyy`). Returns an empty string when nothing is left.
pub fn normalize_identifier(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut prev_lower_or_digit = false;
    for c in raw.trim().trim_start_matches('\u{feff}').chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower_or_digit && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            prev_lower_or_digit = false;
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_table_names() {
        let t: TableName = "RAW.claims".parse().unwrap();
        assert_eq!(t, TableName::new(Zone::Raw, "claims").unwrap());
        assert_eq!(t.relative_path(), "raw/claims");
        assert!("claims".parse::<TableName>().is_err());
        assert!("raw.Bad-Name".parse::<TableName>().is_err());
        assert!("lake.claims".parse::<TableName>().is_err());
    }

    #[test]
    fn normalizes_headers() {
        assert_eq!(normalize_identifier("Patient ID"), "patient_id");
        assert_eq!(normalize_identifier("patientId"), "patient_id");
        assert_eq!(
            normalize_identifier("\u{feff}DOB (mm/dd/yyyy)"),
            "dob_mm_dd_yyyy"
        );
        assert_eq!(normalize_identifier("2nd visit"), "_2nd_visit");
        assert_eq!(normalize_identifier("  --  "), "");
        assert_eq!(normalize_identifier("already_snake"), "already_snake");
    }
}
