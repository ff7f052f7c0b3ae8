//! A token bucket in its GCRA form (virtual scheduling): each caller reserves its bytes
//! at once and learns when it may send them, so callers sharing one bucket (the link) are
//! served in the order they asked, and no caller can take more than its share by polling.

use std::time::Duration;

use tokio::time::Instant;

/// The minimum depth, in time at the bucket's rate: a waiter woken up to this late (timer
/// granularity, a busy machine) loses no throughput.
pub const MIN_DEPTH_TIME: Duration = Duration::from_millis(5);

/// Bytes per second with a burst allowance.
#[derive(Debug)]
pub struct TokenBucket {
    /// Seconds per byte.
    per_byte: f64,
    /// How far ahead of real time the schedule may run: the burst, in time.
    tolerance: Duration,
    /// When the bytes reserved so far will have drained at the rate (the "theoretical
    /// arrival time"); `None` before the first reservation.
    tat: Option<Instant>,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second, `burst` bytes deep (at least
    /// [`MIN_DEPTH_TIME`] of the rate). A full bucket to start with.
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        let rate = rate.max(1) as f64;
        let depth = (burst as f64).max(rate * MIN_DEPTH_TIME.as_secs_f64());
        TokenBucket {
            per_byte: 1.0 / rate,
            tolerance: Duration::from_secs_f64(depth / rate),
            tat: None,
        }
    }

    /// Reserves `n` bytes at `now`; returns when they may be sent (`now` or later). A
    /// reservation larger than the burst waits until all but a burst's worth has drained.
    pub fn reserve(&mut self, now: Instant, n: u64) -> Instant {
        let start = self.tat.map_or(now, |t| t.max(now));
        let tat = start + Duration::from_secs_f64(n as f64 * self.per_byte);
        self.tat = Some(tat);
        match tat.checked_sub(self.tolerance) {
            Some(at) if at > now => at,
            _ => now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_ms(d: Duration, ms: f64) {
        let got = d.as_secs_f64() * 1000.0;
        assert!((got - ms).abs() < 0.001, "{got} ms, expected {ms}");
    }

    /// Sends `total` bytes in `piece`s as fast as the bucket allows, waking exactly on
    /// time; returns the time the last piece went.
    fn drain(bucket: &mut TokenBucket, t0: Instant, total: u64, piece: u64) -> Duration {
        let mut now = t0;
        let mut sent = 0;
        while sent < total {
            now = bucket.reserve(now, piece);
            sent += piece;
        }
        now - t0
    }

    #[test]
    fn long_transfers_run_at_the_rate() {
        let mut b = TokenBucket::new(1_000_000, 64 * 1024);
        let t = drain(&mut b, Instant::now(), 10_000_000, 16 * 1024);
        // 10 MB at 1 MB/s, less the first burst.
        let secs = t.as_secs_f64();
        assert!((9.9..10.0).contains(&secs), "{secs}");
    }

    #[test]
    fn a_burst_goes_at_once_then_the_rate_applies() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000_000, 100_000);
        assert_eq!(b.reserve(t0, 50_000), t0);
        assert_eq!(b.reserve(t0, 50_000), t0);
        assert_ms(b.reserve(t0, 10_000) - t0, 10.0);
        // Idle time refills the bucket, up to its depth only.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.reserve(later, 100_000), later);
        assert_ms(b.reserve(later, 1000) - later, 1.0);
    }

    #[test]
    fn late_wakeups_within_the_depth_cost_nothing() {
        let mut b = TokenBucket::new(1_000_000, 1000); // depth raised to 5 ms = 5000 bytes
        let t0 = Instant::now();
        let mut now = t0;
        for _ in 0..1000 {
            // Each waiter wakes 3 ms late.
            now = b.reserve(now, 10_000) + Duration::from_millis(3);
        }
        let secs = (now - t0).as_secs_f64();
        assert!(secs < 10.01, "{secs}");
    }

    #[test]
    fn sharers_split_the_rate() {
        let mut b = TokenBucket::new(1_000_000, 10_000);
        let t0 = Instant::now();
        // Two callers alternate; together they get the rate, not twice it.
        let (mut a, mut c) = (t0, t0);
        for _ in 0..100 {
            a = b.reserve(a, 10_000);
            c = b.reserve(c, 10_000);
        }
        let secs = (a.max(c) - t0).as_secs_f64();
        assert!((1.98..2.0).contains(&secs), "{secs}");
    }
}
