//! Checks of request fields, shared by every service, each failure naming its field
//! (INVALID_ARGUMENT with `google.rpc.BadRequest`). A description never repeats the value.
//!
//! Whatever the request, a refusal stays small: [`Check`] keeps at most
//! [`MAX_VIOLATIONS`] violations and counts the rest, and a repeated field longer than
//! its maximum is refused once, before its entries are looked at
//! ([`Check::repeated`]). Every `Timestamp` a request carries goes through [`instant`],
//! and every date through a helper that states the range plausible for what it is.

use std::collections::HashSet;
use std::hash::Hash;
use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::status::MAX_VIOLATIONS;
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
/// Most entries a repeated field of a request holds unless its handler states a
/// smaller maximum: a list filter names each value of an enum at most once, and no
/// enum of the API has this many values.
pub const MAX_REPEATED: usize = 32;

/// What every command on an existing aggregate carries: the aggregate's id, the
/// request's id, the version the client saw, and the request as received (from which
/// its fingerprint is made, so that a retry is told from a reuse).
#[derive(Clone, Debug)]
pub struct Target {
    pub id: Uuid,
    pub request_id: Uuid,
    pub expected: Option<u64>,
    pub encoded: Vec<u8>,
}

/// A request as received at `now`: what its conversion into a typed command
/// (`TryFrom<At<Request>>`) checks against when a field's plausible range ends today (a
/// date of birth, a review date, a payment date).
#[derive(Clone, Debug)]
pub struct At<R> {
    pub request: R,
    pub now: SystemTime,
}

/// Collects the bad fields of one request, so the caller learns them at once. It keeps
/// at most [`MAX_VIOLATIONS`] and counts the others, so a request with a million
/// faults costs no more memory, and gets no longer an answer, than one with eleven.
#[derive(Debug, Default)]
pub struct Check {
    violations: Vec<FieldViolation>,
    /// Faults found once `violations` was full: counted, not kept.
    omitted: usize,
}

impl Check {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, description: impl Into<String>) {
        let description = description.into();
        // The same fault twice (an unknown value twice in one list) is listed once.
        if self
            .violations
            .iter()
            .any(|v| v.field == field && v.description == description)
        {
            return;
        }
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations
                .push(FieldViolation::new(field, description));
        } else {
            self.omitted += 1;
        }
    }

    /// The target of a command on an existing aggregate: its id (the field `field`) and
    /// `request_id` checked, in that order, and `message` encoded as received.
    pub fn target(
        &mut self,
        field: &str,
        id: &str,
        request_id: &str,
        expected: Option<u64>,
        message: &impl caseline_proto::prost::Message,
    ) -> Target {
        Target {
            id: self.uuid(field, id),
            request_id: self.uuid("request_id", request_id),
            expected,
            encoded: message.encode_to_vec(),
        }
    }

    /// The request's verdict: `Ok(value)` when no field was at fault.
    pub fn done<T>(self, value: T) -> Result<T, ApiError> {
        if self.violations.is_empty() {
            return Ok(value);
        }
        let mut violations = self.violations;
        if self.omitted > 0 {
            violations.push(FieldViolation::omitted(self.omitted));
        }
        Err(ApiError::InvalidArgument(violations))
    }

    /// A repeated field of `len` entries: at most `max`. Checked before the entries,
    /// so that a huge list costs one violation rather than one per entry; `false` when
    /// it is too long, and its entries are then not to be checked.
    pub fn repeated(&mut self, field: &str, len: usize, max: usize) -> bool {
        if len > max {
            self.fail(field, format!("must hold at most {max} entries"));
            false
        } else {
            true
        }
    }

    /// A filter of enum values (e.g. `statuses`): at most [`MAX_REPEATED`] entries,
    /// each known and specified. Empty: no filter.
    pub fn known_set<E>(&mut self, field: &str, values: &[i32]) -> HashSet<E>
    where
        E: TryFrom<i32> + Default + Eq + Hash,
    {
        if !self.repeated(field, values.len(), MAX_REPEATED) {
            return HashSet::new();
        }
        values.iter().map(|v| self.known(field, *v)).collect()
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

    /// An optional instant, such as a filter's bound: `None` when absent or at fault.
    pub fn timestamp(&mut self, field: &str, value: Option<&Timestamp>) -> Option<SystemTime> {
        match instant(field, value?) {
            Ok(at) => Some(at),
            Err(v) => {
                self.fail(field, v.description);
                None
            }
        }
    }

    /// A required instant from 1970 on, not after `now` (what has happened; the log
    /// keeps such instants as milliseconds since 1970).
    pub fn past(&mut self, field: &str, value: Option<&Timestamp>, now: SystemTime) -> SystemTime {
        let Some(t) = value else {
            self.fail(field, "is required");
            return UNIX_EPOCH;
        };
        let Some(at) = self.timestamp(field, Some(t)) else {
            return UNIX_EPOCH;
        };
        if at < UNIX_EPOCH {
            self.fail(field, "must not be before 1970");
            return UNIX_EPOCH;
        }
        if at > now + CLOCK_SLACK {
            self.fail(field, "must not be in the future");
        }
        at
    }
}

/// How far ahead of the server's clock an instant of the past may be: clocks differ.
const CLOCK_SLACK: Duration = Duration::from_secs(60);

/// Seconds since 1970 of the first and last instants a protobuf `Timestamp` may hold,
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (google/protobuf/timestamp.proto).
const TIMESTAMP_SECONDS: RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
/// The nanoseconds a `Timestamp` may add to its seconds.
const TIMESTAMP_NANOS: RangeInclusive<i32> = 0..=999_999_999;

/// A protobuf `Timestamp` as an instant, refused outside the range the type defines.
/// Every `Timestamp` of every request is read through this (or [`Check::timestamp`]),
/// so no handler computes with an instant a client made up past that range.
pub fn instant(field: &str, t: &Timestamp) -> Result<SystemTime, FieldViolation> {
    if !TIMESTAMP_SECONDS.contains(&t.seconds) {
        return Err(FieldViolation::new(
            field,
            "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z",
        ));
    }
    if !TIMESTAMP_NANOS.contains(&t.nanos) {
        return Err(FieldViolation::new(
            field,
            "nanos must be from 0 to 999999999",
        ));
    }
    let nanos = Duration::from_nanos(t.nanos.unsigned_abs().into());
    let whole = Duration::from_secs(t.seconds.unsigned_abs());
    let at = if t.seconds >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    at.and_then(|at| at.checked_add(nanos))
        .ok_or_else(|| FieldViolation::new(field, "must be an instant this server can hold"))
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

/// The earliest date any request may carry: no one born earlier is alive, and nothing
/// a case records happened before.
pub const EARLIEST_DATE: &str = "1900-01-01";
/// The latest date a filter may name (e.g. reviews due on or before it).
pub const LATEST_DATE: &str = "2999-12-31";
/// Today's date where it is latest on Earth (UTC+14) at `now`. Dates are entered in
/// local time: a social worker in Nairobi recording a visit at 01:00 writes a date that
/// in UTC is still tomorrow, and it must not be refused as the future.
fn latest_today(now: SystemTime) -> String {
    date_of(now + Duration::from_secs(14 * 3600))
}

/// How far ahead of today a deadline, a target or a review may be set, in years.
pub const MAX_YEARS_AHEAD: i64 = 50;

impl Check {
    /// A calendar date `YYYY-MM-DD` from [`EARLIEST_DATE`] to [`LATEST_DATE`], such as
    /// a filter's bound; required if `required`. Returns it when valid.
    pub fn date(&mut self, field: &str, value: &str, required: bool) -> Option<String> {
        self.date_within(
            field,
            value,
            required,
            (LATEST_DATE, "must not be after 2999-12-31"),
        )
    }

    /// A required calendar date from [`EARLIEST_DATE`] to today (anywhere: see
    /// [`latest_today`]): something that has happened. Returns it when valid.
    pub fn past_date(&mut self, field: &str, value: &str, now: SystemTime) -> Option<String> {
        self.date_within(
            field,
            value,
            true,
            (&latest_today(now), "must not be in the future"),
        )
    }

    /// An optional date of birth: from [`EARLIEST_DATE`] to today (anywhere: see
    /// [`latest_today`]).
    pub fn date_of_birth(&mut self, field: &str, value: &str, now: SystemTime) -> Option<String> {
        self.date_within(
            field,
            value,
            false,
            (&latest_today(now), "must not be in the future"),
        )
    }

    /// A date set for later (a deadline, a target, a review): from [`EARLIEST_DATE`]
    /// to [`MAX_YEARS_AHEAD`] years after today (UTC, by `now`); required if
    /// `required`. Whether it may lie in the past is the caller's rule.
    pub fn planned_date(
        &mut self,
        field: &str,
        value: &str,
        required: bool,
        now: SystemTime,
    ) -> Option<String> {
        let today = date_of(now);
        let year: i64 = today[..4].parse().unwrap_or(0);
        // Same month and day: compared as text, a 29 February that does not exist
        // still bounds correctly.
        let latest = format!("{:04}{}", year + MAX_YEARS_AHEAD, &today[4..]);
        let too_late = format!("must be within {MAX_YEARS_AHEAD} years from today");
        self.date_within(field, value, required, (&latest, &too_late))
    }

    /// A calendar date from [`EARLIEST_DATE`] to `latest`, refused past it with
    /// `too_late`.
    fn date_within(
        &mut self,
        field: &str,
        value: &str,
        required: bool,
        (latest, too_late): (&str, &str),
    ) -> Option<String> {
        if value.is_empty() {
            if required {
                self.fail(field, "is required (YYYY-MM-DD)");
            }
            return None;
        }
        if !is_date(value) {
            self.fail(field, "must be a date, YYYY-MM-DD");
            return None;
        }
        // Dates of one format compare as text.
        if value < EARLIEST_DATE {
            self.fail(field, "must not be before 1900-01-01");
            return None;
        }
        if value > latest {
            self.fail(field, too_late);
            return None;
        }
        Some(value.to_owned())
    }
}

/// An ISO 8601 calendar date `YYYY-MM-DD` that exists (years 0001 to 9999). Whether it
/// is plausible is the [`Check`] helpers' business.
pub fn is_date(value: &str) -> bool {
    let b = value.as_bytes();
    let digits = b
        .iter()
        .enumerate()
        .all(|(i, c)| matches!(i, 4 | 7) || c.is_ascii_digit());
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits {
        return false;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    let (Some(y), Some(m), Some(d)) = (num(&value[0..4]), num(&value[5..7]), num(&value[8..10]))
    else {
        return false;
    };
    if y == 0 || !(1..=12).contains(&m) || d == 0 {
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

    /// At 20:00 UTC it is already tomorrow east of UTC+4: tomorrow is not the future;
    /// the day after is.
    #[test]
    fn today_is_the_latest_date_on_earth() {
        // 2026-12-06T20:00:00Z.
        let evening = UNIX_EPOCH + Duration::from_secs(1_796_587_200);
        assert_eq!(date_of(evening), "2026-12-06");
        let mut check = Check::new();
        assert!(check.past_date("on", "2026-12-07", evening).is_some());
        assert!(check.date_of_birth("born", "2026-12-07", evening).is_some());
        assert!(check.done(()).is_ok());
        let mut check = Check::new();
        check.past_date("on", "2026-12-08", evening);
        check.date_of_birth("born", "2026-12-08", evening);
        match check.done(()) {
            Err(ApiError::InvalidArgument(v)) => assert_eq!(v.len(), 2, "{v:?}"),
            other => panic!("expected both refused, got {other:?}"),
        }
    }

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
        assert!(!is_date("+013-01-01"));
        assert!(!is_date("0000-01-01"));
        assert!(!is_date(""));
        assert!(
            is_date("1800-01-01"),
            "exists, though no request may carry it"
        );
    }

    fn description_of(c: Check) -> Vec<(String, String)> {
        match c.done(()) {
            Err(ApiError::InvalidArgument(v)) => {
                v.into_iter().map(|v| (v.field, v.description)).collect()
            }
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    type Dated = fn(&mut Check, &str, SystemTime) -> Option<String>;

    #[test]
    fn dates_say_why_they_are_refused() {
        // 2026-11-22T12:00:00Z.
        let now = UNIX_EPOCH + Duration::from_secs(1_795_348_800);
        let cases: [(&str, Dated, &str); 8] = [
            (
                "2999-01-01",
                |c, v, now| c.date_of_birth("dob", v, now),
                "must not be in the future",
            ),
            (
                // Already the 23rd east of UTC+12: the 24th is the future everywhere.
                "2026-11-24",
                |c, v, now| c.date_of_birth("dob", v, now),
                "must not be in the future",
            ),
            (
                "1800-01-01",
                |c, v, now| c.date_of_birth("dob", v, now),
                "must not be before 1900-01-01",
            ),
            (
                "2026-02-30",
                |c, v, now| c.date_of_birth("dob", v, now),
                "must be a date, YYYY-MM-DD",
            ),
            (
                "2026-11-24",
                |c, v, now| c.past_date("on", v, now),
                "must not be in the future",
            ),
            (
                "1899-12-31",
                |c, v, now| c.past_date("on", v, now),
                "must not be before 1900-01-01",
            ),
            (
                "2076-11-23",
                |c, v, now| c.planned_date("on", v, true, now),
                "must be within 50 years from today",
            ),
            (
                "3000-01-01",
                |c, v, _| c.date("on", v, false),
                "must not be after 2999-12-31",
            ),
        ];
        for (value, check, why) in cases {
            let mut c = Check::new();
            assert_eq!(check(&mut c, value, now), None, "{value}");
            let v = description_of(c);
            assert_eq!(v.len(), 1, "{value}: {v:?}");
            assert_eq!(v[0].1, why, "{value}");
        }
        let accepted: [(&str, Dated); 6] = [
            ("2026-11-22", |c, v, now| c.date_of_birth("dob", v, now)),
            ("1900-01-01", |c, v, now| c.date_of_birth("dob", v, now)),
            ("", |c, v, now| c.date_of_birth("dob", v, now)),
            ("2026-11-22", |c, v, now| c.past_date("on", v, now)),
            ("2076-11-22", |c, v, now| c.planned_date("on", v, true, now)),
            ("2999-12-31", |c, v, _| c.date("on", v, true)),
        ];
        for (value, check) in accepted {
            let mut c = Check::new();
            check(&mut c, value, now);
            assert!(c.done(()).is_ok(), "{value}");
        }
    }

    #[test]
    fn timestamps_are_held_to_the_protobuf_range() {
        let t = |seconds, nanos| Timestamp { seconds, nanos };
        for bad in [
            t(253_402_300_800, 0),
            t(10_i64.pow(13), 0),
            t(i64::MAX, 999_999_999),
            t(-62_135_596_801, 0),
            t(i64::MIN, 0),
            t(0, 1_000_000_000),
            t(0, -1),
        ] {
            let v = instant("as_of", &bad).expect_err("outside the range");
            assert_eq!(v.field, "as_of", "{bad:?}");
        }
        assert_eq!(
            instant("t", &t(253_402_300_799, 999_999_999)).unwrap(),
            UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_999)
        );
        assert_eq!(
            instant("t", &t(-1, 500_000_000)).unwrap(),
            UNIX_EPOCH - Duration::from_millis(500)
        );
        assert!(instant("t", &t(-62_135_596_800, 0)).is_ok());

        let now = UNIX_EPOCH + Duration::from_secs(1_795_348_800);
        let mut c = Check::new();
        c.past("occurred_at", Some(&t(i64::MAX, 0)), now);
        c.past("informed_at", Some(&t(-1, 0)), now);
        assert_eq!(
            description_of(c),
            [
                (
                    "occurred_at".to_owned(),
                    "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z".to_owned()
                ),
                (
                    "informed_at".to_owned(),
                    "must not be before 1970".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_million_faults_keep_ten_and_count_the_rest() {
        let mut c = Check::new();
        for i in 0..1_000_000 {
            c.fail(&format!("field_{i}"), "is required");
        }
        assert_eq!(c.violations.len(), MAX_VIOLATIONS);
        let v = description_of(c);
        assert_eq!(v.len(), MAX_VIOLATIONS + 1);
        assert_eq!(v[0].0, "field_0");
        assert_eq!(v[MAX_VIOLATIONS].0, "");
        assert_eq!(
            v[MAX_VIOLATIONS].1,
            format!("and {} more faults not listed", 1_000_000 - MAX_VIOLATIONS)
        );
    }

    #[test]
    fn a_repeated_field_past_its_maximum_is_one_fault() {
        let mut c = Check::new();
        let values: Vec<i32> = (1_000..1_000_000).collect();
        let set: HashSet<caseline_proto::v1::ClaimStatus> = c.known_set("statuses", &values);
        assert!(set.is_empty());
        assert_eq!(
            description_of(c),
            [(
                "statuses".to_owned(),
                format!("must hold at most {MAX_REPEATED} entries")
            )]
        );

        // Within the maximum each entry is checked, and one fault is listed once.
        let mut c = Check::new();
        let set: HashSet<caseline_proto::v1::ClaimStatus> =
            c.known_set("statuses", &[1, 99, 98, 97]);
        assert_eq!(set.len(), 2, "the known value and the default");
        assert_eq!(
            description_of(c),
            [("statuses".to_owned(), "is not a known value".to_owned())]
        );

        let mut c = Check::new();
        let set: HashSet<caseline_proto::v1::ClaimStatus> = c.known_set("statuses", &[1, 2]);
        assert_eq!(set.len(), 2);
        assert!(c.done(()).is_ok());
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
