//! UCUM units for vital signs and common labs: the usual ways units are written mapped to their
//! UCUM codes, and conversions between units of one kind. Mass and molar concentrations convert
//! for the analytes whose molar mass is known here (glucose, creatinine, cholesterol,
//! triglycerides, urea nitrogen), named by LOINC code or name.

/// The UCUM code for a unit as commonly written (`°F` → `[degF]`, `lbs` → `[lb_av]`,
/// `mg/dl` → `mg/dL`), or `None` when the unit is unknown here.
pub fn code(unit: &str) -> Option<&'static str> {
    let key: String = unit
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match key.as_str() {
        "cel" | "°c" | "degc" | "c" | "celsius" | "[degc]" => "Cel",
        "[degf]" | "°f" | "degf" | "f" | "fahrenheit" => "[degF]",
        "k" | "kelvin" => "K",
        "kg" | "kilogram" | "kilograms" | "kgs" => "kg",
        "g" | "gram" | "grams" => "g",
        "mg" | "milligram" | "milligrams" => "mg",
        "ug" | "µg" | "mcg" | "microgram" | "micrograms" => "ug",
        "[lb_av]" | "lb" | "lbs" | "pound" | "pounds" => "[lb_av]",
        "[oz_av]" | "oz" | "ounce" | "ounces" => "[oz_av]",
        "m" | "meter" | "meters" | "metre" | "metres" => "m",
        "cm" | "centimeter" | "centimeters" => "cm",
        "mm" | "millimeter" | "millimeters" => "mm",
        "[in_i]" | "in" | "inch" | "inches" | "\"" => "[in_i]",
        "[ft_i]" | "ft" | "foot" | "feet" => "[ft_i]",
        "mm[hg]" | "mmhg" | "mmofhg" => "mm[Hg]",
        "kpa" => "kPa",
        "/min" | "bpm" | "beats/min" | "{beats}/min" | "breaths/min" | "{breaths}/min"
        | "/minute" | "permin" => "/min",
        "%" | "percent" | "pct" => "%",
        "mg/dl" => "mg/dL",
        "g/dl" => "g/dL",
        "g/l" => "g/L",
        "mg/l" => "mg/L",
        "ug/ml" | "mcg/ml" | "µg/ml" => "ug/mL",
        "ng/ml" => "ng/mL",
        "pg/ml" => "pg/mL",
        "mmol/l" | "mm/l" => "mmol/L",
        "umol/l" | "µmol/l" | "micromol/l" => "umol/L",
        "meq/l" => "meq/L",
        "10*3/ul" | "k/ul" | "x10^3/ul" | "10^3/ul" | "thou/ul" => "10*3/uL",
        "10*6/ul" | "m/ul" | "x10^6/ul" | "10^6/ul" => "10*6/uL",
        "s" | "sec" | "second" | "seconds" => "s",
        "min" | "minute" | "minutes" => "min",
        "h" | "hr" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        _ => return None,
    })
}

/// What a unit measures, and its factor to the kind's base unit (affine for temperatures).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Temperature,
    Mass(f64),
    Length(f64),
    Pressure(f64),
    /// Mass per volume, factor to g/L.
    MassConcentration(f64),
    /// Amount per volume, factor to mol/L.
    MolarConcentration(f64),
    Time(f64),
    Same,
}

fn kind(code: &str) -> Option<Kind> {
    Some(match code {
        "Cel" | "[degF]" | "K" => Kind::Temperature,
        "kg" => Kind::Mass(1000.0),
        "g" => Kind::Mass(1.0),
        "mg" => Kind::Mass(1e-3),
        "ug" => Kind::Mass(1e-6),
        "[lb_av]" => Kind::Mass(453.592_37),
        "[oz_av]" => Kind::Mass(28.349_523_125),
        "m" => Kind::Length(1.0),
        "cm" => Kind::Length(0.01),
        "mm" => Kind::Length(0.001),
        "[in_i]" => Kind::Length(0.0254),
        "[ft_i]" => Kind::Length(0.3048),
        "mm[Hg]" => Kind::Pressure(0.133_322_387_415),
        "kPa" => Kind::Pressure(1.0),
        "g/L" => Kind::MassConcentration(1.0),
        "g/dL" => Kind::MassConcentration(10.0),
        "mg/dL" => Kind::MassConcentration(0.01),
        "mg/L" => Kind::MassConcentration(0.001),
        "ug/mL" => Kind::MassConcentration(0.001),
        "ng/mL" => Kind::MassConcentration(1e-6),
        "pg/mL" => Kind::MassConcentration(1e-9),
        "mmol/L" => Kind::MolarConcentration(1e-3),
        "umol/L" => Kind::MolarConcentration(1e-6),
        "s" => Kind::Time(1.0),
        "min" => Kind::Time(60.0),
        "h" => Kind::Time(3600.0),
        "d" => Kind::Time(86_400.0),
        "/min" | "%" | "meq/L" | "10*3/uL" | "10*6/uL" => Kind::Same,
        _ => return None,
    })
}

/// Molar mass (g/mol) of an analyte named by LOINC code or name.
fn molar_mass(analyte: &str) -> Option<f64> {
    let a = analyte.trim().to_ascii_lowercase();
    Some(match a.as_str() {
        // Glucose in serum/plasma, blood, by meter, fasting.
        "glucose" | "2345-7" | "2339-0" | "15074-8" | "41653-7" | "1558-6" => 180.156,
        "creatinine" | "2160-0" | "38483-4" | "14682-9" => 113.12,
        "cholesterol" | "2093-3" | "2085-9" | "13457-7" | "18262-6" => 386.65,
        "triglycerides" | "triglyceride" | "2571-8" => 885.7,
        // Urea nitrogen is reported as nitrogen (2 N per urea).
        "urea nitrogen" | "bun" | "3094-0" => 28.014,
        _ => return None,
    })
}

fn to_kelvin(value: f64, code: &str) -> f64 {
    match code {
        "Cel" => value + 273.15,
        "[degF]" => (value - 32.0) * 5.0 / 9.0 + 273.15,
        _ => value,
    }
}

fn from_kelvin(kelvin: f64, code: &str) -> f64 {
    match code {
        "Cel" => kelvin - 273.15,
        "[degF]" => (kelvin - 273.15) * 9.0 / 5.0 + 32.0,
        _ => kelvin,
    }
}

/// `value` in unit `from` expressed in unit `to` (units as commonly written or UCUM codes);
/// `analyte` (a LOINC code or name) lets mass and molar concentrations convert. Why not,
/// otherwise.
pub fn convert(value: f64, from: &str, to: &str, analyte: Option<&str>) -> Result<f64, String> {
    let from_code = code(from).ok_or_else(|| format!("unknown unit {from:?}"))?;
    let to_code = code(to).ok_or_else(|| format!("unknown unit {to:?}"))?;
    if from_code == to_code {
        return Ok(value);
    }
    let (Some(a), Some(b)) = (kind(from_code), kind(to_code)) else {
        return Err(format!("no conversion from {from_code} to {to_code}"));
    };
    let mismatch = || format!("{from_code} and {to_code} measure different things");
    Ok(match (a, b) {
        (Kind::Temperature, Kind::Temperature) => from_kelvin(to_kelvin(value, from_code), to_code),
        (Kind::Mass(x), Kind::Mass(y))
        | (Kind::Length(x), Kind::Length(y))
        | (Kind::Pressure(x), Kind::Pressure(y))
        | (Kind::MassConcentration(x), Kind::MassConcentration(y))
        | (Kind::MolarConcentration(x), Kind::MolarConcentration(y))
        | (Kind::Time(x), Kind::Time(y)) => value * x / y,
        (Kind::MassConcentration(x), Kind::MolarConcentration(y)) => {
            let mass = analyte
                .and_then(molar_mass)
                .ok_or_else(|| format!("{from_code} to {to_code} needs a known analyte"))?;
            value * x / mass / y
        }
        (Kind::MolarConcentration(x), Kind::MassConcentration(y)) => {
            let mass = analyte
                .and_then(molar_mass)
                .ok_or_else(|| format!("{from_code} to {to_code} needs a known analyte"))?;
            value * x * mass / y
        }
        _ => return Err(mismatch()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn conversions() {
        assert!(close(convert(98.6, "°F", "Cel", None).unwrap(), 37.0));
        assert!(close(convert(37.0, "C", "degF", None).unwrap(), 98.6));
        assert!(close(
            convert(154.0, "lbs", "kg", None).unwrap(),
            69.853_224_98
        ));
        assert!(close(convert(70.0, "in", "cm", None).unwrap(), 177.8));
        assert!(close(
            convert(120.0, "mmHg", "kPa", None).unwrap(),
            15.998_686_49
        ));
        // Glucose 100 mg/dL = 5.55 mmol/L.
        assert!(close(
            convert(100.0, "mg/dl", "mmol/L", Some("2345-7")).unwrap(),
            5.550_744_9
        ));
        assert!(close(
            convert(5.550_744_9, "mmol/L", "mg/dL", Some("glucose")).unwrap(),
            100.0
        ));
        // Creatinine 1 mg/dL = 88.4 umol/L.
        assert!(close(
            convert(1.0, "mg/dL", "umol/L", Some("creatinine")).unwrap(),
            88.401_697_3
        ));
        assert!(convert(100.0, "mg/dL", "mmol/L", None).is_err());
        assert!(convert(1.0, "kg", "cm", None).is_err());
        assert!(convert(1.0, "furlong", "m", None).is_err());
        assert_eq!(code("BPM"), Some("/min"));
        assert!(close(convert(1000.0, "pg/mL", "ng/mL", None).unwrap(), 1.0));
    }
}
