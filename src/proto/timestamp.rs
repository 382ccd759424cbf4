//! `google.protobuf.Timestamp` with the proto3 JSON mapping as the spec and
//! grpcurl write it: UTC with `Z`, and 0, 3, 6 or 9 fractional digits.
//! pbjson-types' own writes chrono's `+00:00` form, so the CLI's `--json`,
//! Connect JSON and grpcurl would print the same instant differently.
//! build.rs maps `.google.protobuf.Timestamp` here, for the generated
//! messages and their JSON code alike.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// 0001-01-01T00:00:00Z, the first instant the JSON mapping can write.
pub const MIN_SECONDS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z, the last whole second it can write.
pub const MAX_SECONDS: i64 = 253_402_300_799;

const NANOS_PER_SECOND: i32 = 1_000_000_000;

/// The wire message: seconds since the Unix epoch and the nanoseconds
/// within that second (always forward in time, also before 1970).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("timestamp outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z")]
    OutOfRange,
    #[error("timestamp nanos must be 0 to 999,999,999")]
    BadNanos,
    #[error("not an RFC 3339 time (2030-01-31T00:00:00Z): {0}")]
    Syntax(&'static str),
}

impl Timestamp {
    /// The instant, if the message is one the JSON mapping can write.
    fn checked(&self) -> Result<DateTime<Utc>, TimestampError> {
        if !(0..NANOS_PER_SECOND).contains(&self.nanos) {
            return Err(TimestampError::BadNanos);
        }
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&self.seconds) {
            return Err(TimestampError::OutOfRange);
        }
        DateTime::from_timestamp(self.seconds, self.nanos as u32).ok_or(TimestampError::OutOfRange)
    }

    /// The canonical text: `2026-12-02T15:00:00.123456Z`.
    pub fn to_rfc3339(&self) -> Result<String, TimestampError> {
        let at = self.checked()?;
        let mut text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        let nanos = self.nanos;
        let fraction = match nanos {
            0 => String::new(),
            n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
            n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
            n => format!(".{n:09}"),
        };
        text.push_str(&fraction);
        text.push('Z');
        Ok(text)
    }
}

impl fmt::Display for Timestamp {
    /// The canonical text, or the raw fields when there is none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_rfc3339() {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "invalid time ({}s {}ns)", self.seconds, self.nanos),
        }
    }
}

/// Reads `digits` ASCII digits at the front of `text`.
fn number(text: &mut &[u8], digits: usize, what: &'static str) -> Result<u32, TimestampError> {
    let head = text.get(..digits).ok_or(TimestampError::Syntax(what))?;
    if !head.iter().all(u8::is_ascii_digit) {
        return Err(TimestampError::Syntax(what));
    }
    *text = &text[digits..];
    Ok(head.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

fn expect(text: &mut &[u8], one_of: &[u8], what: &'static str) -> Result<u8, TimestampError> {
    match text.first() {
        Some(c) if one_of.contains(c) => {
            *text = &text[1..];
            Ok(*c)
        }
        _ => Err(TimestampError::Syntax(what)),
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// RFC 3339 with any offset and up to 9 fractional digits; `T` and `Z`
    /// in either case, as RFC 3339 allows. No leap second: the wire type has
    /// none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut text = s.as_bytes();
        let t = &mut text;
        let year = number(t, 4, "year")?;
        expect(t, b"-", "date separator")?;
        let month = number(t, 2, "month")?;
        expect(t, b"-", "date separator")?;
        let day = number(t, 2, "day")?;
        expect(t, b"Tt", "T between date and time")?;
        let hour = number(t, 2, "hour")?;
        expect(t, b":", "time separator")?;
        let minute = number(t, 2, "minute")?;
        expect(t, b":", "time separator")?;
        let second = number(t, 2, "second")?;
        let mut nanos = 0;
        if t.first() == Some(&b'.') {
            *t = &t[1..];
            let digits = t.iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return Err(TimestampError::Syntax("1 to 9 fractional digits"));
            }
            nanos = number(t, digits, "fraction")? * 10u32.pow(9 - digits as u32);
        }
        let offset = match expect(t, b"Zz+-", "Z or an offset")? {
            b'Z' | b'z' => 0,
            sign => {
                let hours = number(t, 2, "offset hours")?;
                expect(t, b":", "offset separator")?;
                let minutes = number(t, 2, "offset minutes")?;
                if hours > 23 || minutes > 59 {
                    return Err(TimestampError::Syntax("offset"));
                }
                let offset = i64::from(hours * 3_600 + minutes * 60);
                if sign == b'-' { -offset } else { offset }
            }
        };
        if !t.is_empty() {
            return Err(TimestampError::Syntax("text after the time"));
        }
        let local = NaiveDate::from_ymd_opt(year as i32, month, day)
            .ok_or(TimestampError::Syntax("no such date"))?
            .and_hms_opt(hour, minute, second)
            .ok_or(TimestampError::Syntax("no such time of day"))?;
        let ts = Timestamp {
            seconds: local.and_utc().timestamp() - offset,
            nanos: nanos as i32,
        };
        ts.checked()?;
        Ok(ts)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_rfc3339().map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Timestamp {
            seconds: at.timestamp(),
            // Under 2e9 even in a leap second, so it fits.
            nanos: at.timestamp_subsec_nanos() as i32,
        }
    }
}

impl TryFrom<Timestamp> for DateTime<Utc> {
    type Error = TimestampError;
    fn try_from(ts: Timestamp) -> Result<Self, Self::Error> {
        ts.checked()
    }
}

impl From<SystemTime> for Timestamp {
    fn from(at: SystemTime) -> Self {
        match at.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp {
                seconds: after.as_secs() as i64,
                nanos: after.subsec_nanos() as i32,
            },
            // Before 1970 the nanos still count forward from `seconds`.
            Err(before) => {
                let before = before.duration();
                let (seconds, nanos) = (before.as_secs() as i64, before.subsec_nanos() as i32);
                if nanos == 0 {
                    Timestamp {
                        seconds: -seconds,
                        nanos: 0,
                    }
                } else {
                    Timestamp {
                        seconds: -seconds - 1,
                        nanos: NANOS_PER_SECOND - nanos,
                    }
                }
            }
        }
    }
}

impl TryFrom<Timestamp> for SystemTime {
    type Error = TimestampError;
    fn try_from(ts: Timestamp) -> Result<Self, Self::Error> {
        ts.checked()?;
        let whole = Duration::from_secs(ts.seconds.unsigned_abs());
        let at = if ts.seconds >= 0 {
            UNIX_EPOCH.checked_add(whole)
        } else {
            UNIX_EPOCH.checked_sub(whole)
        };
        at.and_then(|at| at.checked_add(Duration::from_nanos(ts.nanos as u64)))
            .ok_or(TimestampError::OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn writes_z_with_0_3_6_or_9_digits() {
        let base = 1_796_223_600; // 2026-12-02T15:00:00Z
        for (nanos, text) in [
            (0, "2026-12-02T15:00:00Z"),
            (100_000_000, "2026-12-02T15:00:00.100Z"),
            (123_000_000, "2026-12-02T15:00:00.123Z"),
            (123_456_000, "2026-12-02T15:00:00.123456Z"),
            (1_000, "2026-12-02T15:00:00.000001Z"),
            (123_456_789, "2026-12-02T15:00:00.123456789Z"),
            (1, "2026-12-02T15:00:00.000000001Z"),
        ] {
            let ts = at(base, nanos);
            assert_eq!(ts.to_rfc3339().unwrap(), text);
            assert_eq!(serde_json::to_value(ts).unwrap(), text);
            assert_eq!(ts.to_string(), text);
        }
        assert_eq!(at(0, 0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(at(-1, 500_000_000).to_string(), "1969-12-31T23:59:59.500Z");
    }

    #[test]
    fn round_trips_through_json_and_text() {
        for ts in [
            at(0, 0),
            at(1_796_223_600, 123_456_789),
            at(-1, 999_999_999),
            at(MIN_SECONDS, 0),
            at(MAX_SECONDS, 999_999_999),
        ] {
            let json = serde_json::to_string(&ts).unwrap();
            assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
            assert_eq!(ts.to_rfc3339().unwrap().parse::<Timestamp>().unwrap(), ts);
        }
    }

    #[test]
    fn reads_any_offset_and_up_to_nine_digits() {
        let want = at(1_796_223_600, 0);
        for text in [
            "2026-12-02T15:00:00Z",
            "2026-12-02t15:00:00z",
            "2026-12-02T15:00:00+00:00",
            "2026-12-02T15:00:00-00:00",
            "2026-12-02T16:30:00+01:30",
            "2026-12-02T10:00:00-05:00",
            "2026-12-03T14:59:00+23:59",
            "2026-12-02T15:00:00.000000000Z",
        ] {
            assert_eq!(text.parse::<Timestamp>(), Ok(want), "{text}");
        }
        assert_eq!(
            "2026-12-02T17:00:00.5+02:00".parse(),
            Ok(at(1_796_223_600, 500_000_000))
        );
        assert_eq!(
            "2026-12-02T15:00:00.123456789Z".parse(),
            Ok(at(1_796_223_600, 123_456_789))
        );
    }

    #[test]
    fn refuses_junk() {
        for text in [
            "",
            "now",
            "2026-12-02",
            "2026-12-02 15:00:00Z",
            "2026-12-02T15:00:00",
            "2026-12-02T15:00Z",
            "2026-12-02T15:00:00.Z",
            "2026-12-02T15:00:00.1234567891Z",
            "2026-12-02T15:00:00+0100",
            "2026-12-02T15:00:00+24:00",
            "2026-12-02T15:00:00+01:60",
            "2026-12-02T15:00:00ZZ",
            "2026-12-02T15:00:00Z ",
            "2026-13-02T15:00:00Z",
            "2026-02-30T15:00:00Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T15:00:60Z",
            "+2026-12-02T15:00:00Z",
            "２026-12-02T15:00:00Z",
        ] {
            assert!(
                matches!(text.parse::<Timestamp>(), Err(TimestampError::Syntax(_))),
                "{text}"
            );
        }
        assert!(serde_json::from_str::<Timestamp>("1796223600").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"junk\"").is_err());
    }

    #[test]
    fn out_of_range_is_an_error_both_ways() {
        for ts in [
            at(MIN_SECONDS - 1, 999_999_999),
            at(MAX_SECONDS + 1, 0),
            at(i64::MIN, 0),
        ] {
            assert_eq!(ts.to_rfc3339(), Err(TimestampError::OutOfRange));
            assert!(serde_json::to_string(&ts).is_err());
        }
        for nanos in [-1, NANOS_PER_SECOND] {
            assert_eq!(at(0, nanos).to_rfc3339(), Err(TimestampError::BadNanos));
        }
        for text in [
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "0000-12-31T23:59:59Z",
        ] {
            assert_eq!(
                text.parse::<Timestamp>(),
                Err(TimestampError::OutOfRange),
                "{text}"
            );
        }
        assert!("0001-01-01T00:00:00Z".parse::<Timestamp>().is_ok());
        assert!(
            "9999-12-31T23:59:59.999999999Z"
                .parse::<Timestamp>()
                .is_ok()
        );
    }

    #[test]
    fn converts_with_chrono_and_system_time() {
        let now = Utc::now();
        let ts = Timestamp::from(now);
        assert_eq!(DateTime::<Utc>::try_from(ts), Ok(now));
        let system = SystemTime::now();
        assert_eq!(SystemTime::try_from(Timestamp::from(system)), Ok(system));
        let early = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(Timestamp::from(early), at(-2, 750_000_000));
        assert_eq!(SystemTime::try_from(at(-2, 750_000_000)), Ok(early));
        assert_eq!(Timestamp::default(), at(0, 0));
        assert!(DateTime::<Utc>::try_from(at(0, -1)).is_err());
    }
}
