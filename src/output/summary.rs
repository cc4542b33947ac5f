//! The run's [`Summary`]: what `summary.json` holds and what a person reads at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cost::spend::Spend;
use crate::eval::tally::Scores;
use crate::output::progress::MIN_RATE_SECS;

/// The job as the output directory holds it after this run: every line of
/// `results.jsonl` and `failures.jsonl`, whichever run wrote it. A nightly
/// job that resumes reads the same figures as one that ran in one go; what
/// this run did alone is in [`Summary::this_run`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Units of work in the inputs: rows × models × samples (a row pinned
    /// to one model by its `model` column: × samples). Rows, for a job of
    /// one model and one sample.
    pub total: u64,
    /// Rows with an answer in results.jsonl.
    pub succeeded: u64,
    /// Rows in failures.jsonl.
    pub failed: u64,
    /// Rows in neither file: not sent yet (a stopped run, or the breaker); a
    /// rerun sends them.
    pub unfinished: u64,
    pub failed_by_kind: BTreeMap<String, u64>,
    pub tokens: Tokens,
    /// Calls paid or attempted for the rows in the files.
    pub attempts: u64,
    /// Over every answered row of the job.
    pub latency_ms: Latency,
    /// Over the job's streamed rows (`stream = true`); absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_sec: Option<Rate>,
    /// Why this run stopped early (`sigint`, `sigterm`, `breaker`, `budget`,
    /// `service_tier`, `pilot`, …), if it did.
    pub stopped_by: Option<String>,
    pub output_dir: PathBuf,
    pub this_run: Run,
    /// What this run and the job so far cost, per model (`cost/spend.rs`).
    #[serde(default)]
    pub cost: Spend,
    /// Each `[[score]]`'s pass rate per model, over the job's results.
    #[serde(default, skip_serializing_if = "Scores::is_empty")]
    pub scores: Scores,
    /// Each model's share of the whole job (every run into the directory),
    /// as the closing table shows it; `cost.by_model` is this run's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_model: BTreeMap<String, ModelJob>,
}

/// One model's units of the whole job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelJob {
    /// Units answered (in results.jsonl) and failed (in failures.jsonl).
    pub succeeded: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_by_kind: BTreeMap<String, u64>,
    pub tokens: Tokens,
    /// Over this model's answered units.
    pub latency_ms: Latency,
}

/// Counts units per model as lines are read (an earlier run's) or written
/// (this run's); two tallies add up to the job's.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelTally {
    counts: BTreeMap<String, ModelJob>,
    latency: BTreeMap<String, Histogram<u64>>,
}

impl ModelTally {
    /// An answered unit; `usage` (input, output) as its line records it.
    pub(crate) fn answered(&mut self, model: &str, usage: (u64, u64), latency_ms: Option<u64>) {
        let m = self.entry(model, usage);
        m.succeeded += 1;
        if let Some(ms) = latency_ms {
            self.latency
                .entry(model.to_string())
                .or_insert_with(Latency::histogram)
                .saturating_record(ms.max(1));
        }
    }

    /// A failed unit (its usage: answers refused as invalid output).
    pub(crate) fn failed(&mut self, model: &str, kind: &str, usage: (u64, u64)) {
        let m = self.entry(model, usage);
        m.failed += 1;
        *m.failed_by_kind.entry(kind.to_string()).or_default() += 1;
    }

    fn entry(&mut self, model: &str, (input, output): (u64, u64)) -> &mut ModelJob {
        let m = self.counts.entry(model.to_string()).or_default();
        m.tokens.input += input;
        m.tokens.output += output;
        m
    }

    pub(crate) fn add(&mut self, other: &ModelTally) {
        for (model, o) in &other.counts {
            let m = self.counts.entry(model.clone()).or_default();
            m.succeeded += o.succeeded;
            m.failed += o.failed;
            for (kind, n) in &o.failed_by_kind {
                *m.failed_by_kind.entry(kind.clone()).or_default() += n;
            }
            m.tokens.input += o.tokens.input;
            m.tokens.output += o.tokens.output;
        }
        for (model, h) in &other.latency {
            self.latency
                .entry(model.clone())
                .or_insert_with(Latency::histogram)
                .add(h)
                .expect("same histogram bounds");
        }
    }

    /// One model's latency, over the answered units counted.
    pub(crate) fn latency(&self, model: &str) -> Latency {
        self.latency.get(model).map(Latency::of).unwrap_or_default()
    }

    /// Per model, with each latency settled.
    pub(crate) fn finish(self) -> BTreeMap<String, ModelJob> {
        let mut counts = self.counts;
        for (model, m) in counts.iter_mut() {
            if let Some(h) = self.latency.get(model) {
                m.latency_ms = Latency::of(h);
            }
        }
        counts
    }
}

/// What one run did: the rows it sent and how, and the rows it skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub succeeded: u64,
    pub failed: u64,
    /// Already in results.jsonl or failures.jsonl from an earlier run.
    pub skipped: u64,
    /// Read but not finished because the run was stopped; sent on resume.
    pub unfinished: u64,
    pub failed_by_kind: BTreeMap<String, u64>,
    pub tokens: Tokens,
    pub elapsed_secs: f64,
    pub throughput: Throughput,
    pub latency_ms: Latency,
    /// Over this run's streamed rows; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_sec: Option<Rate>,
    pub throttles: Throttles,
    /// Attempts beyond the first, over this run's rows.
    pub retries: u64,
    /// Calls sent by this run.
    pub attempts: u64,
    /// Each `[[score]]`'s pass rate per model, over this run's answers.
    #[serde(default, skip_serializing_if = "Scores::is_empty")]
    pub scores: Scores,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub rows_per_min: f64,
    pub requests_per_min: f64,
    pub tokens_per_min: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl Latency {
    /// An empty latency histogram: 1 ms to 1 hour, 3 significant digits.
    pub(crate) fn histogram() -> Histogram<u64> {
        // Bounds this wide with 3 digits are valid: cannot fail.
        Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds")
    }

    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// Percentiles of a per-row rate (output tokens per second), to 0.1. A
/// rate's bad tail is its low end, so the slowest row is given as `min`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
}

/// The per-row histograms the percentiles come from: every answered row's
/// latency, and the streamed rows' time to first token and output rate. The
/// writer fills one for the run; resume fills one from the earlier lines;
/// the job's figures are the two added.
#[derive(Debug)]
pub(crate) struct Timings {
    pub latency: Histogram<u64>,
    pub ttft: Histogram<u64>,
    /// Tenths of a token per second, so 0.1 tokens/s survives the integer histogram.
    pub rate: Histogram<u64>,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            latency: Latency::histogram(),
            ttft: Latency::histogram(),
            // Up to 100 million tokens/s: far beyond any model.
            rate: Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid histogram bounds"),
        }
    }
}

impl Timings {
    /// One answered row's figures, as its results line holds them.
    pub(crate) fn record(&mut self, latency_ms: u64, ttft_ms: Option<u64>, rate: Option<f64>) {
        self.latency.saturating_record(latency_ms.max(1));
        if let Some(ms) = ttft_ms {
            self.ttft.saturating_record(ms.max(1));
        }
        if let Some(r) = rate {
            self.rate
                .saturating_record(((r * 10.0).round() as u64).max(1));
        }
    }

    pub(crate) fn add(&mut self, other: &Timings) {
        // Same bounds on both sides: cannot fail.
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
        self.ttft.add(&other.ttft).expect("same histogram bounds");
        self.rate.add(&other.rate).expect("same histogram bounds");
    }

    pub(crate) fn ttft_ms(&self) -> Option<Latency> {
        (!self.ttft.is_empty()).then(|| Latency::of(&self.ttft))
    }

    pub(crate) fn output_tokens_per_sec(&self) -> Option<Rate> {
        let h = &self.rate;
        let at = |q| h.value_at_quantile(q) as f64 / 10.0;
        (!h.is_empty()).then(|| Rate {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            min: h.min() as f64 / 10.0,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttles {
    pub requests: u64,
    pub tokens: u64,
}

impl Summary {
    /// A few lines for a person, printed after the progress bar is gone: the
    /// job first (what the directory holds now), then what this run did.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let head = match &self.stopped_by {
            Some(why) if why == "budget" => "stopped by the budget (max_cost):".to_string(),
            Some(why) if why == "service_tier" => {
                "stopped: Bedrock refused the service tier on the first rows:".to_string()
            }
            Some(why) if why == "pilot" => "pilot done:".to_string(),
            Some(why) => format!("stopped by {why}:"),
            None => "done:".to_string(),
        };
        let r = &self.this_run;
        out.push_str(&format!(
            "{head} {} rows in {} — {} succeeded, {} failed{}, {} skipped",
            r.succeeded + r.failed + r.skipped + r.unfinished,
            duration(r.elapsed_secs),
            r.succeeded,
            r.failed,
            by_kind(&r.failed_by_kind),
            r.skipped
        ));
        if r.unfinished > 0 {
            out.push_str(&format!(
                ", {} unfinished (run again to finish them)",
                r.unfinished
            ));
        }
        out.push('\n');
        if r.skipped > 0 {
            // A resume: the job's figures differ from this run's.
            out.push_str(&format!(
                "job: {} rows — {} succeeded, {} failed{}, {} not yet sent\n",
                self.total,
                self.succeeded,
                self.failed,
                by_kind(&self.failed_by_kind),
                self.unfinished
            ));
        }
        // Rates over less than a second say nothing (6 rows in 10 ms would
        // read as 36000 rows/min), so they are left out of the text.
        let rates = if r.elapsed_secs >= MIN_RATE_SECS && r.attempts > 0 {
            format!(
                "; {:.0} rows/min, {:.0} requests/min, {:.0} tokens/min",
                r.throughput.rows_per_min,
                r.throughput.requests_per_min,
                r.throughput.tokens_per_min
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "tokens: {} in / {} out{rates}\n",
            r.tokens.input, r.tokens.output,
        ));
        let calls = format!(
            "{} attempts, {} retries, throttled {} (requests {}, tokens {})",
            r.attempts,
            r.retries,
            r.throttles.requests + r.throttles.tokens,
            r.throttles.requests,
            r.throttles.tokens
        );
        // Latency is of answered calls: with none, there is no latency to show.
        if r.succeeded > 0 {
            out.push_str(&format!(
                "latency: p50 {} ms, p95 {} ms, p99 {} ms; {calls}\n",
                r.latency_ms.p50, r.latency_ms.p95, r.latency_ms.p99,
            ));
        } else if r.attempts > 0 {
            out.push_str(&format!("calls: {calls}\n"));
        }
        if let (Some(t), Some(rate)) = (&r.ttft_ms, &r.output_tokens_per_sec) {
            out.push_str(&format!(
                "streamed: time to first token p50 {} ms, p95 {} ms, p99 {} ms; output p50 {:.1} tokens/s, slowest {:.1}\n",
                t.p50, t.p95, t.p99, rate.p50, rate.min
            ));
        }
        out.push_str(&self.scores.render());
        out.push_str(&self.cost.render());
        let dir = crate::path::normalize(&self.output_dir);
        let dir = dir.display();
        out.push_str(&format!("results:  {dir}/results.jsonl\n"));
        out.push_str(&format!("failures: {dir}/failures.jsonl\n"));
        out.push_str(&format!("summary:  {dir}/summary.json\n"));
        out
    }
}

/// ` (validation 2, throttled 1)`, or nothing when no row failed.
fn by_kind(kinds: &BTreeMap<String, u64>) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!(" ({})", parts.join(", "))
}

fn duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tallies_add_up_to_the_jobs_per_model_figures() {
        let mut earlier = ModelTally::default();
        earlier.answered("a", (10, 5), Some(100));
        earlier.failed("b", "validation", (0, 0));
        let mut run = ModelTally::default();
        run.answered("a", (20, 7), Some(300));
        run.failed("a", "timeout", (3, 1));
        earlier.add(&run);
        let job = earlier.finish();
        let a = &job["a"];
        assert_eq!((a.succeeded, a.failed), (2, 1));
        assert_eq!((a.tokens.input, a.tokens.output), (33, 13));
        assert_eq!(a.failed_by_kind["timeout"], 1);
        assert_eq!(a.latency_ms.max, 300);
        assert_eq!(job["b"].failed_by_kind["validation"], 1);
        assert_eq!(job["b"].latency_ms, Latency::default(), "nothing answered");
    }

    fn summary(succeeded: u64, failed: u64, attempts: u64, elapsed_secs: f64) -> Summary {
        Summary {
            total: succeeded + failed,
            succeeded,
            failed,
            attempts,
            output_dir: PathBuf::from("samples/../out/./reviews"),
            this_run: Run {
                succeeded,
                failed,
                attempts,
                elapsed_secs,
                throughput: Throughput {
                    rows_per_min: (succeeded + failed) as f64 / (elapsed_secs / 60.0),
                    requests_per_min: attempts as f64 / (elapsed_secs / 60.0),
                    tokens_per_min: 0.0,
                },
                ..Run::default()
            },
            ..Summary::default()
        }
    }

    #[test]
    fn no_rates_over_a_moment_and_no_latency_without_answers() {
        let text = summary(6, 0, 6, 0.01).render();
        assert!(!text.contains("/min"), "{text}");
        assert!(text.contains("latency: p50"), "{text}");

        let text = summary(0, 200, 200, 12.0).render();
        assert!(!text.contains("latency"), "{text}");
        assert!(text.contains("calls: 200 attempts"), "{text}");
        assert!(text.contains("1000 rows/min"), "{text}");
    }

    #[test]
    fn paths_print_normalised() {
        let text = summary(1, 0, 1, 2.0).render();
        assert!(
            text.contains("results:  out/reviews/results.jsonl\n"),
            "{text}"
        );
    }
}
