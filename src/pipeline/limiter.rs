//! The shared throttle in front of every call: request rate, token rate, and
//! the adaptive cut when Bedrock says "too many".
//!
//! - **Requests**: with a known quota (`rpm`), `governor` paces sends evenly at
//!   that rate with a burst of one, so we never run above it.
//! - **Tokens**: with a known `tpm`, a bucket that mirrors Bedrock's rule:
//!   reserve input + `max_tokens` before sending, settle to the real usage
//!   when the answer arrives (the unused part comes back).
//! - **Adaptive**: a 429 cuts the allowed request rate and pauses *all*
//!   senders briefly; while calls succeed the rate grows back by 10% per
//!   second (a gentle multiplicative probe). This finds an unknown quota, or
//!   the share left by other jobs on the same account. One cut per congestion
//!   event: throttles of requests sent before the last cut are old news and do
//!   not cut again.
//! - **How deep**: 90% of the share of answers since the last cut that got
//!   through, but never below 70% of what we were sending. Dense 429s (a
//!   burst into an empty quota, or the first answers after a cut coming back
//!   throttled) cut by 0.7; one 429 among many answers cuts by about 0.9.
//!   Why not always 0.7: Bedrock also sends the odd 429 below the quota
//!   (capacity), and a throttled request costs the quota nothing, so such a
//!   429 is worth one retry, not 30% of the rate. Measured (BENCHMARKS.md):
//!   with 2.5% random 429s a fixed 0.7 cut held 37% of a known quota, this
//!   holds 65%; finding an unknown quota takes the same time, with about
//!   3.6% of requests throttled instead of 1.6%.
//!
//! Not here: retries (runner) and error classification (invoker).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::bedrock::invoker::Throttle;

/// The deepest cut, for dense throttling.
const CUT: f64 = 0.7;
/// The lightest cut, for one 429 among many answers: enough below what got
/// through for the quota's bucket to refill before we probe again.
const LIGHT_CUT: f64 = 0.9;
const GROWTH_PER_SEC: f64 = 0.10;
/// Never pace slower than this, or a burst of throttles could stall a run.
const MIN_RATE: f64 = 0.05;
const SEND_WINDOW: Duration = Duration::from_secs(2);

pub struct Limiter {
    requests: Option<DefaultDirectRateLimiter>,
    ceiling: Option<f64>,
    tokens: Option<Mutex<TokenBucket>>,
    state: Mutex<Adaptive>,
}

/// What a caller holds between `acquire` and `settle`/`throttled`.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    pub sent_at: Instant,
    pub reserved_tokens: u64,
}

struct Adaptive {
    /// Allowed requests per second once throttled; `None` until the first 429
    /// (then the configured quota, if any, is the only pace).
    rate: Option<f64>,
    /// When the paced sender may send next.
    next_at: Instant,
    /// No sends before this (set by a throttle).
    pause_until: Instant,
    last_cut: Option<Instant>,
    last_growth: Instant,
    /// Send times within the last `SEND_WINDOW`: what we were sending when a
    /// throttle arrives.
    sends: VecDeque<Instant>,
    /// The run's first send: until the window has been open that long, the
    /// rate is measured over the run so far, or a burst at the start would
    /// read as a trickle and the first cut would throw the rate away.
    first_send: Option<Instant>,
    /// Answers (of any kind) and throttles among them, for requests sent
    /// since the last cut: how dense the throttling is.
    answered_since_cut: u32,
    throttled_since_cut: u32,
    /// Learned input tokens per byte of prompt, from returned usage.
    tokens_per_byte: f64,
}

impl Limiter {
    pub fn new(rpm: Option<u32>, tpm: Option<u32>) -> Limiter {
        let now = Instant::now();
        let requests = rpm
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_minute(n).allow_burst(NonZeroU32::MIN)));
        Limiter {
            requests,
            ceiling: rpm.map(|n| n as f64 / 60.0),
            tokens: tpm.map(|t| Mutex::new(TokenBucket::new(t as f64))),
            state: Mutex::new(Adaptive {
                rate: None,
                next_at: now,
                pause_until: now,
                last_cut: None,
                last_growth: now,
                sends: VecDeque::new(),
                first_send: None,
                answered_since_cut: 0,
                throttled_since_cut: 0,
                tokens_per_byte: 0.25,
            }),
        }
    }

    /// Input-token estimate for a prompt of `bytes`, with a 10% margin so a
    /// reservation errs on the safe side.
    pub fn estimate_input(&self, bytes: usize) -> u64 {
        let per_byte = self.lock().tokens_per_byte;
        ((bytes as f64 * per_byte) * 1.1).ceil() as u64 + 1
    }

    /// Waits until a request may be sent, reserving `tokens` (input estimate +
    /// max_tokens) from the token quota.
    pub async fn acquire(&self, tokens: u64) -> Ticket {
        loop {
            let wake = {
                let now = Instant::now();
                let mut s = self.lock();
                if now < s.pause_until {
                    Some(s.pause_until)
                } else if let Some(rate) = s.rate {
                    if now < s.next_at {
                        Some(s.next_at)
                    } else {
                        // Pace from the later of "now" and the schedule so an idle
                        // spell does not bank a burst.
                        s.next_at = now.max(s.next_at) + Duration::from_secs_f64(1.0 / rate);
                        None
                    }
                } else {
                    None
                }
            };
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => break,
            }
        }
        if let Some(g) = &self.requests {
            g.until_ready().await;
        }
        if let Some(bucket) = &self.tokens {
            loop {
                let wait = bucket
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(tokens, Instant::now());
                match wait {
                    None => break,
                    Some(d) => tokio::time::sleep(d).await,
                }
            }
        }
        let now = Instant::now();
        let mut s = self.lock();
        s.first_send.get_or_insert(now);
        s.sends.push_back(now);
        s.forget_old_sends(now);
        Ticket {
            sent_at: now,
            reserved_tokens: if self.tokens.is_some() { tokens } else { 0 },
        }
    }

    /// The call succeeded and used `used` tokens (input + output), for
    /// `input_bytes` of prompt.
    pub fn settle(
        &self,
        ticket: Ticket,
        input_tokens: u64,
        output_tokens: u64,
        input_bytes: usize,
    ) {
        if let Some(bucket) = &self.tokens {
            bucket.lock().unwrap_or_else(|e| e.into_inner()).give_back(
                ticket
                    .reserved_tokens
                    .saturating_sub(input_tokens + output_tokens),
            );
        }
        let now = Instant::now();
        let mut s = self.lock();
        s.answered(ticket);
        if input_bytes > 0 && input_tokens > 0 {
            let observed = input_tokens as f64 / input_bytes as f64;
            s.tokens_per_byte = 0.9 * s.tokens_per_byte + 0.1 * observed;
        }
        if let Some(rate) = s.rate {
            let dt = now.duration_since(s.last_growth).as_secs_f64().min(1.0);
            let mut grown = rate * (1.0 + GROWTH_PER_SEC * dt);
            if let Some(c) = self.ceiling {
                grown = grown.min(c);
            }
            s.rate = Some(grown);
        }
        s.last_growth = now;
    }

    /// The call ended without using tokens (a failure other than throttling):
    /// give its whole reservation back.
    pub fn release(&self, ticket: Ticket) {
        self.give_back(ticket);
        self.lock().answered(ticket);
    }

    fn give_back(&self, ticket: Ticket) {
        if let Some(bucket) = &self.tokens {
            bucket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .give_back(ticket.reserved_tokens);
        }
    }

    /// Bedrock throttled this call. Cuts the rate once per congestion event and
    /// pauses every sender. Returns true when this throttle caused a cut.
    ///
    /// "Too many tokens" also empties our token bucket: Bedrock's was short of
    /// this reservation, so ours (which let it through) was optimistic, and
    /// handing the reservation back would keep us ahead of Bedrock by the same
    /// offset for the rest of the run, drawing a 429 each time we catch up.
    pub fn throttled(&self, ticket: Ticket, quota: Throttle) -> bool {
        match (&self.tokens, quota) {
            (Some(bucket), Throttle::Tokens) => bucket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .empty(Instant::now()),
            _ => self.give_back(ticket),
        }
        let now = Instant::now();
        let mut s = self.lock();
        if s.last_cut.is_some_and(|cut| ticket.sent_at < cut) {
            return false;
        }
        s.answered(ticket);
        s.throttled_since_cut += 1;
        let sending = s.sending_rate(now);
        let current = match (s.rate, self.ceiling) {
            (Some(r), _) => r,
            // Paced at the known quota: that is what we were sending.
            (None, Some(c)) => c,
            (None, None) => sending.max(MIN_RATE),
        };
        let got_through = 1.0 - s.throttled_since_cut as f64 / s.answered_since_cut as f64;
        let rate = (current * (LIGHT_CUT * got_through).max(CUT)).max(MIN_RATE);
        tracing::debug!(
            "throttled: {} of {} answers since the last cut; allowed rate {:.0} → {:.0} rpm",
            s.throttled_since_cut,
            s.answered_since_cut,
            current * 60.0,
            rate * 60.0
        );
        s.rate = Some(rate);
        s.answered_since_cut = 0;
        s.throttled_since_cut = 0;
        s.last_cut = Some(now);
        s.last_growth = now;
        let pause = Duration::from_secs_f64((1.0 / rate).min(1.0));
        s.pause_until = now + pause;
        s.next_at = s.pause_until;
        true
    }

    /// Requests per minute the limiter currently allows, if it is limiting.
    pub fn allowed_rpm(&self) -> Option<f64> {
        let s = self.lock();
        s.rate.or(self.ceiling).map(|r| r * 60.0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Adaptive> {
        // A panic while holding this lock cannot leave it inconsistent (plain
        // numbers), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Adaptive {
    /// Counts an answer to a request sent since the last cut.
    fn answered(&mut self, ticket: Ticket) {
        if self.last_cut.is_none_or(|cut| ticket.sent_at >= cut) {
            self.answered_since_cut = self.answered_since_cut.saturating_add(1);
        }
    }

    fn forget_old_sends(&mut self, now: Instant) {
        while self
            .sends
            .front()
            .is_some_and(|t| now.duration_since(*t) > SEND_WINDOW)
        {
            self.sends.pop_front();
        }
    }

    /// Requests per second sent over the last `SEND_WINDOW`, or over the run
    /// so far when it is younger than that.
    fn sending_rate(&mut self, now: Instant) -> f64 {
        self.forget_old_sends(now);
        let open = self
            .first_send
            .map_or(SEND_WINDOW, |first| now.duration_since(first))
            .clamp(Duration::from_millis(10), SEND_WINDOW);
        self.sends.len() as f64 / open.as_secs_f64()
    }
}

/// Bedrock's token quota as a bucket: refilled continuously at `tpm / 60` per
/// second, holding at most `capacity`; a reservation larger than the whole
/// bucket is admitted when the bucket is full, so it is never starved.
#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    level: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    pub fn new(tpm: f64) -> TokenBucket {
        // Two seconds of quota: enough to keep the pipe full, small enough not
        // to overrun a server-side bucket that may be smaller than a minute.
        let capacity = (tpm / 60.0 * 2.0).max(1.0);
        TokenBucket {
            per_sec: tpm / 60.0,
            capacity,
            level: capacity,
            at: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.at {
            let dt = now.duration_since(at).as_secs_f64();
            self.level = (self.level + dt * self.per_sec).min(self.capacity);
        }
        self.at = Some(now);
    }

    /// Takes `n` tokens, or says how long to wait before trying again.
    pub fn take(&mut self, n: u64, now: Instant) -> Option<Duration> {
        self.refill(now);
        let n = n as f64;
        if self.level >= n || self.level >= self.capacity {
            self.level -= n;
            return None;
        }
        let short = n.min(self.capacity) - self.level;
        Some(Duration::from_secs_f64((short / self.per_sec).max(0.001)))
    }

    /// Nothing left as of `now`; refilling starts again from zero.
    pub fn empty(&mut self, now: Instant) {
        self.refill(now);
        self.level = 0.0;
    }

    pub fn give_back(&mut self, n: u64) {
        self.level = (self.level + n as f64).min(self.capacity);
    }

    #[cfg(test)]
    pub fn level(&self) -> f64 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_bucket_reserves_and_settles_like_bedrock() {
        // 6000 tokens/min = 100/s, bucket of 200.
        let mut b = TokenBucket::new(6000.0);
        let t0 = Instant::now();
        assert_eq!(b.take(150, t0), None);
        assert_eq!(b.level(), 50.0);
        // 100 more do not fit: half a second of refill needed.
        assert_eq!(b.take(100, t0), Some(Duration::from_millis(500)));
        // The call used 20 of its 150: 130 come back.
        b.give_back(130);
        assert_eq!(b.level(), 180.0);
        assert_eq!(b.take(100, t0), None);
        // Refill is capped at the capacity.
        assert_eq!(b.take(0, t0 + Duration::from_secs(60)), None);
        assert_eq!(b.level(), 200.0);
        // A reservation bigger than the bucket passes only when the bucket is full.
        assert_eq!(b.take(1000, t0 + Duration::from_secs(60)), None);
        assert!(b.take(1000, t0 + Duration::from_secs(61)).is_some());
    }

    // governor keeps its own (real) clock, so this one runs in real time.
    #[tokio::test]
    async fn known_rpm_paces_evenly() {
        let l = Limiter::new(Some(6000), None);
        let start = std::time::Instant::now();
        for _ in 0..21 {
            l.acquire(0).await;
        }
        // 100/s with a burst of one: the 21st send is at 0.2 s, not at once.
        let secs = start.elapsed().as_secs_f64();
        assert!((0.19..0.6).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_cuts_once_and_pauses_everyone() {
        let l = Limiter::new(None, None);
        let mut tickets = Vec::new();
        for _ in 0..20 {
            tickets.push(l.acquire(0).await);
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        // We were sending 10/s over the last 2 s; a throttle cuts to 7/s.
        assert!(l.throttled(tickets[19], Throttle::Requests));
        assert!((l.allowed_rpm().unwrap() - 7.0 * 60.0).abs() < 1.0);
        // Another throttle of a request sent before the cut: no second cut.
        assert!(!l.throttled(tickets[18], Throttle::Requests));
        assert!((l.allowed_rpm().unwrap() - 420.0).abs() < 1.0);
        // Everyone pauses ~1/7 s, then sends are paced at 7/s.
        let t = Instant::now();
        l.acquire(0).await;
        l.acquire(0).await;
        let waited = t.elapsed().as_secs_f64();
        assert!((waited - 2.0 / 7.0).abs() < 0.01, "{waited}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_early_in_a_run_measures_the_rate_over_the_run_so_far() {
        let l = Limiter::new(None, None);
        let mut tickets = Vec::new();
        for _ in 0..10 {
            tickets.push(l.acquire(0).await);
            tokio::time::advance(Duration::from_millis(20)).await;
        }
        // 10 sends in the first 0.2 s is 50/s (not 10 over a 2 s window,
        // 5/s): the cut is to 35/s.
        assert!(l.throttled(tickets[9], Throttle::Requests));
        let rpm = l.allowed_rpm().unwrap();
        assert!((rpm - 35.0 * 60.0).abs() < 1.0, "{rpm}");
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_tokens_empties_our_bucket_too_many_requests_does_not() {
        // 6000 tokens/min = 100/s, bucket of 200.
        let level = |l: &Limiter| l.tokens.as_ref().unwrap().lock().unwrap().level();
        let l = Limiter::new(None, Some(6000));
        let t = l.acquire(150).await;
        // "Too many requests": no tokens were charged, ours come back.
        l.throttled(t, Throttle::Requests);
        assert_eq!(level(&l), 200.0);
        let t = l.acquire(150).await;
        // "Too many tokens": Bedrock's bucket is emptier than ours thought
        // (another client, a smaller bucket). Believe it: ours is empty too,
        // or we would keep sending into its refusals at the same offset.
        l.throttled(t, Throttle::Tokens);
        assert_eq!(level(&l), 0.0);
        let start = Instant::now();
        l.acquire(100).await;
        let waited = start.elapsed().as_secs_f64();
        assert!((waited - 1.0).abs() < 0.02, "{waited}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_throttle_among_answers_cuts_lightly_a_dense_one_deeply() {
        let l = Limiter::new(None, None);
        for _ in 0..19 {
            let t = l.acquire(0).await;
            tokio::time::advance(Duration::from_millis(100)).await;
            l.settle(t, 10, 10, 40);
        }
        let t = l.acquire(0).await;
        tokio::time::advance(Duration::from_millis(100)).await;
        // Sending 10/s; 1 of 20 answers throttled: 90% of the 95% that got
        // through, 8.55/s.
        assert!(l.throttled(t, Throttle::Requests));
        let rpm = l.allowed_rpm().unwrap();
        assert!((rpm - 8.55 * 60.0).abs() < 1.0, "{rpm}");
        // The first answer after the cut is a throttle too: dense, 0.7×.
        let t = l.acquire(0).await;
        assert!(l.throttled(t, Throttle::Requests));
        let rpm = l.allowed_rpm().unwrap();
        assert!((rpm - 8.55 * 0.7 * 60.0).abs() < 1.0, "{rpm}");
    }

    #[tokio::test(start_paused = true)]
    async fn success_grows_the_rate_back_up_to_the_quota() {
        // 1000/s: governor's real clock lets 100 sends through in 0.1 s,
        // while paused time steps 50 ms per success (5 s in all).
        let l = Limiter::new(Some(60_000), None);
        let t = l.acquire(0).await;
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(l.throttled(t, Throttle::Requests));
        let cut = l.allowed_rpm().unwrap();
        assert!((cut - 42_000.0).abs() < 1.0, "{cut}");
        for _ in 0..100 {
            let t = l.acquire(0).await;
            tokio::time::advance(Duration::from_millis(50)).await;
            l.settle(t, 10, 10, 40);
        }
        // 0.7 × 1.1^5 > 1: grown back past the quota, and capped there.
        assert_eq!(
            l.allowed_rpm().unwrap(),
            60_000.0,
            "never above the configured quota"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn estimates_learn_from_usage() {
        let l = Limiter::new(None, Some(60_000));
        assert!((110..=112).contains(&l.estimate_input(400)));
        for _ in 0..100 {
            let t = l.acquire(200).await;
            l.settle(t, 200, 10, 400);
        }
        // 0.5 tokens per byte observed, plus the 10% margin.
        let e = l.estimate_input(400);
        assert!((215..=225).contains(&e), "{e}");
    }
}
