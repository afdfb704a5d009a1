//! The wall clock, read two ways: exactly, for expiry, and coarsely, for `last_used_at`.

use std::time::SystemTime;

use crate::store::to_ms;

/// Unix milliseconds, exactly: what an expiry is checked against.
pub(crate) fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

/// Unix milliseconds as of the kernel's last tick (a few milliseconds old at most), for
/// what is kept to the second: `last_used_at`.
///
/// On Linux this is `CLOCK_REALTIME_COARSE`, a read of memory the kernel shares with the
/// process: about a tenth of the exact clock's cost (2.6 against 27 ns on the machine of
/// `BENCHMARKS.md`), which a verification of a key that cannot expire would otherwise
/// pay on every request. Elsewhere, the exact clock.
#[cfg(target_os = "linux")]
pub(crate) fn coarse_now_ms() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let ms = u64::try_from(now.tv_nsec / 1_000_000).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(ms)
}

/// Unix milliseconds: the exact clock where no coarse one is read cheaply.
#[cfg(not(target_os = "linux"))]
pub(crate) fn coarse_now_ms() -> u64 {
    now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_is_the_wall_clock_within_a_tick() {
        for _ in 0..1000 {
            let before = now_ms();
            let coarse = coarse_now_ms();
            let after = now_ms();
            // The coarse clock lags by at most a tick (4 ms at the slowest kernel
            // setting, HZ=250), and never runs ahead.
            assert!(coarse <= after, "{coarse} > {after}");
            assert!(
                coarse + 10 >= before,
                "{coarse} lags {before} by more than 10 ms"
            );
        }
    }
}
