//! Human units for sizes ("256MiB") and durations ("15m") in the config.
//!
//! Both types deserialize from a string with a unit or from a bare integer (bytes, or
//! seconds), and display back in the largest unit that divides them exactly, so
//! `config check` prints what an operator would have written.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A non-negative span of time with millisecond resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("B", 1),
];

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// Splits "15 m" / "1.5GiB" into the number and the unit.
fn split_number(s: &str) -> (&str, &str) {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    (s[..end].trim(), s[end..].trim())
}

/// Parses a decimal number times a unit factor without going through floats for
/// integers, so "9007199254740993B" stays exact.
fn scale(number: &str, factor: u64, what: &str, input: &str) -> Result<u64, String> {
    let number = number.replace('_', "");
    if number.is_empty() {
        return Err(format!("'{input}' is not a {what}: no number"));
    }
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(factor)
            .ok_or_else(|| format!("'{input}' is too large"));
    }
    let f: f64 = number
        .parse()
        .map_err(|_| format!("'{input}' is not a {what}: bad number '{number}'"))?;
    let scaled = f * factor as f64;
    if !scaled.is_finite() || scaled < 0.0 || scaled > u64::MAX as f64 {
        return Err(format!("'{input}' is too large"));
    }
    Ok(scaled.round() as u64)
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (number, unit) = split_number(s);
        let factor = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(unit) && (unit.len() > 1 || *u == "B"))
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    format!("'{s}' has an unknown size unit '{unit}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)")
                })?
        };
        scale(number, factor, "size", s).map(ByteSize)
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (number, unit) = split_number(s);
        if unit.is_empty() {
            return Err(format!("'{s}' has no time unit (use ms, s, m, h, d, w)"));
        }
        let factor = DURATION_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("'{s}' has an unknown time unit '{unit}' (use ms, s, m, h, d, w)"))?;
        scale(number, factor, "duration", s).map(|ms| HumanDuration(Duration::from_millis(ms)))
    }
}

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl HumanDuration {
    pub const fn secs(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n))
    }
    pub const fn as_duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let binary = SIZE_UNITS.iter().filter(|(u, _)| u.ends_with("iB"));
        for (unit, factor) in binary {
            if self.0 >= *factor && self.0 % factor == 0 {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis() as u64;
        // Weeks parse but do not print: operators write "7d".
        for (unit, factor) in DURATION_UNITS.iter().rev().filter(|(u, _)| *u != "w") {
            if ms >= *factor && ms % factor == 0 {
                return write!(f, "{}{unit}", ms / factor);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// Accepts "256MiB" or a bare integer, which means bytes (or seconds).
#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Str(String),
    Int(i64),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d)? {
            StrOrInt::Str(s) => s.parse().map_err(de::Error::custom),
            StrOrInt::Int(n) => u64::try_from(n)
                .map(ByteSize)
                .map_err(|_| de::Error::custom(format!("a size cannot be negative ({n})"))),
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d)? {
            StrOrInt::Str(s) => s.parse().map_err(de::Error::custom),
            StrOrInt::Int(n) => u64::try_from(n)
                .map(|n| HumanDuration(Duration::from_secs(n)))
                .map_err(|_| de::Error::custom(format!("a duration cannot be negative ({n})"))),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("256MiB".parse::<ByteSize>().unwrap().0, 256 * 1024 * 1024);
        assert_eq!("1 GiB".parse::<ByteSize>().unwrap().0, 1 << 30);
        assert_eq!("1.5KiB".parse::<ByteSize>().unwrap().0, 1536);
        assert_eq!("10MB".parse::<ByteSize>().unwrap().0, 10_000_000);
        assert_eq!("12".parse::<ByteSize>().unwrap().0, 12);
        assert_eq!("2mib".parse::<ByteSize>().unwrap().0, 2 << 20);
        assert_eq!(
            "3 parsecs".parse::<ByteSize>().unwrap_err(),
            "'3 parsecs' has an unknown size unit 'parsecs' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
        );
        assert_eq!("MiB".parse::<ByteSize>().unwrap_err(), "'MiB' is not a size: no number");
        assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn durations() {
        assert_eq!("15m".parse::<HumanDuration>().unwrap().0, Duration::from_secs(900));
        assert_eq!("500ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(500));
        assert_eq!("30d".parse::<HumanDuration>().unwrap().0, Duration::from_secs(30 * 86400));
        assert_eq!("1.5h".parse::<HumanDuration>().unwrap().0, Duration::from_secs(5400));
        assert_eq!(
            "15".parse::<HumanDuration>().unwrap_err(),
            "'15' has no time unit (use ms, s, m, h, d, w)"
        );
        assert_eq!(
            "2 fortnights".parse::<HumanDuration>().unwrap_err(),
            "'2 fortnights' has an unknown time unit 'fortnights' (use ms, s, m, h, d, w)"
        );
        assert_eq!(HumanDuration::secs(3600).to_string(), "1h");
        assert_eq!(HumanDuration(Duration::from_millis(1500)).to_string(), "1500ms");
    }
}
