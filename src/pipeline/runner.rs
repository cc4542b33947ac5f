//! The run: inputs → units → limiter + permit → one task per call → events → sink.
//!
//! ```text
//!  reader thread ──(bounded)──▶ intake ──▶ [permit][limiter] ──▶ call task ─┐
//!  (one row stream, skip done,  (one per                        retries,    │
//!   rows → units)               model: lane.rs)                 backoff     ▼
//!   one per model                   │ then drain          sink (files, bar, counts)
//!                                   ▼
//!                             summary.json
//! ```
//! A unit is (id, model, sample) (`input/matrix.rs`); each model of the
//! matrix has its own lane: reader, intake, permits and limiter
//! (`lane.rs`). Backpressure all the way: a reader blocks on a full channel,
//! intake takes a unit only once it holds one of its lane's permits and the
//! lane's limiter lets it send, and call tasks block on a full event channel
//! while holding their permits. Memory is bounded by the channel sizes and
//! the concurrency, not by the file size.
//!
//! The run is four named steps: [`prepare`] (everything before the first call:
//! a setup error here has cost nothing), `lane::intake` and [`drain`] (the
//! pipeline), and [`finish`] (the summary).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use crate::bedrock::auth;
use crate::bedrock::invoker::{self, Classified, Disposition};
use crate::bedrock::request::{Answer, Api};
use crate::config::Settings;
use crate::cost::meter::{Meter, Reservation};
use crate::cost::spend::Spend;
use crate::eval::paid::Paid;
use crate::eval::EvalSettings;
use crate::input::inventory::{self, Inventory};
use crate::input::job::{Columns, Job};
use crate::input::matrix::{unit_key, Matrix};
use crate::input::reader::Item;
use crate::input::rows::{Repeated, Rows};
use crate::input::template::Template;
use crate::outcome::{ErrorInfo, ErrorKind, Failure, Outcome, Success, Times};
use crate::output::changed;
use crate::output::checkpoint::{self, Earlier, IdSet};
use crate::output::fs::write_atomic;
use crate::output::lock::{self, DirLock};
use crate::output::manifest::Manifest;
use crate::output::progress::Progress;
use crate::output::sink::{self, Event, Output};
use crate::output::summary::{Latency, ModelTally, Run, Summary, Throughput, Timings, Tokens};
use crate::pipeline::backoff::Backoff;
use crate::pipeline::breaker::{Breaker, Trip};
use crate::pipeline::lane;
use crate::pipeline::limiter::{Limiter, Ticket};
use crate::shutdown::{Shutdown, StopReason};

/// Output tokens Bedrock reserves when a request sets no `max_tokens`; we
/// reserve the same so the token limiter errs on the safe side.
const UNSET_MAX_TOKENS: u64 = 4096;

/// What the reader thread hands intake (and the dry-run's estimator).
pub(crate) enum Work {
    Job(Box<Job>),
    Failed(Box<Failure>),
    /// This many rows in a row were already done: counted in batches, so a
    /// resume of a million done rows is not a million messages.
    Skip(u64),
}

/// Most done rows counted into one [`Work::Skip`], so progress still moves.
const SKIP_BATCH: u64 = 10_000;

/// Rows handed from the reader thread to intake per channel message.
/// One message per row cost ~8% of the client's CPU in thread wake-ups
/// (BENCHMARKS.md); 32 rows take microseconds to read, so nothing waits on a
/// batch filling up.
const WORK_BATCH: usize = 32;

/// Batches of [`WORK_BATCH`] rows read ahead: a few hundred rows, no more.
const WORK_AHEAD: usize = 8;

/// Events waiting for the writer. Call tasks wait (holding their permits)
/// when it is full, so this bounds memory, not the calls in flight.
const EVENTS_AHEAD: usize = 1024;

/// Runs a job to the end (or until `shutdown`), and returns its summary.
/// Setup errors come back before anything is sent.
pub async fn run(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let prepared = prepare(settings).await?;
    // Held until the run returns (see `output/lock.rs`).
    let _lock = prepared.lock;
    let settings = prepared.settings.clone();
    // Units of work: rows × models × samples (a pinned row: × samples).
    let rows = prepared.inventory.units;

    // Off the async threads: with max_cost it reads the inputs (blocking, S3 included).
    let (budget, spend) = {
        let (s, paid) = (settings.clone(), prepared.earlier.paid.clone());
        tokio::task::spawn_blocking(move || crate::cost::start(&s, &paid))
            .await
            .context("the budget check panicked")??
    };
    let client = auth::bedrock_client(&prepared.session.sdk, settings.request_timeout);
    let lanes = lane::plan(&settings);
    let limiters: Vec<Arc<Limiter>> = lanes.iter().map(|l| l.limiter.clone()).collect();
    let (events, event_rx) = mpsc::channel(EVENTS_AHEAD);
    let output = Output::open(&settings.output_dir)?;
    let writer = tokio::spawn(sink::run(
        event_rx,
        output,
        Progress::new(Some(rows), settings.progress_bar),
        limiters,
        shutdown.clone(),
        spend,
    ));

    let caller = Arc::new(Caller {
        client,
        credentials: prepared.session.credentials,
        breaker: Breaker::new(&settings.models),
        include_prompt: settings.include_prompt,
        eval: settings.eval.clone(),
        api: settings.api,
        stream: settings.stream,
        events: events.clone(),
        backoff: Backoff::new(settings.max_attempts, settings.row_deadline),
        shutdown: shutdown.clone(),
        meter: Meter::new(
            settings.cost.prices.clone(),
            budget,
            settings.cost.row_limit,
            shutdown.clone(),
        ),
    });
    // One reader and one intake per model (see `lane.rs`).
    let done = Arc::new(prepared.done);
    let repeated = Arc::new(prepared.inventory.repeated);
    let mut readers = Vec::new();
    let mut intakes = Vec::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        let (work_tx, work_rx) = mpsc::channel(WORK_AHEAD);
        readers.push(start_reader(
            settings.clone(),
            prepared.template.clone(),
            done.clone(),
            repeated.clone(),
            i,
            work_tx,
        )?);
        intakes.push(tokio::spawn(lane::intake(
            lane,
            work_rx,
            events.clone(),
            caller.clone(),
            shutdown.clone(),
        )));
    }
    drop(events);
    let mut in_flight = Vec::new();
    for intake in intakes {
        in_flight.push(intake.await.context("a lane's intake panicked")?);
    }
    drain(in_flight, settings.grace_period, &shutdown).await;
    let tripped = caller.breaker.tripped();
    drop(caller);

    // A reader ends once its channel is gone; a read error mid-file ends
    // the run with that error after what was read has been written.
    let mut read_result = Ok(());
    for reader in readers {
        let r = tokio::task::spawn_blocking(move || reader.join())
            .await
            .context("waiting for a reader thread")?
            .map_err(|_| anyhow::anyhow!("a reader thread panicked"))?;
        if read_result.is_ok() {
            read_result = r;
        }
    }
    // Every sender is gone now (intake's and the call tasks'), so the
    // writer's channel closes and it returns its counts, or the write error
    // that stopped the run.
    let counts = writer.await.context("the writer task panicked")??;
    let summary = finish(
        counts,
        prepared.earlier,
        &settings,
        rows,
        started,
        &shutdown,
    )?;
    if let Some(trip) = tripped {
        return Err(stopped_by_breaker(
            &trip,
            &settings,
            &prepared.session.source,
        ));
    }
    read_result?;
    Ok(summary)
}

/// The one line a breaker trip ends the run with; the manifest is marked so
/// that a plain rerun sends the rows that failed for this job-wide reason.
fn stopped_by_breaker(trip: &Trip, settings: &Settings, credential_source: &str) -> anyhow::Error {
    let marked = Manifest::mark_job_wide_failure(&settings.output_dir, trip.kind.as_str());
    let why = if trip.kind == ErrorKind::Credentials && trip.message.is_empty() {
        format!(
            "Bedrock says the credentials expired, and they come from {credential_source}, which cannot renew them: {}",
            auth::renewal_advice(credential_source)
        )
    } else {
        trip.message.clone()
    };
    let rerun = match marked {
        Ok(()) => "run the same command again once fixed: rows not sent, and those that failed this way, are sent then".to_string(),
        Err(e) => format!("(the manifest could not be marked: {e:#}; use --retry-failures {} once fixed)", trip.kind.as_str()),
    };
    anyhow::anyhow!("stopped early: {why}; {rerun}")
}

/// Everything settled before the first call; nothing has been paid for yet.
struct Prepared {
    settings: Arc<Settings>,
    template: Option<Arc<Template>>,
    inventory: Inventory,
    done: IdSet,
    earlier: Earlier,
    session: auth::Session,
    /// This run's hold on the output directory.
    lock: DirLock,
}

/// Reads every input once (counts, duplicate ids, template columns), gets
/// the output directory ready (same job? done ids, torn tails), and resolves
/// credentials. Every error here is a setup error: nothing was sent.
async fn prepare(mut settings: Settings) -> anyhow::Result<Prepared> {
    // S3 inputs are read with the run's credentials: resolved first for them.
    let early_session = crate::input::s3::prepare(&mut settings).await?;
    let settings = Arc::new(settings);
    let template = match &settings.template {
        Some(t) => Some(Arc::new(Template::compile(t).map_err(anyhow::Error::msg)?)),
        None => None,
    };
    let inventory = {
        let (s, t) = (settings.clone(), template.clone());
        tokio::task::spawn_blocking(move || inventory::take(&s, t.as_deref()))
            .await
            .context("input scan panicked")??
    };
    // Before the directory is read: a second run into it is refused here,
    // before it reads the done set or sends anything.
    let lock = lock::acquire(&settings.output_dir)?;
    let checkpoint = checkpoint::prepare(
        &settings.output_dir,
        &settings.resume,
        &Manifest::of(&settings),
        &settings.eval.scorers,
    )?;
    for note in &checkpoint.notes {
        tracing::warn!("{note}");
    }
    // Rows edited since they were answered: refused, resent or kept.
    // Off the async threads: it reads the inputs again (blocking, S3 included).
    let (checkpoint, note, inventory) = {
        let (s, t, mut cp) = (settings.clone(), template.clone(), checkpoint);
        tokio::task::spawn_blocking(move || {
            changed::settle(&s, t.as_deref(), &inventory, &mut cp).map(|n| (cp, n, inventory))
        })
        .await
        .context("the changed-rows check panicked")??
    };
    if let Some(note) = note {
        tracing::warn!("{note}");
    }
    let (done, earlier) = (checkpoint.done, checkpoint.earlier);
    let session = match early_session {
        Some(s) => s,
        None => auth::connect(&settings.auth()).await?,
    };
    tracing::info!(
        "credentials: {}; region {}",
        session.source,
        session
            .sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    );
    crate::report::context::record(&settings, &session).await;
    warn_about_token_budget(&settings);
    if let Some(schema) = &settings.eval.schema {
        // Which way the schema reaches the model decides how far its answers
        // can be trusted to parse: say it before anything is sent.
        for model in &settings.models {
            let route = crate::eval::schema::route(model, settings.api);
            tracing::info!(
                "output_schema {}: {}: {}",
                crate::path::normalize(&schema.path).display(),
                model,
                route.describe()
            );
        }
    }
    Ok(Prepared {
        settings,
        template,
        inventory,
        done,
        earlier,
        session,
        lock,
    })
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

/// The job's summary: what earlier runs left in the files plus what this
/// run wrote, completed with what only the run knows, and written to
/// `summary.json`.
fn finish(
    (mut run, timings, spend, models): (Run, Timings, Spend, ModelTally),
    mut earlier: Earlier,
    settings: &Settings,
    rows: u64,
    started: Instant,
    shutdown: &Shutdown,
) -> anyhow::Result<Summary> {
    let elapsed = started.elapsed().as_secs_f64();
    let minutes = (elapsed / 60.0).max(1e-9);
    run.unfinished = rows.saturating_sub(run.succeeded + run.failed + run.skipped);
    run.elapsed_secs = elapsed;
    run.throughput = Throughput {
        rows_per_min: (run.succeeded + run.failed) as f64 / minutes,
        requests_per_min: run.attempts as f64 / minutes,
        tokens_per_min: (run.tokens.input + run.tokens.output) as f64 / minutes,
    };
    earlier.timings.add(&timings);
    earlier.models.add(&models);
    let mut failed_by_kind = earlier.failed_by_kind;
    for (kind, n) in &run.failed_by_kind {
        *failed_by_kind.entry(kind.clone()).or_default() += n;
    }
    let succeeded = earlier.succeeded + run.succeeded;
    let failed = earlier.failed + run.failed;
    let summary = Summary {
        total: rows,
        succeeded,
        failed,
        unfinished: rows.saturating_sub(succeeded + failed),
        failed_by_kind,
        tokens: Tokens {
            input: earlier.tokens.input + run.tokens.input,
            output: earlier.tokens.output + run.tokens.output,
        },
        attempts: earlier.attempts + run.attempts,
        latency_ms: Latency::of(&earlier.timings.latency),
        ttft_ms: earlier.timings.ttft_ms(),
        output_tokens_per_sec: earlier.timings.output_tokens_per_sec(),
        stopped_by: shutdown.reason().map(|r| r.as_str().to_string()),
        output_dir: settings.output_dir.clone(),
        scores: {
            let mut scores = earlier.scores;
            scores.merge(&run.scores);
            scores
        },
        this_run: run,
        cost: spend,
        by_model: earlier.models.finish(),
    };
    write_atomic(
        &settings.output_dir.join(checkpoint::SUMMARY),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

/// Starts lane `lane`'s reader thread: the one row stream → that model's
/// units, skipping what is done. It ends at the end of the inputs or when
/// the lane's intake stops listening.
fn start_reader(
    settings: Arc<Settings>,
    template: Option<Arc<Template>>,
    done: Arc<IdSet>,
    repeated: Arc<Repeated>,
    lane: usize,
    tx: mpsc::Sender<Vec<Work>>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    std::thread::Builder::new()
        .name(format!("reader {lane}"))
        .spawn(move || {
            read(
                &settings,
                template.as_deref(),
                &done,
                &repeated,
                Some(lane),
                tx,
            )
        })
        .context("cannot start a reader thread")
}

/// Reads the one row stream and sends the units still to do: those of
/// lane `lane` (see `lane.rs`), or of every lane (`None`, the dry run).
/// Each unit is a job (or the input failure it is recorded as) for one
/// (id, model, sample); units already in the done set are counted as skipped.
pub(crate) fn read(
    settings: &Settings,
    template: Option<&Template>,
    done: &IdSet,
    repeated: &Repeated,
    lane: Option<usize>,
    tx: mpsc::Sender<Vec<Work>>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(WORK_BATCH);
    // False once intake has stopped listening.
    let send = |work: Work, batch: &mut Vec<Work>, flush: bool| -> bool {
        batch.push(work);
        if batch.len() < WORK_BATCH && !flush {
            return true;
        }
        tx.blocking_send(std::mem::replace(batch, Vec::with_capacity(WORK_BATCH)))
            .is_ok()
    };
    let columns = Columns::new(settings, template);
    let matrix = Matrix::of(settings);
    let mut skipped = 0u64;
    for row in Rows::new(inventory::spec(settings, template), Some(repeated)) {
        let row = row?;
        let models: Vec<String> = matrix
            .models_of(&row.item)
            .into_iter()
            .filter(|m| lane.is_none_or(|l| matrix.lane_of(m) == l))
            .map(String::from)
            .collect();
        let mut units = Vec::new();
        // The row moves into its last model's job; only a matrix row read
        // for several models at once (the dry run) is copied.
        let (id, mut item) = (row.id, Some(row.item));
        for (n, model) in models.iter().enumerate() {
            let to_do: Vec<u32> = matrix
                .samples()
                .filter(|&s| !done.contains(&unit_key(&id, model, s)))
                .collect();
            skipped += u64::from(matrix.samples) - to_do.len() as u64;
            if to_do.is_empty() {
                continue;
            }
            let this = if n + 1 == models.len() {
                item.take()
            } else {
                item.clone()
            };
            let first = match this {
                None => continue,
                Some(Item::Bad(bad)) => {
                    Work::Failed(Box::new(columns.failure(bad, id.clone(), model)))
                }
                Some(Item::Record(r)) => match columns.job(r, id.clone(), model) {
                    Ok(job) => Work::Job(Box::new(job)),
                    Err(f) => Work::Failed(f),
                },
            };
            // Copies for all samples but the last, which takes `first` itself.
            let (last, others) = to_do.split_last().expect("not empty: checked above");
            units.extend(others.iter().map(|&s| first.of_sample(s)));
            units.push(first.into_sample(*last));
        }
        if skipped >= SKIP_BATCH || (skipped > 0 && !units.is_empty()) {
            if !send(Work::Skip(skipped), &mut batch, skipped >= SKIP_BATCH) {
                return Ok(());
            }
            skipped = 0;
        }
        for work in units {
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

impl Work {
    /// This unit as `sample` of its row and model.
    fn into_sample(self, sample: u32) -> Work {
        match self {
            Work::Job(mut j) => {
                j.sample = sample;
                Work::Job(j)
            }
            Work::Failed(mut f) => {
                f.sample = sample;
                Work::Failed(f)
            }
            skip => skip,
        }
    }

    /// A copy of this unit as `sample` of its row and model.
    fn of_sample(&self, sample: u32) -> Work {
        match self {
            Work::Job(j) => Work::Job(Box::new(Job {
                sample,
                ..(**j).clone()
            })),
            Work::Failed(f) => Work::Failed(Box::new(Failure {
                sample,
                ..(**f).clone()
            })),
            Work::Skip(n) => Work::Skip(*n),
        }
    }
}

/// Waits for the calls in flight once every lane's intake has stopped.
/// After a stop they get the grace period to finish and be written; when it
/// runs out, or on a second signal, they are aborted (their units are sent
/// on resume).
async fn drain(mut lanes: Vec<JoinSet<()>>, grace: Duration, shutdown: &Shutdown) {
    let in_flight = |lanes: &[JoinSet<()>]| lanes.iter().map(JoinSet::len).sum::<usize>();
    let mut grace_deadline = shutdown.is_stopping().then(|| {
        shutdown.announce_drain(in_flight(&lanes), grace);
        tokio::time::Instant::now() + grace
    });
    // Once aborted, stop listening: both tokens stay cancelled and would
    // otherwise wake this loop until the last task is gone.
    let mut aborted = false;
    while in_flight(&lanes) > 0 {
        tokio::select! {
            _ = next_of_any(&mut lanes) => {}
            _ = shutdown.stopping(), if grace_deadline.is_none() && !aborted => {
                shutdown.announce_drain(in_flight(&lanes), grace);
                grace_deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = sleep_until_opt(grace_deadline), if !aborted => {
                tracing::warn!("grace period over: aborting {} call(s) in flight; their rows are sent on resume", in_flight(&lanes));
                lanes.iter_mut().for_each(JoinSet::abort_all);
                aborted = true;
            }
            _ = shutdown.aborted(), if !aborted => {
                lanes.iter_mut().for_each(JoinSet::abort_all);
                aborted = true;
            }
        }
    }
}

/// Waits until a call task of any lane ends (never, when none is left).
async fn next_of_any(lanes: &mut [JoinSet<()>]) {
    std::future::poll_fn(|cx| {
        for lane in lanes.iter_mut() {
            if let std::task::Poll::Ready(Some(_)) = lane.poll_join_next(cx) {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What every call task shares: how to send, how often to retry, and where
/// the outcome goes. How fast is the lane's (its limiter travels with the call).
pub(crate) struct Caller {
    client: aws_sdk_bedrockruntime::Client,
    /// What `client` signs with; told when Bedrock refuses them as expired.
    credentials: auth::CredentialCache,
    /// Watches every attempt for a job that cannot succeed.
    breaker: Breaker,
    include_prompt: bool,
    /// The schema answers must match, and the scorers.
    eval: EvalSettings,
    api: Api,
    /// Send through ConverseStream (`stream = true`).
    stream: bool,
    events: mpsc::Sender<Event>,
    backoff: Backoff,
    shutdown: Shutdown,
    /// Prices answers, holds each call's worst case against the budget,
    /// stops intake for the budget, a refused tier or a finished pilot.
    pub(crate) meter: Meter,
}

impl Caller {
    /// Tokens a call reserves against the token quota: its estimated input
    /// plus the output it may produce.
    pub(crate) fn reservation(&self, limiter: &Limiter, job: &Job) -> u64 {
        limiter.estimate_input(job.request.input_chars())
            + job.request.max_tokens.map_or(UNSET_MAX_TOKENS, u64::from)
    }

    /// Hands a row's outcome, with its permit, to the writer. If the writer
    /// is gone the row is simply not recorded: it is sent on resume.
    async fn finish(&self, outcome: Outcome, permit: OwnedSemaphorePermit) {
        let done = Event::Done {
            outcome: Box::new(outcome),
            slot: Some(permit),
        };
        let _ = self.events.send(done).await;
    }
}

/// One row, from its first attempt to its line in an output file. Dropped
/// (aborted) tasks write nothing: the row is sent again on resume. The
/// permit goes to the writer with the outcome (see [`Event::Done`]).
pub(crate) async fn process(
    job: Job,
    permit: OwnedSemaphorePermit,
    first: Ticket,
    mut hold: Reservation,
    limiter: Arc<Limiter>,
    caller: Arc<Caller>,
) {
    let started = Instant::now();
    let (started_at, mut throttles) = (std::time::SystemTime::now(), 0u32);
    let input_bytes = job.request.input_chars();
    let mut ticket = first;
    let mut attempt = 1u32;
    // Every answered call's usage and cost, whether its answer was kept.
    let mut paid = Paid::default();
    let mut invalid_left = caller.eval.invalid_output_retries;
    loop {
        let t0 = Instant::now();
        let result = invoker::call(&caller.client, caller.api, caller.stream, &job).await;
        let latency_ms = t0.elapsed().as_millis() as u64;
        let error = match result {
            Ok(answer) => {
                caller.breaker.succeeded(&job.request.model);
                limiter.settle(
                    ticket,
                    answer.input_tokens,
                    answer.output_tokens,
                    input_bytes,
                );
                let cost = caller.meter.answered(&job, &answer, hold);
                paid.add(&answer, cost);
                let output_json = match caller.eval.schema.as_ref().map(|s| s.check(&answer.text)) {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(invalid)) => {
                        match after_invalid(&caller, &job, &limiter, invalid_left).await {
                            AfterInvalid::WriterGone => return,
                            AfterInvalid::Again(h, t) => {
                                (hold, ticket) = (h, t);
                                invalid_left -= 1;
                                attempt += 1;
                                continue;
                            }
                            AfterInvalid::Fail => {
                                let times = Times::since(started_at, throttles);
                                let f = invalid_output(
                                    job,
                                    &invalid.message,
                                    answer.text,
                                    attempt,
                                    &paid,
                                    times,
                                );
                                caller.finish(Outcome::Failed(f), permit).await;
                                return;
                            }
                        }
                    }
                };
                let times = Times::since(started_at, throttles);
                let success = succeeded(
                    job,
                    answer,
                    Answered {
                        paid: &paid,
                        output_json,
                        latency_ms,
                        attempt,
                        times,
                    },
                    &caller,
                );
                caller.finish(Outcome::Succeeded(success), permit).await;
                return;
            }
            Err(e) => e,
        };
        if error.expired_credentials() {
            // Otherwise the retry would sign with the same refused credentials.
            caller.credentials.invalidate(t0);
        }
        let renewable = caller.credentials.renewable();
        if caller
            .breaker
            .failed(&error, &job.request.model, renewable)
            .is_some()
            && !caller.shutdown.is_stopping()
        {
            caller.shutdown.request(StopReason::Breaker);
        }
        match error.throttle {
            Some(quota) => {
                throttles += 1;
                limiter.throttled(ticket, quota);
            }
            None => limiter.release(ticket),
        }
        let wait = match error.disposition {
            Disposition::Retry => caller
                .backoff
                .next(attempt, started.elapsed(), fastrand::f64()),
            Disposition::Fail => None,
        };
        let attempt_failed = Event::AttemptFailed {
            throttle: error.throttle,
            retry: wait.is_some() && !caller.shutdown.is_stopping(),
        };
        if caller.events.send(attempt_failed).await.is_err() {
            // The writer is gone: nothing this row does can be recorded.
            return;
        }
        let Some(wait) = wait else {
            // A tier refused before its model ever answered: every row of
            // it would fail the same way (the breaker knows who answered).
            let tier_refused_at_start =
                error.tier_refused && !caller.breaker.answered(&job.request.model);
            caller.meter.failed(error.kind, tier_refused_at_start, hold);
            caller
                .finish(
                    Outcome::Failed(failed(
                        job,
                        error,
                        attempt,
                        &paid,
                        Times::since(started_at, throttles),
                    )),
                    permit,
                )
                .await;
            return;
        };
        match next_attempt(&caller, &job, &limiter, error.kind, hold, wait).await {
            Some((h, t)) => (hold, ticket) = (h, t),
            None => return,
        }
        attempt += 1;
    }
}

/// After an answer refused as invalid output (paid for): whether the row
/// asks again.
enum AfterInvalid {
    /// Within `invalid_output_retries`, the budget and the run: the next
    /// call's reservation and limiter ticket.
    Again(Reservation, Ticket),
    /// The row fails, with the answer and the usage of every paid call.
    Fail,
    /// The writer is gone: nothing this row does can be recorded.
    WriterGone,
}

async fn after_invalid(
    caller: &Caller,
    job: &Job,
    limiter: &Limiter,
    retries_left: u32,
) -> AfterInvalid {
    let again = retries_left > 0 && !caller.shutdown.is_stopping();
    let attempt_failed = Event::AttemptFailed {
        throttle: None,
        retry: again,
    };
    if caller.events.send(attempt_failed).await.is_err() {
        return AfterInvalid::WriterGone;
    }
    if !again {
        return AfterInvalid::Fail;
    }
    let Some(h) = caller.meter.again(job) else {
        return AfterInvalid::Fail;
    };
    match ticket_or_release(caller, job, limiter, h).await {
        Some((h, t)) => AfterInvalid::Again(h, t),
        None => AfterInvalid::Fail,
    }
}

/// The lane limiter's ticket for the next call of `job`, holding `hold`;
/// `None` (the hold released: nothing was sent) when the run stops first.
async fn ticket_or_release(
    caller: &Caller,
    job: &Job,
    limiter: &Limiter,
    hold: Reservation,
) -> Option<(Reservation, Ticket)> {
    tokio::select! {
        t = limiter.acquire(caller.reservation(limiter, job)) => Some((hold, t)),
        _ = caller.shutdown.stopping() => {
            caller.meter.release(hold);
            None
        }
    }
}

/// Waits out `wait`, then the lane's limiter, for a failed row's next
/// attempt. `None` leaves the row for the resume, unwritten: the budget
/// cannot cover another attempt, or the run is stopping.
async fn next_attempt(
    caller: &Caller,
    job: &Job,
    limiter: &Limiter,
    kind: crate::outcome::ErrorKind,
    hold: Reservation,
    wait: Duration,
) -> Option<(Reservation, Ticket)> {
    let hold = caller.meter.attempt_failed(job, kind, hold)?;
    if caller.shutdown.is_stopping() {
        caller.meter.release(hold);
        return None;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = caller.shutdown.stopping() => {
            caller.meter.release(hold);
            return None;
        }
    }
    ticket_or_release(caller, job, limiter, hold).await
}

/// What a row's last, accepted answer adds to its results line.
struct Answered<'a> {
    paid: &'a Paid,
    output_json: Option<serde_json::Value>,
    /// Of the attempt that succeeded.
    latency_ms: u64,
    attempt: u32,
    times: Times,
}

/// The results line of a row answered on its `attempt`-th call, scored.
fn succeeded(job: Job, answer: Answer, a: Answered, caller: &Caller) -> Success {
    let prompt =
        caller
            .include_prompt
            .then(|| match (job.request.messages.as_slice(), &job.body) {
                ([one], _) => serde_json::Value::String(one.text.clone()),
                // A verbatim native body is the prompt as sent.
                ([], Some(invoke)) => invoke.body.clone(),
                (turns, _) => serde_json::to_value(turns).unwrap_or_default(),
            });
    let scores = crate::eval::score::scores_of(
        &caller.eval.scorers,
        &answer.text,
        a.output_json.as_ref(),
        &job.meta,
    );
    Success {
        id: job.id,
        sample: job.sample,
        model: job.request.model,
        output: answer.text,
        stop_reason: answer.stop_reason,
        output_json: a.output_json,
        scores,
        usage: a.paid.usage.clone(),
        cost_usd: a.paid.cost_usd,
        service_tier: answer.service_tier,
        latency_ms: a.latency_ms,
        ttft_ms: answer.ttft_ms,
        output_tokens_per_sec: answer
            .ttft_ms
            .map(|_| per_second(answer.output_tokens, a.latency_ms)),
        attempts: a.attempt,
        source: job.source,
        meta: job.meta,
        prompt,
        times: a.times,
        fingerprint: Some(job.fingerprint),
    }
}

/// The failures line of a row whose answers never matched the schema.
fn invalid_output(
    job: Job,
    why: &str,
    output: String,
    attempts: u32,
    paid: &Paid,
    times: Times,
) -> Failure {
    Failure {
        id: job.id,
        model: job.request.model,
        sample: job.sample,
        error: ErrorInfo {
            kind: ErrorKind::InvalidOutput,
            code: "InvalidOutput".into(),
            message: format!("the answer {why}"),
        },
        attempts,
        output: Some(output),
        usage: paid.usage(),
        cost_usd: paid.cost_usd(),
        source: job.source,
        meta: job.meta,
        times,
        fingerprint: Some(job.fingerprint),
    }
}

/// `tokens` over `ms` milliseconds, in tokens per second to 0.1.
fn per_second(tokens: u64, ms: u64) -> f64 {
    (tokens as f64 * 10_000.0 / ms.max(1) as f64).round() / 10.0
}

/// The failures line of a row whose last attempt failed with `error`.
fn failed(job: Job, error: Classified, attempts: u32, paid: &Paid, times: Times) -> Failure {
    Failure {
        id: job.id,
        sample: job.sample,
        model: job.request.model,
        error: ErrorInfo {
            kind: error.kind,
            code: error.code,
            message: error.message,
        },
        attempts,
        // Answers refused as invalid output before this error were paid for.
        output: None,
        usage: paid.usage(),
        cost_usd: paid.cost_usd(),
        source: job.source,
        meta: job.meta,
        times,
        fingerprint: Some(job.fingerprint),
    }
}
