//! The runner's one handle on money: prices each answer, holds each call's
//! worst case against the budget, and says when to stop taking rows
//! (budget, refused tier, pilot done).
//!
//! The runner calls it at four points: before sending a row ([`Meter::admit`]),
//! when a call answers ([`Meter::answered`]), when an attempt fails
//! ([`Meter::attempt_failed`]) and when a row ends failed ([`Meter::failed`]);
//! and when an answer refused as invalid output is asked for again ([`Meter::again`]).
//! It sends nothing and writes nothing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::bedrock::request::Answer;
use crate::cost::budget::{Budget, Hold};
use crate::cost::estimate::worst_case_usd;
use crate::cost::price::PriceTable;
use crate::cost::spend::{priced_tier, row_cost, usage_of};
use crate::input::job::Job;
use crate::outcome::ErrorKind;
use crate::pipeline::early_stop::EarlyStop;
use crate::shutdown::{Shutdown, StopReason};

pub struct Meter {
    pub prices: PriceTable,
    pub budget: Option<Arc<Budget>>,
    pub stop: EarlyStop,
    /// Rows a dry-run pilot may send; `None` for an ordinary run.
    row_limit: Option<u64>,
    sent: AtomicU64,
}

/// A row's reservation against the budget (`None` without a budget).
pub type Reservation = Option<Hold>;

impl Meter {
    pub fn new(
        prices: PriceTable,
        budget: Option<Arc<Budget>>,
        row_limit: Option<u64>,
        shutdown: Shutdown,
    ) -> Meter {
        Meter {
            prices,
            budget,
            stop: EarlyStop::new(shutdown),
            row_limit,
            sent: AtomicU64::new(0),
        }
    }

    /// Whether `job` may be sent now, with its reservation. `None` means stop
    /// taking rows (the reason is recorded in `stop`).
    pub fn admit(&self, job: &Job) -> Option<Reservation> {
        if self.stop.is_stopping() {
            return None;
        }
        if let Some(limit) = self.row_limit {
            if self.sent.load(Relaxed) >= limit {
                self.stop.halt(StopReason::Pilot);
                return None;
            }
        }
        let hold = match &self.budget {
            None => None,
            Some(b) => match worst_case_usd(&self.prices, job) {
                Ok(worst) => match b.reserve(worst) {
                    Some(h) => Some(h),
                    None => {
                        self.stop.halt(StopReason::Budget);
                        return None;
                    }
                },
                Err(why) => {
                    // The preflight priced every model and tier it could see;
                    // a row that still cannot be bounded (its own cache points,
                    // say) stops the run rather than spend blind.
                    tracing::warn!(
                        "{}: line {}: cannot bound this row's cost ({why}); stopping before it",
                        job.source.file,
                        job.source.line
                    );
                    self.stop.halt(StopReason::Budget);
                    return None;
                }
            },
        };
        self.sent.fetch_add(1, Relaxed);
        Some(hold)
    }

    /// Prices an answer and releases its reservation: returns `cost_usd` and
    /// the tier it was priced on, as reported.
    pub fn answered(&self, job: &Job, answer: &Answer, hold: Reservation) -> Option<f64> {
        let tier = priced_tier(answer.service_tier.as_deref(), job.request.service_tier);
        let usage = usage_of(answer);
        let cost = row_cost(&self.prices, &job.request.model, tier, &usage);
        if let (Some(b), Some(h)) = (&self.budget, hold) {
            // An unpriced answer cannot happen under a budget (preflight), but
            // if it does, it counts at its worst case.
            let charged = cost.unwrap_or(h.worst_case());
            b.settle(h, charged);
        }
        cost
    }

    /// An attempt failed and the row will try again: a call that may have
    /// been billed without an answer counts at its worst case, and the next
    /// attempt needs a new reservation. `None`: the budget is spent; leave
    /// the row for a resume.
    pub fn attempt_failed(
        &self,
        job: &Job,
        kind: ErrorKind,
        hold: Reservation,
    ) -> Option<Reservation> {
        let (Some(b), Some(h)) = (&self.budget, hold) else {
            return Some(None);
        };
        if !maybe_billed(kind) {
            return Some(Some(h));
        }
        let worst = h.worst_case();
        b.settle(h, worst);
        match b.reserve(worst) {
            Some(h) => Some(Some(h)),
            None => {
                tracing::warn!(
                    "{}: line {}: not retried: another attempt could pass max_cost; sent on resume",
                    job.source.file,
                    job.source.line
                );
                self.stop.halt(StopReason::Budget);
                None
            }
        }
    }

    /// An answer was paid for ([`Meter::answered`]) but refused as invalid
    /// output, and the row asks again: the next call needs a reservation of
    /// its own. `None`: the budget cannot cover it (the run stops taking rows).
    pub fn again(&self, job: &Job) -> Option<Reservation> {
        let Some(b) = &self.budget else {
            return Some(None);
        };
        let worst = worst_case_usd(&self.prices, job).ok()?;
        match b.reserve(worst) {
            Some(h) => Some(Some(h)),
            None => {
                self.stop.halt(StopReason::Budget);
                None
            }
        }
    }

    /// The call was not sent after all (stopping): nothing was charged.
    pub fn release(&self, hold: Reservation) {
        if let (Some(b), Some(h)) = (&self.budget, hold) {
            b.settle(h, 0.0);
        }
    }

    /// The row ended failed; `tier_refused_at_start`: Bedrock refused its
    /// service tier before the row's model had answered any call.
    pub fn failed(&self, kind: ErrorKind, tier_refused_at_start: bool, hold: Reservation) {
        if tier_refused_at_start {
            self.stop.halt(StopReason::ServiceTier);
        }
        if let (Some(b), Some(h)) = (&self.budget, hold) {
            let charged = if maybe_billed(kind) {
                h.worst_case()
            } else {
                0.0
            };
            b.settle(h, charged);
        }
    }
}

/// Failures after which Bedrock may have run (and billed) the model: the
/// answer was lost, not refused. Counted at their worst case: a budget fails closed.
fn maybe_billed(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Timeout | ErrorKind::Network | ErrorKind::Model
    )
}
