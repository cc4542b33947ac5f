//! `run --dry-run`: what a job will cost and how long it will take, before
//! it is paid for.
//!
//! It reads every input and renders every request with the runner's own
//! reader (`runner::read`: same ids, same input failures, same template),
//! skips what the output directory already holds, and sends no model call,
//! except:
//! - `--pilot N` first sends N rows for real through the ordinary run (they
//!   are results like any other; a later run skips them);
//! - `--count-tokens` asks Bedrock's CountTokens for each row's input tokens
//!   (free; models without it fall back to the local estimate).
//!
//! Answers already in `results.jsonl` (a pilot's or an earlier run's) teach
//! it the ratio of real to locally estimated input tokens and the typical
//! answer length. It writes `dry-run.json` and returns the text a person reads.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::bedrock::auth;
use crate::bedrock::request::ServiceTier;
use crate::config::{ResumeMode, Settings};
use crate::cost::estimate::{input_upper_bound, local_input_tokens, uses_cache, LOCAL_METHOD};
use crate::input::inventory;
use crate::input::job::Job;
use crate::input::matrix::unit_key;
use crate::input::rows::id_hash;
use crate::input::template::Template;
use crate::output::checkpoint::IdSet;
use crate::output::earlier::{self, CacheTokens, Purpose};
use crate::output::fs::write_atomic;
use crate::output::manifest::Manifest;
use crate::pipeline::runner::{self, Work};
use crate::shutdown::{Shutdown, StopReason};

pub const FILE: &str = "dry-run.json";

/// Output tokens Bedrock reserves when a request sets no `max_tokens`.
const UNSET_MAX_TOKENS: u64 = 4096;

/// `dry-run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rows: Rows,
    pub input_tokens: Figure,
    pub output_tokens: Figure,
    /// The job as configured (each row on its own tier).
    pub cost_usd: Cost,
    /// The same rows on each service tier; `null` where a price is missing.
    pub tiers: BTreeMap<String, Option<Cost>>,
    /// The same rows through batch inference; `null` where a price is missing.
    pub batch: Option<Cost>,
    /// Models of rows to send that have no price: their rows are not in the figures.
    pub unpriced_models: BTreeSet<String>,
    /// What the job paid so far, as `max_cost` counts it: the lines of
    /// results, failures (answers refused as invalid) and superseded.
    pub already_spent_usd: f64,
    pub learned_from: Learned,
    pub time: Time,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Rows {
    /// Rows to send.
    pub rows: u64,
    /// Already in results.jsonl or failures.jsonl (a pilot's included).
    pub already_done: u64,
    /// Rows that would be failures without being sent (bad input).
    pub input_failures: u64,
    /// Rows to send per model (each row once per model and sample: a matrix
    /// job's units).
    pub by_model: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figure {
    pub expected: u64,
    pub max: u64,
    pub method: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    pub expected: f64,
    pub worst_case: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Learned {
    /// Answered rows the figures learned from.
    pub answered_rows: u64,
    /// Real input tokens per locally estimated one (1 with nothing learned).
    pub input_ratio: f64,
    /// Mean output tokens per answer, if any answer was seen.
    pub mean_output_tokens: Option<f64>,
    /// Median latency of those answers, ms.
    pub p50_latency_ms: Option<u64>,
    /// The share of input tokens that answers using the prompt cache sent
    /// through it: a caching row's expected cost prices that share of its
    /// input as cache reads (standard tier; the worst case stays every
    /// token at the cache-write price).
    pub cache_share: Option<f64>,
    /// Cache-write tokens those answers paid for, expected once more as the
    /// next run's start writes the cache again.
    pub cache_write_tokens: Option<u64>,
}

/// How long the rows take. Bedrock's quotas are per model and a run gives
/// each model of a matrix its own lane (`pipeline/lane.rs`), so each lane's
/// time is its own rows at its own quotas, and the job takes as long as its
/// slowest lane.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Time {
    /// The job's quotas (a model's `[models."ID"]` table may set its own).
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    /// Minutes the job needs at its quotas: its slowest lane's, the slower
    /// of rpm and tpm in each; `None` unless every lane has a quota.
    pub minutes_at_quota: Option<f64>,
    /// Minutes per 100 requests-per-minute of each model's quota, and per
    /// 100,000 tokens-per-minute (the slowest lane's).
    pub minutes_per_100_rpm: f64,
    pub minutes_per_100k_tpm: f64,
    /// Minutes the concurrency allows at the median latency seen, if known.
    pub minutes_at_concurrency: Option<f64>,
    /// Each lane (model) of the job.
    pub by_model: BTreeMap<String, LaneTime>,
}

/// One lane's share of the time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LaneTime {
    /// Calls to send through this lane, and their expected tokens (input +
    /// output: what Bedrock counts against tpm).
    pub rows: u64,
    pub tokens: u64,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub concurrency: usize,
    pub minutes_at_quota: Option<f64>,
    pub minutes_at_concurrency: Option<f64>,
}

impl LaneTime {
    fn settle(&mut self, p50_ms: Option<u64>) {
        let at_rpm = self.rpm.map(|r| self.rows as f64 / f64::from(r.max(1)));
        let at_tpm = self.tpm.map(|t| self.tokens as f64 / f64::from(t.max(1)));
        self.minutes_at_quota = match (at_rpm, at_tpm) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.minutes_at_concurrency = p50_ms
            .map(|ms| self.rows as f64 * ms as f64 / 60_000.0 / self.concurrency.max(1) as f64);
    }
}

impl Time {
    /// The job's time from its lanes' (each with rows, tokens, quotas and
    /// concurrency filled in).
    fn of_lanes(
        rpm: Option<u32>,
        tpm: Option<u32>,
        mut by_model: BTreeMap<String, LaneTime>,
        p50_ms: Option<u64>,
    ) -> Time {
        for lane in by_model.values_mut() {
            lane.settle(p50_ms);
        }
        let slowest = |f: &dyn Fn(&LaneTime) -> f64| by_model.values().map(f).fold(0.0, f64::max);
        let every = |f: &dyn Fn(&LaneTime) -> Option<f64>| {
            by_model
                .values()
                .map(f)
                .try_fold(0.0, |m: f64, x| x.map(|x| m.max(x)))
        };
        Time {
            rpm,
            tpm,
            minutes_at_quota: every(&|l| l.minutes_at_quota).filter(|_| !by_model.is_empty()),
            minutes_per_100_rpm: slowest(&|l| l.rows as f64 / 100.0),
            minutes_per_100k_tpm: slowest(&|l| l.tokens as f64 / 100_000.0),
            minutes_at_concurrency: every(&|l| l.minutes_at_concurrency)
                .filter(|_| !by_model.is_empty()),
            by_model,
        }
    }
}

/// One row to send, as estimated.
struct Row {
    model: String,
    tier: ServiceTier,
    caching: bool,
    /// Exact (CountTokens) or local.
    input: Input,
    input_max: u64,
    output_max: u64,
}

enum Input {
    Counted(u64),
    Local(u64),
}

/// What the output directory's answers teach.
#[derive(Default)]
struct Samples {
    /// Unit (hash of its key) → (input tokens incl. cache, output tokens, latency).
    by_id: HashMap<u128, (u64, u64, u64)>,
    /// What the job paid so far (results, failures and superseded lines).
    spent: f64,
    /// By model, over answers whose usage reports the cache: input tokens
    /// in all, and those read from and written to it.
    cache: BTreeMap<String, CacheTokens>,
    /// The units of failures.jsonl a run would skip (all of them, or those
    /// not being retried).
    failed: IdSet,
}

// What answers told of the prompt cache (`CacheTokens`, per model). A write
// is an event of a run's start (the first calls, one per concurrent slot, or
// again after the cache's TTL), not a share of every row: a pilot of 30 rows
// at concurrency 4 writes about as often as a run of 3,000. So the estimate
// takes the share of input served through the cache, prices it as reads,
// and adds the writes seen once, as a run's start.

/// Runs the pilot (if any), then the estimate. Returns the report and its text.
pub async fn run(settings: Settings, shutdown: Shutdown) -> anyhow::Result<(Report, String)> {
    let dry = settings.cost.dry_run.unwrap_or_default();
    let mut pilot_note = String::new();
    if dry.pilot > 0 {
        let mut pilot = settings.clone();
        pilot.cost.dry_run = None;
        pilot.cost.row_limit = Some(dry.pilot);
        let summary = crate::run(pilot, shutdown.clone()).await?;
        let _ = writeln!(
            pilot_note,
            "pilot: {} row(s) sent for real ({} answered, {} failed), ${:.4}; they are results now and a run skips them",
            summary.succeeded + summary.failed,
            summary.succeeded,
            summary.failed,
            summary.cost.total_usd
        );
        if !matches!(shutdown.reason(), None | Some(StopReason::Pilot)) {
            anyhow::bail!("stopped during the pilot; nothing estimated");
        }
    }
    let mut settings = settings;
    // S3 inputs are read with the run's credentials (the pilot above checked its own).
    crate::input::s3::prepare(&mut settings).await?;
    // What `run` would refuse, an estimate refuses too: figures for a
    // directory that holds another job would price the wrong rows. (A pilot
    // has been through the same check in its run.)
    if settings.resume != ResumeMode::Fresh {
        Manifest::of(&settings).may_continue_in(&settings.output_dir)?;
    }
    let settings = Arc::new(settings);
    let samples = samples(&settings)?;
    let rows = rows_to_send(&settings, &samples, dry.count_tokens).await?;
    let report = estimate(&settings, &samples, rows);
    std::fs::create_dir_all(&settings.output_dir)
        .with_context(|| format!("{}: cannot create", settings.output_dir.display()))?;
    write_atomic(
        &settings.output_dir.join(FILE),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    let text = pilot_note + &render(&report, &settings);
    Ok((report, text))
}

/// What the output directory's files teach and hold, from the one read of
/// them a resume makes too (`output/earlier.rs`), changing nothing.
fn samples(settings: &Settings) -> anyhow::Result<Samples> {
    let retried = match &settings.resume {
        ResumeMode::RetryFailures(kinds) => Some(kinds.as_slice()),
        _ => None,
    };
    let pass = earlier::read(
        &settings.output_dir,
        &settings.model,
        Purpose::Estimate { retried },
    )?;
    Ok(Samples {
        by_id: pass.answers,
        spent: pass.earlier.paid.priced(&settings.cost.prices).0,
        cache: pass.earlier.cache,
        failed: pass.done,
    })
}

/// Reads the inputs as a run would and estimates each row still to send.
async fn rows_to_send(
    settings: &Arc<Settings>,
    samples: &Samples,
    count_tokens: bool,
) -> anyhow::Result<(Vec<Row>, Rows, Vec<(u64, u64)>)> {
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
    let fresh = settings.resume == ResumeMode::Fresh;
    let done = if fresh {
        IdSet::default()
    } else {
        samples.failed.clone()
    };
    let (tx, mut rx) = mpsc::channel::<Vec<Work>>(8);
    let reader = {
        let (s, t) = (settings.clone(), template.clone());
        std::thread::Builder::new()
            .name("dry-run reader".into())
            .spawn(move || runner::read(&s, t.as_deref(), &done, &inventory.repeated, None, tx))
            .context("cannot start the reader thread")?
    };

    let mut counts = Rows::default();
    let mut jobs = Vec::new();
    // (local estimate, real input) of rows already answered: the calibration.
    let mut pairs = Vec::new();
    while let Some(batch) = rx.recv().await {
        for w in batch {
            match w {
                Work::Skip(n) => counts.already_done += n,
                Work::Failed(_) => counts.input_failures += 1,
                Work::Job(job) => match samples
                    .by_id
                    .get(&id_hash(&unit_key(&job.id, &job.request.model, job.sample)))
                    .filter(|_| !fresh)
                {
                    Some(&(real, _, _)) => {
                        counts.already_done += 1;
                        pairs.push((local_input_tokens(&job), real));
                    }
                    None => {
                        *counts
                            .by_model
                            .entry(job.request.model.clone())
                            .or_default() += 1;
                        jobs.push(*job)
                    }
                },
            }
        }
    }
    tokio::task::spawn_blocking(move || reader.join())
        .await
        .context("waiting for the reader thread")?
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))??;
    counts.rows = jobs.len() as u64;

    let counted = if count_tokens {
        count_all(settings, &jobs).await?
    } else {
        vec![None; jobs.len()]
    };
    let rows = jobs
        .iter()
        .zip(counted)
        .map(|(job, counted)| Row {
            model: job.request.model.clone(),
            tier: job.request.service_tier.unwrap_or_default(),
            caching: uses_cache(job),
            input: match counted {
                Some(n) => Input::Counted(n),
                None => Input::Local(local_input_tokens(job)),
            },
            input_max: counted.unwrap_or_else(|| input_upper_bound(job)),
            output_max: job.request.max_tokens.map_or(UNSET_MAX_TOKENS, u64::from),
        })
        .collect();
    Ok((rows, counts, pairs))
}

/// CountTokens for one job; `None` falls back to the local estimate.
async fn count_one(
    client: &aws_sdk_bedrockruntime::Client,
    api: crate::bedrock::request::Api,
    job: &Job,
    unsupported: &std::sync::Mutex<HashSet<String>>,
) -> Option<u64> {
    let model = &job.request.model;
    if unsupported
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(model)
    {
        return None;
    }
    match crate::bedrock::count::count_tokens(client, api, job).await {
        Ok(n) => Some(n),
        Err(e) if e.code == "ValidationException" => {
            let mut u = unsupported.lock().unwrap_or_else(|e| e.into_inner());
            if u.insert(model.clone()) {
                tracing::warn!(
                    "{model}: CountTokens refused ({}); its rows use the local estimate",
                    e.message
                );
            }
            None
        }
        Err(e) => {
            tracing::warn!(
                "{}: line {}: CountTokens failed ({}: {}); local estimate used",
                job.source.file,
                job.source.line,
                e.code,
                e.message
            );
            None
        }
    }
}

/// CountTokens for every job, `concurrency` at a time. A model that does
/// not support it is asked once; its rows fall back to the local estimate.
async fn count_all(settings: &Settings, jobs: &[Job]) -> anyhow::Result<Vec<Option<u64>>> {
    let session = auth::connect(&settings.auth()).await?;
    let client = auth::bedrock_client(&session.sdk, settings.request_timeout);
    let unsupported = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let api = settings.api;
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, job) in jobs.iter().enumerate() {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (client, unsupported, job) = (client.clone(), unsupported.clone(), job.clone());
        tasks.spawn(async move {
            let _permit = permit;
            (i, count_one(&client, api, &job, &unsupported).await)
        });
    }
    let mut results = vec![None; jobs.len()];
    while let Some(r) = tasks.join_next().await {
        let (i, n) = r.context("a CountTokens task panicked")?;
        results[i] = n;
    }
    Ok(results)
}

fn estimate(
    settings: &Settings,
    samples: &Samples,
    (rows, counts, pairs): (Vec<Row>, Rows, Vec<(u64, u64)>),
) -> Report {
    let (local_sum, real_sum) = pairs
        .iter()
        .fold((0u64, 0u64), |(l, r), (a, b)| (l + a, r + b));
    let ratio = if local_sum > 0 {
        real_sum as f64 / local_sum as f64
    } else {
        1.0
    };
    let answered: Vec<&(u64, u64, u64)> = samples.by_id.values().collect();
    let mean_out = (!answered.is_empty())
        .then(|| answered.iter().map(|a| a.1 as f64).sum::<f64>() / answered.len() as f64);
    let p50 = {
        let mut l: Vec<u64> = answered.iter().map(|a| a.2).collect();
        l.sort_unstable();
        l.get(l.len() / 2).copied()
    };

    let mut caching_models = BTreeSet::new();
    let prices = &settings.cost.prices;
    let mut unpriced = BTreeSet::new();
    let mut input = Figure::default();
    let mut output = Figure::default();
    let mut configured = Some(Cost::default());
    let mut tiers: BTreeMap<String, Option<Cost>> = ServiceTier::ALL
        .iter()
        .map(|t| (t.as_str().to_string(), Some(Cost::default())))
        .collect();
    let mut batch = Some(Cost::default());
    let mut counted_rows = 0u64;
    // Each model of the matrix is a lane; a row pinned to a model outside
    // it goes through the first lane, as in a run.
    let mut lanes: BTreeMap<String, LaneTime> = settings
        .models
        .iter()
        .map(|m| {
            let q = settings.lane_of(m);
            let lane = LaneTime {
                rpm: q.rpm,
                tpm: q.tpm,
                concurrency: q.concurrency,
                ..LaneTime::default()
            };
            (m.clone(), lane)
        })
        .collect();
    for r in &rows {
        let in_exp = match r.input {
            Input::Counted(n) => {
                counted_rows += 1;
                n
            }
            Input::Local(n) => (n as f64 * ratio).round() as u64,
        };
        let out_exp = mean_out.map_or(r.output_max, |m| (m.round() as u64).min(r.output_max));
        input.expected += in_exp;
        input.max += r.input_max;
        output.expected += out_exp;
        output.max += r.output_max;
        let lane = if lanes.contains_key(&r.model) {
            Some(r.model.as_str())
        } else {
            settings.models.first().map(String::as_str)
        };
        if let Some(lane) = lane.and_then(|m| lanes.get_mut(m)) {
            lane.rows += 1;
            lane.tokens += in_exp + out_exp;
        }
        let Some(found) = prices.find(&r.model) else {
            unpriced.insert(r.model.clone());
            continue;
        };
        let add = |acc: &mut Option<Cost>, rates: Option<(f64, f64)>, worst_in: Option<f64>| match (
            acc.as_mut(),
            rates,
            worst_in,
        ) {
            (Some(c), Some((i, o)), Some(wi)) => {
                c.expected += (in_exp as f64 * i + out_exp as f64 * o) / 1e6;
                c.worst_case += (r.input_max as f64 * wi + r.output_max as f64 * o) / 1e6;
            }
            _ => *acc = None,
        };
        // A caching row's input: the share answers sent through the cache
        // at the read price, the rest as input (see `CacheTokens` above).
        let seen = samples
            .cache
            .get(&r.model)
            .and_then(CacheTokens::cached_share);
        let rates = |t: ServiceTier| {
            let (i, o) = found.rates(t)?;
            match (r.caching, seen, found.cache_rates()) {
                (true, Some(share), Some((cr, _))) if t == ServiceTier::Default => {
                    Some(((1.0 - share).max(0.0) * i + share.min(1.0) * cr, o))
                }
                _ => Some((i, o)),
            }
        };
        if r.caching && seen.is_some() {
            caching_models.insert(r.model.clone());
        }
        add(
            &mut configured,
            rates(r.tier),
            found.worst_input_rate(r.tier, r.caching),
        );
        for t in ServiceTier::ALL {
            if let Some(acc) = tiers.get_mut(t.as_str()) {
                add(acc, rates(t), found.worst_input_rate(t, r.caching));
            }
        }
        let b = found.batch_rates();
        add(&mut batch, b, b.map(|(i, _)| i));
    }
    // The next run's start writes the cache again, as the last one did: the
    // writes seen, once, at the write price less the read price they were
    // counted at above. Standard tier only, like every cache price.
    let mut write_tokens = 0;
    for model in &caching_models {
        let (Some(c), Some(found)) = (samples.cache.get(model), prices.find(model)) else {
            continue;
        };
        write_tokens += c.write;
        if let Some((cr, cw)) = found.cache_rates() {
            let extra = c.write as f64 * (cw - cr) / 1e6;
            if settings.cost.service_tier.unwrap_or_default() == ServiceTier::Default {
                if let Some(c) = configured.as_mut() {
                    c.expected += extra;
                }
            }
            if let Some(Some(c)) = tiers.get_mut(ServiceTier::Default.as_str()) {
                c.expected += extra;
            }
        }
    }
    let cache_seen: CacheTokens = samples.cache.values().copied().sum();
    input.method = if counted_rows == rows.len() as u64 && !rows.is_empty() {
        "counted: Bedrock CountTokens".to_string()
    } else if pairs.is_empty() {
        format!("{LOCAL_METHOD}; max: bytes + 16 per message (no tokenizer makes more)")
    } else {
        format!(
            "{LOCAL_METHOD} × {ratio:.3}, the real/estimated ratio of {} answered row(s){}; max: bytes + 16 per message",
            pairs.len(),
            if counted_rows > 0 {
                format!("; {counted_rows} row(s) counted with CountTokens")
            } else {
                String::new()
            }
        )
    };
    output.method = match mean_out {
        Some(m) => format!(
            "expected: the mean answer of {} answered row(s), {m:.1} tokens; max: max_tokens",
            answered.len()
        ),
        None => "expected: max_tokens (no answers yet: use --pilot N to learn the typical length); max: max_tokens".to_string(),
    };
    if configured.is_none() || !unpriced.is_empty() {
        // The configured figure is meaningful only over priced rows; say so.
        configured = configured.or(Some(Cost::default()));
    }

    let time = Time::of_lanes(settings.rpm, settings.tpm, lanes, p50);
    Report {
        rows: counts,
        input_tokens: input,
        output_tokens: output,
        cost_usd: configured.unwrap_or_default(),
        tiers,
        batch,
        unpriced_models: unpriced,
        already_spent_usd: samples.spent,
        learned_from: Learned {
            answered_rows: pairs.len() as u64,
            input_ratio: ratio,
            mean_output_tokens: mean_out,
            p50_latency_ms: p50,
            cache_share: cache_seen.cached_share(),
            cache_write_tokens: cache_seen.cached_share().map(|_| write_tokens),
        },
        time,
    }
}

fn render(r: &Report, settings: &Settings) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "dry run: {} row(s) to send, {} already done, {} input failure(s); nothing sent",
        r.rows.rows, r.rows.already_done, r.rows.input_failures
    );
    if settings.models.len() > 1 || settings.samples > 1 {
        // A matrix: every model, with its units still to send.
        let each: Vec<String> = settings
            .models
            .iter()
            .map(|m| format!("{m} {}", r.rows.by_model.get(m).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(
            o,
            "matrix: {} model(s) × {} sample(s); to send: {}",
            settings.models.len(),
            settings.samples,
            each.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "input tokens:  {:>12} expected, {:>12} max  ({})",
        r.input_tokens.expected, r.input_tokens.max, r.input_tokens.method
    );
    let _ = writeln!(
        o,
        "output tokens: {:>12} expected, {:>12} max  ({})",
        r.output_tokens.expected, r.output_tokens.max, r.output_tokens.method
    );
    let _ = writeln!(
        o,
        "{:<22} {:>12} {:>12}",
        "cost (USD)", "expected", "worst case"
    );
    let line = |o: &mut String, name: &str, c: Option<Cost>| match c {
        Some(c) => {
            let _ = writeln!(o, "{name:<22} {:>12.4} {:>12.4}", c.expected, c.worst_case);
        }
        None => {
            let _ = writeln!(o, "{name:<22} {:>12} {:>12}", "no price", "-");
        }
    };
    let configured = match settings.cost.service_tier {
        Some(t) => format!("as configured ({})", t.as_str()),
        None => "as configured".to_string(),
    };
    line(&mut o, &configured, Some(r.cost_usd));
    for (tier, c) in &r.tiers {
        line(&mut o, &format!("  tier {tier}"), *c);
    }
    line(&mut o, "  batch inference", r.batch);
    if !r.unpriced_models.is_empty() {
        let _ = writeln!(
            o,
            "unpriced (not in the figures): {}",
            r.unpriced_models
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let (Some(share), Some(writes)) = (
        r.learned_from.cache_share,
        r.learned_from.cache_write_tokens,
    ) {
        let _ = writeln!(
            o,
            "prompt cache: answers so far sent {:.1}% of their input through it; the expected cost prices that share as reads, plus {writes} written once as the run starts",
            share * 100.0,
        );
    }
    if r.already_spent_usd > 0.0 {
        let _ = writeln!(o, "already spent on this job: ${:.4}", r.already_spent_usd);
    }
    render_time(&mut o, &r.time);
    let _ = writeln!(
        o,
        "prices: {} ({}); written to {}/{FILE}",
        settings.cost.prices.date,
        settings.cost.prices.source,
        settings.output_dir.display()
    );
    o
}

fn render_time(o: &mut String, t: &Time) {
    let quotas = |rpm: Option<u32>, tpm: Option<u32>| {
        [
            rpm.map(|x| format!("{x} rpm")),
            tpm.map(|x| format!("{x} tpm")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    };
    let matrix = t.by_model.len() > 1;
    match t.minutes_at_quota {
        Some(m) if matrix => {
            let each: Vec<String> = t
                .by_model
                .iter()
                .filter_map(|(model, l)| {
                    let m = l.minutes_at_quota?;
                    Some(format!(
                        "{model} {} at {}",
                        minutes(m),
                        quotas(l.rpm, l.tpm)
                    ))
                })
                .collect();
            let _ = writeln!(
                o,
                "time at your quotas: {} (the slowest model's; each model has its own quota): {}",
                minutes(m),
                each.join("; ")
            );
        }
        Some(m) => {
            let (rpm, tpm) = t
                .by_model
                .values()
                .next()
                .map_or((t.rpm, t.tpm), |l| (l.rpm, l.tpm));
            let _ = writeln!(
                o,
                "time at your quotas ({}): {}",
                quotas(rpm, tpm),
                minutes(m)
            );
        }
        None => {
            let _ = writeln!(
                o,
                "time: {} per 100 rpm of quota, {} per 100k tpm ({}the slower of the two applies; set rpm/tpm for one figure)",
                minutes(t.minutes_per_100_rpm),
                minutes(t.minutes_per_100k_tpm),
                if matrix { "of each model's quota, for the model with the most to send; " } else { "" }
            );
        }
    }
    if let Some(m) = t.minutes_at_concurrency {
        let conc: BTreeSet<usize> = t.by_model.values().map(|l| l.concurrency).collect();
        let conc: Vec<String> = conc.iter().map(usize::to_string).collect();
        let _ = writeln!(
            o,
            "time at concurrency {} and the median latency seen: {}",
            conc.join("/"),
            minutes(m)
        );
    }
}

fn minutes(m: f64) -> String {
    if m < 1.0 {
        format!("{:.0}s", m * 60.0)
    } else if m < 120.0 {
        format!("{m:.1} min")
    } else {
        format!("{:.1} h", m / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(rows: u64, tokens: u64, rpm: Option<u32>, tpm: Option<u32>) -> LaneTime {
        LaneTime {
            rows,
            tokens,
            rpm,
            tpm,
            concurrency: 4,
            ..LaneTime::default()
        }
    }

    #[test]
    fn each_lane_runs_at_its_own_quota_and_the_job_takes_the_slowest() {
        let lanes = BTreeMap::from([
            // 600 rows at 60 rpm: 10 min; 60k tokens at 100k tpm: 0.6 min.
            ("a".to_string(), lane(600, 60_000, Some(60), Some(100_000))),
            // 600 rows at 600 rpm: 1 min; but 900k tokens at 100k tpm: 9 min.
            (
                "b".to_string(),
                lane(600, 900_000, Some(600), Some(100_000)),
            ),
        ]);
        let t = Time::of_lanes(None, None, lanes, Some(1_000));
        assert_eq!(t.by_model["a"].minutes_at_quota, Some(10.0));
        assert_eq!(t.by_model["b"].minutes_at_quota, Some(9.0));
        assert_eq!(
            t.minutes_at_quota,
            Some(10.0),
            "the slowest lane, not the sum"
        );
        assert_eq!(t.minutes_per_100_rpm, 6.0);
        assert_eq!(t.minutes_per_100k_tpm, 9.0);
        // 600 rows × 1 s / 4 at a time = 2.5 min in each lane, side by side.
        assert_eq!(t.minutes_at_concurrency, Some(2.5));
    }

    #[test]
    fn a_lane_without_a_quota_leaves_the_job_without_a_time_at_quota() {
        let lanes = BTreeMap::from([
            ("a".to_string(), lane(100, 1_000, Some(10), None)),
            ("b".to_string(), lane(100, 1_000, None, None)),
        ]);
        let t = Time::of_lanes(None, None, lanes, None);
        assert_eq!(t.by_model["a"].minutes_at_quota, Some(10.0));
        assert_eq!(t.minutes_at_quota, None);
        assert_eq!(t.minutes_at_concurrency, None);
        let mut text = String::new();
        render_time(&mut text, &t);
        assert!(text.contains("of each model's quota"), "{text}");
    }
}
