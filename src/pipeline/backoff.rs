//! How long to wait before the next attempt of a row: capped exponential
//! backoff with full jitter (AWS's recommended schedule), within `max_attempts`
//! and the row's overall deadline.
//!
//! Throttling is *also* answered by the shared limiter (`limiter.rs`), which
//! slows every sender at once; this delay only spreads one row's retries.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
    pub deadline: Duration,
}

impl Backoff {
    pub fn new(max_attempts: u32, deadline: Duration) -> Backoff {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(20),
            max_attempts,
            deadline,
        }
    }

    /// The ceiling of the wait after attempt `attempt` (1-based) failed.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base.saturating_mul(exp).min(self.cap)
    }

    /// The wait before the next attempt, or `None` when the row should stop:
    /// attempts used up, or the wait would cross the deadline (`elapsed` is
    /// time since the row's first attempt). `unit` in [0, 1) is the jitter draw.
    pub fn next(&self, attempt: u32, elapsed: Duration, unit: f64) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let wait = self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0));
        (elapsed + wait < self.deadline).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff::new(10, Duration::from_secs(3600));
        let got: Vec<u64> = (1..=9).map(|a| b.ceiling(a).as_millis() as u64).collect();
        assert_eq!(
            got,
            vec![250, 500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]
        );
    }

    #[test]
    fn stops_at_max_attempts_and_deadline() {
        let b = Backoff::new(3, Duration::from_secs(10));
        assert_eq!(
            b.next(1, Duration::ZERO, 0.5),
            Some(Duration::from_millis(125))
        );
        assert_eq!(
            b.next(2, Duration::ZERO, 1.0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(b.next(3, Duration::ZERO, 0.0), None, "three attempts made");
        assert_eq!(
            b.next(1, Duration::from_millis(9_900), 0.9),
            None,
            "would cross the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn full_jitter_waits_are_within_the_schedule() {
        let b = Backoff::new(6, Duration::from_secs(3600));
        let start = tokio::time::Instant::now();
        let mut total = Duration::ZERO;
        for attempt in 1..6 {
            let wait = b.next(attempt, total, fastrand::f64()).unwrap();
            assert!(wait <= b.ceiling(attempt));
            tokio::time::sleep(wait).await;
            total += wait;
        }
        // Paused time advances in whole milliseconds per sleep.
        assert!(start.elapsed() >= total && start.elapsed() - total < Duration::from_millis(10));
        assert!(total <= Duration::from_millis(250 + 500 + 1000 + 2000 + 4000));
    }
}
