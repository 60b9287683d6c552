//! The person attributes the linker understands, the column names it recognises for them, and
//! how each is normalised before comparison.

use std::fmt;

/// A person attribute the linker compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Given name.
    FirstName,
    /// Middle name or initial.
    MiddleName,
    /// Family name.
    LastName,
    /// Date of birth.
    BirthDate,
    /// Administrative sex.
    Sex,
    /// A national identifier: SSN, Medicare number, NHS number.
    NationalId,
    /// House number.
    StreetNumber,
    /// Street name (with the house number when no separate field is given).
    Street,
    /// Second address line: unit, building, locality.
    Locality,
    /// City, town or suburb.
    City,
    /// ZIP or postcode.
    Zip,
    /// State or province.
    State,
    /// Telephone number.
    Phone,
    /// E-mail address.
    Email,
}

impl Field {
    /// Every field, in comparison order.
    pub const ALL: [Field; 14] = [
        Field::FirstName,
        Field::MiddleName,
        Field::LastName,
        Field::BirthDate,
        Field::Sex,
        Field::NationalId,
        Field::StreetNumber,
        Field::Street,
        Field::Locality,
        Field::City,
        Field::Zip,
        Field::State,
        Field::Phone,
        Field::Email,
    ];

    /// The canonical column name (`first_name`, `birth_date`…).
    pub fn name(self) -> &'static str {
        match self {
            Field::FirstName => "first_name",
            Field::MiddleName => "middle_name",
            Field::LastName => "last_name",
            Field::BirthDate => "birth_date",
            Field::Sex => "sex",
            Field::NationalId => "national_id",
            Field::StreetNumber => "street_number",
            Field::Street => "street",
            Field::Locality => "locality",
            Field::City => "city",
            Field::Zip => "zip",
            Field::State => "state",
            Field::Phone => "phone",
            Field::Email => "email",
        }
    }

    /// The field a column name stands for: canonical names and common synonyms, any case,
    /// spaces, dashes and underscores ignored.
    pub fn from_column(column: &str) -> Option<Field> {
        let key: String = column
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(match key.as_str() {
            "firstname" | "givenname" | "forename" | "first" | "given" | "fname" => {
                Field::FirstName
            }
            "middlename" | "middle" | "middleinitial" => Field::MiddleName,
            "lastname" | "surname" | "familyname" | "last" | "family" | "lname" => Field::LastName,
            "birthdate" | "dateofbirth" | "dob" | "birthday" | "birthtime" => Field::BirthDate,
            "sex" | "gender" | "administrativegender" => Field::Sex,
            "nationalid"
            | "ssn"
            | "socsecid"
            | "socialsecuritynumber"
            | "nhsnumber"
            | "medicarenumber" => Field::NationalId,
            "streetnumber" | "housenumber" | "streetno" => Field::StreetNumber,
            "street" | "address" | "address1" | "addressline1" | "streetaddress"
            | "addressline" => Field::Street,
            "locality" | "address2" | "addressline2" => Field::Locality,
            "city" | "suburb" | "town" => Field::City,
            "zip" | "zipcode" | "postcode" | "postalcode" => Field::Zip,
            "state" | "province" | "region" => Field::State,
            "phone" | "phonenumber" | "telephone" | "tel" | "homephone" => Field::Phone,
            "email" | "emailaddress" => Field::Email,
            _ => return None,
        })
    }

    /// The normalised form compared by the linker; empty means missing.
    pub fn normalize(self, raw: &str) -> String {
        let raw = raw.trim();
        match self {
            Field::FirstName | Field::MiddleName | Field::LastName => name(raw),
            Field::BirthDate => date(raw),
            Field::Sex => sex(raw),
            Field::NationalId | Field::Phone => {
                let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
                if self == Field::Phone && digits.len() == 11 && digits.starts_with('1') {
                    digits[1..].to_string()
                } else if digits.bytes().all(|b| b == b'0') {
                    String::new()
                } else {
                    digits
                }
            }
            Field::Zip => {
                let digits: String = raw.chars().filter(char::is_ascii_alphanumeric).collect();
                let digits = digits.to_ascii_lowercase();
                // ZIP+4 compares on the five-digit ZIP.
                if digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit()) {
                    digits[..5].to_string()
                } else {
                    digits
                }
            }
            Field::StreetNumber => raw
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            Field::Street | Field::Locality => address(raw),
            Field::City | Field::State => words(raw),
            Field::Email => raw.to_lowercase(),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Lower case letters and single spaces; hyphens and apostrophes dropped (`O'Neil` = `oneil`).
fn name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut space = false;
    for c in raw.chars() {
        if c.is_alphabetic() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else if c.is_whitespace() || c == '.' || c == ',' {
            space = true;
        }
    }
    out
}

fn words(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for word in raw
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word.to_lowercase());
    }
    out
}

/// Words in lower case with the usual street-type abbreviations written out.
fn address(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for word in words(raw).split(' ').filter(|w| !w.is_empty()) {
        let full = match word {
            "st" | "str" => "street",
            "ave" | "av" => "avenue",
            "rd" => "road",
            "dr" => "drive",
            "ln" => "lane",
            "blvd" => "boulevard",
            "ct" => "court",
            "pl" => "place",
            "cres" => "crescent",
            "cct" | "cir" => "circuit",
            "hwy" => "highway",
            "pde" => "parade",
            "tce" => "terrace",
            "pkwy" => "parkway",
            "apt" => "apartment",
            other => other,
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(full);
    }
    out
}

/// Splits a leading house number off an address line: `12 Main St` → (`12`, `main street`).
pub(crate) fn split_house_number(street: &str) -> (&str, &str) {
    match street.split_once(' ') {
        Some((first, rest)) if first.bytes().next().is_some_and(|b| b.is_ascii_digit()) => {
            (first, rest)
        }
        _ => ("", street),
    }
}

/// `YYYYMMDD` from ISO (`1980-03-07`, with or without a time), compact, US (`03/07/1980`) and
/// European dotted (`07.03.1980`) forms; other digit strings are kept as they are so that a
/// corrupted date still compares by edit distance.
fn date(raw: &str) -> String {
    let raw = raw.split(['T', ' ']).next().unwrap_or("");
    let parts: Vec<&str> = raw
        .split(['-', '/', '.'])
        .filter(|p| !p.is_empty())
        .collect();
    let pad = |s: &str| format!("{s:0>2}");
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() <= 2 && d.len() <= 2 => {
            format!("{y}{}{}", pad(m), pad(d))
        }
        [m, d, y] if y.len() == 4 && raw.contains('/') => format!("{y}{}{}", pad(m), pad(d)),
        [d, m, y] if y.len() == 4 => format!("{y}{}{}", pad(m), pad(d)),
        _ => raw.chars().filter(char::is_ascii_digit).collect(),
    }
}

fn sex(raw: &str) -> String {
    match raw.to_ascii_lowercase().as_str() {
        "m" | "male" | "man" => "m".into(),
        "f" | "female" | "woman" => "f".into(),
        // Unknown, other and blank say nothing about identity.
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_synonyms() {
        assert_eq!(Field::from_column("Given Name"), Some(Field::FirstName));
        assert_eq!(Field::from_column("soc_sec_id"), Some(Field::NationalId));
        assert_eq!(Field::from_column("postcode"), Some(Field::Zip));
        assert_eq!(Field::from_column("DOB"), Some(Field::BirthDate));
        assert_eq!(Field::from_column("rec_id"), None);
    }

    #[test]
    fn normalisation() {
        assert_eq!(Field::LastName.normalize(" O'Neil-SMITH "), "oneilsmith");
        assert_eq!(Field::FirstName.normalize("Mary  Ann"), "mary ann");
        assert_eq!(Field::BirthDate.normalize("1980-03-07"), "19800307");
        assert_eq!(Field::BirthDate.normalize("3/7/1980"), "19800307");
        assert_eq!(Field::BirthDate.normalize("07.03.1980"), "19800307");
        assert_eq!(Field::BirthDate.normalize("19800307"), "19800307");
        assert_eq!(
            Field::BirthDate.normalize("1980-03-07T00:00:00"),
            "19800307"
        );
        assert_eq!(Field::Phone.normalize("+1 (503) 555-0100"), "5035550100");
        assert_eq!(Field::NationalId.normalize("912-70-1234"), "912701234");
        assert_eq!(Field::NationalId.normalize("000-00-0000"), "");
        assert_eq!(Field::Zip.normalize("97201-1234"), "97201");
        assert_eq!(Field::Street.normalize("12 Main St."), "12 main street");
        assert_eq!(Field::Sex.normalize("Female"), "f");
        assert_eq!(Field::Sex.normalize("U"), "");
        assert_eq!(split_house_number("12 main street"), ("12", "main street"));
        assert_eq!(split_house_number("main street"), ("", "main street"));
    }
}
