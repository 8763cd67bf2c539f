//! How money, windows, durations and instants are shown to people: in deny messages a
//! client reads, and by the CLI.

use std::time::Duration;

use crate::utc_date::Day;

/// Micro-dollars as dollars: `$500.00`, `$0.0015`.
pub fn format_usd(micros: u64) -> String {
    let (dollars, fraction) = (micros / 1_000_000, micros % 1_000_000);
    if fraction % 10_000 == 0 {
        format!("${dollars}.{:02}", fraction / 10_000)
    } else {
        let digits = format!("{fraction:06}");
        format!("${dollars}.{}", digits.trim_end_matches('0'))
    }
}

/// A rate window: `60s`, `1500ms`.
pub fn format_window(window: Duration) -> String {
    if window.subsec_millis() == 0 {
        format!("{}s", window.as_secs())
    } else {
        format!("{}ms", window.as_millis())
    }
}

/// A wait, in its two largest units: `5d 3h`, `2h 5m`, `41s`, `250ms`.
pub fn format_duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) if secs == 0 => format!("{ms}ms"),
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// An instant as RFC 3339 UTC to the second: `2026-11-25T20:54:02Z`.
pub fn format_utc_ms(ms: u64) -> String {
    let secs = ms / 1000 % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Day::from_unix_ms(ms),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_money() {
        let cases = [
            (0, "$0.00"),
            (500_000_000, "$500.00"),
            (1_230_000, "$1.23"),
            (1_500, "$0.0015"),
            (1_000_001, "$1.000001"),
            (9_007_199_254_740_992, "$9007199254.740992"),
        ];
        for (micros, expected) in cases {
            assert_eq!(format_usd(micros), expected);
        }
    }

    #[test]
    fn formats_windows_durations_and_instants() {
        let cases = [
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_millis(250), "250ms"),
        ];
        for (window, expected) in cases {
            assert_eq!(format_window(window), expected);
        }
        let cases = [
            (0, "0ms"),
            (250, "250ms"),
            (41_000, "41s"),
            (125_000, "2m 5s"),
            (7_500_000, "2h 5m"),
            (446_400_000, "5d 4h"),
        ];
        for (ms, expected) in cases {
            assert_eq!(format_duration_ms(ms), expected);
        }
        assert_eq!(format_utc_ms(1_795_640_042_123), "2026-11-25T20:54:02Z");
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00Z");
    }
}
