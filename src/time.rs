//! Wall-clock times as bedrock-batch prints and stores them.
//!
//! Row times (`started_at`, `finished_at`) are RFC 3339, UTC, milliseconds
//! (`2026-11-30T16:04:05.123Z`), read back to milliseconds since the epoch
//! for the report. Not a date library: it formats that one shape and reads
//! RFC 3339 UTC (`Z`) with or without a fraction, all the output files hold.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SSZ`, as STS writes expiry times.
pub fn rfc3339(t: SystemTime) -> String {
    aws_smithy_types::DateTime::from(t)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Times before 1970 (a clock set far
/// back) print as the epoch rather than a negative date.
pub fn rfc3339_ms(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64;
    format_epoch_ms(ms)
}

/// The current time in the output files' format.
pub fn rfc3339_ms_now() -> String {
    rfc3339_ms(SystemTime::now())
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_epoch_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (min, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Milliseconds since the epoch of an RFC 3339 UTC time (`…Z`); `None` for
/// anything else, so a malformed time is left out of a chart, not guessed.
pub fn parse_epoch_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let rest = &s[19..];
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            (&r[..digits], &r[digits..])
        }
        None => ("", rest),
    };
    if !matches!(zone, "Z" | "z" | "+00:00") {
        return None;
    }
    // Milliseconds: the first three digits of the fraction, padded.
    let three: String = frac.chars().chain("000".chars()).take(3).collect();
    let milli: i64 = three.parse().ok()?;
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + milli)
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(format_epoch_ms(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (a leap day) 13:45:06.789 UTC.
        assert_eq!(
            format_epoch_ms(1_709_214_306_789),
            "2024-02-29T13:45:06.789Z"
        );
        let t = UNIX_EPOCH + Duration::from_millis(1_764_518_645_007);
        assert_eq!(rfc3339_ms(t), "2025-11-30T16:04:05.007Z");
    }

    #[test]
    fn parses_what_it_formats_and_plain_rfc3339() {
        for ms in [0, 1_709_214_306_789, 1_764_518_645_007, 4_102_444_799_999] {
            assert_eq!(parse_epoch_ms(&format_epoch_ms(ms)), Some(ms));
        }
        assert_eq!(
            parse_epoch_ms("2024-02-29T13:45:06Z"),
            Some(1_709_214_306_000)
        );
        assert_eq!(
            parse_epoch_ms("2024-02-29T13:45:06.7Z"),
            Some(1_709_214_306_700)
        );
        assert_eq!(
            parse_epoch_ms("2024-02-29T13:45:06.78912Z"),
            Some(1_709_214_306_789)
        );
        assert_eq!(parse_epoch_ms("2024-02-29T13:45:06+09:00"), None);
        assert_eq!(parse_epoch_ms("yesterday"), None);
        assert_eq!(parse_epoch_ms("2024-13-01T00:00:00Z"), None);
    }
}
