//! Event times from a payload field or a text line's group: RFC 3339 strings, epoch
//! numbers, or strftime patterns.

use serde_json::Value;
use tierlog_core::schema::{ErrorReason, TimestampFormat};

use super::DecodeError;

/// Which field holds the event time, and how it is written.
#[derive(Debug, Clone)]
pub struct TimestampRule {
    pub field: String,
    pub format: TimestampFormat,
}

impl TimestampRule {
    /// µs since the epoch of a JSON value. `reference_us` (the Kafka record time) gives
    /// the year to a strftime pattern without one.
    pub fn parse(&self, value: &Value, reference_us: i64) -> Result<i64, DecodeError> {
        match (value, &self.format) {
            (Value::String(s), _) => self.parse_str(s, reference_us),
            (Value::Number(n), TimestampFormat::EpochS | TimestampFormat::EpochMs | TimestampFormat::EpochUs | TimestampFormat::EpochNs) => {
                let exact = n.as_i64().map(Epoch::Int);
                let number = exact.or_else(|| n.as_f64().map(Epoch::Float));
                let number = number.ok_or_else(|| self.bad(format!("{value} is out of range")))?;
                self.epoch(number, &value.to_string())
            }
            (_, TimestampFormat::Rfc3339) => Err(self.bad(format!("expected an RFC 3339 string, got {value}"))),
            (_, TimestampFormat::Strftime(pattern)) => Err(self.bad(format!("expected a string written as '{pattern}', got {value}"))),
            _ => Err(self.bad(format!("expected an epoch number, got {value}"))),
        }
    }

    /// µs since the epoch of a time written as text.
    pub fn parse_str(&self, s: &str, reference_us: i64) -> Result<i64, DecodeError> {
        match &self.format {
            TimestampFormat::Rfc3339 => rfc3339_micros(s).ok_or_else(|| self.bad(format!("'{s}' is not an RFC 3339 timestamp"))),
            TimestampFormat::Strftime(pattern) => pattern.parse_micros(s, reference_us).map_err(|why| self.bad(why)),
            _ => {
                let t = s.trim();
                let number = t.parse::<i64>().map(Epoch::Int).or_else(|_| t.parse::<f64>().map(Epoch::Float));
                let number = number.map_err(|_| self.bad(format!("expected an epoch number, got '{s}'")))?;
                self.epoch(number, s)
            }
        }
    }

    fn epoch(&self, number: Epoch, written: &str) -> Result<i64, DecodeError> {
        let (per_unit, scale): (f64, fn(i64) -> Option<i64>) = match self.format {
            TimestampFormat::EpochS => (1e6, |i| i.checked_mul(1_000_000)),
            TimestampFormat::EpochMs => (1e3, |i| i.checked_mul(1_000)),
            TimestampFormat::EpochUs => (1.0, Some),
            _ => (1e-3, |i| Some(i / 1_000)),
        };
        // Integers stay exact where they fit (ns since 1970 exceed f64's 53 bits).
        let micros = match number {
            Epoch::Int(i) => scale(i),
            Epoch::Float(f) => {
                let us = f * per_unit;
                (us.is_finite() && us.abs() < 9.2e18).then_some(us as i64)
            }
        };
        micros.ok_or_else(|| self.bad(format!("{written} is out of range")))
    }

    fn bad(&self, why: String) -> DecodeError {
        DecodeError::new(ErrorReason::BadTimestamp, format!("field '{}': {why}", self.field))
    }
}

enum Epoch {
    Int(i64),
    Float(f64),
}

/// Parses RFC 3339 (`2018-03-24T17:15:20.865716Z`, `…+01:00`, space for `T` allowed).
pub fn rfc3339_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_us = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                frac_us = frac_us * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            frac_us *= 10;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1_000_000 + frac_us)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc3339() {
        // date -d 2018-03-24T17:15:20Z +%s → 1521911720
        assert_eq!(rfc3339_micros("2018-03-24T17:15:20.865716Z"), Some(1_521_911_720_865_716));
        assert_eq!(rfc3339_micros("2018-03-24T17:15:20Z"), Some(1_521_911_720_000_000));
        assert_eq!(rfc3339_micros("2018-03-24T18:15:20.5+01:00"), Some(1_521_911_720_500_000));
        assert_eq!(rfc3339_micros("2018-03-24 17:15:20.123456789Z"), Some(1_521_911_720_123_456));
        assert_eq!(rfc3339_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_micros("2024-02-29T00:00:00Z"), Some(1_709_164_800_000_000));
        for bad in ["2023-02-29T00:00:00Z", "2018-13-01T00:00:00Z", "2018-03-24T17:15:20", "yesterday", "2018-03-24T17:15:20.Z"] {
            assert_eq!(rfc3339_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn epochs() {
        let rule = |format| TimestampRule { field: "t".into(), format };
        assert_eq!(rule(TimestampFormat::EpochS).parse(&json!(1_521_911_720), 0), Ok(1_521_911_720_000_000));
        assert_eq!(rule(TimestampFormat::EpochS).parse(&json!(1_521_911_720.5), 0), Ok(1_521_911_720_500_000));
        assert_eq!(rule(TimestampFormat::EpochMs).parse(&json!("1521911720123"), 0), Ok(1_521_911_720_123_000));
        assert_eq!(rule(TimestampFormat::EpochNs).parse(&json!(1_544_712_660_300_000_001i64), 0), Ok(1_544_712_660_300_000));
        assert_eq!(rule(TimestampFormat::EpochNs).parse(&json!("1544712660300000001"), 0), Ok(1_544_712_660_300_000));
        let err = rule(TimestampFormat::EpochMs).parse(&json!(true), 0).unwrap_err();
        assert_eq!(err.detail, "field 't': expected an epoch number, got true");
        let err = TimestampRule { field: "ts".into(), format: TimestampFormat::Rfc3339 }.parse(&json!(17), 0).unwrap_err();
        assert_eq!(err.reason, ErrorReason::BadTimestamp);
        assert_eq!(err.detail, "field 'ts': expected an RFC 3339 string, got 17");
    }

    #[test]
    fn strftime() {
        let format: TimestampFormat = "%a %b %d %H:%M:%S %Y".parse().unwrap();
        let rule = TimestampRule { field: "time".into(), format };
        // date -u -d '2005-12-04 04:47:44' +%s → 1133671664
        assert_eq!(rule.parse(&json!("Sun Dec 04 04:47:44 2005"), 0), Ok(1_133_671_664_000_000));
        let err = rule.parse(&json!(1133671664), 0).unwrap_err();
        assert_eq!(err.detail, "field 'time': expected a string written as '%a %b %d %H:%M:%S %Y', got 1133671664");
        let err = rule.parse_str("04/12/2005", 0).unwrap_err();
        assert!(err.detail.starts_with("field 'time': '04/12/2005' does not match '%a %b %d %H:%M:%S %Y'"), "{}", err.detail);
    }
}
