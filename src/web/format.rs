//! How times and durations read on the pages.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-11-25 21:31:01 UTC`, as the stores' "at rest" descriptions too.
pub use crate::sessions::inspect::describe_time as datetime;

/// RFC 3339, for the API and machine-readable attributes.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Whole seconds from now until `at`, never negative.
pub fn seconds_left(at: OffsetDateTime) -> i64 {
    (at - OffsetDateTime::now_utc()).whole_seconds().max(0)
}

/// `1 h 2 min 3 s`; zero parts are left out (`24 h`, `1 min 5 s`).
pub fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(65), "1 min 5 s");
        assert_eq!(duration(3725), "1 h 2 min 5 s");
        assert_eq!(duration(86_400), "24 h");
        assert_eq!(duration(0), "0 s");
    }

    #[test]
    fn rfc3339_drops_fractions() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20Z");
    }
}
