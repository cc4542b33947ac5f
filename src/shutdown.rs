//! When to stop, passed into the run as a parameter.
//!
//! First SIGINT/SIGTERM: stop reading rows; calls in flight may finish within
//! the grace period and are written. Second signal: abort in-flight calls at
//! once (their rows are not written and are sent on resume). Only `main` and
//! `demo` listen for signals; the library and tests trigger the same token by
//! hand.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (a scheduler's time limit, an instance being replaced).
    Terminate,
    /// An output file could not be written: an answer paid for now would have
    /// nowhere to go, so nothing more is sent.
    WriteFailed,
    /// The breaker saw that the job as a whole cannot succeed (every call
    /// refused the same way, a dead endpoint, credentials that cannot be
    /// renewed).
    Breaker,
    /// The next call's worst case would pass `max_cost` (`cost/budget.rs`).
    Budget,
    /// Bedrock refused the service tier before any row succeeded.
    ServiceTier,
    /// `--dry-run --pilot N` has sent its N rows.
    Pilot,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Interrupt => "sigint",
            StopReason::Terminate => "sigterm",
            StopReason::WriteFailed => "write_failed",
            StopReason::Breaker => "breaker",
            StopReason::Budget => "budget",
            StopReason::ServiceTier => "service_tier",
            StopReason::Pilot => "pilot",
        }
    }
}

#[derive(Clone, Default)]
pub struct Shutdown {
    stop: CancellationToken,
    abort: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A first request stops intake; a second aborts what is in flight.
    pub fn request(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
            self.stop.cancel();
        } else {
            self.abort.cancel();
        }
    }

    pub fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    pub async fn stopping(&self) {
        self.stop.cancelled().await
    }

    pub async fn aborted(&self) {
        self.abort.cancelled().await
    }

    /// Says, once stopping, what the run now waits for: `in_flight` calls,
    /// for at most `grace`.
    pub fn announce_drain(&self, in_flight: usize, grace: std::time::Duration) {
        let Some(reason) = self.reason() else { return };
        tracing::warn!(
            "{}: stopping: waiting up to {}s for {in_flight} call(s) in flight to finish and be written (signal again to abort them; their rows are then sent on resume)",
            reason.as_str(),
            grace.as_secs()
        );
    }

    /// Turns SIGINT and SIGTERM into requests, for as long as the process lives.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let reason = tokio::select! {
                    _ = int.recv() => StopReason::Interrupt,
                    _ = term.recv() => StopReason::Terminate,
                };
                let first = !this.is_stopping();
                this.request(reason);
                // The first signal is announced by the runner, which knows
                // how many calls are in flight (`announce_drain`).
                if !first {
                    tracing::warn!(
                        "second signal: aborting calls in flight; their rows are sent on resume"
                    );
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn escalates_once() {
        let s = Shutdown::new();
        assert!(!s.is_stopping());
        s.request(StopReason::Terminate);
        assert!(s.is_stopping());
        assert_eq!(s.reason(), Some(StopReason::Terminate));
        assert!(!s.abort.is_cancelled());
        s.request(StopReason::Interrupt);
        assert!(s.abort.is_cancelled());
        assert_eq!(
            s.reason(),
            Some(StopReason::Terminate),
            "the first reason is kept"
        );
    }
}
