//! The run's [`Summary`]: what `summary.json` holds and what a person reads at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cost::spend::Spend;

/// The job as the output directory holds it after this run: every line of
/// `results.jsonl` and `failures.jsonl`, whichever run wrote it. A nightly
/// job that resumes reads the same figures as one that ran in one go; what
/// this run did alone is in [`Summary::this_run`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows in the inputs.
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
    /// Why this run stopped early (`sigint`, `sigterm`, `breaker`, `budget`,
    /// `service_tier`, `pilot`, …), if it did.
    pub stopped_by: Option<String>,
    pub output_dir: PathBuf,
    pub this_run: Run,
    /// What this run and the job so far cost, per model (`cost/spend.rs`).
    #[serde(default)]
    pub cost: Spend,
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
    pub throttles: Throttles,
    /// Attempts beyond the first, over this run's rows.
    pub retries: u64,
    /// Calls sent by this run.
    pub attempts: u64,
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
        out.push_str(&format!(
            "tokens: {} in / {} out; {:.0} rows/min, {:.0} requests/min, {:.0} tokens/min\n",
            r.tokens.input,
            r.tokens.output,
            r.throughput.rows_per_min,
            r.throughput.requests_per_min,
            r.throughput.tokens_per_min
        ));
        if r.attempts > 0 {
            out.push_str(&format!(
                "latency: p50 {} ms, p95 {} ms, p99 {} ms; {} attempts, {} retries, throttled {} (requests {}, tokens {})\n",
                r.latency_ms.p50,
                r.latency_ms.p95,
                r.latency_ms.p99,
                r.attempts,
                r.retries,
                r.throttles.requests + r.throttles.tokens,
                r.throttles.requests,
                r.throttles.tokens
            ));
        }
        out.push_str(&self.cost.render());
        let dir = self.output_dir.display();
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
