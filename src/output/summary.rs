//! The run's [`Summary`]: what `summary.json` holds and what a person reads at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::output::progress::MIN_RATE_SECS;

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
    /// Why the run stopped early (`sigint`, `sigterm`), if it did.
    pub stopped_by: Option<String>,
    pub output_dir: PathBuf,
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
        // Rates over less than a second say nothing (6 rows in 10 ms would
        // read as 36000 rows/min), so they are left out of the text.
        let rates = if self.elapsed_secs >= MIN_RATE_SECS && self.attempts > 0 {
            format!(
                "; {:.0} rows/min, {:.0} requests/min, {:.0} tokens/min",
                self.throughput.rows_per_min,
                self.throughput.requests_per_min,
                self.throughput.tokens_per_min
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "tokens: {} in / {} out{rates}\n",
            self.tokens.input, self.tokens.output,
        ));
        let calls = format!(
            "{} attempts, {} retries, throttled {} (requests {}, tokens {})",
            self.attempts,
            self.retries,
            self.throttles.requests + self.throttles.tokens,
            self.throttles.requests,
            self.throttles.tokens
        );
        // Latency is of answered calls: with none, there is no latency to show.
        if self.succeeded > 0 {
            out.push_str(&format!(
                "latency: p50 {} ms, p95 {} ms, p99 {} ms; {calls}\n",
                self.latency_ms.p50, self.latency_ms.p95, self.latency_ms.p99,
            ));
        } else if self.attempts > 0 {
            out.push_str(&format!("calls: {calls}\n"));
        }
        let dir = crate::path::normalize(&self.output_dir);
        let dir = dir.display();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(succeeded: u64, failed: u64, attempts: u64, elapsed_secs: f64) -> Summary {
        Summary {
            total: succeeded + failed,
            succeeded,
            failed,
            attempts,
            elapsed_secs,
            throughput: Throughput {
                rows_per_min: (succeeded + failed) as f64 / (elapsed_secs / 60.0),
                requests_per_min: attempts as f64 / (elapsed_secs / 60.0),
                tokens_per_min: 0.0,
            },
            output_dir: PathBuf::from("samples/../out/./reviews"),
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
