//! Timestamps as Laravel writes them: naive `Y-m-d H:i:s`, to the second, in the
//! application's zone.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

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
        match u64::try_from(secs) {
            Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
            Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos,
        }
    }
}

/// `at` to the second, rounded down, in UTC.
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
    DateTime::from_timestamp(secs, 0).unwrap_or(if secs < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
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
        utc.with_timezone(self).naive_local()
    }

    fn to_utc(&self, naive: NaiveDateTime) -> DateTime<Utc> {
        // A skipped local time: step forward until one exists (a gap is at most hours).
        let mut probe = naive;
        for _ in 0..(48 * 4) {
            if let Some(at) = self.from_local_datetime(&probe).earliest() {
                return at.with_timezone(&Utc);
            }
            probe += chrono::Duration::minutes(15);
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
    fn before_the_epoch_rounds_down() {
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(utc_seconds(t).timestamp(), -1);
    }
}
