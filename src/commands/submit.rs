//! `bedrock-batch submit`: a job through Bedrock Batch Inference, from the
//! same config and flags as `run` plus `[batch]`, to the same output files.
//!
//! The engine is `batch/`; this file turns flags into settings, prints what
//! was planned and how it ended, hands rows below the minimum or left
//! unfinished to `run` when asked (`--fallback` / `--replay on-demand`), and
//! chooses the exit code.

use anyhow::Context;

use crate::batch::jobs::{Engine, Submitted};
use crate::batch::settings::BatchSettings;
use crate::batch::split::jobs_for;
use crate::batch::state::Invocation;
use crate::bedrock::auth;
use crate::cli::{OnDemand, SubmitArgs};
use crate::config::{FileConfig, ResumeMode, Settings, DEFAULT_CONFIG};
use crate::cost::spend::Spend;
use crate::error::{EXIT_FAILED_ROWS, EXIT_OK};
use crate::output::summary::{Summary, Tokens};
use crate::shutdown::{Shutdown, StopReason};

use super::out;

/// `run`'s settings and `[batch]` from the same flags and file.
pub(crate) fn resolve(
    args: &SubmitArgs,
    terminal: bool,
) -> anyhow::Result<(Settings, BatchSettings)> {
    let settings = Settings::resolve(&args.run, terminal)?;
    if settings.resume != ResumeMode::Continue {
        anyhow::bail!(
            "submit: --fresh and --retry-failures are run's; submit continues the output directory (move it aside for a fresh job)"
        );
    }
    let path = args.run.config.clone().or_else(|| {
        let p = std::path::PathBuf::from(DEFAULT_CONFIG);
        p.exists().then_some(p)
    });
    let file = match &path {
        Some(p) => FileConfig::load(p)?.batch,
        None => None,
    };
    let batch = BatchSettings::resolve(
        file.as_ref(),
        settings.api,
        args.s3_uri.as_deref(),
        args.service_role_arn.as_deref(),
    )?;
    Ok((settings, batch))
}

pub(crate) async fn connect(settings: &Settings) -> anyhow::Result<aws_config::SdkConfig> {
    let session = auth::connect(&settings.auth()).await?;
    tracing::info!("credentials: {}", session.source);
    Ok(session.sdk)
}

pub(crate) async fn run(args: SubmitArgs) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    let (settings, batch) = resolve(&args, std::io::stderr().is_terminal())?;
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals()?;
    if settings.cost.dry_run.is_some() {
        crate::batch::jobs::refuse_what_only_run_does(&settings)?;
        let limits = batch.limits;
        let (report, text) = crate::cost::dry_run::run(settings, shutdown).await?;
        out(&text)?;
        let rows = report.rows.rows;
        // Jobs are split per model (a row may pin its own), each with its minimum.
        let jobs: u64 = report
            .rows
            .by_model
            .values()
            .map(|&n| jobs_for(n, &limits))
            .sum();
        out(&format!(
            "submit: {rows} rows make {jobs} Bedrock batch job(s) (at most {} records per job, at least {}; up to {} running at once per model)\n",
            limits.records_per_job,
            limits.min_records,
            limits.max_concurrent_jobs
        ))?;
        return Ok(EXIT_OK);
    }
    let sdk = connect(&settings).await?;
    let mut engine = Engine::open(settings, batch, &sdk).await?;
    if args.stop {
        let n = engine.stop().await?;
        out(&format!(
            "submit --stop: {n} job(s) stopping; `bedrock-batch collect {}` writes what they answered\n",
            engine.output_dir().display()
        ))?;
        return Ok(EXIT_OK);
    }
    engine.state.invocation = Some(Invocation {
        argv: std::env::args().collect(),
        cwd: std::env::current_dir().context("submit: cannot read the working directory")?,
    });
    let submitted = engine.submit().await?;
    say_plan(&engine, &submitted, args.fallback.is_some())?;
    if args.no_wait {
        out(&format!(
            "submit: {} job(s) created; collect them with: bedrock-batch collect {}\n",
            engine
                .state
                .parts
                .iter()
                .filter(|p| p.job_arn.is_some() && p.collected.is_none())
                .count(),
            engine.output_dir().display()
        ))?;
        return Ok(EXIT_OK);
    }
    engine.follow(true, &shutdown).await?;
    let on_demand = args.replay.is_some()
        || (args.fallback == Some(OnDemand::OnDemand)
            && !submitted.planned.below_minimum.is_empty());
    finish(engine, on_demand, shutdown).await
}

fn say_plan(engine: &Engine, s: &Submitted, fallback: bool) -> anyhow::Result<()> {
    let mut text = String::new();
    if s.followed > 0 {
        text.push_str(&format!(
            "submit: following {} Bedrock job(s) an earlier submit created\n",
            s.followed
        ));
    }
    if s.new_parts > 0 || s.planned.input_failures > 0 || s.planned.skipped > 0 {
        let records: u64 = s.planned.parts.iter().map(|p| p.records).sum();
        text.push_str(&format!(
            "submit: {records} records in {} Bedrock job(s); {} rows already answered, {} bad rows in failures.jsonl\n",
            s.new_parts, s.planned.skipped, s.planned.input_failures
        ));
    }
    for (model, n) in &s.planned.below_minimum {
        let then = if fallback {
            "they go on demand once the batch jobs have ended (--fallback on-demand)"
        } else {
            "send them with `bedrock-batch run` (same config), or add --fallback on-demand"
        };
        text.push_str(&format!(
            "submit: {model}: {n} record(s), below Bedrock's minimum of {} per batch job: not submitted; {then}\n",
            engine.batch.limits.min_records
        ));
    }
    out(&text)?;
    Ok(())
}

/// After waiting: hands unfinished rows to `run` when asked, writes the
/// job's summary, prints it, and picks the exit code: 1 when rows failed or
/// ended unfinished (a job stopped, expired or timed out), 0 otherwise.
pub(crate) async fn finish(
    engine: Engine,
    on_demand: bool,
    shutdown: Shutdown,
) -> anyhow::Result<u8> {
    let pending = engine.state.pending().count();
    let rows = engine.rows;
    let paid_before = engine.paid_before;
    let settings = engine.settings.clone();
    let tally = engine.tally()?;
    let dir = engine.output_dir();
    // Releases the directory's lock: `run` takes it.
    drop(engine);
    let unfinished = rows.saturating_sub(tally.succeeded + tally.failed);
    if on_demand && pending == 0 && unfinished > 0 {
        out(&format!(
            "batch: {unfinished} row(s) without an answer go on demand now\n"
        ))?;
        let summary = crate::run(settings, shutdown.clone()).await?;
        out(&summary.render())?;
        return Ok(super::exit_code(&summary, shutdown.reason()));
    }
    // Batch lines record their batch price; a model without one is listed.
    let (job_total_usd, unpriced_models) = tally.paid.priced(&settings.cost.prices);
    let cost = Spend {
        total_usd: (job_total_usd - paid_before).max(0.0),
        job_total_usd,
        unpriced_models,
        ..Spend::default()
    };
    let summary = Summary {
        total: rows,
        succeeded: tally.succeeded,
        failed: tally.failed,
        unfinished,
        failed_by_kind: tally.failed_by_kind.clone(),
        tokens: Tokens {
            input: tally.tokens.input,
            output: tally.tokens.output,
        },
        attempts: tally.attempts,
        output_dir: dir.clone(),
        cost,
        by_model: tally.models.clone().finish(),
        ..Summary::default()
    };
    crate::output::fs::write_atomic(
        &dir.join(crate::output::checkpoint::SUMMARY),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    let mut text = format!(
        "batch: {rows} rows: {} succeeded, {} failed, {unfinished} unfinished\n",
        tally.succeeded, tally.failed
    );
    let c = &summary.cost;
    text.push_str(&format!(
        "batch: cost ${:.4} at batch prices; the job so far ${:.4}{}\n",
        c.total_usd,
        c.job_total_usd,
        if c.unpriced_models.is_empty() {
            String::new()
        } else {
            let models: Vec<&str> = c.unpriced_models.iter().map(String::as_str).collect();
            format!(
                " (without {}: no batch price known, their rows have cost_usd null)",
                models.join(", ")
            )
        }
    ));
    if pending > 0 {
        text.push_str(&format!(
            "batch: {pending} job(s) still running; collect them with: bedrock-batch collect {}\n",
            dir.display()
        ));
    } else if unfinished > 0 {
        text.push_str(&format!(
            "batch: {unfinished} row(s) have no answer (below the minimum, or not run by their job); send them with `bedrock-batch submit` again, `bedrock-batch run` into {}, or --replay on-demand\n",
            dir.display()
        ));
    }
    out(&text)?;
    // Stopped waiting by a signal: its code (130/143), as `run` exits, so a
    // nightly alarm sees the interruption; the jobs go on and `collect` follows them.
    if let Some(why @ (StopReason::Interrupt | StopReason::Terminate)) = shutdown.reason() {
        return Ok(super::exit_code(&summary, Some(why)));
    }
    Ok(if tally.failed > 0 || (pending == 0 && unfinished > 0) {
        EXIT_FAILED_ROWS
    } else {
        EXIT_OK
    })
}
