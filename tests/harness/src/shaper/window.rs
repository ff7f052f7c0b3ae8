//! TCP slow start of one connection's server→client direction, as a sending window: it
//! starts at [`INITIAL_WINDOW`], every byte sent at `t` is acknowledged at `t + RTT`, and
//! each acknowledged byte grows the window by one byte (so the window doubles per RTT).
//! Once the window reaches its limit (the per-connection bandwidth-delay product) slow
//! start is over and the window no longer limits anything: there is no loss, so no
//! congestion avoidance, and the window never shrinks (not even after idle).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Linux's initial congestion window: 10 segments of 1460 bytes.
pub const INITIAL_WINDOW: u64 = 10 * MSS;

/// The segment size: a send waits rather than go out in a piece smaller than this (unless
/// it is smaller itself), so that an almost full window does not trickle out byte by byte.
pub const MSS: u64 = 1460;

/// The window of one connection in slow start.
#[derive(Debug)]
pub struct SlowStart {
    rtt: Duration,
    /// Slow start ends when the window reaches this many bytes.
    limit: u64,
    cwnd: u64,
    in_flight: u64,
    /// Sent and not yet acknowledged: (when the ack arrives, bytes).
    unacked: VecDeque<(Instant, u64)>,
    over: bool,
}

impl SlowStart {
    /// A window for a link of `rtt` that ends slow start at `limit` bytes (normally the
    /// connection's rate × RTT).
    pub fn new(rtt: Duration, limit: u64) -> SlowStart {
        SlowStart {
            rtt,
            limit,
            cwnd: INITIAL_WINDOW,
            in_flight: 0,
            unacked: VecDeque::new(),
            over: limit <= INITIAL_WINDOW || rtt.is_zero(),
        }
    }

    /// Whether slow start has ended (the window no longer limits).
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// The current window in bytes.
    pub fn window(&self) -> u64 {
        self.cwnd
    }

    /// Takes the acks due by `now`, then returns how many bytes may be sent now
    /// (`u64::MAX` once slow start is over).
    pub fn available(&mut self, now: Instant) -> u64 {
        while let Some(&(at, n)) = self.unacked.front() {
            if at > now {
                break;
            }
            self.unacked.pop_front();
            self.in_flight -= n;
            self.cwnd += n;
        }
        if self.cwnd >= self.limit {
            self.over = true;
            self.unacked.clear();
        }
        if self.over {
            u64::MAX
        } else {
            self.cwnd.saturating_sub(self.in_flight)
        }
    }

    /// How many of `want` bytes to send now: all that the window allows, but nothing when
    /// that would be less than a segment (and less than `want`). Takes the acks due by `now`.
    pub fn allowed(&mut self, now: Instant, want: u64) -> u64 {
        let avail = self.available(now);
        if avail >= want.min(MSS) {
            want.min(avail)
        } else {
            0
        }
    }

    /// When the next ack arrives, if any is outstanding.
    pub fn next_ack(&self) -> Option<Instant> {
        self.unacked.front().map(|&(at, _)| at)
    }

    /// Records `n` bytes sent at `now`.
    pub fn sent(&mut self, now: Instant, n: u64) {
        if self.over || n == 0 {
            return;
        }
        self.in_flight += n;
        self.unacked.push_back((now + self.rtt, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `total` bytes as fast as the window allows (no rate limit); returns the RTT
    /// count (send rounds) it took.
    fn rounds(total: u64, limit: u64) -> u32 {
        let rtt = Duration::from_millis(100);
        let mut w = SlowStart::new(rtt, limit);
        let t0 = Instant::now();
        let mut now = t0;
        let mut sent = 0;
        loop {
            let n = w.allowed(now, total - sent);
            w.sent(now, n);
            sent += n;
            if sent == total {
                return ((now - t0).as_millis() / 100) as u32 + 1;
            }
            match w.next_ack() {
                Some(at) => now = at,
                None => panic!("window closed with nothing in flight"),
            }
        }
    }

    #[test]
    fn the_window_doubles_per_rtt() {
        // 10, 20, 40, 80 segments: 150 segments in 4 rounds, 151 needs a fifth.
        assert_eq!(rounds(INITIAL_WINDOW, 10_000_000), 1);
        assert_eq!(rounds(150 * MSS, 10_000_000), 4);
        assert_eq!(rounds(151 * MSS, 10_000_000), 5);
    }

    #[test]
    fn slow_start_ends_at_the_limit() {
        let rtt = Duration::from_millis(100);
        let mut w = SlowStart::new(rtt, 100_000);
        let t0 = Instant::now();
        assert_eq!(w.available(t0), INITIAL_WINDOW);
        w.sent(t0, INITIAL_WINDOW);
        assert_eq!(w.available(t0), 0);
        assert_eq!(w.next_ack(), Some(t0 + rtt));
        let mut now = t0 + rtt;
        for _ in 0..2 {
            let n = w.available(now);
            assert!(!w.is_over());
            w.sent(now, n);
            now += rtt;
        }
        // 14600 → 29200 → 58400 → 116800 ≥ 100000.
        assert_eq!(w.available(now), u64::MAX);
        assert!(w.is_over());
        assert_eq!(w.next_ack(), None);
    }

    #[test]
    fn small_pieces_wait_for_a_segment() {
        let mut w = SlowStart::new(Duration::from_millis(10), 1_000_000);
        let t0 = Instant::now();
        w.sent(t0, INITIAL_WINDOW - 100);
        assert_eq!(w.allowed(t0, 50), 50);
        assert_eq!(w.allowed(t0, 5000), 0);
    }

    #[test]
    fn no_rtt_or_a_tiny_limit_means_no_slow_start() {
        assert!(SlowStart::new(Duration::ZERO, 1_000_000).is_over());
        assert!(SlowStart::new(Duration::from_millis(10), 1000).is_over());
    }
}
