//! Laravel's `RateLimiter` for failed attempts: after `max` failures for one key within
//! the decay window (counted from the first), the key is refused until the window ends.
//! A success clears the key.
//!
//! An attempt whose outcome takes time to learn (bcrypt) is counted *before* that work,
//! with [`Throttle::attempt`], which checks and counts in one step: of many requests
//! sent at once, only `max` get through, and a success then [clears](Throttle::clear)
//! the count. [`Throttle::check`] and [`Throttle::fail`] remain for counting after the
//! fact.
//!
//! In memory, per process: behind a load balancer each instance counts on its own, as a
//! Laravel app on the `array` cache driver does. The map is bounded: when it holds more
//! than [`MAX_KEYS`] keys, those whose window ended are dropped.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Above this many keys, ended windows are swept on the next failure.
pub const MAX_KEYS: usize = 10_000;

/// Counts failed attempts per key.
#[derive(Debug)]
pub struct Throttle {
    max: u32,
    decay: Duration,
    hits: DashMap<String, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    ends: Instant,
}

impl Throttle {
    /// `max` failures per `decay` (Laravel's `Limit::perMinute(5)` is `5`, 60 s).
    pub fn new(max: u32, decay: Duration) -> Self {
        Self {
            max,
            decay,
            hits: DashMap::new(),
        }
    }

    /// `Err(retry_after)` if `key` has used up its failures in the current window.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        match self.hits.get(key) {
            Some(w) if w.ends > now && w.failures >= self.max => Err(w.ends - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure for `key`; returns how many it has in the current window.
    pub fn fail(&self, key: &str) -> u32 {
        self.fail_at(key, Instant::now())
    }

    fn fail_at(&self, key: &str, now: Instant) -> u32 {
        self.sweep(now);
        let mut w = self.hits.entry(key.to_owned()).or_insert(Window {
            failures: 0,
            ends: now + self.decay,
        });
        if w.ends <= now {
            *w = Window {
                failures: 0,
                ends: now + self.decay,
            };
        }
        w.failures = w.failures.saturating_add(1);
        w.failures
    }

    /// Checks and counts an attempt for `key` at once: `Err(retry_after)` if `key` has
    /// used up its attempts in the current window (and nothing is counted), else the
    /// attempt is counted as a failure until [`clear`](Self::clear) says it succeeded.
    /// Concurrent attempts are counted one by one: no more than `max` get `Ok`.
    pub fn attempt(&self, key: &str) -> Result<(), Duration> {
        self.attempt_at(key, Instant::now())
    }

    fn attempt_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.sweep(now);
        // The entry holds its shard's lock: check and count are one step.
        let mut w = self.hits.entry(key.to_owned()).or_insert(Window {
            failures: 0,
            ends: now + self.decay,
        });
        if w.ends <= now {
            *w = Window {
                failures: 0,
                ends: now + self.decay,
            };
        }
        if w.failures >= self.max {
            return Err(w.ends - now);
        }
        w.failures += 1;
        Ok(())
    }

    /// Drops ended windows when the map is full.
    fn sweep(&self, now: Instant) {
        if self.hits.len() >= MAX_KEYS {
            self.hits.retain(|_, w| w.ends > now);
        }
    }

    /// Forgets `key`'s failures (after a success).
    pub fn clear(&self, key: &str) {
        self.hits.remove(key);
    }
}

/// Seconds for `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_refused_until_the_window_ends() {
        let t = Throttle::new(5, Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..5 {
            assert!(t.check_at("k", start).is_ok(), "attempt {i}");
            t.fail_at("k", start + Duration::from_secs(i));
        }
        let wait = t
            .check_at("k", start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.check_at("other", start).is_ok());
        assert!(t.check_at("k", start + Duration::from_secs(60)).is_ok());
        // A new window after the old one ended.
        t.fail_at("k", start + Duration::from_secs(61));
        assert!(t.check_at("k", start + Duration::from_secs(62)).is_ok());
    }

    #[test]
    fn attempts_check_and_count_at_once() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(t.attempt_at("k", start).is_ok());
        }
        assert_eq!(
            t.attempt_at("k", start + Duration::from_secs(15)),
            Err(Duration::from_secs(45))
        );
        assert!(t.check_at("k", start).is_err());
        // A refused attempt is not counted: the window still ends at 60 s.
        assert!(t.attempt_at("k", start + Duration::from_secs(60)).is_ok());
        t.clear("k");
        assert!(t.attempt_at("k", start).is_ok());
        assert_eq!(t.fail_at("k", start), 2);
    }

    #[test]
    fn concurrent_attempts_get_max_through() {
        let t = std::sync::Arc::new(Throttle::new(5, Duration::from_secs(60)));
        let passed: usize = (0..16)
            .map(|_| {
                let t = std::sync::Arc::clone(&t);
                std::thread::spawn(move || t.attempt("k").is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(passed, 5);
    }

    #[test]
    fn success_clears() {
        let t = Throttle::new(2, Duration::from_secs(60));
        t.fail("k");
        t.clear("k");
        t.fail("k");
        assert!(t.check("k").is_ok());
        t.fail("k");
        assert!(t.check("k").is_err());
    }

    #[test]
    fn ended_windows_are_swept_when_full() {
        let t = Throttle::new(5, Duration::from_secs(1));
        let start = Instant::now();
        for i in 0..MAX_KEYS {
            t.fail_at(&i.to_string(), start);
        }
        t.fail_at("late", start + Duration::from_secs(2));
        assert_eq!(t.hits.len(), 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(49_001)), 50);
        assert_eq!(retry_after_secs(Duration::from_secs(50)), 50);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
