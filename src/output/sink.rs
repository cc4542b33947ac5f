//! The single writer: the one task that owns the output files, the progress
//! display and the counters.
//!
//! Workers send [`Event`]s; only this task turns them into lines of
//! `results.jsonl` / `failures.jsonl`, bar updates and totals. Each line is
//! written with one `write` on an `O_APPEND` file as soon as its row ends, so
//! a finished answer is never lost with the process and lines never
//! interleave. The task ends when every sender has dropped: "done" means the
//! channel closed, not that a counter reached N.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::bedrock::invoker::Throttle;
use crate::cost::spend::Spend;
use crate::outcome::Outcome;
use crate::output::fs::{open_append, write_line};
use crate::output::progress::Progress;
use crate::output::summary::{Latency, ModelTally, Run, Timings};
use crate::pipeline::limiter::Limiter;
use crate::shutdown::{Shutdown, StopReason};

pub const RESULTS: &str = "results.jsonl";
pub const FAILURES: &str = "failures.jsonl";

#[derive(Debug)]
pub(crate) enum Event {
    /// A row ended. `slot` is the row's concurrency permit, released only once
    /// its line is written: a row answered but not yet on disk would be paid
    /// for again if the process died now, and this keeps such rows within
    /// the concurrency however far the writer falls behind.
    Done {
        outcome: Box<Outcome>,
        slot: Option<OwnedSemaphorePermit>,
    },
    /// This many rows were already done in an earlier run.
    Skipped(u64),
    /// An attempt failed; `retry` says whether the row tries again.
    AttemptFailed {
        throttle: Option<Throttle>,
        retry: bool,
    },
}

/// The two JSONL files, open for appending.
pub(crate) struct Output {
    results: File,
    failures: File,
    results_path: PathBuf,
    failures_path: PathBuf,
}

impl Output {
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Output> {
        let (results_path, failures_path) = (dir.join(RESULTS), dir.join(FAILURES));
        Ok(Output {
            results: open_append(&results_path)?,
            failures: open_append(&failures_path)?,
            results_path,
            failures_path,
        })
    }
}

/// Writes every row's line as it arrives, counts it, and keeps the
/// progress display current, until every sender has dropped.
///
/// Backpressure: the channel is bounded, so when the disk is slow the call
/// tasks wait in `send` (holding their permits, see [`Event::Done`]), and the
/// dispatcher, which needs a permit for every new row, stops taking rows.
///
/// A line that cannot be written (disk full, a file-size limit, an I/O
/// error) stops the run at once: `shutdown` is told, so nothing new is sent
/// and no row is retried, and the error comes back once the channel is
/// closed. A call paid for now has no place to go, so the only answers lost
/// are those of the calls already in flight; their rows are sent on resume.
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Event>,
    mut out: Output,
    mut progress: Progress,
    limiters: Vec<Arc<Limiter>>,
    shutdown: Shutdown,
    mut spend: Spend,
) -> anyhow::Result<(Run, Timings, Spend, ModelTally)> {
    let mut summary = Run::default();
    let mut timings = Timings::default();
    // Each model's units and latencies, for the per-model breakdowns.
    let mut models = ModelTally::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let event = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = tick.tick() => {
                progress.update(&summary, crate::pipeline::lane::allowed_rpm(&limiters), spend.total_usd);
                continue;
            }
        };
        if let Event::Done { outcome, .. } = &event {
            match outcome.as_ref() {
                Outcome::Succeeded(r) => {
                    spend.add(r);
                    let usage = (r.usage.input_tokens, r.usage.output_tokens);
                    models.answered(&r.model, usage, Some(r.latency_ms));
                }
                Outcome::Failed(f) => {
                    spend.failed(f);
                    let usage = f
                        .usage
                        .as_ref()
                        .map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
                    models.failed(&f.model, f.error.kind.as_str(), usage);
                    // Answers refused as invalid output were paid for too.
                    if let Some(u) = &f.usage {
                        spend.add_paid(&f.model, u, f.cost_usd, None);
                    }
                }
            }
        }
        if let Err(e) = record(event, &mut out, &mut summary, &mut timings, &shutdown) {
            progress.finish();
            return Err(e);
        }
    }
    progress.update(
        &summary,
        crate::pipeline::lane::allowed_rpm(&limiters),
        spend.total_usd,
    );
    progress.finish();
    out.results.sync_all().ok();
    out.failures.sync_all().ok();
    summary.latency_ms = Latency::of(&timings.latency);
    for (model, m) in spend.by_model.iter_mut() {
        m.latency_ms = models.latency(model);
    }
    summary.ttft_ms = timings.ttft_ms();
    summary.output_tokens_per_sec = timings.output_tokens_per_sec();
    Ok((summary, timings, spend, models))
}

/// One event: its line written (the permit released only after), its counts
/// added. A line that cannot be written asks for the stop *before* its permit
/// is released, so no new call can take the permit and be paid for.
fn record(
    event: Event,
    out: &mut Output,
    s: &mut Run,
    timings: &mut Timings,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let unwritable = |path: &Path, e: anyhow::Error| {
        shutdown.request(StopReason::WriteFailed);
        anyhow::anyhow!(
            "{}: cannot write ({e:#}); stopped sending: rows in flight were not recorded and are sent again on resume",
            path.display()
        )
    };
    match event {
        Event::Done { outcome, slot } => match *outcome {
            Outcome::Succeeded(r) => {
                write_line(&mut out.results, &r).map_err(|e| unwritable(&out.results_path, e))?;
                drop(slot);
                s.succeeded += 1;
                s.tokens.input += r.usage.input_tokens;
                s.tokens.output += r.usage.output_tokens;
                s.attempts += r.attempts as u64;
                if let Some(scores) = &r.scores {
                    s.scores.add(&r.model, scores);
                }
                timings.record(r.latency_ms, r.ttft_ms, r.output_tokens_per_sec);
            }
            Outcome::Failed(f) => {
                write_line(&mut out.failures, &f).map_err(|e| unwritable(&out.failures_path, e))?;
                drop(slot);
                s.failed += 1;
                s.attempts += f.attempts as u64;
                if let Some(u) = &f.usage {
                    s.tokens.input += u.input_tokens;
                    s.tokens.output += u.output_tokens;
                }
                *s.failed_by_kind
                    .entry(f.error.kind.as_str().to_string())
                    .or_default() += 1;
            }
        },
        Event::Skipped(n) => s.skipped += n,
        Event::AttemptFailed { throttle, retry } => {
            s.retries += retry as u64;
            match throttle {
                Some(Throttle::Requests) => s.throttles.requests += 1,
                Some(Throttle::Tokens) => s.throttles.tokens += 1,
                None => {}
            }
        }
    }
    Ok(())
}
