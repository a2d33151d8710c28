//! Timestamps and the injectable clock.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision, written as RFC 3339 (`2026-01-02T03:04:05.678Z`),
/// the form Ventyd stores in `eventCreatedAt`.
///
/// Parsing accepts any RFC 3339 offset and precision (`+05:30`, `-08:00`, no fraction, or
/// microseconds from another writer) and normalises to UTC milliseconds: digits past the
/// millisecond are dropped, so `.123999Z` is `.123Z`. Writing is always UTC with three digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(now)
    }

    /// The earliest RFC 3339 instant, `0000-01-01T00:00:00.000Z`.
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000);
    /// The latest RFC 3339 instant, `9999-12-31T23:59:59.999Z`.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// From milliseconds since the Unix epoch, clamped to the years RFC 3339 can write
    /// (0000 to 9999).
    ///
    /// ```
    /// use ventyd::Timestamp;
    ///
    /// assert_eq!(Timestamp::from_millis(i64::MAX), Timestamp::MAX);
    /// assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59.999Z");
    /// ```
    pub const fn from_millis(millis: i64) -> Self {
        if millis < Self::MIN.0 {
            Self::MIN
        } else if millis > Self::MAX.0 {
            Self::MAX
        } else {
            Timestamp(millis)
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        )
    }
}

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {input:?}")]
pub struct ParseTimestampError {
    input: String,
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| Timestamp::from_millis(d.timestamp_millis()))
            .map_err(|_| ParseTimestampError {
                input: s.to_owned(),
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where event creation times come from. Inject a [`FixedClock`] in tests for repeatable output.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is moved; clones share the same time.
///
/// ```
/// use ventyd::{Clock, FixedClock, Timestamp};
///
/// let clock = FixedClock::new(Timestamp::from_millis(0));
/// assert_eq!(clock.now().to_string(), "1970-01-01T00:00:00.000Z");
/// clock.advance_millis(1500);
/// assert_eq!(clock.now().to_string(), "1970-01-01T00:00:01.500Z");
/// ```
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Self {
        FixedClock(Arc::new(AtomicI64::new(at.as_millis())))
    }

    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.as_millis(), Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339_with_millis() {
        let t: Timestamp = "2026-11-26T04:24:59.123Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-26T04:24:59.123Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-26T04:24:59.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        // Offsets are normalised to UTC.
        let t2: Timestamp = "2026-11-26T05:24:59.123+01:00".parse().unwrap();
        assert_eq!(t2, t);
    }

    #[test]
    fn reads_any_rfc3339_offset_and_precision_as_utc_milliseconds() {
        let expected = Timestamp::from_millis(1_764_131_099_123);
        for text in [
            "2025-11-26T04:24:59.123Z",
            "2025-11-26T04:24:59.123+00:00",
            "2025-11-26T04:24:59.123-00:00",
            "2025-11-26T09:54:59.123+05:30",
            "2025-11-25T20:24:59.123-08:00",
            "2025-11-26T04:24:59.123456Z",
            "2025-11-26T04:24:59.123999999Z",
            "2025-11-26t04:24:59.123z",
            "2025-11-26 04:24:59.123Z",
        ] {
            let t: Timestamp = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t, expected, "{text}");
            assert_eq!(t.to_string(), "2025-11-26T04:24:59.123Z", "{text}");
        }
        // Fewer digits, or none, are whole milliseconds.
        let t: Timestamp = "2025-11-26T04:24:59Z".parse().unwrap();
        assert_eq!(t.as_millis(), 1_764_131_099_000);
        let t: Timestamp = "2025-11-26T04:24:59.5+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2025-11-26T03:24:59.500Z");
    }

    #[test]
    fn stays_within_rfc3339_years() {
        assert_eq!(Timestamp::MIN.to_string(), "0000-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::from_millis(i64::MIN), Timestamp::MIN);
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn rejects_garbage() {
        let err = "yesterday".parse::<Timestamp>().unwrap_err();
        assert!(err.to_string().contains("yesterday"));
    }
}
