//! What a run has spent: the price of one answered row, and the totals the
//! sink keeps for the progress line and `summary.json` (overall, per model,
//! the share of input read from the prompt cache, the models without a price).
//!
//! The sink owns the one [`Spend`]; nothing here writes files or decides
//! whether to send (`budget.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bedrock::request::{Answer, ServiceTier};
use crate::cost::price::{PriceTable, Tokens};
use crate::outcome::{Success, Usage};

/// The tier a call is priced on: the one Bedrock reports, else the one asked for.
pub fn priced_tier(reported: Option<&str>, requested: Option<ServiceTier>) -> ServiceTier {
    reported
        .and_then(ServiceTier::parse)
        .or(requested)
        .unwrap_or_default()
}

/// The usage a results line records, cache tokens included when reported.
pub fn usage_of(answer: &Answer) -> Usage {
    Usage {
        input_tokens: answer.input_tokens,
        output_tokens: answer.output_tokens,
        cache_read_input_tokens: answer.cache_read_input_tokens,
        cache_write_input_tokens: answer.cache_write_input_tokens,
    }
}

/// A row's usage as the price table counts it.
pub fn tokens(u: &Usage) -> Tokens {
    Tokens {
        input: u.input_tokens,
        output: u.output_tokens,
        cache_read: u.cache_read_input_tokens.unwrap_or(0),
        cache_write: u.cache_write_input_tokens.unwrap_or(0),
    }
}

/// What one answered row cost; `None` when no price covers it.
pub fn row_cost(prices: &PriceTable, model: &str, tier: ServiceTier, usage: &Usage) -> Option<f64> {
    prices.find(model)?.cost(tier, &tokens(usage))
}

/// One model's share of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSpend {
    pub rows: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    /// The cost of the priced rows.
    pub cost_usd: f64,
    /// Rows whose cost is unknown (`cost_usd: null` in results.jsonl).
    pub unpriced_rows: u64,
}

/// The money part of `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// Spent by this run's answered rows (priced ones).
    pub total_usd: f64,
    /// Spent by the whole job in this output directory: earlier runs plus this one.
    pub job_total_usd: f64,
    pub by_model: BTreeMap<String, ModelSpend>,
    /// Models answered in this run that have no price: their rows are not in the totals.
    pub unpriced_models: BTreeSet<String>,
    /// Share of this run's input tokens read from the prompt cache (0 to 1).
    pub cache_read_share: f64,
    /// The cap (`max_cost`), if one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

impl Spend {
    /// A run's spend, starting from what earlier runs in the directory spent.
    pub fn starting_at(earlier_usd: f64, max_cost: Option<f64>) -> Spend {
        Spend {
            job_total_usd: earlier_usd,
            max_cost_usd: max_cost,
            ..Spend::default()
        }
    }

    /// Counts one answered row. Warns once per model without a price.
    pub fn add(&mut self, s: &Success) {
        self.by_model.entry(s.model.clone()).or_default().rows += 1;
        self.add_paid(&s.model, &s.usage, s.cost_usd, s.service_tier.as_deref());
    }

    /// Counts calls that were billed: an answered row's, or a failed row's
    /// answers refused as invalid output (which add no row).
    pub fn add_paid(&mut self, model: &str, usage: &Usage, cost: Option<f64>, tier: Option<&str>) {
        let m = self.by_model.entry(model.to_string()).or_default();
        m.input_tokens += usage.input_tokens;
        m.output_tokens += usage.output_tokens;
        m.cache_read_input_tokens += usage.cache_read_input_tokens.unwrap_or(0);
        m.cache_write_input_tokens += usage.cache_write_input_tokens.unwrap_or(0);
        match cost {
            Some(c) => {
                m.cost_usd += c;
                self.total_usd += c;
                self.job_total_usd += c;
            }
            None => {
                m.unpriced_rows += 1;
                if self.unpriced_models.insert(model.to_string()) {
                    tracing::warn!(
                        "{}: no price known (tier {}), its rows get cost_usd null; add [prices.\"{}\"] to the config",
                        model,
                        tier.unwrap_or("default"),
                        model
                    );
                }
            }
        }
        let (read, all) = self.by_model.values().fold((0u64, 0u64), |(r, a), m| {
            (
                r + m.cache_read_input_tokens,
                a + m.input_tokens + m.cache_read_input_tokens + m.cache_write_input_tokens,
            )
        });
        self.cache_read_share = if all == 0 {
            0.0
        } else {
            read as f64 / all as f64
        };
    }

    /// The lines a person reads at the end of a run.
    pub fn render(&self) -> String {
        let mut out = format!("cost: ${:.4} this run", self.total_usd);
        if (self.job_total_usd - self.total_usd).abs() > 1e-12 {
            out.push_str(&format!(", ${:.4} for the job so far", self.job_total_usd));
        }
        if let Some(cap) = self.max_cost_usd {
            out.push_str(&format!(" (cap ${cap:.4})"));
        }
        if self.by_model.len() > 1 {
            let parts: Vec<String> = self
                .by_model
                .iter()
                .map(|(m, s)| format!("{m} ${:.4}", s.cost_usd))
                .collect();
            out.push_str(&format!("; {}", parts.join(", ")));
        }
        if self.cache_read_share > 0.0 {
            out.push_str(&format!(
                "; {:.0}% of input read from the prompt cache",
                self.cache_read_share * 100.0
            ));
        }
        out.push('\n');
        if !self.unpriced_models.is_empty() {
            out.push_str(&format!(
                "unpriced (not in the totals): {}\n",
                self.unpriced_models
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Source;

    fn success(model: &str, usage: Usage, cost: Option<f64>) -> Success {
        Success {
            id: "1".into(),
            model: model.into(),
            output: String::new(),
            stop_reason: "end_turn".into(),
            output_json: None,
            scores: None,
            usage,
            cost_usd: cost,
            service_tier: None,
            latency_ms: 1,
            attempts: 1,
            source: Source {
                file: "f".into(),
                line: 1,
            },
            meta: Default::default(),
            prompt: None,
            times: Default::default(),
            fingerprint: None,
            ttft_ms: None,
            output_tokens_per_sec: None,
        }
    }

    #[test]
    fn totals_per_model_and_cache_share() {
        let mut s = Spend::starting_at(1.0, Some(5.0));
        s.add(&success(
            "a",
            Usage {
                input_tokens: 100,
                output_tokens: 10,
                cache_read_input_tokens: Some(300),
                cache_write_input_tokens: Some(0),
            },
            Some(0.5),
        ));
        s.add(&success("b", Usage::default(), None));
        assert!((s.total_usd - 0.5).abs() < 1e-12);
        assert!((s.job_total_usd - 1.5).abs() < 1e-12);
        assert!((s.cache_read_share - 0.75).abs() < 1e-12);
        assert_eq!(s.by_model["b"].unpriced_rows, 1);
        assert!(s.unpriced_models.contains("b"));
        let text = s.render();
        assert!(
            text.contains("cost: $0.5000 this run, $1.5000 for the job so far (cap $5.0000)"),
            "{text}"
        );
        assert!(
            text.contains("75% of input read from the prompt cache"),
            "{text}"
        );
        assert!(text.contains("unpriced (not in the totals): b"), "{text}");
    }

    #[test]
    fn the_reported_tier_wins() {
        assert_eq!(
            priced_tier(Some("default"), Some(ServiceTier::Flex)),
            ServiceTier::Default
        );
        assert_eq!(
            priced_tier(None, Some(ServiceTier::Flex)),
            ServiceTier::Flex
        );
        assert_eq!(priced_tier(None, None), ServiceTier::Default);
    }
}
