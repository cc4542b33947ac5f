//! What earlier runs left in an output directory, read in one pass.
//!
//! Before its first call a resume needs several things from
//! `results.jsonl` and `failures.jsonl`: the units done, each with the
//! fingerprint `changed.rs` compares (`checkpoint.rs`); the counts the
//! job's summary adds to ([`Earlier`]); what the job has paid, for
//! `--max-cost` and the summary's job total (`cost/budget.rs`, where
//! `superseded.jsonl` counts too); and, for an estimate, what the answers
//! teach (`cost/dry_run.rs`). On a million-row directory one read of the
//! files costs seconds, so [`read`] collects all of it in one pass and the
//! others take what it found instead of reading again.
//!
//! What it keeps is aggregates (counts, histograms, token sums by model),
//! not lines; the per-unit parts are the done set (24 bytes a unit, see
//! `checkpoint::IdSet`) and, for an estimate only, each answer's figures.
//!
//! Not here: getting the directory ready (torn tails, `--fresh`,
//! `--retry-failures`: `checkpoint.rs`), what a price is (`cost/`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::bedrock::request::ServiceTier;
use crate::cost::price::{PriceTable, Tokens as PricedTokens};
use crate::cost::spend::priced_tier;
use crate::input::matrix::{unit_key, FIRST_SAMPLE};
use crate::input::rows::id_hash;
use crate::output::checkpoint::{entry, IdSet, Recorded, SUPERSEDED};
use crate::output::sink::{FAILURES, RESULTS};
use crate::output::summary::{ModelTally, Timings, Tokens};

/// The rows earlier runs wrote, counted in the same pass that collects
/// their ids, so the job's summary costs no second read of the files.
#[derive(Debug, Default)]
pub struct Earlier {
    pub succeeded: u64,
    pub failed: u64,
    pub failed_by_kind: BTreeMap<String, u64>,
    pub tokens: Tokens,
    pub attempts: u64,
    pub(crate) timings: Timings,
    /// The `scores` of the results lines, per model.
    pub(crate) scores: crate::eval::tally::Scores,
    /// Per model, the prompt-cache figures of the answers that report them.
    pub(crate) cache: BTreeMap<String, CacheTokens>,
    /// What every line cost, superseded lines included: what the job paid.
    pub(crate) paid: Paid,
    /// Units, tokens and latency per model (`summary.json`'s `by_model`).
    pub(crate) models: ModelTally,
}

/// Input tokens of answers whose usage reports the prompt cache: in all
/// (cache included), and those read from and written to it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct CacheTokens {
    pub(crate) input: u64,
    pub(crate) read: u64,
    pub(crate) write: u64,
}

impl CacheTokens {
    /// The share of input tokens that went through the cache, once seen.
    pub(crate) fn cached_share(&self) -> Option<f64> {
        (self.input > 0).then(|| (self.read + self.write) as f64 / self.input as f64)
    }
}

impl std::iter::Sum for CacheTokens {
    fn sum<I: Iterator<Item = CacheTokens>>(iter: I) -> CacheTokens {
        iter.fold(CacheTokens::default(), |a, c| CacheTokens {
            input: a.input + c.input,
            read: a.read + c.read,
            write: a.write + c.write,
        })
    }
}

/// What the lines of an output directory cost: the `cost_usd` they
/// recorded, and the usage of those that recorded none (written before
/// costs were, or of a model without a price then), kept to be priced
/// with the table of the run that asks. Sums, not lines: the usage is
/// grouped by everything that decides a line's price (model, tier, whether
/// it read or wrote the cache), and a price is linear in each kind of
/// token, so the sum priced once is the lines priced one by one.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Paid {
    recorded_usd: f64,
    unrecorded: BTreeMap<PriceKey, PricedTokens>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PriceKey {
    model: String,
    /// Written by batch inference (`engine: "batch"`): the batch price, or
    /// none, never the on-demand one.
    batch: bool,
    tier: ServiceTier,
    cache_read: bool,
    cache_write: bool,
}

impl Paid {
    /// Counts one line (one without a model or usage paid for nothing).
    fn add(&mut self, rec: &Line) {
        let (Some(model), Some(u)) = (&rec.model, &rec.usage) else {
            return;
        };
        if let Some(usd) = rec.cost_usd {
            self.recorded_usd += usd;
            return;
        }
        let t = u.priced();
        let key = PriceKey {
            model: model.clone(),
            batch: rec.engine.as_deref() == Some("batch"),
            tier: priced_tier(rec.service_tier.as_deref(), None),
            cache_read: t.cache_read > 0,
            cache_write: t.cache_write > 0,
        };
        let sum = self.unrecorded.entry(key).or_default();
        sum.input += t.input;
        sum.output += t.output;
        sum.cache_read += t.cache_read;
        sum.cache_write += t.cache_write;
    }

    /// What was paid, lines without a recorded cost priced with `prices`;
    /// and the models of lines no price covers (not in the total).
    pub(crate) fn priced(&self, prices: &PriceTable) -> (f64, BTreeSet<String>) {
        let mut total = self.recorded_usd;
        let mut unpriced = BTreeSet::new();
        for (k, t) in &self.unrecorded {
            let price = prices.find(&k.model);
            let usd = match k.batch {
                true => price.and_then(|p| p.batch_cost(t)),
                false => price.and_then(|p| p.cost(k.tier, t)),
            };
            match usd {
                Some(usd) => total += usd,
                None => {
                    unpriced.insert(k.model.clone());
                }
            }
        }
        (total, unpriced)
    }
}

/// What a pass is for, which decides where a results or failures line goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// A run: every line's unit is done.
    Resume,
    /// The counts and what was paid, no units (`Earlier::read`).
    Count,
    /// An estimate (`run --dry-run`), which changes nothing: a results
    /// line's unit is an answer to learn from (the estimate renders that
    /// row again to compare), and a failures line's unit is done unless
    /// its kind is `retried` (`--retry-failures`; empty: every kind).
    Estimate { retried: Option<&'a [String]> },
}

/// Everything one read of an output directory found.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    pub(crate) done: IdSet,
    pub(crate) earlier: Earlier,
    /// Estimate only: each answered unit by the hash of its key (see
    /// `input/matrix.rs`): input tokens (cache included), output tokens,
    /// latency in ms. A later line of a unit replaces an earlier one.
    pub(crate) answers: HashMap<u128, (u64, u64, u64)>,
}

/// Reads `dir`'s results, failures and superseded files, each once; a line
/// that names no model is `model`'s (the job's first). A line that is not
/// one of our records is an error naming its file and line, except in
/// superseded.jsonl, which only counts what was paid.
pub(crate) fn read(dir: &Path, model: &str, purpose: Purpose) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    let mut done = Vec::new();
    for name in [RESULTS, FAILURES] {
        for_each_record(&dir.join(name), |_, rec| {
            pass.earlier.count(&rec, model);
            pass.earlier.paid.add(&rec);
            // Counting needs no unit key: only the other purposes hash one.
            if let Purpose::Count = purpose {
                return;
            }
            let key = id_hash(&rec.key(model));
            match purpose {
                Purpose::Count => {} // returned above
                Purpose::Resume => done.push(entry(key, rec.recorded())),
                Purpose::Estimate { .. } if name == RESULTS => {
                    if let Some(answer) = rec.answer() {
                        pass.answers.insert(key, answer);
                    }
                }
                Purpose::Estimate { retried } => {
                    let kind = rec.error.as_ref().map_or("", |e| e.kind.as_str());
                    let again =
                        retried.is_some_and(|k| k.is_empty() || k.iter().any(|k| k == kind));
                    if !again {
                        done.push(entry(key, rec.recorded()));
                    }
                }
            }
        })?;
    }
    // Lines moved aside (`changed.rs`, `--retry-failures`) were paid for
    // when they were current. Appends after a crash may have torn one in
    // the middle: such a line is skipped, as it records nothing usable.
    for_each_line(&dir.join(SUPERSEDED), |_, line, _| {
        if let Ok(rec) = serde_json::from_str::<Line>(line) {
            pass.earlier.paid.add(&rec);
        }
        Ok(())
    })?;
    pass.done = IdSet::from_entries(done);
    Ok(pass)
}

impl Earlier {
    /// Counts what `dir`'s files hold now.
    pub(crate) fn read(dir: &Path) -> anyhow::Result<Earlier> {
        // The job's model only names the units, which this does not keep.
        Ok(read(dir, "", Purpose::Count)?.earlier)
    }

    /// Forgets the counts of the current lines, keeping what was paid
    /// (moving a line aside changes what the job holds, not what it paid):
    /// for a rewrite that counts the lines it keeps.
    pub(crate) fn recount(&mut self) {
        let paid = std::mem::take(&mut self.paid);
        *self = Earlier {
            paid,
            ..Earlier::default()
        };
    }

    /// Counts one current line of results.jsonl or failures.jsonl (what
    /// it paid is counted apart: a line moved aside stays paid).
    /// A line that names no model is `job_model`'s (the job's first).
    pub(crate) fn count(&mut self, rec: &Line, job_model: &str) {
        self.attempts += u64::from(rec.attempts.unwrap_or(0));
        let model = rec.model.as_deref().unwrap_or(job_model);
        let usage = rec
            .usage
            .as_ref()
            .map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
        // Batch inference reports no time per record: its lines' 0 is not an
        // answer's latency, and stays out of the percentiles.
        let latency_ms = rec
            .latency_ms
            .filter(|_| rec.engine.as_deref() != Some("batch"));
        match &rec.error {
            Some(e) => self.models.failed(model, &e.kind, usage),
            None => self.models.answered(model, usage, latency_ms),
        }
        // A failed row's usage is that of answers refused as invalid output.
        if let Some(u) = &rec.usage {
            self.tokens.input += u.input_tokens;
            self.tokens.output += u.output_tokens;
        }
        match &rec.error {
            Some(e) => {
                self.failed += 1;
                *self.failed_by_kind.entry(e.kind.clone()).or_default() += 1;
            }
            None => {
                self.succeeded += 1;
                if let (Some(model), Some(scores)) = (&rec.model, &rec.scores) {
                    self.scores.add(model, scores);
                }
                if let Some(ms) = latency_ms {
                    self.timings
                        .record(ms, rec.ttft_ms, rec.output_tokens_per_sec);
                }
                if let (Some(model), Some(u)) = (&rec.model, &rec.usage) {
                    if u.cache_read_input_tokens.is_some() || u.cache_write_input_tokens.is_some() {
                        let c = self.cache.entry(model.clone()).or_default();
                        let t = u.priced();
                        c.input += t.input + t.cache_read + t.cache_write;
                        c.read += t.cache_read;
                        c.write += t.cache_write;
                    }
                }
            }
        }
    }
}

/// The parts of a results or failures line that resume reads; the rest
/// (the answer, the meta) is skipped unparsed.
#[derive(Deserialize)]
pub(crate) struct Line {
    pub(crate) id: String,
    /// Every line ever written carries it; a hand-made one without it
    /// counts as the job's first model.
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    sample: Option<u32>,
    #[serde(default)]
    pub(crate) error: Option<LineError>,
    #[serde(default)]
    pub(crate) usage: Option<LineUsage>,
    #[serde(default)]
    cost_usd: Option<f64>,
    #[serde(default)]
    service_tier: Option<String>,
    /// `"batch"` on a line batch inference wrote (absent: on demand).
    #[serde(default)]
    engine: Option<String>,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    ttft_ms: Option<u64>,
    #[serde(default)]
    output_tokens_per_sec: Option<f64>,
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    scores: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Line {
    /// The unit this line ended (see `input/matrix.rs`), `model` standing
    /// for a line that names none.
    pub(crate) fn key(&self, model: &str) -> String {
        let m = self.model.as_deref().unwrap_or(model);
        unit_key(&self.id, m, self.sample.unwrap_or(FIRST_SAMPLE))
    }

    pub(crate) fn recorded(&self) -> Recorded {
        let input = self.error.as_ref().is_some_and(|e| e.kind == "input");
        Recorded::of_line(self.fingerprint.as_deref(), input)
    }

    /// An answer's input tokens (cache included), output tokens and
    /// latency, when the line is an answer that records them.
    fn answer(&self) -> Option<(u64, u64, u64)> {
        if self.error.is_some() || self.model.is_none() {
            return None;
        }
        let (u, ms) = (self.usage.as_ref()?, self.latency_ms?);
        let t = u.priced();
        Some((t.input + t.cache_read + t.cache_write, t.output, ms))
    }
}

#[derive(Deserialize)]
pub(crate) struct LineUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

impl LineUsage {
    fn priced(&self) -> PricedTokens {
        PricedTokens {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_read: self.cache_read_input_tokens.unwrap_or(0),
            cache_write: self.cache_write_input_tokens.unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LineError {
    pub(crate) kind: String,
}

/// Calls `each` with every record of an output file (its raw line and its
/// parsed fields), in order. A missing file has no records; a line that is
/// not one of our records is an error naming the file and line, except a
/// last line without its newline: a torn tail, which a run cuts away
/// before reading (`checkpoint.rs`) and an estimate, which changes
/// nothing, skips (that row is sent again).
pub(crate) fn for_each_record(path: &Path, mut each: impl FnMut(&str, Line)) -> anyhow::Result<()> {
    for_each_line(path, |n, line, whole| {
        match serde_json::from_str::<Line>(line) {
            Ok(rec) => each(line, rec),
            Err(_) if !whole => {}
            Err(e) => anyhow::bail!(
                "{}: line {n}: not a bedrock-batch record ({e}); was the file edited?",
                path.display()
            ),
        }
        Ok(())
    })
}

/// Calls `each` with the number, text (without its newline) and whether it
/// ended in a newline, of every non-blank line of `path`, in order: the one
/// place the output files are read whole. A missing file has no lines.
fn for_each_line(
    path: &Path,
    mut each: impl FnMut(usize, &str, bool) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    #[cfg(test)]
    tests::READS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
    let mut r = BufReader::new(f);
    // One buffer for every line: a million lines, one allocation.
    let mut line = String::new();
    for n in 1.. {
        line.clear();
        let read = r
            .read_line(&mut line)
            .with_context(|| format!("{}: line {n}", path.display()))?;
        if read == 0 {
            break;
        }
        let whole = line.ends_with('\n');
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        each(n, text, whole)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// Every file [`for_each_line`] opened, in order, across the test
    /// binary's threads: a test keeps those under its own directory.
    pub(crate) static READS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// The files of `dir` read whole so far, by name, in order.
    pub(crate) fn reads_of(dir: &Path) -> Vec<String> {
        READS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.parent() == Some(dir))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    /// A results line of `model` with usage, optionally its recorded cost.
    fn answered(id: &str, model: &str, input: u64, cost: Option<f64>) -> String {
        serde_json::json!({
            "id": id, "model": model, "output": "x", "stop_reason": "end_turn",
            "usage": {"input_tokens": input, "output_tokens": 0},
            "cost_usd": cost, "latency_ms": 40, "attempts": 1,
            "source": {"file": "f", "line": 2}, "meta": {}
        })
        .to_string()
    }

    #[test]
    fn a_batch_line_without_a_recorded_cost_is_priced_at_the_batch_price_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let batch = |id: &str, model: &str| {
            serde_json::json!({"id": id, "model": model, "output": "x", "engine": "batch",
                "usage": {"input_tokens": 1_000_000, "output_tokens": 0}, "cost_usd": null})
        };
        // Haiku's batch input price is $0.125 (on demand $0.25); Claude
        // Sonnet 4 has an on-demand price in the table but no batch price.
        std::fs::write(
            dir.path().join(RESULTS),
            format!(
                "{}\n{}\n",
                batch("1", HAIKU),
                batch("2", "anthropic.claude-sonnet-4-20250514-v1:0")
            ),
        )
        .unwrap();
        let pass = read(dir.path(), HAIKU, Purpose::Resume).unwrap();
        let (usd, unpriced) = pass.earlier.paid.priced(&PriceTable::built_in());
        assert!((usd - 0.125).abs() < 1e-12, "{usd}");
        assert_eq!(
            unpriced.into_iter().collect::<Vec<_>>(),
            ["anthropic.claude-sonnet-4-20250514-v1:0"],
            "no batch price: unpriced, not its on-demand price"
        );
    }

    #[test]
    fn what_was_paid_counts_every_file_priced_now_where_no_cost_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        // Haiku input: $0.25 per million tokens.
        std::fs::write(
            dir.path().join(RESULTS),
            format!(
                "{}\n{}\n{}\n",
                answered("1", HAIKU, 1_000_000, None),
                answered("2", "m", 1, Some(0.5)),
                answered("3", "mistral.x", 1, None),
            ),
        )
        .unwrap();
        // Answers refused as invalid output were paid for.
        std::fs::write(
            dir.path().join(FAILURES),
            format!(
                "{}\n",
                serde_json::json!({"id": "4", "model": HAIKU, "error": {"kind": "invalid_output"},
                    "usage": {"input_tokens": 2_000_000, "output_tokens": 0}})
            ),
        )
        .unwrap();
        // A line moved aside was paid when it was current; a torn one is skipped.
        std::fs::write(
            dir.path().join(SUPERSEDED),
            format!(
                "{}\n{{\"id\":\"6\",\"mo\n",
                answered("5", "m", 1, Some(0.125))
            ),
        )
        .unwrap();
        let pass = read(dir.path(), HAIKU, Purpose::Resume).unwrap();
        let (usd, unpriced) = pass.earlier.paid.priced(&PriceTable::built_in());
        assert!((usd - (0.25 + 0.5 + 0.5 + 0.125)).abs() < 1e-12, "{usd}");
        assert_eq!(unpriced.into_iter().collect::<Vec<_>>(), ["mistral.x"]);
        assert_eq!(pass.done.len(), 4, "superseded lines are not done");
        assert_eq!((pass.earlier.succeeded, pass.earlier.failed), (3, 1));
        assert_eq!(
            reads_of(dir.path()),
            [RESULTS, FAILURES, SUPERSEDED],
            "each file read once"
        );
    }

    /// A resume's start-up, as `runner::prepare` and `cost::start` run it:
    /// the checkpoint reads each file once, `on_changed = resend` rewrites
    /// results and failures (recounting as it goes), and the budget prices
    /// what the checkpoint found. Nothing else opens the files.
    #[test]
    fn a_resume_start_reads_each_output_file_once() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let (input, out) = (dir.path().join("in.csv"), dir.path().join("out"));
        std::fs::write(&input, "id,prompt\na,one\nb,two\nc,three\n").unwrap();
        let argv = [
            "bedrock-batch",
            "run",
            "--config",
            "/dev/null",
            "--model",
            HAIKU,
            "--input",
            input.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--max-tokens",
            "50",
            "--max-cost",
            "10",
            "--on-changed",
            "resend",
        ];
        let crate::cli::Command::Run(run) = crate::cli::Args::parse_from(argv).command else {
            panic!("not a run command")
        };
        let settings = crate::Settings::resolve(&run, false).unwrap();
        let job = crate::output::manifest::Manifest::of(&settings);
        let mode = crate::config::ResumeMode::Continue;
        crate::output::checkpoint::prepare(&out, &mode, &job, &[]).unwrap();
        // `a` was answered before fingerprints; `b`'s request has changed
        // since (no request has that fingerprint); `c` failed.
        let mut b: serde_json::Value =
            serde_json::from_str(&answered("b", HAIKU, 1_000_000, None)).unwrap();
        b["fingerprint"] = "0000000000000005".into();
        std::fs::write(
            out.join(RESULTS),
            format!("{}\n{b}\n", answered("a", HAIKU, 10, Some(0.5))),
        )
        .unwrap();
        std::fs::write(
            out.join(FAILURES),
            format!("{}\n", serde_json::json!({"id": "c", "model": HAIKU, "error": {"kind": "validation"}, "attempts": 1})),
        )
        .unwrap();
        std::fs::write(
            out.join(SUPERSEDED),
            answered("z", HAIKU, 1, Some(0.125)) + "\n",
        )
        .unwrap();

        let mut cp = crate::output::checkpoint::prepare(&out, &mode, &job, &[]).unwrap();
        assert_eq!(reads_of(&out), [RESULTS, FAILURES, SUPERSEDED]);
        let inventory = crate::input::inventory::take(&settings, None).unwrap();
        let note = crate::output::changed::settle(&settings, None, &inventory, &mut cp).unwrap();
        assert!(note.unwrap().contains("1 old line(s) moved"));
        let (budget, spend) = crate::cost::start(&settings, &cp.earlier.paid).unwrap();
        assert_eq!(
            reads_of(&out),
            [RESULTS, FAILURES, SUPERSEDED, RESULTS, FAILURES],
            "one read, then the rewrite that moved `b` aside; no other"
        );

        // What the rewrite counted is what the files hold now, and the
        // money moved aside is still paid: 0.5 + $0.25 for b's million
        // input tokens + 0.125.
        let now = Earlier::read(&out).unwrap();
        let e = &cp.earlier;
        assert_eq!((e.succeeded, e.failed, e.attempts), (1, 1, 2));
        assert_eq!(
            (e.succeeded, e.failed, e.attempts),
            (now.succeeded, now.failed, now.attempts)
        );
        assert_eq!(e.tokens, now.tokens);
        assert_eq!(e.paid, now.paid);
        assert!(!cp.done.contains(&unit_key("b", HAIKU, 1)), "sent again");
        assert!(
            cp.done.contains(&unit_key("a", HAIKU, 1))
                && cp.done.contains(&unit_key("c", HAIKU, 1))
        );
        let spent = budget.unwrap().spent();
        assert!((spent - 0.875).abs() < 1e-12, "{spent}");
        assert!((spend.job_total_usd - 0.875).abs() < 1e-12);
    }

    #[test]
    fn an_estimate_learns_from_answers_and_skips_the_failures_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let cached = serde_json::json!({
            "id": "c", "model": "m", "usage": {"input_tokens": 10, "output_tokens": 7,
            "cache_read_input_tokens": 80, "cache_write_input_tokens": 10}, "latency_ms": 5
        });
        std::fs::write(
            dir.path().join(RESULTS),
            format!(
                "{}\n{cached}\n{{\"id\":\"torn\",\"mod",
                answered("a", "m", 3, None)
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(FAILURES),
            "{\"id\":\"t\",\"model\":\"m\",\"error\":{\"kind\":\"throttled\"}}\n{\"id\":\"v\",\"model\":\"m\",\"error\":{\"kind\":\"validation\"}}\n",
        )
        .unwrap();
        let kinds = ["throttled".to_string()];
        let pass = read(
            dir.path(),
            "m",
            Purpose::Estimate {
                retried: Some(&kinds),
            },
        )
        .unwrap();
        let unit = |id: &str| id_hash(&unit_key(id, "m", 1));
        assert_eq!(pass.answers.get(&unit("a")), Some(&(3, 0, 40)));
        assert_eq!(pass.answers.get(&unit("c")), Some(&(100, 7, 5)));
        assert_eq!(pass.answers.len(), 2, "the torn last line is skipped");
        assert!(
            !pass.done.contains(&unit_key("a", "m", 1)),
            "answers are rendered again"
        );
        assert!(!pass.done.contains(&unit_key("t", "m", 1)), "retried");
        assert!(pass.done.contains(&unit_key("v", "m", 1)));
        assert_eq!(
            pass.earlier.cache.get("m"),
            Some(&CacheTokens {
                input: 100,
                read: 80,
                write: 10
            })
        );
    }

    #[test]
    fn a_line_in_the_middle_that_is_not_a_record_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RESULTS), "{\"id\":\"a\"}\nnot json\n").unwrap();
        let err = read(dir.path(), "m", Purpose::Resume)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("results.jsonl: line 2: not a bedrock-batch record"),
            "{err}"
        );
    }

    #[test]
    fn the_usage_of_unrecorded_lines_is_kept_as_sums_per_price() {
        let dir = tempfile::tempdir().unwrap();
        let lines: String = (0..1000)
            .map(|i| answered(&i.to_string(), HAIKU, 1000, None) + "\n")
            .collect();
        std::fs::write(dir.path().join(RESULTS), lines).unwrap();
        let paid = read(dir.path(), HAIKU, Purpose::Resume)
            .unwrap()
            .earlier
            .paid;
        assert_eq!(paid.unrecorded.len(), 1, "one sum, not a thousand lines");
        let (usd, _) = paid.priced(&PriceTable::built_in());
        assert!((usd - 0.25).abs() < 1e-12, "{usd}");
    }
}
