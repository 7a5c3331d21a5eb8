//! The clock: milliseconds since the Unix epoch (UTC) and their wire form.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The current time in milliseconds.
pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T09:00:00.123Z`.
pub fn rfc3339(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 date-time with its offset (`2026-01-31T09:00:00Z`,
/// `2026-01-31t10:00:00.5+01:00`) into milliseconds; `None` for anything else,
/// a date alone or a space for the `T` included. Finer fractions are cut to
/// the millisecond.
pub fn parse_rfc3339(value: &str) -> Option<Millis> {
    if !matches!(value.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_with_any_offset_and_refuses_the_rest() {
        assert_eq!(
            parse_rfc3339("2025-12-02T09:00:00.123Z"),
            Some(1_764_666_000_123)
        );
        assert_eq!(
            parse_rfc3339("2025-12-02t10:00:00.1239+01:00"),
            Some(1_764_666_000_123)
        );
        for bad in [
            "2025-12-02",
            "2025-12-02 09:00:00Z",
            "2025-12-02T09:00:00",
            "2025-13-02T09:00:00Z",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_has_milliseconds_and_z() {
        assert_eq!(rfc3339(1_764_666_000_123), "2025-12-02T09:00:00.123Z");
    }
}
