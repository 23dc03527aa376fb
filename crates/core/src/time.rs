//! Timestamps: milliseconds since the Unix epoch, always UTC.
//!
//! Input accepts RFC 3339 with an offset or `Z` (fractional seconds allowed), or a plain date, read as
//! midnight UTC. The common shapes are parsed by hand because ingest parses millions of them.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// A point in time, UTC, millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ts(pub i64);

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

impl Ts {
    pub fn from_millis(ms: i64) -> Self {
        Ts(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Midnight UTC of a calendar date; `None` for an impossible date.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| Ts(dt.and_utc().timestamp_millis()))
    }

    pub fn plus_days(self, days: f64) -> Self {
        Ts(self.0 + (days * MS_PER_DAY as f64).round() as i64)
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Ts(self.0 + ms)
    }

    /// Days from `self` to `later` (fractional).
    pub fn days_until(self, later: Ts) -> f64 {
        (later.0 - self.0) as f64 / MS_PER_DAY as f64
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// RFC 3339 in UTC, with milliseconds only when they are not zero.
    pub fn to_rfc3339(self) -> String {
        let dt = self.to_datetime();
        if self.0.rem_euclid(1000) == 0 {
            dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        } else {
            dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
    }

    /// The calendar date, `YYYY-MM-DD`.
    pub fn to_date_string(self) -> String {
        self.to_datetime().format("%Y-%m-%d").to_string()
    }

    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Ts(since_epoch)
    }

    /// Parses RFC 3339 (offset or `Z`) or a plain date.
    pub fn parse(text: &str) -> Result<Self> {
        let s = text.trim();
        if let Some(ts) = parse_fast(s.as_bytes()) {
            return Ok(ts);
        }
        if s.len() == 10 {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                if let Some(dt) = d.and_hms_opt(0, 0, 0) {
                    return Ok(Ts(dt.and_utc().timestamp_millis()));
                }
            }
        }
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Ts(dt.timestamp_millis()))
            .map_err(|_| {
                CoreError::unparseable(
                    "an RFC 3339 timestamp with offset or a date (YYYY-MM-DD)",
                    text,
                )
            })
    }

    /// Parses with a strftime-style format (as given in a mapping file); a format without a time part
    /// gives midnight UTC, one without an offset is read as UTC.
    pub fn parse_with_format(text: &str, format: &str) -> Result<Self> {
        let s = text.trim();
        let err = || CoreError::unparseable(format!("a date in the format {format:?}"), text);
        if let Ok(dt) = DateTime::parse_from_str(s, format) {
            return Ok(Ts(dt.timestamp_millis()));
        }
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(Ts(dt.and_utc().timestamp_millis()));
        }
        let d = NaiveDate::parse_from_str(s, format).map_err(|_| err())?;
        d.and_hms_opt(0, 0, 0)
            .map(|dt| Ts(dt.and_utc().timestamp_millis()))
            .ok_or_else(err)
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]`; `None` sends the caller to the slow path.
fn parse_fast(b: &[u8]) -> Option<Ts> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day_ms = days_from_civil(y, m, d) * MS_PER_DAY;
    if b.len() == 10 {
        return Some(Ts(day_ms));
    }
    if b.len() < 20 || (b[10] != b'T' && b[10] != b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut frac_ms = 0;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let f = &rest[1..1 + n];
        let mut ms = 0;
        for i in 0..3 {
            ms = ms * 10 + f.get(i).map_or(0, |c| i64::from(c - b'0'));
        }
        frac_ms = ms;
        rest = &rest[1 + n..];
    }
    let offset_ms = match rest {
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = (oh * 60 + om) * 60_000;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    Some(Ts(day_ms
        + ((hh * 60 + mm) * 60 + ss) * MS_PER_SECOND
        + frac_ms
        - offset_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_as_midnight_utc() {
        assert_eq!(Ts::parse("1970-01-02").unwrap(), Ts(MS_PER_DAY));
        assert_eq!(
            Ts::parse("2024-02-29").unwrap().to_rfc3339(),
            "2024-02-29T00:00:00Z"
        );
        assert!(Ts::parse("2023-02-29").is_err());
    }

    #[test]
    fn fast_path_agrees_with_chrono() {
        for s in [
            "2024-03-10T12:34:56Z",
            "2024-03-10T12:34:56.789Z",
            "2024-03-10T12:34:56.7+02:00",
            "1999-12-31T23:59:59-05:30",
            "2000-01-01T00:00:00.123456Z",
        ] {
            let fast = parse_fast(s.as_bytes()).unwrap();
            let slow = DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
            assert_eq!(fast.0, slow, "{s}");
        }
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let a = Ts::parse("2024-03-10T12:00:00+02:00").unwrap();
        assert_eq!(a.to_rfc3339(), "2024-03-10T10:00:00Z");
    }

    #[test]
    fn rejects_garbage_and_naive_times() {
        for s in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-03-10T12:00:00",
            "2024-03-10 12:00:00",
        ] {
            assert!(Ts::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn custom_formats() {
        assert_eq!(
            Ts::parse_with_format("03/15/2017", "%m/%d/%Y")
                .unwrap()
                .to_date_string(),
            "2017-03-15"
        );
        assert_eq!(
            Ts::parse_with_format("2017-03-15 10:00", "%Y-%m-%d %H:%M")
                .unwrap()
                .to_rfc3339(),
            "2017-03-15T10:00:00Z"
        );
        assert!(Ts::parse_with_format("15.03.2017", "%m/%d/%Y").is_err());
    }
}
