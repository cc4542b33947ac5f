//! Per-model figures over the rows of an output directory: what the report's
//! table, the terminal table after `run` and `--compare` all show, computed
//! once here so the three agree.
//!
//! Latency percentiles are exact (nearest rank over the answered rows'
//! `latency_ms`), not the run's histogram: the rows are all at hand.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::report::rows::Row;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelStats {
    pub model: String,
    pub rows: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Succeeded / rows, in percent.
    pub success_pct: f64,
    /// Only when some row carries `cost_usd`.
    pub cost_usd: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_p50: Option<u64>,
    pub latency_p95: Option<u64>,
    pub latency_p99: Option<u64>,
    /// Time to first token, where streamed (`ttft_ms`).
    pub ttft_p50: Option<u64>,
    /// Scorer → (passed, judged): rows whose verdict is pass/fail.
    pub scorers: BTreeMap<String, (u64, u64)>,
    pub service_tiers: BTreeSet<String>,
    pub throttles: u64,
}

impl ModelStats {
    pub fn pass_pct(&self, scorer: &str) -> Option<f64> {
        self.scorers
            .get(scorer)
            .filter(|(_, judged)| *judged > 0)
            .map(|(p, j)| *p as f64 * 100.0 / *j as f64)
    }
}

/// One [`ModelStats`] per model, sorted by name.
pub fn per_model(rows: &[Row]) -> Vec<ModelStats> {
    let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups.entry(&r.model).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(model, rows)| of(model, &rows))
        .collect()
}

/// Every row together, named `name`.
pub fn overall(name: &str, rows: &[Row]) -> ModelStats {
    of(name, &rows.iter().collect::<Vec<_>>())
}

fn of(model: &str, rows: &[&Row]) -> ModelStats {
    let mut s = ModelStats {
        model: model.to_string(),
        ..ModelStats::default()
    };
    let mut latencies = Vec::new();
    let mut ttfts = Vec::new();
    for r in rows {
        s.rows += 1;
        if r.ok {
            s.succeeded += 1;
        } else {
            s.failed += 1;
        }
        if let Some(c) = r.cost_usd {
            *s.cost_usd.get_or_insert(0.0) += c;
        }
        s.input_tokens += r.input_tokens;
        s.output_tokens += r.output_tokens;
        s.throttles += r.throttles as u64;
        if r.ok {
            latencies.extend(r.latency_ms);
        }
        ttfts.extend(r.ttft_ms);
        for (name, score) in &r.scores {
            let e = s.scorers.entry(name.clone()).or_default();
            if let Some(pass) = score.pass {
                e.1 += 1;
                e.0 += pass as u64;
            }
        }
        if let Some(t) = &r.service_tier {
            s.service_tiers.insert(t.clone());
        }
    }
    s.success_pct = if s.rows == 0 {
        0.0
    } else {
        s.succeeded as f64 * 100.0 / s.rows as f64
    };
    latencies.sort_unstable();
    ttfts.sort_unstable();
    s.latency_p50 = percentile(&latencies, 50.0);
    s.latency_p95 = percentile(&latencies, 95.0);
    s.latency_p99 = percentile(&latencies, 99.0);
    s.ttft_p50 = percentile(&ttfts, 50.0);
    s
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::rows::Score;

    fn row(model: &str, ok: bool, latency: u64) -> Row {
        Row {
            id: format!("{model}-{latency}"),
            model: model.into(),
            ok,
            latency_ms: ok.then_some(latency),
            input_tokens: 10,
            output_tokens: 5,
            ..Row::default()
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn per_model_counts_costs_and_scorers() {
        let mut rows: Vec<Row> = (1..=10).map(|i| row("a", true, i * 10)).collect();
        rows.push(row("a", false, 0));
        rows.push(row("b", true, 5));
        rows[0].cost_usd = Some(0.5);
        rows[1].cost_usd = Some(0.25);
        rows[0].scores = vec![(
            "exact".into(),
            Score {
                pass: Some(true),
                text: "pass".into(),
            },
        )];
        rows[1].scores = vec![(
            "exact".into(),
            Score {
                pass: Some(false),
                text: "fail".into(),
            },
        )];
        let stats = per_model(&rows);
        assert_eq!(stats.len(), 2);
        let a = &stats[0];
        assert_eq!((a.rows, a.succeeded, a.failed), (11, 10, 1));
        assert!((a.success_pct - 90.909).abs() < 0.01);
        assert_eq!(a.cost_usd, Some(0.75));
        assert_eq!(
            (a.latency_p50, a.latency_p95, a.latency_p99),
            (Some(50), Some(100), Some(100))
        );
        assert_eq!(a.pass_pct("exact"), Some(50.0));
        assert_eq!(a.input_tokens, 110);
        assert_eq!(stats[1].cost_usd, None, "no row of b carries a cost");
        assert_eq!(overall("all", &rows).rows, 12);
    }
}
