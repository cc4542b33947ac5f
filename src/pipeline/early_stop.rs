//! The cost side's reasons to stop taking rows before the inputs end: the
//! budget would be passed, Bedrock refused the service tier on the job's
//! first rows (every row would fail the same way), or a dry-run's pilot has
//! sent its rows. Each stops intake through the run's [`Shutdown`], as a
//! signal or the breaker does, so calls in flight finish and are written.
//!
//! Rows not taken are neither results nor failures: a resume sends them.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

use crate::shutdown::{Shutdown, StopReason};

pub struct EarlyStop {
    shutdown: Shutdown,
    /// Requested once: a second request would abort the calls in flight.
    requested: Mutex<bool>,
    /// Some row has succeeded: a tier refusal after that is that row's
    /// failure only (another model or profile of the job may support it).
    answered: AtomicBool,
}

impl EarlyStop {
    pub fn new(shutdown: Shutdown) -> EarlyStop {
        EarlyStop {
            shutdown,
            requested: Mutex::new(false),
            answered: AtomicBool::new(false),
        }
    }

    /// Stops intake for `why`, unless the run is already stopping.
    pub fn halt(&self, why: StopReason) {
        let mut done = self.requested.lock().unwrap_or_else(|e| e.into_inner());
        if !*done && !self.shutdown.is_stopping() {
            *done = true;
            self.shutdown.request(why);
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_stopping()
    }

    pub fn answered(&self) {
        self.answered.store(true, Relaxed);
    }

    /// A row failed because its tier was refused: stop if nothing has succeeded yet.
    pub fn tier_refused(&self) {
        if !self.answered.load(Relaxed) {
            self.halt(StopReason::ServiceTier);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_tier_stops_only_before_any_answer() {
        let s = Shutdown::new();
        let e = EarlyStop::new(s.clone());
        e.answered();
        e.tier_refused();
        assert_eq!(s.reason(), None);
        let s = Shutdown::new();
        let e = EarlyStop::new(s.clone());
        e.tier_refused();
        e.halt(StopReason::Budget);
        assert_eq!(s.reason(), Some(StopReason::ServiceTier));
    }
}
