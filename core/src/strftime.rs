//! Event times written as strftime patterns (`%a %b %d %H:%M:%S %Y`, `%y%m%d %H%M%S`,
//! a syslog `%b %d %H:%M:%S` without a year), checked once at config load.

use std::fmt;

use chrono::format::{Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike};

/// How far after the Kafka record time a year-less event time may fall before it is
/// read as last year's (a `Dec 31 23:59:59` line produced on January 1st).
const YEAR_ROLLOVER_SLACK_US: i64 = 86_400 * 1_000_000;

/// A strftime pattern that names at least a date and a time of day. Times without an
/// offset (`%z`) are UTC; a pattern without a year takes the year of a reference time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Strftime {
    pattern: String,
    /// If not, [`Strftime::parse_micros`] takes the year from the reference time.
    has_year: bool,
}

impl Strftime {
    /// Checks `pattern`: every specifier known, and enough of them to give an instant.
    pub fn new(pattern: &str) -> Result<Strftime, String> {
        let mut has_year = false;
        for item in StrftimeItems::new(pattern) {
            match item {
                Item::Error => return Err(format!("'{pattern}' is not a valid strftime pattern (an unknown or incomplete % specifier)")),
                Item::Numeric(Numeric::Year | Numeric::YearDiv100 | Numeric::YearMod100 | Numeric::Timestamp, _) => has_year = true,
                Item::Numeric(Numeric::IsoYear | Numeric::IsoYearDiv100 | Numeric::IsoYearMod100, _) => has_year = true,
                Item::Fixed(Fixed::RFC2822 | Fixed::RFC3339) => has_year = true,
                _ => {}
            }
        }
        let format = Strftime { pattern: pattern.to_string(), has_year };
        // Write a known instant with the pattern and read it back: a pattern that cannot
        // say the day or the hour fails here, once, instead of on every line.
        let probe = DateTime::from_timestamp(1_614_834_367, 890_123_000).expect("a valid instant");
        let written = probe.format_with_items(StrftimeItems::new(pattern)).to_string();
        format.parse_micros(&written, probe.timestamp_micros()).map_err(|_| {
            format!("'{pattern}' does not give a full time: it needs the day, the month and the hour (e.g. %b %d %H:%M:%S), or %s")
        })?;
        Ok(format)
    }

    /// µs since the epoch of `s`. `reference_us` (the Kafka record time) gives the year
    /// when the pattern has none: its year, or the one before when that would put the
    /// event more than a day after the reference.
    pub fn parse_micros(&self, s: &str, reference_us: i64) -> Result<i64, String> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, s, StrftimeItems::new(&self.pattern))
            .map_err(|e| format!("'{s}' does not match '{}': {e}", self.pattern))?;
        let instant = |parsed: &Parsed| -> Result<i64, String> {
            let offset = parsed.offset().unwrap_or(0);
            let local = parsed.to_naive_datetime_with_offset(offset).map_err(|e| format!("'{s}' as '{}': {e}", self.pattern))?;
            Ok(local.and_utc().timestamp_micros() - i64::from(offset) * 1_000_000)
        };
        if self.has_year {
            return instant(&parsed);
        }
        let year = DateTime::from_timestamp_micros(reference_us).map_or(1970, |t| t.year());
        let in_year = |year: i32| {
            let mut with_year = parsed.clone();
            with_year.set_year(i64::from(year)).map_err(|e| format!("'{s}' in {year}: {e}"))?;
            instant(&with_year)
        };
        match in_year(year) {
            Ok(us) if us > reference_us.saturating_add(YEAR_ROLLOVER_SLACK_US) => in_year(year - 1),
            // Feb 29 of a year-less line read in a non-leap year: last year cannot hold
            // it either, so the error stands.
            other => other,
        }
    }
}

impl fmt::Display for Strftime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected instants from `date -u -d '2005-12-04 04:47:44' +%s` and the like.
    const DEC_2026_US: i64 = 1_796_169_600_000_000; // 2026-12-02T00:00:00Z

    #[test]
    fn loghub_styles() {
        let apache = Strftime::new("%a %b %d %H:%M:%S %Y").unwrap();
        assert!(apache.has_year);
        assert_eq!(apache.parse_micros("Sun Dec 04 04:47:44 2005", 0), Ok(1_133_671_664_000_000));
        let hdfs = Strftime::new("%y%m%d %H%M%S").unwrap();
        assert_eq!(hdfs.parse_micros("081109 203615", 0), Ok(1_226_262_975_000_000));
        let zookeeper = Strftime::new("%Y-%m-%d %H:%M:%S,%3f").unwrap();
        assert_eq!(zookeeper.parse_micros("2015-07-29 17:41:44,747", 0), Ok(1_438_191_704_747_000));
        let offset = Strftime::new("%d/%b/%Y:%H:%M:%S %z").unwrap();
        assert_eq!(offset.parse_micros("17/May/2015:12:05:03 +0200", 0), Ok(1_431_857_103_000_000));
        let epoch = Strftime::new("%s").unwrap();
        assert_eq!(epoch.parse_micros("1131566461", 0), Ok(1_131_566_461_000_000));
    }

    #[test]
    fn syslog_takes_the_year_of_the_record() {
        let syslog = Strftime::new("%b %d %H:%M:%S").unwrap();
        assert!(!syslog.has_year);
        // 2026-06-14T15:16:01Z
        assert_eq!(syslog.parse_micros("Jun 14 15:16:01", DEC_2026_US), Ok(1_781_450_161_000_000));
        // A space-padded day, as syslog writes it: 2026-07-04T01:02:03Z.
        assert_eq!(syslog.parse_micros("Jul  4 01:02:03", DEC_2026_US), Ok(1_783_126_923_000_000));
        // Dec 31 read on 2027-01-01: last year's, 2026-12-31T23:59:59Z.
        let new_year_us = 1_798_761_600_000_000;
        assert_eq!(syslog.parse_micros("Dec 31 23:59:59", new_year_us), Ok(1_798_761_599_000_000));
    }

    #[test]
    fn bad_patterns_and_lines() {
        assert!(Strftime::new("%Q %H").unwrap_err().contains("not a valid strftime pattern"), "unknown specifier");
        assert!(Strftime::new("%H:%M:%S").unwrap_err().contains("does not give a full time"), "no date");
        assert!(Strftime::new("%Y-%m-%d").unwrap_err().contains("does not give a full time"), "no hour");
        let apache = Strftime::new("%a %b %d %H:%M:%S %Y").unwrap();
        let err = apache.parse_micros("yesterday", 0).unwrap_err();
        assert!(err.starts_with("'yesterday' does not match '%a %b %d %H:%M:%S %Y'"), "{err}");
    }
}
