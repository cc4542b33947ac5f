//! A job's Bedrock jobs from records to rows: plan (or follow what an earlier
//! submit recorded), upload, create, wait, collect, and stop.
//!
//! Order of steps per part, each recorded in `batch/state.json` before the
//! next: planned → uploaded → created (ARN) → final status → collected. A
//! part is created only while fewer than `max_concurrent_jobs` of its model
//! are active, so a job with more parts than the quota creates the rest as
//! earlier ones end. The lock on the output directory is held throughout,
//! as `run` holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::SdkConfig;

use super::collect::{self, Report, Sink};
use super::control::{self, Seen};
use super::plan::{self, Planned};
use super::settings::{parse_s3_uri, BatchSettings};
use super::state::{Part, State};
use super::store;
use crate::config::Settings;
use crate::input::inventory;
use crate::input::template::Template;
use crate::output::checkpoint::{self, Earlier};
use crate::output::fs::open_append;
use crate::output::lock::{self, DirLock};
use crate::output::manifest::Manifest;
use crate::output::progress::ActiveBar;
use crate::output::sink::{FAILURES, RESULTS};

/// Longest wait between two polls.
const MAX_POLL: Duration = Duration::from_secs(300);

/// Env var naming a point at which the process aborts, as `kill -9` would:
/// `after-upload` or `after-create`. For the crash tests only.
const FAULT_ENV: &str = "BEDROCK_BATCH_FAULT";

/// What a submit or collect is working with.
pub(crate) struct Engine {
    pub(crate) settings: Settings,
    pub(crate) batch: BatchSettings,
    pub(crate) bedrock: aws_sdk_bedrock::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) rows: u64,
    /// Ids that occur more than once (allowed with --allow-duplicate-ids).
    repeated: crate::input::rows::Repeated,
    done: checkpoint::IdSet,
    /// What the job had paid when this command began (the batch's share of
    /// the bill is what the files hold at the end, less this).
    pub(crate) paid_before: f64,
    _lock: DirLock,
    pub(crate) state: State,
    /// Draw a bar (a terminal) or print plain lines.
    bar: Option<ActiveBar>,
}

/// What `submit` did before it waited (or returned with `--no-wait`).
#[derive(Debug, Default)]
pub(crate) struct Submitted {
    pub(crate) new_parts: usize,
    pub(crate) followed: usize,
    pub(crate) planned: Planned,
}

/// Batch sends each row once to one model: a matrix, a schema or scorers
/// would need what only `run` does with the answers. `submit --dry-run`
/// asks the same, so an estimate is never given for a job submit refuses.
pub(crate) fn refuse_what_only_run_does(settings: &Settings) -> anyhow::Result<()> {
    if settings.models.len() > 1 || settings.samples > 1 {
        anyhow::bail!(
            "submit: a job of several models or samples runs with `run` only (batch sends each row once to one model)"
        );
    }
    if settings.eval.schema.is_some() || !settings.eval.scorers.is_empty() {
        anyhow::bail!(
            "submit: `output_schema` and `[[score]]` are applied by `run` only; batch rows would be written unchecked and unscored"
        );
    }
    // A budget fails closed: batch jobs cannot be held to a cap call by
    // call, so a cap is refused rather than ignored.
    if settings.cost.max_cost.is_some() {
        anyhow::bail!(
            "submit: `max_cost` is kept by `run` only (a batch job is not stopped call by call); drop it for submit, or use `run`"
        );
    }
    if settings.upload.is_some() {
        anyhow::bail!(
            "submit: `upload` is done by `run` only; copy the output directory after `collect` (e.g. aws s3 sync), or use `run`"
        );
    }
    Ok(())
}

impl Engine {
    /// Reads the inputs once (counts, duplicate ids), locks the output
    /// directory, reads what is done, and loads the batch state.
    pub(crate) async fn open(
        settings: Settings,
        batch: BatchSettings,
        sdk: &SdkConfig,
    ) -> anyhow::Result<Engine> {
        refuse_what_only_run_does(&settings)?;
        let template = compile(&settings)?;
        let inventory = inventory::take(&settings, template.as_ref())?;
        let lock = lock::acquire(&settings.output_dir)?;
        let mut cp = checkpoint::prepare(
            &settings.output_dir,
            &settings.resume,
            &Manifest::of(&settings),
            &settings.eval.scorers,
        )?;
        for note in &cp.notes {
            tracing::warn!("{note}");
        }
        // Rows edited since they were answered: refused, resent or kept, as
        // `run` does (`on_changed`), before anything is planned.
        if let Some(note) =
            crate::output::changed::settle(&settings, template.as_ref(), &inventory, &mut cp)?
        {
            tracing::warn!("{note}");
        }
        let state = State::load(&settings.output_dir)?;
        let bar = settings.progress_bar.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr_with_hz(4),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} records {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            // Registered, so the log lines of the wait go above it.
            ActiveBar::show(bar)
        });
        Ok(Engine {
            bedrock: control::client(sdk),
            s3: crate::input::s3::client(sdk),
            rows: inventory.units,
            repeated: inventory.repeated,
            paid_before: cp.earlier.paid.priced(&settings.cost.prices).0,
            done: cp.done,
            _lock: lock,
            state,
            bar,
            settings,
            batch,
        })
    }

    fn dir(&self) -> &Path {
        &self.settings.output_dir
    }

    /// Plans new parts unless earlier ones are still pending (then follows
    /// those), uploads and creates what the quota allows.
    pub(crate) async fn submit(&mut self) -> anyhow::Result<Submitted> {
        let mut out = Submitted::default();
        let pending = self.state.pending().count();
        if pending > 0 {
            out.followed = pending;
        } else {
            let template = compile(&self.settings)?;
            let first = self.state.next_index();
            out.planned = plan::plan(
                &self.settings,
                &self.batch,
                template.as_ref(),
                &self.done,
                &self.repeated,
                first,
            )?;
            let (bucket, prefix) = parse_s3_uri(&self.batch.s3_uri)?;
            let base = if prefix.is_empty() {
                format!("s3://{bucket}")
            } else {
                format!("s3://{bucket}/{prefix}")
            };
            let identity = identity(&self.settings, &self.batch);
            for w in &out.planned.parts {
                let token = token(&identity, w.index, &w.digest);
                self.state.parts.push(Part {
                    index: w.index,
                    model: w.model.clone(),
                    records: w.records,
                    files: w.files.clone(),
                    input_uri: format!("{base}/input/{token}/"),
                    output_uri: format!("{base}/output/"),
                    job_name: format!("{}-{:04}-{}", self.batch.job_name, w.index, &token[..8]),
                    token,
                    uploaded: false,
                    job_arn: None,
                    status: None,
                    message: None,
                    collected: None,
                });
            }
            out.new_parts = out.planned.parts.len();
            self.state.save(self.dir())?;
        }
        self.create_ready().await?;
        Ok(out)
    }

    /// Uploads and creates every part not yet created, while its model has a free slot.
    async fn create_ready(&mut self) -> anyhow::Result<()> {
        for i in 0..self.state.parts.len() {
            if self.state.parts[i].job_arn.is_some() {
                continue;
            }
            let model = self.state.parts[i].model.clone();
            let active = self
                .state
                .parts
                .iter()
                .filter(|p| p.model == model && p.job_arn.is_some() && !p.is_final())
                .count() as u64;
            if active >= self.batch.limits.max_concurrent_jobs {
                continue;
            }
            if !self.state.parts[i].uploaded {
                let part = &self.state.parts[i];
                for f in &part.files {
                    let local = plan::local_file(self.dir(), part.index, &f.name);
                    store::upload(&self.s3, &local, &format!("{}{}", part.input_uri, f.name))
                        .await?;
                }
                self.state.parts[i].uploaded = true;
                self.state.save(self.dir())?;
                fault_point("after-upload");
            }
            let arn =
                match control::create(&self.bedrock, &self.state.parts[i], &self.batch).await? {
                    control::Created::Arn(arn) => arn,
                    control::Created::NoSlot(why) => {
                        // Tried again at the next poll (or by `collect`).
                        tracing::warn!(
                            "part {}: no free batch job slot yet: {why}",
                            self.state.parts[i].index
                        );
                        break;
                    }
                };
            fault_point("after-create");
            let part = &mut self.state.parts[i];
            tracing::info!(
                "part {} ({} records of {}): job {arn}",
                part.index,
                part.records,
                part.model
            );
            part.job_arn = Some(arn);
            part.status = Some("Submitted".into());
            self.state.save(self.dir())?;
            // The records are on S3 now; the mapping stays for collect.
            let part = &self.state.parts[i];
            for f in &part.files {
                let _ = std::fs::remove_file(plan::local_file(self.dir(), part.index, &f.name));
            }
        }
        Ok(())
    }

    /// Polls every pending part until all have ended and been collected
    /// (`wait`), or once (`!wait`); creates parts as slots free up.
    pub(crate) async fn follow(
        &mut self,
        wait: bool,
        shutdown: &crate::Shutdown,
    ) -> anyhow::Result<()> {
        let mut delay = Duration::from_secs_f64(self.batch.poll_secs);
        let mut last: BTreeMap<u32, Seen> = BTreeMap::new();
        loop {
            let mut changed = false;
            for i in 0..self.state.parts.len() {
                let part = &self.state.parts[i];
                if part.collected.is_some() {
                    continue;
                }
                let Some(arn) = part.job_arn.clone() else {
                    continue;
                };
                let seen = control::status(&self.bedrock, &arn).await?;
                if last.get(&part.index) != Some(&seen) {
                    changed = true;
                    last.insert(part.index, seen.clone());
                }
                let part = &mut self.state.parts[i];
                if part.status.as_deref() != Some(seen.status.as_str())
                    || part.message != seen.message
                {
                    part.status = Some(seen.status.clone());
                    part.message = seen.message.clone();
                    self.state.save(self.dir())?;
                }
                if seen.is_final() {
                    self.collect_part(i, &seen).await?;
                }
            }
            self.create_ready().await?;
            self.show(&last);
            let open = self.state.pending().count();
            if open == 0 || !wait || shutdown.is_stopping() {
                break;
            }
            delay = if changed {
                Duration::from_secs_f64(self.batch.poll_secs)
            } else {
                (delay * 2).min(MAX_POLL)
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.stopping() => {}
            }
        }
        // Cleared and unregistered: what comes after prints plainly.
        self.bar = None;
        Ok(())
    }

    /// Progress over records: processed / success / error of every job.
    fn show(&self, seen: &BTreeMap<u32, Seen>) {
        if seen.is_empty() {
            return;
        }
        let total: u64 = self.state.pending().map(|p| p.records).sum::<u64>()
            + self
                .state
                .parts
                .iter()
                .filter(|p| p.collected.is_some() && seen.contains_key(&p.index))
                .map(|p| p.records)
                .sum::<u64>();
        let (mut processed, mut ok, mut errors) = (0, 0, 0);
        let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
        for s in seen.values() {
            processed += s.processed;
            ok += s.succeeded;
            errors += s.errors;
            *statuses.entry(s.status.as_str()).or_default() += 1;
        }
        let jobs = statuses
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ");
        let msg = format!("| ok {ok} | errors {errors} | jobs: {jobs}");
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(processed);
                bar.set_message(msg);
            }
            None => eprintln!("batch: {processed}/{total} records {msg}"),
        }
    }

    /// Maps a finished part's outputs into the output files.
    async fn collect_part(&mut self, i: usize, seen: &Seen) -> anyhow::Result<()> {
        let part = self.state.parts[i].clone();
        let mut report = Report::default();
        let Some(job_id) = part.job_id().map(str::to_owned) else {
            return Ok(());
        };
        let mut map = collect::read_map(&part, self.dir())?;
        let mut results = open_append(&self.dir().join(RESULTS))?;
        let mut failures = open_append(&self.dir().join(FAILURES))?;
        let base = format!("{}{job_id}/", part.output_uri);
        let mut found_lines = 0u64;
        for f in &part.files {
            let uri = format!("{base}{}.out", f.name);
            let Some(bytes) = store::download(&self.s3, &uri).await? else {
                continue;
            };
            found_lines += bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count() as u64;
            let mut sink = Sink {
                results: &mut results,
                failures: &mut failures,
                done: &self.done,
                prices: &self.settings.cost.prices,
                include_prompt: self.settings.include_prompt,
            };
            collect::lines(
                &bytes,
                &uri,
                &mut map,
                &mut sink,
                self.batch.converse,
                &mut report,
            )?;
        }
        results.sync_all()?;
        failures.sync_all()?;
        if let Some(m) = store::download(&self.s3, &format!("{base}manifest.json.out")).await? {
            collect::check_manifest(&m, found_lines, &mut report);
        } else if seen.status != "Failed" && seen.status != "Expired" {
            report.mismatch = Some("the job wrote no manifest.json.out".into());
        }
        if let Some(m) = &report.mismatch {
            tracing::warn!("part {} (job {job_id}): {m}", part.index);
        }
        report.collected.unfinished = map.len() as u64;
        let part = &mut self.state.parts[i];
        part.collected = Some(report.collected);
        self.state.save(self.dir())?;
        let part = &self.state.parts[i];
        let why = part
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let line = format!(
            "part {} job {job_id} {}{why}: {} succeeded, {} failed, {} never ran",
            part.index,
            seen.status,
            report.collected.succeeded,
            report.collected.failed,
            report.collected.unfinished
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("batch: {line}"),
        }
        Ok(())
    }

    /// Stops every created job that has not ended.
    pub(crate) async fn stop(&mut self) -> anyhow::Result<usize> {
        let mut n = 0;
        for i in 0..self.state.parts.len() {
            let part = &self.state.parts[i];
            if part.collected.is_some() || part.is_final() {
                continue;
            }
            let Some(arn) = part.job_arn.clone() else {
                continue;
            };
            control::stop(&self.bedrock, &arn).await?;
            self.state.parts[i].status = Some("Stopping".into());
            self.state.save(self.dir())?;
            n += 1;
        }
        Ok(n)
    }

    /// Counts of the whole job from the output files now.
    pub(crate) fn tally(&self) -> anyhow::Result<Earlier> {
        Earlier::read(self.dir())
    }

    pub(crate) fn output_dir(&self) -> PathBuf {
        self.settings.output_dir.clone()
    }
}

fn compile(settings: &Settings) -> anyhow::Result<Option<Template>> {
    settings
        .template
        .as_ref()
        .map(|t| Template::compile(t).map_err(anyhow::Error::msg))
        .transpose()
}

/// The job's identity for tokens: its settings as the manifest records
/// them, and where its batch jobs go.
fn identity(settings: &Settings, batch: &BatchSettings) -> String {
    let manifest = serde_json::to_string(&Manifest::of(settings)).unwrap_or_default();
    format!(
        "{manifest}|{}|{}|{}|{}",
        batch.s3_uri, batch.role_arn, batch.converse, batch.timeout_hours
    )
}

/// `clientRequestToken`: 64 hex characters (Bedrock allows up to 256 of
/// `[a-zA-Z0-9-]`), the same for the same job, part and records.
fn token(identity: &str, index: u32, digest: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(identity.as_bytes());
    h.update(index.to_le_bytes());
    h.update(digest.as_bytes());
    hex::encode(h.finalize())
}

fn fault_point(name: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == name) {
        eprintln!("{FAULT_ENV}={name}: aborting");
        std::process::abort();
    }
}
