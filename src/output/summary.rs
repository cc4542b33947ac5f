//! The run's [`Summary`]: what `summary.json` holds and what a person reads at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cost::spend::Spend;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows read from the inputs in this run (skipped ones included).
    pub total: u64,
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
    /// Attempts beyond the first, over all rows.
    pub retries: u64,
    /// Calls sent, over all rows.
    pub attempts: u64,
    /// Why the run stopped early (`sigint`, `sigterm`, `budget`, `service_tier`, `pilot`), if it did.
    pub stopped_by: Option<String>,
    pub output_dir: PathBuf,
    /// What the run (and the job so far) cost, per model; `cost.rs` explains the figures.
    #[serde(default)]
    pub cost: Spend,
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttles {
    pub requests: u64,
    pub tokens: u64,
}

impl Summary {
    /// A few lines for a person, printed after the progress bar is gone.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let kinds = if self.failed_by_kind.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = self
                .failed_by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            format!(" ({})", parts.join(", "))
        };
        let head = match &self.stopped_by {
            Some(why) if why == "budget" => "stopped by the budget (max_cost):".to_string(),
            Some(why) if why == "service_tier" => {
                "stopped: Bedrock refused the service tier on the first rows:".to_string()
            }
            Some(why) => format!("stopped by {why}:"),
            None => "done:".to_string(),
        };
        out.push_str(&format!(
            "{head} {} rows in {} — {} succeeded, {} failed{kinds}, {} skipped",
            self.total,
            duration(self.elapsed_secs),
            self.succeeded,
            self.failed,
            self.skipped
        ));
        if self.unfinished > 0 {
            out.push_str(&format!(
                ", {} unfinished (run again to finish them)",
                self.unfinished
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "tokens: {} in / {} out; {:.0} rows/min, {:.0} requests/min, {:.0} tokens/min\n",
            self.tokens.input,
            self.tokens.output,
            self.throughput.rows_per_min,
            self.throughput.requests_per_min,
            self.throughput.tokens_per_min
        ));
        if self.attempts > 0 {
            out.push_str(&format!(
                "latency: p50 {} ms, p95 {} ms, p99 {} ms; {} attempts, {} retries, throttled {} (requests {}, tokens {})\n",
                self.latency_ms.p50,
                self.latency_ms.p95,
                self.latency_ms.p99,
                self.attempts,
                self.retries,
                self.throttles.requests + self.throttles.tokens,
                self.throttles.requests,
                self.throttles.tokens
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
