//! Why the dispatcher stops taking rows before the inputs end, other than a
//! signal (`shutdown.rs`): the budget would be passed, or Bedrock refused the
//! service tier on the job's first rows (every row would fail the same way),
//! or a dry-run's pilot has sent its rows.
//!
//! Rows not taken are neither results nor failures: a resume sends them.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// The next call's worst case would pass `max_cost`.
    Budget,
    /// A ValidationException for the service tier before any row succeeded.
    ServiceTier,
    /// `--dry-run --pilot N` sent its N rows.
    Pilot,
}

impl Halt {
    /// As `summary.json`'s `stopped_by` has it.
    pub fn as_str(self) -> &'static str {
        match self {
            Halt::Budget => "budget",
            Halt::ServiceTier => "service_tier",
            Halt::Pilot => "pilot",
        }
    }
}

#[derive(Debug, Default)]
pub struct EarlyStop {
    halt: Mutex<Option<Halt>>,
    /// Some row has succeeded: a tier refusal after that is that row's
    /// failure only (another model or profile of the job may support it).
    answered: AtomicBool,
}

impl EarlyStop {
    /// Records the first reason; later ones do not replace it.
    pub fn halt(&self, why: Halt) {
        let mut h = self.halt.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_none() {
            *h = Some(why);
        }
    }

    pub fn reason(&self) -> Option<Halt> {
        *self.halt.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn answered(&self) {
        self.answered.store(true, Relaxed);
    }

    /// A row failed because its tier was refused: stop if nothing has succeeded yet.
    pub fn tier_refused(&self) {
        if !self.answered.load(Relaxed) {
            self.halt(Halt::ServiceTier);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_tier_stops_only_before_any_answer() {
        let s = EarlyStop::default();
        s.answered();
        s.tier_refused();
        assert_eq!(s.reason(), None);
        let s = EarlyStop::default();
        s.tier_refused();
        s.halt(Halt::Budget);
        assert_eq!(s.reason(), Some(Halt::ServiceTier));
    }
}
