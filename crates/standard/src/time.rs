//! Local wall-clock times (what an EHR in one time zone writes without an offset) to UTC.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// `local` read as a wall-clock time in the IANA zone `zone` (`America/Chicago`), in UTC. A time
/// that occurs twice (the hour repeated when clocks go back) is taken as its first occurrence; a
/// time that never occurs (the hour skipped when clocks go forward) is an error.
pub fn to_utc(local: NaiveDateTime, zone: &str) -> Result<DateTime<Utc>, &'static str> {
    let tz: Tz = zone.trim().parse().map_err(|_| "unknown time zone")?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or("the local time does not exist in that zone (clocks went forward)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn zones_and_daylight_saving() {
        assert_eq!(
            to_utc(at("2024-01-15 08:00"), "America/Chicago")
                .unwrap()
                .to_rfc3339(),
            "2024-01-15T14:00:00+00:00"
        );
        assert_eq!(
            to_utc(at("2024-07-15 08:00"), "America/Chicago")
                .unwrap()
                .to_rfc3339(),
            "2024-07-15T13:00:00+00:00"
        );
        // 01:30 happens twice on 2024-11-03 in Chicago: the first, still on daylight time.
        assert_eq!(
            to_utc(at("2024-11-03 01:30"), "America/Chicago")
                .unwrap()
                .to_rfc3339(),
            "2024-11-03T06:30:00+00:00"
        );
        assert!(to_utc(at("2024-03-10 02:30"), "America/Chicago").is_err());
        assert!(to_utc(at("2024-03-10 02:30"), "Mars/Olympus").is_err());
    }
}
