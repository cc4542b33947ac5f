//! The shared throttle in front of every call: the known quotas as hard
//! ceilings, and below them an adaptive rate that tells a limit from noise.
//!
//! - **Requests, known** (`rpm`): a bucket of two requests refilled at
//!   `rpm / 60` a second, so sends are paced evenly and never burst. It
//!   bounds the requests Bedrock *counts*: an answer that used nothing (a
//!   429, a 5xx, a timeout, a dropped connection) hands its slot back, the
//!   same rule the token bucket below has always applied to its tokens.
//!   Retries of failed calls therefore do not eat into the quota's pace.
//! - **Tokens, known** (`tpm`): a bucket that mirrors Bedrock's rule: reserve
//!   input + `max_tokens` before sending, settle to the real usage when the
//!   answer arrives (the unused part comes back).
//! - **Adaptive**, below both: a pace we choose ourselves (none at all until
//!   the first limit is seen), set from what the 429s say.
//!
//! # The model behind the adaptive pace
//!
//! A 429 is either *noise* (Bedrock short of capacity, or a fault injector:
//! a share of requests refused whatever we send) or a *limit* (a quota we do
//! not know, or one shared with other jobs: once we send above it, the share
//! of refused requests grows with our rate). Per answer the two look the
//! same; what tells them apart is how the share responds to the rate. With a
//! noise share `n` and a quota `q`, sending at `r` is refused at
//! `n + (1 − n)·max(0, 1 − q/r)`: flat in `r` below the quota, climbing
//! above it. So the limiter judges *rounds* of answers, not single 429s:
//!
//! - A round is at least `ROUND_TIME` and `ROUND_ANSWERS` answers (a success
//!   or a 429; 5xx, timeouts and drops say nothing about our rate and are
//!   not counted), or `ROUND_MAX_TIME` and `ROUND_MIN_ANSWERS`. Answers to
//!   requests sent before the last cut are old news and are not counted.
//! - The **noise floor** for a round sent at rate `r` is the 429 share in
//!   the last `HISTORY` clean rounds sent at most `LOWER`·`r`: the share
//!   measured *below* us, where a limit we are probing for does not bite.
//!   With too few of those (`FLOOR_ANSWERS`), it is the share in all of
//!   them, but at most `UNPROVEN_FLOOR` once we pace: a higher share is
//!   believed to be noise only after a slower round has shown it too.
//!   Unpaced (concurrency, not us, sets the rate, and we cannot go faster to
//!   compare) the floor is simply the share so far.
//! - A round is a **limit** when its 429s exceed what the floor predicts by
//!   more than chance: `k > N·floor + Z·√(N·p·(1 − p)) + 1` (binomial, with
//!   `p` at least `FLOOR_VARIANCE_MIN` so a floor still being learned is not
//!   trusted to be exactly zero). Dense 429s (at least half of
//!   `DENSE_ANSWERS` or more, `DENSE_OVER_FLOOR` above the floor) end the
//!   round at once: a burst into an empty quota is cut within one latency.
//! - A limit **cuts** the pace to `CUT_MARGIN` × what got through (the rate
//!   we sent at × (1 − share)), never below `DEEPEST_CUT` of the rate in one
//!   round. The floor decides *whether* to cut, never how deep: a floor
//!   learned wrong cannot hold the pace above a limit, and since the pace
//!   lands below what got through, the rounds after a cut are below the
//!   limit and teach the floor what the share is there. What got through is
//!   remembered as where the limit is.
//! - A clean round **grows** the pace, by `GROWTH_MIN` after a cut, doubling
//!   each clean round up to `GROWTH_MAX`, but by at most `GROWTH_NEAR_LIMIT`
//!   below `NEAR_LIMIT` × where the last limit was: slow up to and just past
//!   it (few 429s), fast beyond (a quota that rose is found in seconds). A
//!   pace the workers do not use (`PACE_USED`: concurrency, not the pace,
//!   holds the rate down) is not grown further.
//!
//! So noise alone never makes a pace (no round shows a share above the share
//! at the same rate), and if a lucky round does, the cut is one step whose
//! lower-rate rounds then show the same share: the floor rises to it and
//! growth resumes. Measured in the unit tests below against a simulated
//! quota and in BENCHMARKS.md against the emulator.
//!
//! Why this and not a cut per 429 (what this module did before): random
//! 429s at high rates arrive every few requests, so per-429 cuts held a run
//! far below what the service allowed (BENCHMARKS.md: a heavy-noise run 6×
//! slower than a plain pool). Why not BBR's delivery-rate model: with
//! 5–20 answers a second per round the delivered rate is too noisy to show a
//! plateau; the 429 share against the share at slower rates carries the
//! same information (delivered = sent × (1 − share)) with a test whose noise
//! is known. The price: sending a few percent above a limit shows only when
//! the share rises clearly above the floor, so an unknown quota draws more
//! 429s than a cut per 429 would (each costs a retry, not quota).
//!
//! Not here: retries and their backoff (runner, backoff) and error
//! classification (invoker).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::bedrock::invoker::Throttle;

/// A round lasts at least this long and until `ROUND_ANSWERS` answers...
const ROUND_TIME: Duration = Duration::from_millis(500);
const ROUND_ANSWERS: u32 = 20;
/// ...or this long and `ROUND_MIN_ANSWERS` (a slow pace still gets judged).
const ROUND_MAX_TIME: Duration = Duration::from_secs(4);
const ROUND_MIN_ANSWERS: u32 = 5;
/// Standard deviations above the floor before 429s count as a limit.
const Z: f64 = 2.5;
/// The test's variance assumes a floor of at least this: a few 429s in the
/// first rounds, before the floor is learned, are not a limit.
const FLOOR_VARIANCE_MIN: f64 = 0.05;
/// Clean rounds remembered for the floor; it is read from those sent at most
/// `LOWER` × a round's rate, if they hold `FLOOR_ANSWERS` answers, and else
/// trusted up to `UNPROVEN_FLOOR` (see the module header).
const HISTORY: usize = 32;
const LOWER: f64 = 0.9;
const FLOOR_ANSWERS: u32 = 100;
const UNPROVEN_FLOOR: f64 = 0.05;
/// Dense throttling (a burst into an empty quota) ends a round at once, after
/// this many answers, when at least half were 429s and the share is this far
/// above the floor.
const DENSE_ANSWERS: u32 = 8;
const DENSE_OVER_FLOOR: f64 = 0.3;
/// A cut paces at this share of what got through, so the rounds after it are
/// below the limit and the quota's bucket refills a little.
const CUT_MARGIN: f64 = 0.9;
/// One round never cuts deeper than this (the first rounds of a burst into an
/// empty quota overstate what got through; the next round cuts again).
const DEEPEST_CUT: f64 = 0.3;
/// Growth per clean round: from `GROWTH_MIN`, doubling, up to `GROWTH_MAX`;
/// at most `GROWTH_NEAR_LIMIT` below `NEAR_LIMIT` × the last limit's rate.
const GROWTH_MIN: f64 = 0.02;
const GROWTH_MAX: f64 = 0.25;
const GROWTH_NEAR_LIMIT: f64 = 0.03;
const NEAR_LIMIT: f64 = 1.1;
/// A pace is grown only while the workers use at least this share of it.
const PACE_USED: f64 = 0.7;
/// The known request quota's bucket, in requests: two, so a sender woken a
/// little late (a busy machine) or a slot handed back mid-interval is made
/// up for instead of lost, while no window ever holds more than two requests
/// above the quota's pace. Measured: with one, `faults` lost 14% of the
/// quota on a loaded machine.
const REQUEST_BUCKET: f64 = 2.0;
/// Never pace slower than this, or a burst of throttles could stall a run.
const MIN_RATE: f64 = 0.05;

pub struct Limiter {
    /// The known request quota (`rpm`), as a bucket of `REQUEST_BUCKET`.
    requests: Option<Mutex<TokenBucket>>,
    /// The same, in requests per second: no adaptive pace goes above it.
    ceiling: Option<f64>,
    tokens: Option<Mutex<TokenBucket>>,
    state: Mutex<Adaptive>,
}

/// What a caller holds between `acquire` and `settle`/`throttled`/`release`.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    pub sent_at: Instant,
    pub reserved_tokens: u64,
}

struct Adaptive {
    /// The adaptive pace, a bucket of `REQUEST_BUCKET` at the allowed rate;
    /// `None` until the first limit (then only the known quotas pace).
    pace: Option<TokenBucket>,
    /// Recent clean rounds: the rate they were sent at and their answers,
    /// where the floor is read.
    history: std::collections::VecDeque<Judged>,
    /// What got through in the round that was the last limit: where we
    /// believe the limit is.
    limit_at: Option<f64>,
    /// Clean rounds since the last cut: how bold the next probe is.
    clean_rounds: u32,
    last_cut: Option<Instant>,
    round: Round,
    /// Learned input tokens per byte of prompt, from returned usage.
    tokens_per_byte: f64,
}

/// A clean round, remembered.
#[derive(Debug, Clone, Copy)]
struct Judged {
    rate: f64,
    answered: u32,
    throttled: u32,
}

/// What happened since the current round started.
#[derive(Default)]
struct Round {
    /// The first send of the run starts the first round.
    start: Option<Instant>,
    sends: u32,
    /// Sends that came back as a 5xx, timeout or drop: they never reached
    /// the quota, so they do not count as our rate.
    unused: u32,
    answered: u32,
    throttled: u32,
}

impl Limiter {
    pub fn new(rpm: Option<u32>, tpm: Option<u32>) -> Limiter {
        let rpm = rpm.filter(|&n| n > 0);
        Limiter {
            requests: rpm.map(|n| Mutex::new(TokenBucket::with_capacity(n as f64, REQUEST_BUCKET))),
            ceiling: rpm.map(|n| n as f64 / 60.0),
            tokens: tpm.map(|t| Mutex::new(TokenBucket::new(t as f64))),
            state: Mutex::new(Adaptive {
                pace: None,
                history: std::collections::VecDeque::new(),
                limit_at: None,
                clean_rounds: 0,
                last_cut: None,
                round: Round::default(),
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
            let wait = {
                let mut s = self.lock();
                s.pace.as_mut().and_then(|p| p.take(1, Instant::now()))
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => break,
            }
        }
        if let Some(bucket) = &self.requests {
            take(bucket, 1).await;
        }
        if let Some(bucket) = &self.tokens {
            take(bucket, tokens).await;
        }
        let now = Instant::now();
        let mut s = self.lock();
        s.round.start.get_or_insert(now);
        s.round.sends = s.round.sends.saturating_add(1);
        Ticket {
            sent_at: now,
            reserved_tokens: if self.tokens.is_some() { tokens } else { 0 },
        }
    }

    /// The call succeeded and used `input_tokens + output_tokens`, for
    /// `input_bytes` of prompt.
    pub fn settle(
        &self,
        ticket: Ticket,
        input_tokens: u64,
        output_tokens: u64,
        input_bytes: usize,
    ) {
        if let Some(bucket) = &self.tokens {
            lock(bucket).give_back(
                ticket
                    .reserved_tokens
                    .saturating_sub(input_tokens + output_tokens),
            );
        }
        let mut s = self.lock();
        if input_bytes > 0 && input_tokens > 0 {
            let observed = input_tokens as f64 / input_bytes as f64;
            s.tokens_per_byte = 0.9 * s.tokens_per_byte + 0.1 * observed;
        }
        s.answered(ticket, false, Instant::now(), self.ceiling);
    }

    /// The call ended without using the quota (a 5xx, a timeout, a dropped
    /// connection): its request slot and whole token reservation come back.
    /// It says nothing about our rate, so it never cuts it.
    pub fn release(&self, ticket: Ticket) {
        self.give_back(ticket);
        if let Some(bucket) = &self.requests {
            lock(bucket).give_back(1);
        }
        let mut s = self.lock();
        if s.is_current(ticket) {
            s.round.unused = s.round.unused.saturating_add(1);
            // The adaptive pace is about what reaches the quota, too.
            if let Some(p) = s.pace.as_mut() {
                p.give_back(1);
            }
        }
    }

    fn give_back(&self, ticket: Ticket) {
        if let Some(bucket) = &self.tokens {
            lock(bucket).give_back(ticket.reserved_tokens);
        }
    }

    /// Bedrock throttled this call. Counts toward the round's 429 share;
    /// returns true when that ended a round judged to be a limit (a cut).
    ///
    /// A throttled request was refused, so the known request quota gets its
    /// slot back. "Too many tokens" empties our token bucket: Bedrock's was
    /// short of this reservation, so ours (which let it through) was
    /// optimistic, and handing the reservation back would keep us ahead of
    /// Bedrock by the same offset for the rest of the run, drawing a 429 each
    /// time we catch up.
    pub fn throttled(&self, ticket: Ticket, quota: Throttle) -> bool {
        match (&self.tokens, quota) {
            (Some(bucket), Throttle::Tokens) => lock(bucket).empty(Instant::now()),
            _ => self.give_back(ticket),
        }
        if let Some(bucket) = &self.requests {
            lock(bucket).give_back(1);
        }
        self.lock()
            .answered(ticket, true, Instant::now(), self.ceiling)
    }

    /// Requests per minute the limiter currently allows, if it is limiting.
    pub fn allowed_rpm(&self) -> Option<f64> {
        let s = self.lock();
        let pace = s.pace.as_ref().map(|p| p.per_sec);
        match (pace, self.ceiling) {
            (Some(p), Some(c)) => Some(p.min(c)),
            (p, c) => p.or(c),
        }
        .map(|r| r * 60.0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Adaptive> {
        lock(&self.state)
    }
}

/// A panic while holding one of these locks cannot leave it inconsistent
/// (plain numbers), so a poisoned lock is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `bucket` has `n` for us and takes them.
async fn take(bucket: &Mutex<TokenBucket>, n: u64) {
    loop {
        let wait = lock(bucket).take(n, Instant::now());
        match wait {
            None => break,
            Some(d) => tokio::time::sleep(d).await,
        }
    }
}

impl Adaptive {
    /// Sent since the last cut: its answer is evidence about the current pace.
    fn is_current(&self, ticket: Ticket) -> bool {
        self.last_cut.is_none_or(|cut| ticket.sent_at >= cut)
    }

    /// The share of 429s to expect at `rate` if it is no limit: the share in
    /// remembered clean rounds sent at most `LOWER` × `rate` (where the share
    /// was measured below us). Without enough of those, the share in all of
    /// them, but no more than `UNPROVEN_FLOOR` once we pace: a higher share
    /// counts as noise only once a slower round has shown it too.
    fn floor(&self, rate: f64) -> f64 {
        let pool = |max_rate: f64| {
            self.history
                .iter()
                .filter(|j| j.rate <= max_rate)
                .fold((0u32, 0u32), |(n, k), j| (n + j.answered, k + j.throttled))
        };
        let share = |(n, k): (u32, u32)| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        let below = pool(LOWER * rate);
        if below.0 >= FLOOR_ANSWERS {
            return share(below);
        }
        let all = share(pool(f64::INFINITY));
        if self.pace.is_some() {
            all.min(UNPROVEN_FLOOR)
        } else {
            all
        }
    }

    /// Counts an answer (a success or a 429) and judges the round when it is
    /// complete. Returns true when the round was a limit and the pace was cut.
    fn answered(
        &mut self,
        ticket: Ticket,
        throttled: bool,
        now: Instant,
        ceiling: Option<f64>,
    ) -> bool {
        if !self.is_current(ticket) {
            return false;
        }
        let floor = self.floor(f64::INFINITY);
        let r = &mut self.round;
        r.answered = r.answered.saturating_add(1);
        r.throttled = r.throttled.saturating_add(throttled as u32);
        let Some(start) = r.start else {
            return false;
        };
        let age = now.duration_since(start);
        let share = r.throttled as f64 / r.answered as f64;
        let dense = throttled
            && r.answered >= DENSE_ANSWERS
            && share >= 0.5
            && share >= floor + DENSE_OVER_FLOOR;
        let complete = (age >= ROUND_TIME && r.answered >= ROUND_ANSWERS)
            || (age >= ROUND_MAX_TIME && r.answered >= ROUND_MIN_ANSWERS);
        (dense || complete) && self.judge(now, ceiling)
    }

    /// Ends the round: a limit cuts the pace, a clean round teaches the floor
    /// and grows the pace. Returns true on a cut.
    fn judge(&mut self, now: Instant, ceiling: Option<f64>) -> bool {
        let round = std::mem::take(&mut self.round);
        self.round.start = Some(now);
        let (n, k) = (round.answered as f64, round.throttled as f64);
        let secs = round
            .start
            .map_or(0.0, |s| now.duration_since(s).as_secs_f64())
            .max(0.001);
        // What reached the quota: sends less those that never got there.
        let sending = round.sends.saturating_sub(round.unused) as f64 / secs;
        let pace = self.pace.as_ref().map(|p| p.per_sec);
        let pace = match (pace, ceiling) {
            (Some(p), Some(c)) => Some(p.min(c)),
            (p, c) => p.or(c),
        };
        let share = k / n;
        let p = self.floor(sending);
        let pv = p.max(FLOOR_VARIANCE_MIN);
        if k > n * p + Z * (n * pv * (1.0 - pv)).sqrt() + 1.0 {
            let base = pace.map_or(sending, |r| sending.min(r)).max(MIN_RATE);
            // To what got through, noise included: the floor decides whether
            // to cut, never how deep, so a floor learned wrong (all of its
            // rounds above the limit) cannot hold the pace above the limit.
            let mut rate = (base * (1.0 - share) * CUT_MARGIN)
                .max(base * DEEPEST_CUT)
                .max(MIN_RATE);
            if let Some(c) = ceiling {
                rate = rate.min(c);
            }
            tracing::debug!(
                "limit: {k} of {n} answers throttled (floor {:.1}%) at {:.0} rpm; pace {:.0} rpm",
                p * 100.0,
                base * 60.0,
                rate * 60.0
            );
            let mut bucket = TokenBucket::with_capacity(rate * 60.0, REQUEST_BUCKET);
            // Start empty: the next send waits one interval at the new pace.
            bucket.empty(now);
            self.pace = Some(bucket);
            self.limit_at = Some(base * (1.0 - share));
            self.clean_rounds = 0;
            self.last_cut = Some(now);
            return true;
        }
        if round.answered > 0 {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(Judged {
                rate: sending,
                answered: round.answered,
                throttled: round.throttled,
            });
        }
        self.clean_rounds = self.clean_rounds.saturating_add(1);
        if let Some(bucket) = self.pace.as_mut() {
            let rate = bucket.per_sec;
            if sending >= PACE_USED * rate {
                let mut g =
                    (GROWTH_MIN * 2f64.powi(self.clean_rounds.min(16) as i32 - 1)).min(GROWTH_MAX);
                if self.limit_at.is_some_and(|m| rate < NEAR_LIMIT * m) {
                    g = g.min(GROWTH_NEAR_LIMIT);
                }
                let mut grown = rate * (1.0 + g);
                if let Some(c) = ceiling {
                    grown = grown.min(c);
                }
                bucket.set_rate(grown * 60.0, now);
            }
        }
        false
    }
}

/// A quota as a bucket: refilled continuously at `per_min / 60` per second,
/// holding at most `capacity`; a reservation larger than the whole bucket is
/// admitted when the bucket is full, so it is never starved.
#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    level: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    /// Bedrock's token quota: two seconds of `tpm`, enough to keep the pipe
    /// full, small enough not to overrun a server-side bucket that may be
    /// smaller than a minute.
    pub fn new(tpm: f64) -> TokenBucket {
        TokenBucket::with_capacity(tpm, (tpm / 60.0 * 2.0).max(1.0))
    }

    /// `per_min` refill, `capacity` at most, starting full.
    pub(crate) fn with_capacity(per_min: f64, capacity: f64) -> TokenBucket {
        TokenBucket {
            per_sec: per_min / 60.0,
            capacity,
            level: capacity,
            at: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
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

    /// Refills at `per_min` from `now` on.
    pub(crate) fn set_rate(&mut self, per_min: f64, now: Instant) {
        self.refill(now);
        self.per_sec = per_min / 60.0;
    }

    #[cfg(test)]
    pub fn level(&self) -> f64 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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

    #[tokio::test(start_paused = true)]
    async fn known_rpm_paces_evenly() {
        let l = Limiter::new(Some(6000), None);
        let start = Instant::now();
        for _ in 0..21 {
            l.acquire(0).await;
        }
        // 100/s with a bucket of two: the 21st send is at 0.19 s, not at once.
        let secs = start.elapsed().as_secs_f64();
        assert!((0.185..0.2).contains(&secs), "{secs}");
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

    #[tokio::test(start_paused = true)]
    async fn a_lone_429_among_answers_is_not_a_limit_a_dense_burst_is() {
        let l = Limiter::new(None, None);
        // 10/s for 2 s, one 429 among the 20 answers: no cut, no pace.
        for i in 0..20 {
            let t = l.acquire(0).await;
            tokio::time::advance(Duration::from_millis(100)).await;
            if i == 10 {
                assert!(!l.throttled(t, Throttle::Requests));
            } else {
                l.settle(t, 10, 10, 40);
            }
        }
        assert_eq!(l.allowed_rpm(), None);
        // Then 8 sends at once, 6 of them refused: a limit, cut at once to
        // what got through (2 of 8), but one round cuts to 0.3× at most.
        let mut tickets = Vec::new();
        for _ in 0..8 {
            tickets.push(l.acquire(0).await);
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        let cut: Vec<bool> = tickets
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                if i < 2 {
                    l.settle(t, 10, 10, 40);
                    false
                } else {
                    l.throttled(t, Throttle::Requests)
                }
            })
            .collect();
        assert_eq!(cut.iter().filter(|&&c| c).count(), 1, "{cut:?}");
        assert!(l.allowed_rpm().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_timeouts_and_drops_never_cut_the_rate() {
        // No pace yet: any number of failures that are not 429s leaves none.
        let l = Limiter::new(None, None);
        for _ in 0..500 {
            let t = l.acquire(0).await;
            tokio::time::advance(Duration::from_millis(10)).await;
            l.release(t);
        }
        assert_eq!(l.allowed_rpm(), None);
        // With a pace (after a limit), they neither cut it nor count as
        // answers: the pace is exactly where the cut left it.
        let mut tickets = Vec::new();
        for _ in 0..10 {
            tickets.push(l.acquire(0).await);
        }
        tokio::time::advance(Duration::from_millis(600)).await;
        for t in tickets {
            l.throttled(t, Throttle::Requests);
        }
        let paced = l.allowed_rpm().expect("ten 429s in a row are a limit");
        for _ in 0..500 {
            let t = l.acquire(0).await;
            tokio::time::advance(Duration::from_millis(10)).await;
            l.release(t);
        }
        assert_eq!(l.allowed_rpm(), Some(paced));
    }

    /// A fake Bedrock for the limiter alone: a request quota (a bucket with
    /// `burst_secs` of it, starting full, whose rate can change mid-run),
    /// random 429s and 5xx that have nothing to do with the rate (decided
    /// before the quota, as the emulator does), and a fixed latency for
    /// successes (refusals come back at once).
    struct Fake {
        quota: Option<TokenBucket>,
        /// (from, requests/min): the quota's rate changes at these times.
        changes: Vec<(Duration, f64)>,
        noise_429: f64,
        noise_5xx: f64,
        rng: fastrand::Rng,
        start: Instant,
        requests: u64,
        throttles: u64,
        /// When each success was admitted.
        admitted: Vec<Instant>,
    }

    enum Answer {
        Ok,
        Throttled,
        Failed,
    }

    impl Fake {
        fn new(rpm: Option<f64>, noise_429: f64, noise_5xx: f64) -> Fake {
            Fake {
                quota: rpm.map(|r| TokenBucket::with_capacity(r, r / 60.0 * 5.0)),
                changes: Vec::new(),
                noise_429,
                noise_5xx,
                rng: fastrand::Rng::with_seed(7),
                start: Instant::now(),
                requests: 0,
                throttles: 0,
                admitted: Vec::new(),
            }
        }

        fn call(&mut self, now: Instant) -> Answer {
            self.requests += 1;
            let at = now.duration_since(self.start);
            if let Some(q) = self.quota.as_mut() {
                if let Some(&(_, rpm)) = self.changes.iter().rev().find(|(from, _)| at >= *from) {
                    q.set_rate(rpm, now);
                }
            }
            let roll = self.rng.f64();
            if roll < self.noise_429 {
                self.throttles += 1;
                return Answer::Throttled;
            }
            if roll < self.noise_429 + self.noise_5xx {
                return Answer::Failed;
            }
            if let Some(q) = self.quota.as_mut() {
                if q.take(1, now).is_some() {
                    self.throttles += 1;
                    return Answer::Throttled;
                }
            }
            self.admitted.push(now);
            Answer::Ok
        }

        /// Successes per second admitted in [from, to) of the run.
        fn rate(&self, from: f64, to: f64) -> f64 {
            let n = self
                .admitted
                .iter()
                .map(|t| t.duration_since(self.start).as_secs_f64())
                .filter(|s| (from..to).contains(s))
                .count();
            n as f64 / (to - from)
        }

        fn share_429(&self) -> f64 {
            self.throttles as f64 / self.requests as f64
        }
    }

    /// `rows` rows through `concurrency` workers, each retried until it
    /// succeeds (after a short random backoff), as the runner does. With
    /// `adaptive` false the limiter never hears of a 429 (a plain pool).
    /// Returns the run's length in seconds.
    async fn drive(
        l: Limiter,
        fake: Fake,
        rows: u64,
        concurrency: usize,
        adaptive: bool,
    ) -> (f64, Fake) {
        let l = Arc::new(l);
        let fake = Arc::new(Mutex::new(fake));
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let start = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..concurrency {
            let (l, fake, next) = (l.clone(), fake.clone(), next.clone());
            workers.spawn(async move {
                let mut rng = fastrand::Rng::with_seed(w as u64);
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < rows {
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let t = l.acquire(0).await;
                        let answer = lock(&fake).call(Instant::now());
                        match answer {
                            Answer::Ok => {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                l.settle(t, 10, 10, 40);
                                break;
                            }
                            Answer::Throttled if adaptive => {
                                l.throttled(t, Throttle::Requests);
                            }
                            Answer::Throttled | Answer::Failed => l.release(t),
                        }
                        let cap = 250.0 * 2f64.powi(attempt.min(6) - 1);
                        tokio::time::sleep(Duration::from_secs_f64(rng.f64() * cap / 1000.0)).await;
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let secs = start.elapsed().as_secs_f64();
        let fake = Arc::into_inner(fake).expect("workers are done");
        (secs, fake.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn noise_alone_runs_as_fast_as_a_plain_pool() {
        // 5% 429s and 15% 5xx, no quota: the heavy-noise mix.
        let (adaptive, fake) = drive(
            Limiter::new(None, None),
            Fake::new(None, 0.05, 0.15),
            1500,
            16,
            true,
        )
        .await;
        let (plain, _) = drive(
            Limiter::new(None, None),
            Fake::new(None, 0.05, 0.15),
            1500,
            16,
            false,
        )
        .await;
        println!(
            "noise: adaptive {adaptive:.1}s, plain pool {plain:.1}s, 429s {:.1}%",
            100.0 * fake.share_429()
        );
        assert!(
            adaptive <= 1.15 * plain,
            "adaptive {adaptive:.1}s, plain {plain:.1}s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_quota_alone_is_found_quickly_with_few_429s() {
        // 1,200/min with 5 s of burst: ideal (2000 − 100) / 20 = 95 s.
        let (secs, fake) = drive(
            Limiter::new(None, None),
            Fake::new(Some(1200.0), 0.0, 0.0),
            2000,
            16,
            true,
        )
        .await;
        let share = fake.share_429();
        println!(
            "quota: {secs:.1}s (ideal 95), 429s {:.1}%, steady {:.1}/s",
            100.0 * share,
            fake.rate(10.0, 90.0)
        );
        assert!(secs < 95.0 * 1.03, "{secs}");
        assert!(share < 0.10, "{share}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_quota_under_noise_is_found_and_held() {
        // The same quota, with 5% random 429s and 10% 5xx on top.
        let (secs, fake) = drive(
            Limiter::new(None, None),
            Fake::new(Some(1200.0), 0.05, 0.10),
            2000,
            16,
            true,
        )
        .await;
        let steady = fake.rate(10.0, 80.0);
        let excess = fake.share_429() - 0.05;
        println!(
            "quota+noise: {secs:.1}s (ideal 95), 429s over the noise {:.1}%, steady {steady:.1}/s",
            100.0 * excess
        );
        assert!(steady >= 0.9 * 20.0, "{steady}");
        assert!(excess < 0.10, "{excess}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_quota_is_a_ceiling_and_noise_does_not_hold_it_down() {
        // --rpm 1200 with the `faults` mix: 2.5% 429s, 9.5% other failures.
        let (secs, fake) = drive(
            Limiter::new(Some(1200), None),
            Fake::new(Some(1200.0), 0.025, 0.095),
            600,
            16,
            true,
        )
        .await;
        let steady = fake.rate(5.0, 25.0);
        println!(
            "known quota under noise: {secs:.1}s, steady {steady:.1}/s, 429s {:.1}%",
            100.0 * fake.share_429()
        );
        assert!(steady >= 0.95 * 20.0, "{steady}");
        // Never above: no successes beyond what a 20/s pace allows.
        assert!(steady <= 20.0 * 1.01, "{steady}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_that_drops_mid_run_is_followed_down() {
        // 40/s, then another job takes half of it at 30 s.
        let mut fake = Fake::new(Some(2400.0), 0.02, 0.0);
        fake.changes = vec![(Duration::from_secs(30), 1200.0)];
        let (_, fake) = drive(Limiter::new(None, None), fake, 2400, 16, true).await;
        let before = fake.rate(10.0, 30.0);
        let after = fake.rate(35.0, 60.0);
        println!(
            "drop: {before:.1}/s before, {after:.1}/s after, 429s {:.1}%",
            100.0 * fake.share_429()
        );
        assert!(before >= 0.9 * 40.0, "{before}");
        assert!(after >= 0.9 * 20.0, "{after}");
        assert!(fake.share_429() < 0.12, "{}", fake.share_429());
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_that_rises_mid_run_is_followed_up() {
        // 20/s, then 40/s from 30 s on (another job finished).
        let mut fake = Fake::new(Some(1200.0), 0.02, 0.0);
        fake.changes = vec![(Duration::from_secs(30), 2400.0)];
        let (_, fake) = drive(Limiter::new(None, None), fake, 2400, 16, true).await;
        let before = fake.rate(10.0, 30.0);
        let after = fake.rate(50.0, 60.0);
        println!(
            "rise: {before:.1}/s before, {after:.1}/s from 20 s after, 429s {:.1}%",
            100.0 * fake.share_429()
        );
        assert!(before >= 0.9 * 20.0, "{before}");
        assert!(after >= 0.8 * 40.0, "{after}");
    }
}
