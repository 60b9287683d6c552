//! The HOSPITAL score for potentially avoidable 30-day readmissions: Donzé et al., "Potentially
//! avoidable 30-day hospital readmissions in medical patients: derivation and validation of a
//! prediction model", JAMA Intern Med 2013;173:632–8, table 3.
//!
//! | Component | Value | Points |
//! |---|---|---|
//! | **H**emoglobin at discharge | < 12 g/dL | 1 |
//! | Discharge from an **O**ncology service | yes | 2 |
//! | **S**odium at discharge | < 135 mmol/L | 1 |
//! | **P**rocedure during the stay (any coded procedure) | yes | 1 |
//! | **I**ndex admission type | urgent or emergent | 1 |
//! | Hospital admissions in the previous 12 months (**T**) | 0–1 · 2–5 · > 5 | 0 · 2 · 5 |
//! | **L**ength of stay | ≥ 5 days | 2 |
//!
//! The total is 0–13; the paper's risk classes are low 0–4, intermediate 5–6, high ≥ 7.

/// The HOSPITAL score, 0–13.
pub fn score(
    hemoglobin_g_dl: f64,
    oncology: bool,
    sodium_mmol_l: f64,
    procedure: bool,
    urgent: bool,
    admissions_12m: u32,
    los_days: f64,
) -> u32 {
    u32::from(hemoglobin_g_dl < 12.0)
        + 2 * u32::from(oncology)
        + u32::from(sodium_mmol_l < 135.0)
        + u32::from(procedure)
        + u32::from(urgent)
        + admission_points(admissions_12m)
        + 2 * u32::from(los_days >= 5.0)
}

/// Points for the hospital admissions of the previous twelve months.
pub fn admission_points(admissions_12m: u32) -> u32 {
    match admissions_12m {
        0..=1 => 0,
        2..=5 => 2,
        _ => 5,
    }
}

/// A HOSPITAL risk class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// 0–4 (5.8% readmitted in the derivation cohort).
    Low,
    /// 5–6 (11.9%).
    Intermediate,
    /// 7 and above (22.8%).
    High,
}

impl Band {
    /// The class's name in SQL results.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Intermediate => "intermediate",
            Band::High => "high",
        }
    }
}

/// The risk class of a HOSPITAL score.
pub fn band(score: u32) -> Band {
    match score {
        0..=4 => Band::Low,
        5..=6 => Band::Intermediate,
        _ => Band::High,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_at_its_edge() {
        let base = |hb, onc, na, proc, urgent, adm, los| score(hb, onc, na, proc, urgent, adm, los);
        assert_eq!(base(12.0, false, 135.0, false, false, 1, 4.9), 0);
        assert_eq!(base(11.99, false, 135.0, false, false, 1, 4.9), 1);
        assert_eq!(base(12.0, true, 135.0, false, false, 1, 4.9), 2);
        assert_eq!(base(12.0, false, 134.9, false, false, 1, 4.9), 1);
        assert_eq!(base(12.0, false, 135.0, true, false, 1, 4.9), 1);
        assert_eq!(base(12.0, false, 135.0, false, true, 1, 4.9), 1);
        assert_eq!(base(12.0, false, 135.0, false, false, 2, 4.9), 2);
        assert_eq!(base(12.0, false, 135.0, false, false, 5, 4.9), 2);
        assert_eq!(base(12.0, false, 135.0, false, false, 6, 4.9), 5);
        assert_eq!(base(12.0, false, 135.0, false, false, 0, 5.0), 2);
        assert_eq!(base(8.0, true, 120.0, true, true, 9, 20.0), 13);
    }

    #[test]
    fn bands() {
        assert_eq!(band(4), Band::Low);
        assert_eq!(band(5), Band::Intermediate);
        assert_eq!(band(6), Band::Intermediate);
        assert_eq!(band(7), Band::High);
    }
}
