//! Checks of request fields, shared by every service, each failure naming its field
//! (INVALID_ARGUMENT with `google.rpc.BadRequest`). A description never repeats the value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{ApiError, FieldViolation};
use caseline_eventlog::Uuid;
use caseline_proto::prost_types::Timestamp;

/// Longest free text (a note, a summary), in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest reason or comment, in characters.
pub const MAX_REASON_CHARS: usize = 4_000;
/// Longest short label (a name, a region), in characters.
pub const MAX_LABEL_CHARS: usize = 200;
/// Longest subject or agency name, in bytes (the log's label limit).
pub const MAX_ID_BYTES: usize = 256;

/// Collects every bad field of one request, so the caller learns them all at once.
#[derive(Debug, Default)]
pub struct Check {
    violations: Vec<FieldViolation>,
}

impl Check {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, description: impl Into<String>) {
        self.violations
            .push(FieldViolation::new(field, description));
    }

    /// The request's verdict: `Ok(value)` when no field was at fault.
    pub fn done<T>(self, value: T) -> Result<T, ApiError> {
        if self.violations.is_empty() {
            Ok(value)
        } else {
            Err(ApiError::InvalidArgument(self.violations))
        }
    }

    /// A required UUID (case ids, contact ids, request ids).
    pub fn uuid(&mut self, field: &str, value: &str) -> Uuid {
        match Uuid::parse_str(value) {
            Ok(id) if !id.is_nil() => id,
            _ => {
                self.fail(
                    field,
                    if value.is_empty() {
                        "is required (a UUID)"
                    } else {
                        "must be a UUID"
                    },
                );
                Uuid::nil()
            }
        }
    }

    /// An optional UUID: empty is `None`.
    pub fn optional_uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        if value.is_empty() {
            None
        } else {
            Some(self.uuid(field, value))
        }
    }

    /// A known, specified enum value.
    pub fn known<E>(&mut self, field: &str, value: i32) -> E
    where
        E: TryFrom<i32> + Default + PartialEq,
    {
        match E::try_from(value) {
            Ok(e) if e != E::default() => e,
            Ok(_) => {
                self.fail(field, "is required");
                E::default()
            }
            Err(_) => {
                self.fail(field, "is not a known value");
                E::default()
            }
        }
    }

    /// Text of at most `max` characters; required if `required`. No control characters
    /// other than line breaks and tabs.
    pub fn text(&mut self, field: &str, value: &str, max: usize, required: bool) {
        if value.trim().is_empty() {
            if required {
                self.fail(field, "is required");
            }
            return;
        }
        if value.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            self.fail(field, "must not hold control characters");
        }
    }

    /// A subject or agency name: required, printable, at most 256 bytes.
    pub fn id_label(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.fail(field, "is required");
        } else if value.len() > MAX_ID_BYTES {
            self.fail(field, format!("must be at most {MAX_ID_BYTES} bytes"));
        } else if value.chars().any(char::is_control) || value.trim() != value {
            self.fail(
                field,
                "must not hold control characters or surrounding space",
            );
        }
    }

    /// A page token: a position from a previous answer (`None` for the first page).
    pub fn page_token(&mut self, token: &str) -> Option<caseline_eventlog::Position> {
        if token.is_empty() {
            return None;
        }
        match token.parse::<caseline_eventlog::Position>() {
            Ok(p) => Some(p),
            Err(_) => {
                self.fail(
                    "page_token",
                    "must be a next_page_token from a previous answer",
                );
                None
            }
        }
    }

    /// A page size: `default` when 0, at most `max`.
    pub fn page_size(&mut self, value: u32, (default, max): (u32, u32)) -> usize {
        match value {
            0 => default as usize,
            v if v > max => {
                self.fail("page_size", format!("must be at most {max}"));
                0
            }
            v => v as usize,
        }
    }

    /// A required instant, not after `now` (what has happened).
    pub fn past(&mut self, field: &str, value: Option<&Timestamp>, now: SystemTime) -> SystemTime {
        let Some(t) = value else {
            self.fail(field, "is required");
            return UNIX_EPOCH;
        };
        let (Ok(secs), Ok(nanos)) = (u64::try_from(t.seconds), u32::try_from(t.nanos)) else {
            self.fail(field, "must be after 1970");
            return UNIX_EPOCH;
        };
        if nanos >= 1_000_000_000 {
            self.fail(field, "nanos must be below one second");
            return UNIX_EPOCH;
        }
        let at = UNIX_EPOCH + Duration::new(secs, nanos);
        // A minute of slack for clocks that differ.
        if at > now + Duration::from_secs(60) {
            self.fail(field, "must not be in the future");
        }
        at
    }
}

/// The UTC calendar date of `t`, as `YYYY-MM-DD` (instants before 1970 as 1970-01-01).
pub fn date_of(t: SystemTime) -> String {
    let days = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), after H. Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

impl Check {
    /// A calendar date `YYYY-MM-DD`; required if `required`. Returns it when valid.
    pub fn date(&mut self, field: &str, value: &str, required: bool) -> Option<String> {
        if value.is_empty() {
            if required {
                self.fail(field, "is required (YYYY-MM-DD)");
            }
            return None;
        }
        if is_date(value) {
            Some(value.to_owned())
        } else {
            self.fail(field, "must be a date, YYYY-MM-DD");
            None
        }
    }

    /// A required calendar date on or before today (UTC, by `now`): something that has
    /// happened. Returns it when valid.
    pub fn past_date(&mut self, field: &str, value: &str, now: SystemTime) -> Option<String> {
        let date = self.date(field, value, true)?;
        if date > date_of(now) {
            self.fail(field, "must not be in the future");
            return None;
        }
        Some(date)
    }
}

/// An ISO 8601 calendar date `YYYY-MM-DD` that exists.
pub fn is_date(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    let (Some(y), Some(m), Some(d)) = (num(&value[0..4]), num(&value[5..7]), num(&value[8..10]))
    else {
        return false;
    };
    if !(1900..=2999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_instants() {
        use std::time::Duration;
        assert_eq!(date_of(UNIX_EPOCH), "1970-01-01");
        assert_eq!(
            date_of(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29"
        );
        assert_eq!(
            date_of(UNIX_EPOCH + Duration::from_secs(1_795_391_999)),
            "2026-11-22"
        );
        assert_eq!(
            date_of(UNIX_EPOCH + Duration::from_secs(1_795_392_000)),
            "2026-11-23"
        );
    }

    #[test]
    fn dates() {
        assert!(is_date("2012-02-29"));
        assert!(!is_date("2013-02-29"));
        assert!(!is_date("2013-13-01"));
        assert!(!is_date("13-01-2013"));
        assert!(!is_date("2013-1-1"));
        assert!(!is_date(""));
    }

    #[test]
    fn every_fault_is_named() {
        let mut c = Check::new();
        c.uuid("case_id", "");
        c.text("text", "", 10, true);
        c.text("reason", "x\u{0}y", 10, false);
        c.id_label("agency", " a");
        let Err(ApiError::InvalidArgument(v)) = c.done(()) else {
            panic!("expected invalid argument");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["case_id", "text", "reason", "agency"]);
    }
}
