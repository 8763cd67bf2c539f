//! UTC calendar days and months, for ledger keys and the periods operators ask about.
//!
//! The ledger only ever needs "which UTC day is this millisecond in", which is integer
//! arithmetic; a date-time dependency would bring time zones the service must not use.

use std::fmt;

pub const MS_PER_DAY: u64 = 86_400_000;

/// A UTC calendar day, shown as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Day {
    year: u64,
    month: u8,
    day: u8,
}

/// A UTC calendar month, shown as `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    year: u64,
    month: u8,
}

/// What an operator asks the ledger about: one day or one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day(Day),
    Month(Month),
}

impl Day {
    /// The day `ms` milliseconds after the Unix epoch falls on.
    pub fn from_unix_ms(ms: u64) -> Self {
        // Howard Hinnant's days-to-civil algorithm (public domain), in unsigned form:
        // the input is never before the epoch. Eras are 400-year cycles starting on
        // 0000-03-01, so the leap day ends a year and needs no special case.
        let days = ms / MS_PER_DAY + 719_468;
        let era = days / 146_097;
        let day_of_era = days % 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + u64::from(month <= 2);
        Self {
            year,
            // Both are bounded by the arithmetic above (1..=12, 1..=31).
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        }
    }

    pub fn month(self) -> Month {
        Month {
            year: self.year,
            month: self.month,
        }
    }

    /// The first millisecond after this day: when a daily budget resets.
    pub fn end_ms(self) -> u64 {
        (days_from_civil(self.year, self.month, self.day) + 1) * MS_PER_DAY
    }
}

impl Period {
    /// The first millisecond of the period.
    pub fn start_ms(self) -> u64 {
        match self {
            Period::Day(d) => d.end_ms() - MS_PER_DAY,
            Period::Month(m) => days_from_civil(m.year, m.month, 1) * MS_PER_DAY,
        }
    }

    /// The period's days, in order: one for a day, every day of a month.
    pub fn days(self) -> Vec<Day> {
        match self {
            Period::Day(day) => vec![day],
            Period::Month(m) => (1..=m.days())
                .map(|day| Day {
                    year: m.year,
                    month: m.month,
                    day,
                })
                .collect(),
        }
    }

    /// Accepts `YYYY-MM-DD` or `YYYY-MM`, with a real calendar date: `2025-02-30` names
    /// nothing the ledger could hold, and saying so beats answering zeros.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let number = |range: std::ops::Range<usize>| -> Option<u64> {
            let digits = bytes.get(range)?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
        };
        if !matches!(bytes.len(), 7 | 10) || bytes[4] != b'-' {
            return None;
        }
        let year = number(0..4)?;
        let month = u8::try_from(number(5..7)?)
            .ok()
            .filter(|m| (1..=12).contains(m))?;
        let month = Month { year, month };
        if bytes.len() == 7 {
            return Some(Period::Month(month));
        }
        if bytes[7] != b'-' {
            return None;
        }
        let day = u8::try_from(number(8..10)?)
            .ok()
            .filter(|d| (1..=month.days()).contains(d))?;
        Some(Period::Day(Day {
            year,
            month: month.month,
            day,
        }))
    }
}

impl Month {
    /// The first millisecond after this month: when a monthly budget resets.
    pub fn end_ms(self) -> u64 {
        let (year, month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        days_from_civil(year, month, 1) * MS_PER_DAY
    }

    fn days(self) -> u8 {
        match self.month {
            2 if is_leap_year(self.year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
}

/// Days from the epoch to a date on or after it: Hinnant's days-from-civil, the inverse
/// of [`Day::from_unix_ms`].
fn days_from_civil(year: u64, month: u8, day: u8) -> u64 {
    let year = year - u64::from(month <= 2);
    let era = year / 400;
    let year_of_era = year % 400;
    let shifted_month = (u64::from(month) + 9) % 12; // 0 = March
    let day_of_year = (153 * shifted_month + 2) / 5 + u64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).saturating_sub(719_468)
}

fn is_leap_year(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Day(day) => day.fmt(f),
            Period::Month(month) => month.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_utc_day_of_a_timestamp() {
        let cases = [
            (0, "1970-01-01"),
            (MS_PER_DAY - 1, "1970-01-01"),
            (MS_PER_DAY, "1970-01-02"),
            // 2000 is a leap year (divisible by 400), 2100 is not (by 100 only).
            (951_782_400_000, "2000-02-29"),
            (951_868_800_000, "2000-03-01"),
            (1_709_164_800_000, "2024-02-29"),
            (1_735_689_599_999, "2024-12-31"),
            (1_735_689_600_000, "2025-01-01"),
            (1_795_640_042_000, "2026-11-25"),
            (4_107_456_000_000, "2100-02-28"),
            (4_107_542_400_000, "2100-03-01"),
            (253_402_300_799_999, "9999-12-31"),
        ];
        for (ms, expected) in cases {
            assert_eq!(Day::from_unix_ms(ms).to_string(), expected, "ms {ms}");
        }
        assert_eq!(
            Day::from_unix_ms(1_735_689_599_999).month().to_string(),
            "2024-12"
        );
    }

    #[test]
    fn agrees_with_a_day_by_day_walk_across_four_centuries() {
        // Walks the calendar forward a day at a time from the epoch and checks every
        // day against the closed form: catches any off-by-one at month and year ends.
        let (mut year, mut month, mut day) = (1970_u64, 1_u8, 1_u8);
        for n in 0..(400 * 366) {
            let got = Day::from_unix_ms(n * MS_PER_DAY + MS_PER_DAY / 2);
            assert_eq!(got, Day { year, month, day }, "day {n}");
            day += 1;
            if day > (Month { year, month }).days() {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn days_and_months_end_at_the_next_utc_midnight() {
        // (instant, end of its day, end of its month)
        let cases = [
            (0, MS_PER_DAY, 31 * MS_PER_DAY),
            (MS_PER_DAY - 1, MS_PER_DAY, 31 * MS_PER_DAY),
            // 2024-02-29T12:00Z: a leap February ends on 2024-03-01.
            (1_709_208_000_000, 1_709_251_200_000, 1_709_251_200_000),
            // 2025-02-28T23:59:59.999Z
            (1_740_787_199_999, 1_740_787_200_000, 1_740_787_200_000),
            // 2024-12-31T23:59:59.999Z: December ends in the next year.
            (1_735_689_599_999, 1_735_689_600_000, 1_735_689_600_000),
            // 2026-11-25T20:54:02Z
            (1_795_640_042_000, 1_795_651_200_000, 1_796_083_200_000),
        ];
        for (ms, day_end, month_end) in cases {
            let day = Day::from_unix_ms(ms);
            assert_eq!(day.end_ms(), day_end, "{day}");
            assert_eq!(day.month().end_ms(), month_end, "{day}");
        }
        // Every day ends where the next begins, over four centuries.
        for n in (0..400 * 366).step_by(7) {
            let day = Day::from_unix_ms(n * MS_PER_DAY);
            assert_eq!(day.end_ms(), (n + 1) * MS_PER_DAY, "{day}");
            assert_eq!(
                Day::from_unix_ms(day.month().end_ms() - 1).month(),
                day.month()
            );
            assert_ne!(Day::from_unix_ms(day.month().end_ms()).month(), day.month());
        }
    }

    #[test]
    fn lists_a_periods_days() {
        let days = |text: &str| -> Vec<String> {
            Period::parse(text)
                .map(|p| p.days().iter().map(Day::to_string).collect())
                .unwrap_or_default()
        };
        assert_eq!(days("2024-02-29"), ["2024-02-29"]);
        let leap = days("2024-02");
        assert_eq!(
            (leap.len(), leap[0].as_str(), leap[28].as_str()),
            (29, "2024-02-01", "2024-02-29")
        );
        assert_eq!(days("2025-02").len(), 28);
        assert_eq!(
            days("2025-12").last().map(String::as_str),
            Some("2025-12-31")
        );
    }

    #[test]
    fn parses_only_real_days_and_months() {
        let cases = [
            ("2025-01-31", Some("2025-01-31")),
            ("2024-02-29", Some("2024-02-29")),
            ("2000-02-29", Some("2000-02-29")),
            ("2025-12", Some("2025-12")),
            ("2025-01", Some("2025-01")),
            ("2025-02-29", None),
            ("2100-02-29", None),
            ("2025-04-31", None),
            ("2025-13", None),
            ("2025-00", None),
            ("2025-01-00", None),
            ("2025-1-01", None),
            ("2025/01/01", None),
            ("2025-01-01T00", None),
            ("25-01-01", None),
            ("2025", None),
            ("", None),
            ("+025-01", None),
            ("2025-0a", None),
            ("２０２５-01", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Period::parse(input).map(|p| p.to_string()).as_deref(),
                expected,
                "input {input:?}"
            );
        }
        assert!(matches!(Period::parse("2025-01"), Some(Period::Month(_))));
        assert!(matches!(Period::parse("2025-01-01"), Some(Period::Day(_))));
    }
}
