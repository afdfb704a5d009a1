//! Timestamps as Laravel writes them: naive `Y-m-d H:i:s`, to the second, in the
//! application's zone.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};

/// Turns instants into the naive local times the table holds, and back.
#[derive(Clone)]
pub(crate) struct Clock {
    zone: Arc<dyn Zone>,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.zone.fmt(f)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(Utc)
    }
}

impl Clock {
    pub(crate) fn new<Tz>(zone: Tz) -> Self
    where
        Tz: TimeZone + fmt::Debug + Send + Sync + 'static,
        Tz::Offset: Send + Sync,
    {
        Self {
            zone: Arc::new(zone),
        }
    }

    /// `at`, to the second (rounded down), as a naive time in the zone.
    pub(crate) fn naive(&self, at: SystemTime) -> NaiveDateTime {
        self.zone.to_naive(utc_seconds(at))
    }

    /// Now, as [`naive`](Self::naive).
    pub(crate) fn now(&self) -> NaiveDateTime {
        self.naive(SystemTime::now())
    }

    /// The instant a naive time of the zone stands for. A time that a daylight-saving
    /// change skipped is read as the first valid time after it; one it repeated, as the
    /// earlier of the two.
    pub(crate) fn instant(&self, naive: NaiveDateTime) -> SystemTime {
        let utc = self.zone.to_utc(naive);
        let secs = utc.timestamp();
        let nanos = Duration::from_nanos(u64::from(utc.timestamp_subsec_nanos()));
        let at = match u64::try_from(secs) {
            Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
            Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
        };
        // chrono's years (±262,143) fit a `SystemTime` on the platforms Tokio runs on.
        at.and_then(|at| at.checked_add(nanos))
            .unwrap_or(UNIX_EPOCH)
    }
}

/// The first second the store writes or reads as itself: 0001-01-01 00:00:00 UTC.
const EARLIEST_SECS: i64 = -62_135_596_800;

/// The last second the store writes: 9999-12-31 23:59:59 UTC, the last of Laravel's
/// (Carbon's) four-digit years and of MySQL's `DATETIME`.
pub(crate) const LATEST_SECS: i64 = 253_402_300_799;

/// Whether the store can write `at`: not after [`LATEST_SECS`].
pub(crate) fn writable(at: SystemTime) -> bool {
    at.duration_since(UNIX_EPOCH)
        .map_or(true, |d| d.as_secs() <= LATEST_SECS.unsigned_abs())
}

/// `at` to the second, rounded down, in UTC, within years 1 to 9999 (an instant outside
/// them is taken as the nearest end): in every zone its local time is then one chrono
/// represents, so no conversion overflows.
pub(crate) fn utc_seconds(at: SystemTime) -> DateTime<Utc> {
    let secs = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            // Rounded down: -0.5 s is -1 s.
            if d.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            }
        }
    };
    let secs = secs.clamp(EARLIEST_SECS, LATEST_SECS);
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

trait Zone: fmt::Debug + Send + Sync {
    fn to_naive(&self, utc: DateTime<Utc>) -> NaiveDateTime;
    fn to_utc(&self, naive: NaiveDateTime) -> DateTime<Utc>;
}

impl<Tz> Zone for Tz
where
    Tz: TimeZone + fmt::Debug + Send + Sync,
    Tz::Offset: Send + Sync,
{
    fn to_naive(&self, utc: DateTime<Utc>) -> NaiveDateTime {
        // Within chrono's range: `utc_seconds` keeps instants within years 1 to 9999.
        let offset = self.offset_from_utc_datetime(&utc.naive_utc()).fix();
        utc.naive_utc()
            .checked_add_offset(offset)
            .unwrap_or(utc.naive_utc())
    }

    fn to_utc(&self, naive: NaiveDateTime) -> DateTime<Utc> {
        // A skipped local time: step forward until one exists (a gap is at most hours).
        let mut probe = naive;
        for _ in 0..(48 * 4) {
            if let Some(at) = self.from_local_datetime(&probe).earliest() {
                return at.with_timezone(&Utc);
            }
            match probe.checked_add_signed(chrono::Duration::minutes(15)) {
                Some(next) => probe = next,
                None => break,
            }
        }
        naive.and_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn utc_by_default_to_the_second() {
        let clock = Clock::default();
        // 2024-05-01T10:00:00.999Z
        let t = UNIX_EPOCH + Duration::from_millis(1_714_557_600_999);
        assert_eq!(clock.naive(t), at("2024-05-01 10:00:00"));
        assert_eq!(
            clock.instant(at("2024-05-01 10:00:00")),
            UNIX_EPOCH + Duration::from_secs(1_714_557_600)
        );
    }

    #[test]
    fn a_fixed_offset_zone_writes_local_times() {
        let clock = Clock::new(FixedOffset::east_opt(2 * 3600).unwrap());
        let t = UNIX_EPOCH + Duration::from_secs(1_714_557_600);
        assert_eq!(clock.naive(t), at("2024-05-01 12:00:00"));
        assert_eq!(clock.instant(at("2024-05-01 12:00:00")), t);
    }

    #[test]
    fn instants_beyond_year_9999_convert_without_overflow_in_every_zone() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 86_400);
        assert!(!writable(far));
        assert!(writable(UNIX_EPOCH + Duration::from_secs(253_402_300_799)));
        assert!(!writable(UNIX_EPOCH + Duration::from_secs(253_402_300_800)));
        for hours in [-14, -5, 0, 1, 14] {
            let clock = Clock::new(FixedOffset::east_opt(hours * 3600).unwrap());
            // Clamped to the last writable second, then to the zone.
            let naive = clock.naive(far);
            assert_eq!(
                clock.instant(naive),
                UNIX_EPOCH + Duration::from_secs(253_402_300_799),
                "{hours}"
            );
            // A naive time at chrono's very end reads back without a panic.
            let _ = clock.instant(NaiveDateTime::MAX);
            let _ = clock.instant(NaiveDateTime::MIN);
        }
    }

    #[test]
    fn before_the_epoch_rounds_down() {
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(utc_seconds(t).timestamp(), -1);
        let t = UNIX_EPOCH - Duration::from_millis(2500);
        assert_eq!(utc_seconds(t).timestamp(), -3);
        // A whole second stays itself.
        let t = UNIX_EPOCH - Duration::from_secs(2);
        assert_eq!(utc_seconds(t).timestamp(), -2);
    }

    /// Samoa at the end of 2011: from UTC-10 to UTC+14 at 2011-12-30 10:00 UTC, so that
    /// the local day of 2011-12-30 never happened.
    #[derive(Clone, Copy, Debug)]
    struct Samoa2011;

    impl Samoa2011 {
        fn before() -> FixedOffset {
            FixedOffset::west_opt(10 * 3600).unwrap()
        }
        fn after() -> FixedOffset {
            FixedOffset::east_opt(14 * 3600).unwrap()
        }
        fn switch() -> NaiveDateTime {
            at("2011-12-30 10:00:00")
        }
    }

    impl TimeZone for Samoa2011 {
        type Offset = FixedOffset;

        fn from_offset(_: &FixedOffset) -> Self {
            Self
        }

        fn offset_from_local_date(
            &self,
            local: &chrono::NaiveDate,
        ) -> chrono::LocalResult<FixedOffset> {
            let skipped = at("2011-12-30 00:00:00").date();
            match local.cmp(&skipped) {
                std::cmp::Ordering::Less => chrono::LocalResult::Single(Self::before()),
                std::cmp::Ordering::Equal => chrono::LocalResult::None,
                std::cmp::Ordering::Greater => chrono::LocalResult::Single(Self::after()),
            }
        }

        fn offset_from_local_datetime(
            &self,
            local: &NaiveDateTime,
        ) -> chrono::LocalResult<FixedOffset> {
            if *local < at("2011-12-30 00:00:00") {
                chrono::LocalResult::Single(Self::before())
            } else if *local >= at("2011-12-31 00:00:00") {
                chrono::LocalResult::Single(Self::after())
            } else {
                chrono::LocalResult::None
            }
        }

        fn offset_from_utc_date(&self, utc: &chrono::NaiveDate) -> FixedOffset {
            self.offset_from_utc_datetime(&utc.and_time(chrono::NaiveTime::MIN))
        }

        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            if *utc < Self::switch() {
                Self::before()
            } else {
                Self::after()
            }
        }
    }

    #[test]
    fn a_skipped_local_time_reads_as_the_first_one_after_the_gap_even_a_whole_day() {
        let clock = Clock::new(Samoa2011);
        let switch = UNIX_EPOCH + Duration::from_secs(1_325_239_200); // 2011-12-30T10:00:00Z
        assert_eq!(clock.naive(switch), at("2011-12-31 00:00:00"));
        assert_eq!(
            clock.naive(switch - Duration::from_secs(1)),
            at("2011-12-29 23:59:59")
        );
        // The skipped day's first second: 24 hours of 15-minute steps to the gap's end.
        assert_eq!(clock.instant(at("2011-12-30 00:00:00")), switch);
        assert_eq!(clock.instant(at("2011-12-30 17:30:00")), switch);
        assert_eq!(
            clock.instant(at("2011-12-29 23:59:59")),
            switch - Duration::from_secs(1)
        );
    }
}
