//! Error-level log events at most once per interval, so that an outage cannot fill a disk.
//!
//! While a verifier's backend is down every request fails the same way; while a route is
//! misconfigured every request to it does. Logging each of them at `error` would write a
//! line per request for as long as it lasts. A [`LogThrottle`] lets the first event
//! through, counts the ones that follow within the interval, and lets the next one
//! through once the interval has passed, carrying the count (`suppressed=N`). Nothing is
//! written between two requests: the count of the last interval of an outage is reported
//! with the next event of its kind.

use std::{
    fmt,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The shortest time between two error-level events of one kind (backend unavailable, an
/// extractor on a route no layer covers): 10 seconds.
///
/// The first event of a kind is logged at once; the ones that follow within the interval
/// are only counted, and the next event logged after it carries their number in its
/// `suppressed` field. Change it per authenticator with
/// [`Authenticator::with_error_log_interval`](crate::Authenticator::with_error_log_interval).
pub const DEFAULT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Lets one event through per interval and counts the others, with two atomics: no lock,
/// no allocation, no background task.
pub(crate) struct LogThrottle {
    /// The interval, in nanoseconds.
    interval: u64,
    /// When the next event may be logged, in nanoseconds since [`epoch`]; 0 at first, so
    /// the first event is logged.
    next: AtomicU64,
    /// Events not logged since the last one that was.
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// A throttle letting one event through per `interval` (every event for a zero
    /// interval).
    pub(crate) const fn new(interval: Duration) -> Self {
        let nanos = interval.as_nanos();
        Self {
            interval: if nanos > u64::MAX as u128 {
                u64::MAX
            } else {
                nanos as u64
            },
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// The interval.
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// Whether to log an event happening now: `Some(n)` to log it, `n` being the number of
    /// events not logged since the last one that was; `None` to drop it (it is counted).
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(now())
    }

    /// [`admit`](Self::admit) for an event at `now` nanoseconds (tests pass their own
    /// clock).
    pub(crate) fn admit_at(&self, now: u64) -> Option<u64> {
        let mut next = self.next.load(Ordering::Acquire);
        loop {
            if now < next {
                self.suppressed.fetch_add(1, Ordering::AcqRel);
                return None;
            }
            // One thread wins the interval; the others see the new `next` and are counted.
            match self.next.compare_exchange_weak(
                next,
                now.saturating_add(self.interval),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // An event counted by a thread that lost the race after this swap goes
                // to the next summary: none is lost.
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::AcqRel)),
                Err(actual) => next = actual,
            }
        }
    }
}

impl fmt::Debug for LogThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogThrottle")
            .field("interval", &self.interval())
            .field("suppressed", &self.suppressed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Nanoseconds on a monotonic clock, counted from the first call in the process.
fn now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn first_event_passes_the_rest_of_the_interval_is_counted() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(throttle.admit_at(5 * SECOND), Some(0));
        for i in 0..999 {
            assert_eq!(throttle.admit_at(5 * SECOND + i), None);
        }
        // Just before the interval ends: still counted.
        assert_eq!(throttle.admit_at(15 * SECOND - 1), None);
        // The first event after it carries the count, and starts a new interval.
        assert_eq!(throttle.admit_at(15 * SECOND), Some(1000));
        assert_eq!(throttle.admit_at(16 * SECOND), None);
        assert_eq!(throttle.admit_at(40 * SECOND), Some(1));
        // After a quiet interval, nothing was suppressed.
        assert_eq!(throttle.admit_at(60 * SECOND), Some(0));
    }

    #[test]
    fn the_first_event_of_the_process_passes() {
        let throttle = LogThrottle::new(DEFAULT_ERROR_LOG_INTERVAL);
        assert_eq!(throttle.admit_at(0), Some(0));
        assert_eq!(throttle.admit_at(0), None);
        assert_eq!(throttle.admit(), None);
    }

    #[test]
    fn a_zero_interval_lets_every_event_through() {
        let throttle = LogThrottle::new(Duration::ZERO);
        for t in [0, 0, 1, 1, 2] {
            assert_eq!(throttle.admit_at(t), Some(0));
        }
    }

    #[test]
    fn a_huge_interval_saturates_instead_of_wrapping() {
        let throttle = LogThrottle::new(Duration::MAX);
        assert_eq!(throttle.interval(), Duration::from_nanos(u64::MAX));
        assert_eq!(throttle.admit_at(SECOND), Some(0));
        assert_eq!(throttle.admit_at(u64::MAX - 1), None);
    }

    #[test]
    fn real_clock_with_a_short_interval() {
        let throttle = LogThrottle::new(Duration::from_millis(20));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(throttle.admit(), Some(2));
    }

    #[test]
    fn threads_racing_lose_no_count() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        let logged = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..250)
                            .filter(|_| throttle.admit_at(SECOND).is_some())
                            .count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(logged, 1);
        assert_eq!(throttle.admit_at(u64::MAX), Some(999));
    }

    #[test]
    fn debug_shows_the_interval() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(
            format!("{throttle:?}"),
            "LogThrottle { interval: 10s, suppressed: 0 }"
        );
    }
}
