//! The cost side's reasons to stop taking rows before the inputs end: the
//! budget would be passed, Bedrock refused the service tier on a model's
//! first rows (every row of it would fail the same way; whether the model
//! has answered is the breaker's to know), or a dry-run's pilot has sent
//! its rows. Each stops intake through the run's [`Shutdown`], as a signal
//! or the breaker does, so calls in flight finish and are written.
//!
//! Rows not taken are neither results nor failures: a resume sends them.

use std::sync::Mutex;

use crate::shutdown::{Shutdown, StopReason};

pub struct EarlyStop {
    shutdown: Shutdown,
    /// Requested once: a second request would abort the calls in flight.
    requested: Mutex<bool>,
}

impl EarlyStop {
    pub fn new(shutdown: Shutdown) -> EarlyStop {
        EarlyStop {
            shutdown,
            requested: Mutex::new(false),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_stands() {
        let s = Shutdown::new();
        let e = EarlyStop::new(s.clone());
        e.halt(StopReason::ServiceTier);
        e.halt(StopReason::Budget);
        assert_eq!(s.reason(), Some(StopReason::ServiceTier));
        assert!(e.is_stopping());
    }
}
