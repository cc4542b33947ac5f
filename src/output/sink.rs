//! The single writer: the one task that owns the output files, the progress
//! display and the counters.
//!
//! Workers send [`Event`]s; only this task turns them into lines of
//! `results.jsonl` / `failures.jsonl`, bar updates and totals. Each line is
//! written with one `write` on an `O_APPEND` file as soon as its row ends, so
//! a finished answer is never lost with the process and lines never
//! interleave. The task ends when every sender has dropped: "done" means the
//! channel closed, not that a counter reached N.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::bedrock::invoker::Throttle;
use crate::cost::spend::Spend;
use crate::outcome::Outcome;
use crate::output::progress::{Progress, Snapshot};
use crate::pipeline::limiter::Limiter;

pub const RESULTS: &str = "results.jsonl";
pub const FAILURES: &str = "failures.jsonl";

#[derive(Debug)]
pub enum Event {
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

/// What the sink counted, handed to the report at the end.
#[derive(Debug, Default)]
pub struct Tally {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub failed_by_kind: BTreeMap<String, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub attempts: u64,
    pub retries: u64,
    pub throttles_requests: u64,
    pub throttles_tokens: u64,
    pub latency_p50: u64,
    pub latency_p95: u64,
    pub latency_p99: u64,
    pub latency_max: u64,
    pub spend: Spend,
}

/// The two JSONL files, open for appending.
pub struct Output {
    results: File,
    failures: File,
}

impl Output {
    pub fn open(dir: &Path) -> anyhow::Result<Output> {
        Ok(Output {
            results: open_append(&dir.join(RESULTS))?,
            failures: open_append(&dir.join(FAILURES))?,
        })
    }
}

/// Opens for appending, creating with owner-only permissions: prompts and
/// answers may be confidential.
pub fn open_append(path: &PathBuf) -> anyhow::Result<File> {
    owner_only()
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open for writing", path.display()))
}

/// Options that create files readable and writable by their owner only
/// (0600): every file bedrock-batch writes may hold prompts or answers.
pub fn owner_only() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Writes one record as one line with a single `write` call.
pub fn write_line<T: serde::Serialize>(file: &mut File, record: &T) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    file.write_all(&line)?;
    Ok(())
}

pub async fn run(
    mut rx: mpsc::Receiver<Event>,
    mut out: Output,
    mut progress: Progress,
    limiter: Arc<Limiter>,
    spend: Spend,
) -> anyhow::Result<Tally> {
    let mut t = Tally {
        spend,
        ..Tally::default()
    };
    // 1 ms to 1 hour, 3 significant digits.
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).context("latency histogram bounds")?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let snapshot = |t: &Tally| Snapshot {
        done: t.succeeded + t.failed + t.skipped,
        succeeded: t.succeeded,
        failed: t.failed,
        skipped: t.skipped,
        input_tokens: t.input_tokens,
        output_tokens: t.output_tokens,
        throttles: t.throttles_requests + t.throttles_tokens,
        allowed_rpm: limiter.allowed_rpm(),
        spent_usd: t.spend.total_usd,
    };
    loop {
        let event = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = tick.tick() => {
                progress.update(&snapshot(&t));
                continue;
            }
        };
        match event {
            Event::Done { outcome, slot } => match *outcome {
                Outcome::Succeeded(s) => {
                    write_line(&mut out.results, &s).context("writing results.jsonl")?;
                    drop(slot);
                    t.succeeded += 1;
                    t.input_tokens += s.usage.input_tokens;
                    t.output_tokens += s.usage.output_tokens;
                    t.attempts += s.attempts as u64;
                    t.spend.add(&s);
                    latency.saturating_record(s.latency_ms.max(1));
                }
                Outcome::Failed(f) => {
                    write_line(&mut out.failures, &f).context("writing failures.jsonl")?;
                    drop(slot);
                    t.failed += 1;
                    t.attempts += f.attempts as u64;
                    *t.failed_by_kind
                        .entry(f.error.kind.as_str().to_string())
                        .or_default() += 1;
                }
            },
            Event::Skipped(n) => t.skipped += n,
            Event::AttemptFailed { throttle, retry } => {
                t.retries += retry as u64;
                match throttle {
                    Some(Throttle::Requests) => t.throttles_requests += 1,
                    Some(Throttle::Tokens) => t.throttles_tokens += 1,
                    None => {}
                }
            }
        }
    }
    progress.update(&snapshot(&t));
    progress.finish();
    out.results.sync_all().ok();
    out.failures.sync_all().ok();
    if !latency.is_empty() {
        t.latency_p50 = latency.value_at_quantile(0.50);
        t.latency_p95 = latency.value_at_quantile(0.95);
        t.latency_p99 = latency.value_at_quantile(0.99);
        t.latency_max = latency.max();
    }
    Ok(t)
}
