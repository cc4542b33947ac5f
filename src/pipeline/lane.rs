//! One lane per model of the matrix: its own reader, limiter and permits.
//!
//! ```text
//!  reader thread (lane a) ──(bounded)──▶ intake a ─▶ [a's permit][a's limiter] ─▶ call tasks ─┐
//!  reader thread (lane b) ──(bounded)──▶ intake b ─▶ [b's permit][b's limiter] ─▶ call tasks ─┤
//!                                                                        mpsc<Event> ─▶ sink ◀┘
//! ```
//! Bedrock's quotas are per model, so each model gets its own adaptive
//! limiter and its own concurrency bound, and a model being throttled must
//! not slow the others. A lane therefore reads the one row stream for
//! itself (`runner::read` with the lane's index): a lane waits only on its
//! own limiter and permits, never on another lane's queue, and memory stays
//! bounded per lane (the reader is at most a few batches ahead of its
//! intake). Every lane starts at the first row and all run at once, so a
//! job stopped halfway has each model's answers for the first rows, not all
//! of one model and none of another; a faster model gets further.
//!
//! A row pinned by its `model` column to a model outside the matrix goes
//! through the first model's lane (its limiter then paces both, as with a
//! one-model job). What a lane is not: it does not decide which units exist
//! (`input/matrix.rs`) or write anything (the sink).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::outcome::Outcome;
use crate::output::sink::Event;
use crate::pipeline::limiter::Limiter;
use crate::pipeline::runner::{process, Caller, Work};
use crate::shutdown::Shutdown;

/// One model's pace and bound.
pub(crate) struct Lane {
    /// This model's quotas (its `[models."ID"]` rpm/tpm, else the job's),
    /// adapting to its own throttles only.
    pub(crate) limiter: Arc<Limiter>,
    /// This model's calls in flight or answered but not yet written.
    pub(crate) concurrency: usize,
}

/// The lanes of a job, in the order of its models; a matrix says what each
/// model's lane runs at.
pub(crate) fn plan(settings: &Settings) -> Vec<Lane> {
    let quotas: Vec<_> = settings
        .models
        .iter()
        .map(|m| settings.lane_of(m))
        .collect();
    let lanes: Vec<Lane> = quotas
        .iter()
        .map(|q| Lane {
            limiter: Arc::new(Limiter::new(q.rpm, q.tpm)),
            concurrency: q.concurrency,
        })
        .collect();
    if settings.models.len() > 1 || settings.samples > 1 {
        let quota =
            |q: Option<u32>, unit: &str| q.map(|q| format!(", {q} {unit}")).unwrap_or_default();
        let each: Vec<String> = settings
            .models
            .iter()
            .zip(&quotas)
            .map(|(m, q)| {
                format!(
                    "{m} (concurrency {}{}{})",
                    q.concurrency,
                    quota(q.rpm, "rpm"),
                    quota(q.tpm, "tpm")
                )
            })
            .collect();
        tracing::info!(
            "matrix: {} model(s) × {} sample(s), one lane each: {}",
            settings.models.len(),
            settings.samples,
            each.join(", ")
        );
    }
    lanes
}

/// The pace the progress line shows: the lanes' allowed rates added up,
/// `None` when no lane has one yet.
pub(crate) fn allowed_rpm(limiters: &[Arc<Limiter>]) -> Option<f64> {
    limiters
        .iter()
        .filter_map(|l| l.allowed_rpm())
        .fold(None, |sum, r| Some(sum.unwrap_or(0.0) + r))
}

/// Takes a lane's units and starts one call task per unit, until its
/// reader ends, a stop is requested, or the writer is gone.
///
/// Backpressure: a unit is taken only once one of the lane's permits is
/// held, and its call starts only once the lane's limiter lets it; the
/// permit travels with the unit to the writer (see [`Event::Done`]). So at
/// most the lane's `concurrency` units are in flight or answered but not
/// yet written, and its reader is never more than a few batches ahead.
/// Returns the call tasks still running.
pub(crate) async fn intake(
    lane: Lane,
    mut work_rx: mpsc::Receiver<Vec<Work>>,
    events: mpsc::Sender<Event>,
    caller: Arc<Caller>,
    shutdown: Shutdown,
) -> JoinSet<()> {
    let permits = Arc::new(Semaphore::new(lane.concurrency));
    let mut tasks = JoinSet::new();
    let mut pending = VecDeque::new();
    loop {
        while tasks.try_join_next().is_some() {}
        // Permit first, then the unit: a unit is only taken when it can be sent.
        let permit = tokio::select! {
            biased;
            _ = shutdown.stopping() => break,
            // The semaphore is never closed, so acquiring cannot fail.
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        if pending.is_empty() {
            tokio::select! {
                biased;
                _ = shutdown.stopping() => break,
                w = work_rx.recv() => match w {
                    Some(batch) => pending.extend(batch),
                    None => break,
                },
            }
        }
        let Some(work) = pending.pop_front() else {
            continue;
        };
        // A failed send means the writer is gone (it has asked for the stop).
        let job = match work {
            Work::Skip(n) => {
                if events.send(Event::Skipped(n)).await.is_err() {
                    break;
                }
                continue;
            }
            Work::Failed(f) => {
                let done = Event::Done {
                    outcome: Box::new(Outcome::Failed(*f)),
                    slot: None,
                };
                if events.send(done).await.is_err() {
                    break;
                }
                continue;
            }
            Work::Job(job) => job,
        };
        // The budget (and a pilot's row count) may say no: intake stops.
        let Some(hold) = caller.meter.admit(&job) else {
            break;
        };
        let reservation = caller.reservation(&lane.limiter, &job);
        let ticket = tokio::select! {
            biased;
            _ = shutdown.stopping() => {
                caller.meter.release(hold);
                break;
            }
            t = lane.limiter.acquire(reservation) => t,
        };
        // The limiter may have waited: a stop that came meanwhile (the
        // writer failing among them) means this call must not be paid for.
        if shutdown.is_stopping() {
            lane.limiter.release(ticket);
            caller.meter.release(hold);
            break;
        }
        tasks.spawn(process(
            *job,
            permit,
            ticket,
            hold,
            lane.limiter.clone(),
            caller.clone(),
        ));
    }
    tasks
}
