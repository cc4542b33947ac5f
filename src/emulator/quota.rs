//! `Quota`: the request-per-minute and token-per-minute buckets Bedrock enforces per account,
//! and `ModelQuotas`: those of models given their own (Bedrock's quotas are per model).
//!
//! Each is a token bucket refilled continuously at rate/60 per second with capacity
//! rate × burst_secs / 60, starting full. It decides admission only; the throttling response
//! is `fault.rs`'s and the token arithmetic (what to reserve, what to give back) the caller's.

use std::sync::Mutex;
use std::time::Instant;

use super::fault::Fault;

/// One continuously refilled bucket.
#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    /// May go negative after admitting an oversize reservation, which then delays others.
    level: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_minute: u64, burst_secs: f64) -> TokenBucket {
        let per_sec = per_minute as f64 / 60.0;
        let capacity = per_sec * burst_secs.max(0.0);
        TokenBucket {
            capacity,
            per_sec,
            level: capacity,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.per_sec).min(self.capacity);
        self.last = now;
    }

    fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        // A reservation larger than the whole bucket could never fit; it is admitted when the
        // bucket is full so it is not starved forever.
        if n <= self.level || (n > self.capacity && self.level >= self.capacity) {
            self.level -= n;
            true
        } else {
            false
        }
    }

    fn give_back(&mut self, n: f64) {
        self.level = (self.level + n).min(self.capacity);
    }
}

/// Both account quotas. Each bucket has its own short-held lock so the two never contend.
#[derive(Debug, Default)]
pub struct Quota {
    requests: Mutex<Option<TokenBucket>>,
    tokens: Mutex<Option<TokenBucket>>,
}

impl Quota {
    pub fn new(rpm: Option<u64>, tpm: Option<u64>, burst_secs: f64) -> Quota {
        let q = Quota::default();
        q.set_rpm(rpm, burst_secs);
        q.set_tpm(tpm, burst_secs);
        q
    }

    /// Replaces the request quota (a fresh, full bucket); `None` removes it.
    pub fn set_rpm(&self, rpm: Option<u64>, burst_secs: f64) {
        *lock(&self.requests) = rpm.map(|r| TokenBucket::new(r, burst_secs));
    }

    /// Replaces the token quota (a fresh, full bucket); `None` removes it.
    pub fn set_tpm(&self, tpm: Option<u64>, burst_secs: f64) {
        *lock(&self.tokens) = tpm.map(|r| TokenBucket::new(r, burst_secs));
    }

    /// Admits one request reserving `tokens`, or names the quota that throttles it. A request
    /// refused by the token bucket gets its request-bucket unit back, so only admitted calls
    /// count against either quota.
    pub fn admit(&self, tokens: u64) -> Result<(), Fault> {
        let now = Instant::now();
        let mut requests = lock(&self.requests);
        if let Some(b) = requests.as_mut() {
            if !b.try_take(1.0, now) {
                return Err(Fault::ThrottleRequests);
            }
        }
        let mut tb = lock(&self.tokens);
        if let Some(t) = tb.as_mut() {
            if !t.try_take(tokens as f64, now) {
                if let Some(b) = requests.as_mut() {
                    b.give_back(1.0);
                }
                return Err(Fault::ThrottleTokens);
            }
        }
        Ok(())
    }

    /// Returns unused reserved tokens (reserved output minus actual output).
    pub fn refund_tokens(&self, tokens: u64) {
        if tokens > 0 {
            if let Some(t) = lock(&self.tokens).as_mut() {
                t.give_back(tokens as f64);
            }
        }
    }
}

/// Quotas of single models (`Emulator::set_model_quota`): Bedrock's quotas
/// are per model, so a model listed here is admitted against its own
/// buckets only, and every other model against the account's [`Quota`].
#[derive(Debug, Default)]
pub struct ModelQuotas {
    by_model: Mutex<std::collections::HashMap<String, std::sync::Arc<Quota>>>,
}

impl ModelQuotas {
    /// Gives `model` its own quota (fresh, full buckets); both `None` removes it.
    pub fn set(&self, model: &str, rpm: Option<u64>, tpm: Option<u64>, burst_secs: f64) {
        let mut m = lock(&self.by_model);
        if rpm.is_none() && tpm.is_none() {
            m.remove(model);
        } else {
            m.insert(
                model.to_string(),
                std::sync::Arc::new(Quota::new(rpm, tpm, burst_secs)),
            );
        }
    }

    /// `model`'s own quota, if it has one.
    pub fn of(&self, model: &str) -> Option<std::sync::Arc<Quota>> {
        lock(&self.by_model).get(model).cloned()
    }
}

/// A poisoned bucket lock only means another request panicked mid-update of two floats;
/// the numbers are still usable, so keep serving.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_starts_full_and_refills() {
        let mut b = TokenBucket::new(600, 1.0); // 10/s, capacity 10
        let t0 = b.last;
        for _ in 0..10 {
            assert!(b.try_take(1.0, t0));
        }
        assert!(!b.try_take(1.0, t0));
        assert!(b.try_take(1.0, t0 + Duration::from_millis(100)));
        assert!(!b.try_take(1.0, t0 + Duration::from_millis(150)));
    }

    #[test]
    fn oversize_only_when_full() {
        let mut b = TokenBucket::new(60, 5.0); // 1/s, capacity 5
        let t0 = b.last;
        assert!(b.try_take(50.0, t0));
        assert!(!b.try_take(1.0, t0 + Duration::from_secs(10)));
        assert!(!b.try_take(50.0, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_model_with_its_own_quota_is_admitted_against_it_alone() {
        let q = ModelQuotas::default();
        q.set("slow", Some(60), None, 1.0); // 1 request
        let slow = q.of("slow").unwrap();
        assert_eq!(slow.admit(1), Ok(()));
        assert_eq!(slow.admit(1), Err(Fault::ThrottleRequests));
        assert!(
            q.of("fast").is_none(),
            "other models use the account's quota"
        );
        q.set("slow", None, None, 1.0);
        assert!(q.of("slow").is_none());
    }

    #[test]
    fn token_refusal_returns_request_unit() {
        let q = Quota::new(Some(60), Some(600), 1.0); // 1 request, 10 tokens
        assert_eq!(q.admit(11), Ok(())); // oversize but bucket full
        assert_eq!(q.admit(1), Err(Fault::ThrottleRequests));
        let q = Quota::new(Some(120), Some(600), 1.0); // 2 requests, 10 tokens
        assert_eq!(q.admit(6), Ok(()));
        assert_eq!(q.admit(6), Err(Fault::ThrottleTokens));
        assert_eq!(q.admit(4), Ok(()));
        q.refund_tokens(3);
        assert_eq!(q.admit(3), Err(Fault::ThrottleRequests));
    }
}
