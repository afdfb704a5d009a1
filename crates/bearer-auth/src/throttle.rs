//! Error-level log events at most once per interval for each kind of error, so that an
//! outage cannot fill a disk and no error can hide another.
//!
//! While a verifier's backend is down every request fails the same way; while a route is
//! misconfigured every request to it does. Logging each of them at `error` would write a
//! line per request for as long as it lasts. An [`ErrorLogThrottle`] lets the first event
//! of a kind through, counts the ones of that kind that follow within the interval, and
//! lets the next one through once the interval has passed, carrying the count
//! (`suppressed=N`). Nothing is written between two requests: the count of the last
//! interval of an outage is reported with the next event of its kind.
//!
//! Each kind has its own interval, so that an error a client can cause at will (a token
//! its backend chokes on, sent once per interval) cannot keep another one (the database
//! going down) out of the logs. The kinds are bounded: past [`MAX_KINDS`] at once, the
//! others share one more interval, so that a client able to cause many distinct errors
//! cannot make the throttle grow.

use std::{
    collections::hash_map::RandomState,
    fmt,
    hash::{BuildHasher, Hash, Hasher},
    mem,
    sync::{Mutex, MutexGuard, OnceLock, PoisonError},
    time::{Duration, Instant},
};

/// The shortest time between two error-level events of one kind (one backend error, an
/// extractor on a route no layer covers for one principal type): 10 seconds.
///
/// The first event of a kind is logged at once; the ones of that kind that follow within
/// the interval are only counted, and the next event of that kind logged after it carries
/// their number in its `suppressed` field. Change it per authenticator with
/// [`Authenticator::with_error_log_interval`](crate::Authenticator::with_error_log_interval).
pub const DEFAULT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How many kinds of error an [`ErrorLogThrottle`] follows one by one; the others share
/// one interval.
const MAX_KINDS: usize = 32;

/// Lets one error-level log event through per interval for each kind of error, and counts
/// the others: what [`Authenticator`](crate::Authenticator) uses for the failures of its
/// verifier's backend (one kind per distinct error text), and adapters for their own
/// error events (one kind per misconfiguration).
///
/// [`admit`](Self::admit) tells whether to log an event now; each kind (any hashable
/// value: a type name, a fixed string) has its own interval, so that frequent events of
/// one kind never hide a rarer one. At most 32 kinds are followed one by one; a kind whose
/// interval has passed gives its place to a new one, and while 32 are busy the others
/// share a single interval. The memory held is bounded whatever the events.
///
/// Kinds are told apart by a hash with keys random to each throttle, so that nobody can
/// choose two kinds that fall together. A zero interval lets every event through.
///
/// ```
/// use std::time::Duration;
/// use bearer_auth::ErrorLogThrottle;
///
/// let throttle = ErrorLogThrottle::new(Duration::from_secs(60));
/// assert_eq!(throttle.admit("database down"), Some(0)); // logged
/// assert_eq!(throttle.admit("database down"), None); // counted
/// assert_eq!(throttle.admit("cache down"), Some(0)); // another kind: logged
///
/// let every = ErrorLogThrottle::new(Duration::ZERO);
/// assert_eq!(every.admit("database down"), Some(0));
/// assert_eq!(every.admit("database down"), Some(0));
/// ```
pub struct ErrorLogThrottle {
    /// The interval, in nanoseconds.
    interval: u64,
    hasher: RandomState,
    slots: Mutex<Slots>,
}

/// The kinds followed one by one, and the interval the others share.
#[derive(Default)]
struct Slots {
    kinds: Vec<Slot>,
    others: Slot,
}

/// One kind's interval.
#[derive(Default)]
struct Slot {
    /// The kind's hash.
    key: u64,
    /// When the next event may be logged, in nanoseconds since [`now`]'s epoch; 0 for the
    /// slot of the other kinds at first, so that its first event is logged.
    next: u64,
    /// Events not logged since the last one that was.
    suppressed: u64,
}

impl Slot {
    fn admit(&mut self, now: u64, interval: u64) -> Option<u64> {
        if now < self.next {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        } else {
            self.next = now.saturating_add(interval);
            Some(mem::take(&mut self.suppressed))
        }
    }
}

impl ErrorLogThrottle {
    /// A throttle letting one event of each kind through per `interval` (every event for a
    /// zero interval).
    pub fn new(interval: Duration) -> Self {
        Self {
            interval: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            hasher: RandomState::new(),
            slots: Mutex::new(Slots::default()),
        }
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// Whether to log an event of this `kind` happening now: `Some(n)` to log it, `n`
    /// being the number of events of its kind not logged since the last one that was;
    /// `None` to drop it (it is counted).
    pub fn admit<K: Hash + ?Sized>(&self, kind: &K) -> Option<u64> {
        self.admit_with(self.hasher.hash_one(kind), now)
    }

    /// [`admit`](Self::admit) for the kind whose hash is `key`, at the time `now` reads
    /// (tests pass their own clock). The clock is read under the lock, so that the events
    /// of one throttle are seen in the order of their readings.
    fn admit_with(&self, key: u64, now: impl FnOnce() -> u64) -> Option<u64> {
        if self.interval == 0 {
            // Every event is logged: nothing to count, no order to keep.
            return Some(0);
        }
        let mut slots = self.lock();
        let now = now();
        let Slots { kinds, others } = &mut *slots;
        if let Some(slot) = kinds.iter_mut().find(|slot| slot.key == key) {
            return slot.admit(now, self.interval);
        }
        let fresh = Slot {
            key,
            next: now.saturating_add(self.interval),
            suppressed: 0,
        };
        if kinds.len() < MAX_KINDS {
            kinds.push(fresh);
            return Some(0);
        }
        // Full: the kind whose interval ended first gives its place, if it has ended. Its
        // count, if any, goes to the others' next event rather than being lost.
        match kinds
            .iter_mut()
            .filter(|slot| slot.next <= now)
            .min_by_key(|slot| slot.next)
        {
            Some(slot) => {
                let evicted = mem::replace(slot, fresh);
                others.suppressed = others.suppressed.saturating_add(evicted.suppressed);
                Some(0)
            }
            None => others.admit(now, self.interval),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Nothing under the lock panics; were it poisoned, the counts are still sound.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ErrorLogThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorLogThrottle")
            .field("interval", &self.interval())
            .field("kinds", &self.lock().kinds.len())
            .finish()
    }
}

/// Hashes the text a value displays, written straight into the hasher: no allocation.
/// Two errors that would log the same text are one kind.
pub(crate) struct DisplayedText<'a>(pub(crate) &'a dyn fmt::Display);

impl Hash for DisplayedText<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        struct Writer<'h, H>(&'h mut H);

        impl<H: Hasher> fmt::Write for Writer<'_, H> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.write(s.as_bytes());
                Ok(())
            }
        }

        // A `Display` that fails has hashed what it wrote so far: still one kind per text.
        let _ = fmt::write(&mut Writer(state), format_args!("{}", self.0));
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

    fn at(throttle: &ErrorLogThrottle, key: u64, t: u64) -> Option<u64> {
        throttle.admit_with(key, || t)
    }

    #[test]
    fn first_event_passes_the_rest_of_the_interval_is_counted() {
        let throttle = ErrorLogThrottle::new(Duration::from_secs(10));
        assert_eq!(at(&throttle, 1, 5 * SECOND), Some(0));
        for i in 0..999 {
            assert_eq!(at(&throttle, 1, 5 * SECOND + i), None);
        }
        // Just before the interval ends: still counted.
        assert_eq!(at(&throttle, 1, 15 * SECOND - 1), None);
        // The first event after it carries the count, and starts a new interval.
        assert_eq!(at(&throttle, 1, 15 * SECOND), Some(1000));
        assert_eq!(at(&throttle, 1, 16 * SECOND), None);
        assert_eq!(at(&throttle, 1, 40 * SECOND), Some(1));
        // After a quiet interval, nothing was suppressed.
        assert_eq!(at(&throttle, 1, 60 * SECOND), Some(0));
    }

    #[test]
    fn the_first_event_of_the_process_passes() {
        let throttle = ErrorLogThrottle::new(DEFAULT_ERROR_LOG_INTERVAL);
        assert_eq!(at(&throttle, 1, 0), Some(0));
        assert_eq!(at(&throttle, 1, 0), None);
        assert_eq!(throttle.admit("a kind"), Some(0));
        assert_eq!(throttle.admit("a kind"), None);
    }

    #[test]
    fn each_kind_has_its_own_interval() {
        let throttle = ErrorLogThrottle::new(Duration::from_secs(10));
        // The kind sent first in every interval does not hide the other one.
        for round in 0..3 {
            let start = round * 20 * SECOND;
            assert_eq!(at(&throttle, 1, start), Some(u64::from(round > 0)));
            assert_eq!(at(&throttle, 1, start + 1), None);
            assert_eq!(at(&throttle, 2, start + 2), Some(u64::from(round > 0) * 49));
            for i in 0..49 {
                assert_eq!(at(&throttle, 2, start + 3 + i), None);
            }
        }
    }

    #[test]
    fn kinds_are_hashed_values() {
        let throttle = ErrorLogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.admit("app::Admin"), Some(0));
        assert_eq!(throttle.admit("app::Billing"), Some(0));
        assert_eq!(throttle.admit(&String::from("app::Admin")), None);
        let error = std::io::Error::other("db down");
        assert_eq!(throttle.admit(&DisplayedText(&error)), Some(0));
        assert_eq!(throttle.admit(&DisplayedText(&"db down")), None);
        assert_eq!(throttle.admit(&DisplayedText(&"db up")), Some(0));
    }

    #[test]
    fn past_the_bound_the_other_kinds_share_one_interval() {
        let throttle = ErrorLogThrottle::new(Duration::from_secs(10));
        let kinds = MAX_KINDS as u64;
        for key in 0..kinds {
            assert_eq!(at(&throttle, key, SECOND), Some(0));
        }
        // Every place is taken and no interval is over: the others share one.
        assert_eq!(at(&throttle, 1000, 2 * SECOND), Some(0));
        assert_eq!(at(&throttle, 1001, 2 * SECOND), None);
        assert_eq!(at(&throttle, 1000, 3 * SECOND), None);
        // The followed kinds still have their own.
        assert_eq!(at(&throttle, 0, 3 * SECOND), None);
        assert_eq!(throttle.lock().kinds.len(), MAX_KINDS);
        assert_eq!(
            format!("{throttle:?}"),
            "ErrorLogThrottle { interval: 10s, kinds: 32 }"
        );
    }

    #[test]
    fn a_kind_whose_interval_is_over_gives_its_place_and_its_count_to_the_others() {
        let throttle = ErrorLogThrottle::new(Duration::from_secs(10));
        let kinds = MAX_KINDS as u64;
        let tenth = SECOND / 10;
        for key in 0..kinds {
            assert_eq!(at(&throttle, key, key * tenth), Some(0));
        }
        // Kind 0 counted one event; kind 1 none.
        assert_eq!(at(&throttle, 0, kinds * tenth), None);
        // Kind 0's interval ended first (at 10 s): a new kind takes its place...
        assert_eq!(at(&throttle, 1000, 100 * SECOND), Some(0));
        assert_eq!(at(&throttle, 1000, 100 * SECOND + 1), None);
        // ...then kind 1's (at 10.1 s), for the next new kind.
        assert_eq!(at(&throttle, 1001, 100 * SECOND + 2), Some(0));
        // Kind 0 comes back in turn, in kind 2's place; its count went to the others.
        assert_eq!(at(&throttle, 0, 100 * SECOND + 3), Some(0));
        assert_eq!(throttle.lock().others.suppressed, 1);
        assert_eq!(throttle.lock().kinds.len(), MAX_KINDS);
    }

    #[test]
    fn a_zero_interval_lets_every_event_through() {
        let throttle = ErrorLogThrottle::new(Duration::ZERO);
        for t in [0, 0, 1, 1, 2] {
            assert_eq!(at(&throttle, 1, t), Some(0));
        }
        for key in 0..1000 {
            assert_eq!(throttle.admit(&key), Some(0));
        }
        assert_eq!(throttle.lock().kinds.len(), 0);
    }

    /// Two threads whose clock readings reach the throttle out of order (one read 5, then
    /// the other read 7 and took the lock first): with a zero interval both are logged.
    #[test]
    fn a_zero_interval_logs_events_whose_readings_arrive_out_of_order() {
        let throttle = ErrorLogThrottle::new(Duration::ZERO);
        assert_eq!(at(&throttle, 1, 7), Some(0));
        assert_eq!(at(&throttle, 1, 5), Some(0));
    }

    #[test]
    fn a_huge_interval_saturates_instead_of_wrapping() {
        let throttle = ErrorLogThrottle::new(Duration::MAX);
        assert_eq!(throttle.interval(), Duration::from_nanos(u64::MAX));
        assert_eq!(at(&throttle, 1, SECOND), Some(0));
        assert_eq!(at(&throttle, 1, u64::MAX - 1), None);
    }

    #[test]
    fn real_clock_with_a_short_interval() {
        let throttle = ErrorLogThrottle::new(Duration::from_millis(20));
        assert_eq!(throttle.admit("down"), Some(0));
        assert_eq!(throttle.admit("down"), None);
        assert_eq!(throttle.admit("down"), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(throttle.admit("down"), Some(2));
    }

    #[test]
    fn threads_racing_lose_no_count() {
        let throttle = ErrorLogThrottle::new(Duration::from_secs(3600));
        let logged = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..250)
                            .filter(|_| at(&throttle, 1, SECOND).is_some())
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
        assert_eq!(at(&throttle, 1, u64::MAX), Some(999));
    }

    #[test]
    fn debug_shows_the_interval_and_the_kinds_followed() {
        let throttle = ErrorLogThrottle::new(Duration::from_secs(10));
        assert_eq!(
            format!("{throttle:?}"),
            "ErrorLogThrottle { interval: 10s, kinds: 0 }"
        );
        throttle.admit("down");
        assert_eq!(
            format!("{throttle:?}"),
            "ErrorLogThrottle { interval: 10s, kinds: 1 }"
        );
    }
}
