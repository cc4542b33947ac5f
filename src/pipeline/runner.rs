//! The run: inputs → jobs → limiter + permit → one task per call → events → sink.
//!
//! ```text
//!  reader thread ──(bounded)──▶ dispatcher ──▶ [permit][limiter] ──▶ call task ─┐
//!  (rows, skip done,            (this task)                          retries,   │
//!   build requests)                                                  backoff    ▼
//!                                                       sink (files, bar, counts)
//! ```
//! Backpressure all the way: the reader blocks on a full channel, the
//! dispatcher takes a row only once it holds a concurrency permit and the
//! limiter lets it send, and workers block on a full event channel. Memory is
//! bounded by the channel sizes and the concurrency, not by the file size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::bedrock::auth::{self, AuthSettings};
use crate::bedrock::invoker::{self, Disposition};
use crate::config::{Api, Settings};
use crate::cost::meter::{Meter, Reservation};
use crate::error::SetupError;
use crate::input::inventory::{self, Inventory};
use crate::input::job::{stand_in_id, Builder, Job};
use crate::input::reader::{Bad, Item, RowReader};
use crate::input::template::Template;
use crate::outcome::{ErrorInfo, Failure, Outcome, Success, Usage};
use crate::output::checkpoint::{self, id_hash, IdSet};
use crate::output::manifest::Manifest;
use crate::output::progress::Progress;
use crate::output::sink::{self, Event, Output};
use crate::output::summary::{Latency, Summary, Throttles, Throughput, Tokens};
use crate::pipeline::backoff::Backoff;
use crate::pipeline::limiter::{Limiter, Ticket};
use crate::shutdown::Shutdown;

/// Output tokens Bedrock reserves when a request sets no `max_tokens`; we
/// reserve the same so the token limiter errs on the safe side.
const UNSET_MAX_TOKENS: u64 = 4096;

/// What the reader thread hands the dispatcher (and the dry-run's estimator).
pub(crate) enum Work {
    Job(Box<Job>),
    Failed(Box<Failure>),
    /// This many rows in a row were already done: counted in batches, so a
    /// resume of a million done rows is not a million messages.
    Skip(u64),
}

/// Most done rows counted into one [`Work::Skip`], so progress still moves.
const SKIP_BATCH: u64 = 10_000;

/// Rows handed from the reader thread to the dispatcher per channel message.
/// One message per row cost ~8% of the client's CPU in thread wake-ups
/// (BENCHMARKS.md); 32 rows take microseconds to read, so nothing waits on a
/// batch filling up.
const WORK_BATCH: usize = 32;

/// Runs a job to the end (or until `shutdown`), and returns its summary.
/// Setup errors come back before anything is sent.
pub async fn run(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let settings = Arc::new(settings);
    let template = match &settings.template {
        Some(t) => Some(Arc::new(Template::compile(t).map_err(SetupError::Config)?)),
        None => None,
    };

    let inventory = {
        let (s, t) = (settings.clone(), template.clone());
        tokio::task::spawn_blocking(move || inventory::take(&s, t.as_deref()))
            .await
            .context("input scan panicked")??
    };
    let checkpoint = checkpoint::prepare(
        &settings.output_dir,
        &settings.resume,
        &Manifest::of(&settings),
    )?;
    for note in &checkpoint.notes {
        tracing::warn!("{note}");
    }

    let session = auth::connect(&AuthSettings {
        region: settings.region.clone(),
        profile: settings.profile.clone(),
        role: settings.role.clone(),
    })
    .await?;
    tracing::info!(
        "credentials: {}; region {}",
        session.source,
        session
            .sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    );
    warn_about_token_budget(&settings);
    let (budget, spend) = crate::cost::start(&settings)?;
    let client = auth::bedrock_client(&session.sdk, settings.request_timeout);

    let limiter = Arc::new(Limiter::new(settings.rpm, settings.tpm));
    let (event_tx, event_rx) = mpsc::channel(1024);
    let progress = Progress::new(Some(inventory.rows), settings.progress_bar);
    let output = Output::open(&settings.output_dir)?;
    let sink = tokio::spawn(sink::run(event_rx, output, progress, limiter.clone(), spend));

    // 8 batches of WORK_BATCH rows: a few hundred rows read ahead, no more.
    let (work_tx, work_rx) = mpsc::channel(8);
    let rows = inventory.rows;
    let reader = {
        let (s, t) = (settings.clone(), template.clone());
        let done = checkpoint.done;
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || read(&s, t.as_deref(), &done, &inventory, work_tx))
            .context("cannot start the reader thread")?
    };

    let meter = Arc::new(Meter::new(
        settings.cost.prices.clone(),
        budget,
        settings.cost.row_limit,
    ));
    let ctx = Arc::new(Ctx {
        client,
        credentials: session.credentials,
        api: settings.api,
        limiter,
        events: event_tx.clone(),
        backoff: Backoff::new(settings.max_attempts, settings.row_deadline),
        shutdown: shutdown.clone(),
        meter: meter.clone(),
    });
    dispatch(&settings, work_rx, event_tx, ctx, &shutdown).await;

    // The reader ends once its channel is gone; a read error mid-file ends
    // the run with that error after what was read has been written.
    let read_result = tokio::task::spawn_blocking(move || reader.join())
        .await
        .context("waiting for the reader thread")?
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
    let tally = sink.await.context("the writer task panicked")??;
    let elapsed = started.elapsed().as_secs_f64();
    let minutes = (elapsed / 60.0).max(1e-9);
    let finished = tally.succeeded + tally.failed + tally.skipped;
    let summary = Summary {
        total: rows,
        succeeded: tally.succeeded,
        failed: tally.failed,
        skipped: tally.skipped,
        unfinished: rows.saturating_sub(finished),
        failed_by_kind: tally.failed_by_kind,
        tokens: Tokens {
            input: tally.input_tokens,
            output: tally.output_tokens,
        },
        elapsed_secs: elapsed,
        throughput: Throughput {
            rows_per_min: (tally.succeeded + tally.failed) as f64 / minutes,
            requests_per_min: tally.attempts as f64 / minutes,
            tokens_per_min: (tally.input_tokens + tally.output_tokens) as f64 / minutes,
        },
        latency_ms: Latency {
            p50: tally.latency_p50,
            p95: tally.latency_p95,
            p99: tally.latency_p99,
            max: tally.latency_max,
        },
        throttles: Throttles {
            requests: tally.throttles_requests,
            tokens: tally.throttles_tokens,
        },
        retries: tally.retries,
        attempts: tally.attempts,
        stopped_by: shutdown
            .reason()
            .map(|r| r.as_str().to_string())
            .or_else(|| meter.stop.reason().map(|h| h.as_str().to_string())),
        output_dir: settings.output_dir.clone(),
        cost: tally.spend,
    };
    checkpoint::write_atomic(
        &settings.output_dir.join(checkpoint::SUMMARY),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    read_result?;
    Ok(summary)
}

fn warn_about_token_budget(s: &Settings) {
    match (s.max_tokens, s.tpm) {
        (None, _) => tracing::warn!(
            "max_tokens is not set: Bedrock reserves the model's maximum output against the token quota for every request; set max_tokens to what answers need"
        ),
        (Some(m), Some(tpm)) => {
            let per_min = tpm as u64 / (m as u64).max(1);
            if per_min < s.concurrency as u64 * 2 {
                tracing::warn!(
                    "with max_tokens {m}, a token quota of {tpm}/min admits at most {per_min} requests a minute (Bedrock reserves max_tokens per request); lower max_tokens if answers are shorter"
                );
            }
        }
        _ => {}
    }
}

/// The reader thread: rows → jobs, skipping what is done. Ends at the end of
/// the inputs or when the dispatcher stops listening.
pub(crate) fn read(
    settings: &Settings,
    template: Option<&Template>,
    done: &IdSet,
    inventory: &Inventory,
    tx: mpsc::Sender<Vec<Work>>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(WORK_BATCH);
    // False once the dispatcher has stopped listening.
    let send = |work: Work, batch: &mut Vec<Work>, flush: bool| -> bool {
        batch.push(work);
        if batch.len() < WORK_BATCH && !flush {
            return true;
        }
        tx.blocking_send(std::mem::replace(batch, Vec::with_capacity(WORK_BATCH)))
            .is_ok()
    };
    let builder = Builder::new(settings, template);
    let mut seen: HashMap<u128, u32> = HashMap::new();
    let mut skipped = 0u64;
    for path in &settings.inputs {
        let mut reader = RowReader::open(path, settings.max_row_bytes)?;
        while let Some(item) = reader.next_item()? {
            let (fields, source) = match &item {
                Item::Record(r) => (&r.fields, &r.source),
                Item::Bad(b) => (&b.fields, &b.source),
            };
            // Every row gets its id the way the inventory counted it, bad rows
            // included, so a repeated id is suffixed the same way whichever
            // of its rows are bad, and no id is written twice.
            let named = builder.id_of(fields, source);
            let mut id = match &named {
                Ok(id) => id.clone(),
                Err(_) => stand_in_id(source),
            };
            let h = id_hash(&id);
            if inventory.repeated.contains_key(&h) {
                let n = seen.entry(h).or_insert(0);
                *n += 1;
                if *n > 1 {
                    id = format!("{id}#{n}");
                }
            }
            if done.contains(&id) {
                skipped += 1;
                if skipped == SKIP_BATCH {
                    if !send(Work::Skip(skipped), &mut batch, true) {
                        return Ok(());
                    }
                    skipped = 0;
                }
                continue;
            }
            if skipped > 0 {
                if !send(Work::Skip(skipped), &mut batch, false) {
                    return Ok(());
                }
                skipped = 0;
            }
            let work = match (item, named) {
                (Item::Bad(bad), _) => Work::Failed(Box::new(builder.bad(bad, id))),
                (Item::Record(r), Err(message)) => {
                    let bad = Bad {
                        source: r.source,
                        fields: r.fields,
                        message,
                    };
                    Work::Failed(Box::new(builder.bad(bad, id)))
                }
                (Item::Record(r), Ok(_)) => match builder.build(r, id) {
                    Ok(job) => Work::Job(Box::new(job)),
                    Err(f) => Work::Failed(f),
                },
            };
            if !send(work, &mut batch, false) {
                return Ok(());
            }
        }
    }
    if skipped > 0 {
        batch.push(Work::Skip(skipped));
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    Ok(())
}

/// Everything a call task needs.
struct Ctx {
    client: aws_sdk_bedrockruntime::Client,
    /// What `client` signs with; told when Bedrock refuses them as expired.
    credentials: auth::CredentialCache,
    api: Api,
    limiter: Arc<Limiter>,
    events: mpsc::Sender<Event>,
    backoff: Backoff,
    shutdown: Shutdown,
    /// Prices answers, holds the budget, says when to stop taking rows.
    meter: Arc<Meter>,
}

impl Ctx {
    fn reservation(&self, job: &Job) -> u64 {
        self.limiter.estimate_input(job.request.input_chars())
            + job.request.max_tokens.map_or(UNSET_MAX_TOKENS, u64::from)
    }
}

async fn dispatch(
    settings: &Settings,
    mut work_rx: mpsc::Receiver<Vec<Work>>,
    events: mpsc::Sender<Event>,
    ctx: Arc<Ctx>,
    shutdown: &Shutdown,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks = JoinSet::new();
    let mut pending = std::collections::VecDeque::new();
    loop {
        while tasks.try_join_next().is_some() {}
        // Permit first, then the row: a row is only taken when it can be sent.
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
        let job = match work {
            Work::Skip(n) => {
                let _ = events.send(Event::Skipped(n)).await;
                continue;
            }
            Work::Failed(f) => {
                let _ = events
                    .send(Event::Done {
                        outcome: Box::new(Outcome::Failed(*f)),
                        slot: None,
                    })
                    .await;
                continue;
            }
            Work::Job(job) => job,
        };
        let Some(hold) = ctx.meter.admit(&job) else {
            break;
        };
        let ticket = tokio::select! {
            biased;
            _ = shutdown.stopping() => {
                ctx.meter.release(hold);
                break;
            }
            t = ctx.limiter.acquire(ctx.reservation(&job)) => t,
        };
        tasks.spawn(process(*job, permit, ticket, hold, ctx.clone()));
    }
    // Stop reading: the reader thread sees the closed channel and ends.
    drop(work_rx);
    drop(events);

    let mut grace_deadline = shutdown
        .is_stopping()
        .then(|| tokio::time::Instant::now() + settings.grace_period);
    // Once aborted, stop listening: both tokens stay cancelled and would
    // otherwise wake this loop until the last task is gone.
    let mut aborted = false;
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = shutdown.stopping(), if grace_deadline.is_none() && !aborted => {
                grace_deadline = Some(tokio::time::Instant::now() + settings.grace_period);
            }
            _ = sleep_until_opt(grace_deadline), if !aborted => {
                tracing::warn!("grace period over: aborting {} call(s) in flight; their rows are sent on resume", tasks.len());
                tasks.abort_all();
                aborted = true;
            }
            _ = shutdown.aborted(), if !aborted => {
                tasks.abort_all();
                aborted = true;
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One row, from its first attempt to its line in an output file. Dropped
/// (aborted) tasks write nothing: the row is sent again on resume. The
/// permit goes to the writer with the outcome (see [`Event::Done`]).
async fn process(
    job: Job,
    permit: OwnedSemaphorePermit,
    first: Ticket,
    mut hold: Reservation,
    ctx: Arc<Ctx>,
) {
    let started = Instant::now();
    let input_bytes = job.request.input_chars();
    let mut ticket = first;
    let mut attempt = 1u32;
    loop {
        let t0 = Instant::now();
        let result = invoker::call(&ctx.client, ctx.api, &job).await;
        let latency_ms = t0.elapsed().as_millis() as u64;
        let error = match result {
            Ok(answer) => {
                ctx.limiter.settle(
                    ticket,
                    answer.input_tokens,
                    answer.output_tokens,
                    input_bytes,
                );
                let usage = Usage {
                    input_tokens: answer.input_tokens,
                    output_tokens: answer.output_tokens,
                    cache_read_input_tokens: answer.cache_read_input_tokens,
                    cache_write_input_tokens: answer.cache_write_input_tokens,
                };
                let cost_usd = ctx.meter.answered(&job, &answer, &usage, hold);
                let success = Success {
                    id: job.id,
                    model: job.request.model,
                    output: answer.text,
                    stop_reason: answer.stop_reason,
                    usage,
                    cost_usd,
                    service_tier: answer.service_tier,
                    latency_ms,
                    attempts: attempt,
                    source: job.source,
                    meta: job.meta,
                };
                let _ = ctx
                    .events
                    .send(Event::Done {
                        outcome: Box::new(Outcome::Succeeded(success)),
                        slot: Some(permit),
                    })
                    .await;
                return;
            }
            Err(e) => e,
        };
        if error.expired_credentials() {
            // Otherwise the retry would sign with the same refused credentials.
            ctx.credentials.invalidate(t0);
        }
        match error.throttle {
            Some(quota) => {
                ctx.limiter.throttled(ticket, quota);
            }
            None => ctx.limiter.release(ticket),
        }
        let wait = match error.disposition {
            Disposition::Retry => ctx
                .backoff
                .next(attempt, started.elapsed(), fastrand::f64()),
            Disposition::Fail => None,
        };
        let _ = ctx
            .events
            .send(Event::AttemptFailed {
                throttle: error.throttle,
                retry: wait.is_some() && !ctx.shutdown.is_stopping(),
            })
            .await;
        let Some(wait) = wait else {
            ctx.meter.failed(error.kind, error.tier_refused, hold);
            let failure = Failure {
                id: job.id,
                model: job.request.model,
                error: ErrorInfo {
                    kind: error.kind,
                    code: error.code,
                    message: error.message,
                },
                attempts: attempt,
                source: job.source,
                meta: job.meta,
            };
            let _ = ctx
                .events
                .send(Event::Done {
                    outcome: Box::new(Outcome::Failed(failure)),
                    slot: Some(permit),
                })
                .await;
            return;
        };
        // The budget may not cover another attempt: the row is left for the resume.
        hold = match ctx.meter.attempt_failed(&job, error.kind, hold) {
            Some(h) => h,
            None => return,
        };
        // Stopping: a row that needs another attempt is left for the resume,
        // not written as failed.
        if ctx.shutdown.is_stopping() {
            ctx.meter.release(hold);
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.shutdown.stopping() => {
                ctx.meter.release(hold);
                return;
            }
        }
        ticket = tokio::select! {
            t = ctx.limiter.acquire(ctx.reservation(&job)) => t,
            _ = ctx.shutdown.stopping() => {
                ctx.meter.release(hold);
                return;
            }
        };
        attempt += 1;
    }
}
