//! The LACE index for death or unplanned readmission within 30 days of discharge: van Walraven
//! et al., "Derivation and validation of an index to predict early death or unplanned
//! readmission after discharge from hospital to the community", CMAJ 2010;182:551–7, table 3.
//!
//! | Component | Value | Points |
//! |---|---|---|
//! | **L**ength of stay (days) | < 1 · 1 · 2 · 3 · 4–6 · 7–13 · ≥ 14 | 0 · 1 · 2 · 3 · 4 · 5 · 7 |
//! | **A**cute (emergent) admission | yes | 3 |
//! | **C**harlson comorbidity index | 0 · 1 · 2 · 3 · ≥ 4 | 0 · 1 · 2 · 3 · 5 |
//! | **E**mergency department visits in the previous 6 months | 0 · 1 · 2 · 3 · ≥ 4 | 0 · 1 · 2 · 3 · 4 |
//!
//! The total is 0–19. The bands are those commonly used with it (and by carelake's worklist):
//! low 0–4, moderate 5–9, high ≥ 10.

/// Points for the length of stay in days (a fraction of a day counts as less than one day
/// only below 1; 1.5 days is a stay of 1 day).
pub fn length_points(los_days: f64) -> u32 {
    if los_days.is_nan() || los_days < 1.0 {
        return 0;
    }
    match los_days.floor() as u64 {
        1 => 1,
        2 => 2,
        3 => 3,
        4..=6 => 4,
        7..=13 => 5,
        _ => 7,
    }
}

/// Points for an acute (emergent) admission.
pub fn acuity_points(emergent: bool) -> u32 {
    if emergent { 3 } else { 0 }
}

/// Points for the Charlson comorbidity index.
pub fn comorbidity_points(charlson: u32) -> u32 {
    if charlson >= 4 { 5 } else { charlson }
}

/// Points for emergency department visits in the previous six months.
pub fn emergency_points(ed_visits_6m: u32) -> u32 {
    ed_visits_6m.min(4)
}

/// The LACE index, 0–19.
pub fn score(los_days: f64, emergent: bool, charlson: u32, ed_visits_6m: u32) -> u32 {
    length_points(los_days)
        + acuity_points(emergent)
        + comorbidity_points(charlson)
        + emergency_points(ed_visits_6m)
}

/// A LACE risk band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// 0–4.
    Low,
    /// 5–9.
    Moderate,
    /// 10 and above.
    High,
}

impl Band {
    /// The band's name in SQL results.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Moderate => "moderate",
            Band::High => "high",
        }
    }
}

/// The band of a LACE score.
pub fn band(score: u32) -> Band {
    match score {
        0..=4 => Band::Low,
        5..=9 => Band::Moderate,
        _ => Band::High,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_band_edge() {
        let cases = [
            (0.0, 0),
            (0.99, 0),
            (1.0, 1),
            (1.9, 1),
            (2.0, 2),
            (3.0, 3),
            (4.0, 4),
            (6.9, 4),
            (7.0, 5),
            (13.0, 5),
            (14.0, 7),
            (90.0, 7),
            (f64::NAN, 0),
        ];
        for (days, points) in cases {
            assert_eq!(length_points(days), points, "{days}");
        }
    }

    #[test]
    fn comorbidity_and_visits_cap() {
        assert_eq!(
            (0..7).map(comorbidity_points).collect::<Vec<_>>(),
            [0, 1, 2, 3, 5, 5, 5]
        );
        assert_eq!(
            (0..7).map(emergency_points).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 4, 4]
        );
    }

    #[test]
    fn totals_and_bands() {
        assert_eq!(score(0.5, false, 0, 0), 0);
        assert_eq!(score(30.0, true, 6, 9), 19);
        assert_eq!(band(4), Band::Low);
        assert_eq!(band(5), Band::Moderate);
        assert_eq!(band(9), Band::Moderate);
        assert_eq!(band(10), Band::High);
    }
}
