//! Timestamps as Fullscript might send them, and as the app stores them.
//!
//! Fullscript documents ISO-8601 strings (`2021-06-16T14:57:21.000Z`), but the
//! real shapes of most objects are unknown (`shared/fullscript-api.md` §4.3,
//! §10), and a parser that insists on one format goes silent the day the API
//! sends another. So every timestamp the app reads goes through [`parse`],
//! which accepts ISO-8601 with or without a fraction or an offset (and a bare
//! date), and epoch seconds, milliseconds or microseconds as numbers or
//! numeric strings. Whatever it cannot read is `None`, never an error: a
//! timestamp never makes a record unreadable.
//!
//! Stored and compared timestamps are [`canonical`]: RFC 3339, UTC,
//! milliseconds, so the same instant sent in two formats compares equal.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

/// RFC 3339 in UTC with milliseconds: the one format the app stores.
pub fn canonical(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Read a timestamp in any of the accepted forms; `None` when it is absent,
/// null, or not a plausible instant.
pub fn parse(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => parse_str(s),
        Value::Number(n) => n.as_f64().and_then(from_epoch),
        _ => None,
    }
}

/// [`parse`], answering the canonical string.
pub fn parse_canonical(v: &Value) -> Option<String> {
    parse(v).map(canonical)
}

pub fn parse_str(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    // Offsets without a colon (`+0000`), a space instead of `T`.
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    // No offset at all: Fullscript's servers speak UTC.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|n| Utc.from_utc_datetime(&n));
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    s.parse::<f64>().ok().and_then(from_epoch)
}

/// Epoch seconds, milliseconds or microseconds, told apart by magnitude:
/// 1e11 seconds is the year 5138, 1e11 milliseconds is 1973.
pub fn from_epoch(x: f64) -> Option<DateTime<Utc>> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let millis = if x >= 1e14 {
        x / 1000.0
    } else if x >= 1e11 {
        x
    } else {
        x * 1000.0
    };
    if millis >= i64::MAX as f64 {
        return None;
    }
    Utc.timestamp_millis_opt(millis as i64).single()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_format_of_the_same_instant_reads_the_same() {
        let want = at("2026-11-27T10:15:30Z");
        for v in [
            json!("2026-11-27T10:15:30Z"),
            json!("2026-11-27T10:15:30.000Z"),
            json!("2026-11-27T11:15:30+01:00"),
            json!("2026-11-27T11:15:30+0100"),
            json!("2026-11-27 10:15:30"),
            json!("2026-11-27T10:15:30"),
            json!(" 2026-11-27T10:15:30Z "),
            json!(1_795_774_530),
            json!(1_795_774_530.0),
            json!("1795774530"),
            json!(1_795_774_530_000_i64),
            json!("1795774530000"),
            json!(1_795_774_530_000_000_i64),
            json!("Fri, 27 Nov 2026 10:15:30 GMT"),
        ] {
            assert_eq!(parse(&v), Some(want), "{v}");
        }
        assert_eq!(
            parse(&json!("2026-11-27")),
            Some(at("2026-11-27T00:00:00Z"))
        );
        assert_eq!(
            parse_canonical(&json!(1_795_774_530)).as_deref(),
            Some("2026-11-27T10:15:30.000Z")
        );
    }

    #[test]
    fn nonsense_is_none_never_a_panic() {
        for v in [
            json!(null),
            json!(""),
            json!("soon"),
            json!(-5),
            json!(1e300),
            json!("1e400"),
            json!(f64::MAX),
            json!({"a": 1}),
            json!([1]),
            json!(true),
        ] {
            assert_eq!(parse(&v), None, "{v}");
        }
    }
}
