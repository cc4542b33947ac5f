//! What a token costs: the price table shipped with the tool (`prices.toml`,
//! dated, its source named) plus the `[prices."MODEL-ID"]` entries of the
//! job's config, and the one function that turns a row's usage into dollars.
//!
//! A price is never guessed: a model that is in neither table, or a usage
//! the entry has no figure for (a tier, cache tokens), costs `None`, and the
//! caller says so (`cost_usd: null`, a warning, the summary's list). This
//! module does not read usage from Bedrock (`invoker.rs`) nor keep totals
//! (`spend.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bedrock::request::ServiceTier;

/// The built-in table, compiled in so a binary always knows where its prices came from.
const BUILT_IN: &str = include_str!("prices.toml");

/// Cross-region inference profile prefixes: the id after one is the base model.
const GEO_PREFIXES: [&str; 7] = ["us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov."];
const GLOBAL_PREFIX: &str = "global.";

/// One model's prices, USD per million tokens. Only `input` and `output`
/// are required; every other figure is absent unless published.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub input: f64,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex_input: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex_output: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_input: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_output: Option<f64>,
    /// Batch inference (the asynchronous S3 jobs), per AWS usually half the on-demand price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_output: Option<f64>,
    /// Extra fraction (0.10 = +10%) for geographic cross-region profiles
    /// (`us.`, `eu.`, `apac.`…), not for `global.` ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regional_premium: Option<f64>,
    /// Where this entry's figures come from, when not the table's `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Tokens of one call, as priced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tokens {
    /// Input tokens not read from or written to the cache.
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// Where a price was found, for `bedrock-batch prices` and warnings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// The id the table is keyed by (the base model, or the id as given).
    pub key: String,
    pub price: Price,
    /// `built-in (…)` or `config (…)`.
    pub origin: String,
    /// The premium applied for a geographic profile id, if any.
    pub premium: Option<f64>,
}

impl Found {
    /// Input and output price per million tokens on `tier`, premium included.
    pub fn rates(&self, tier: ServiceTier) -> Option<(f64, f64)> {
        let p = &self.price;
        let (i, o) = match tier {
            ServiceTier::Default => (Some(p.input), Some(p.output)),
            ServiceTier::Flex => (p.flex_input, p.flex_output),
            ServiceTier::Priority => (p.priority_input, p.priority_output),
        };
        Some((i? * self.factor(), o? * self.factor()))
    }

    /// Batch-inference input and output prices, premium included.
    pub fn batch_rates(&self) -> Option<(f64, f64)> {
        Some((
            self.price.batch_input? * self.factor(),
            self.price.batch_output? * self.factor(),
        ))
    }

    /// What `tokens` cost at the batch-inference price; `None` without one,
    /// or with cache tokens, whose batch price the table does not hold.
    pub fn batch_cost(&self, t: &Tokens) -> Option<f64> {
        let (i, o) = self.batch_rates()?;
        if t.cache_read + t.cache_write > 0 {
            return None;
        }
        Some((t.input as f64 * i + t.output as f64 * o) / 1e6)
    }

    /// Cache-read and cache-write prices per million tokens, premium
    /// included: the standard tier's, the only ones published.
    pub fn cache_rates(&self) -> Option<(f64, f64)> {
        Some((
            self.price.cache_read? * self.factor(),
            self.price.cache_write? * self.factor(),
        ))
    }

    fn factor(&self) -> f64 {
        1.0 + self.premium.unwrap_or(0.0)
    }

    /// What `tokens` cost on `tier`; `None` when a figure it needs is not published.
    /// Cache prices are the standard tier's: no other is published, so cache
    /// tokens on another tier are unpriced.
    pub fn cost(&self, tier: ServiceTier, t: &Tokens) -> Option<f64> {
        let (i, o) = self.rates(tier)?;
        let mut usd = t.input as f64 * i + t.output as f64 * o;
        if t.cache_read > 0 {
            if tier != ServiceTier::Default {
                return None;
            }
            usd += t.cache_read as f64 * self.price.cache_read? * self.factor();
        }
        if t.cache_write > 0 {
            if tier != ServiceTier::Default {
                return None;
            }
            usd += t.cache_write as f64 * self.price.cache_write? * self.factor();
        }
        Some(usd / 1e6)
    }

    /// The highest price per input token a call on `tier` can be charged
    /// (a cache write can cost more than plain input): what a worst case uses.
    pub fn worst_input_rate(&self, tier: ServiceTier, caching: bool) -> Option<f64> {
        let (i, _) = self.rates(tier)?;
        if !caching {
            return Some(i);
        }
        if tier != ServiceTier::Default {
            return None;
        }
        let w = self
            .price
            .cache_write
            .map(|w| w * self.factor())
            .unwrap_or(i);
        Some(i.max(w))
    }
}

/// The built-in table plus the config's entries.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    pub date: String,
    pub source: String,
    built_in: BTreeMap<String, Price>,
    config: BTreeMap<String, Price>,
    /// The config file the overrides came from, for messages.
    config_origin: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    date: String,
    source: String,
    models: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The shipped table alone.
    pub fn built_in() -> PriceTable {
        // The table is a file of this crate, parsed by a unit test: it cannot fail.
        let t: TableFile = toml::from_str(BUILT_IN).expect("src/cost/prices.toml parses");
        PriceTable {
            date: t.date,
            source: t.source,
            built_in: t.models,
            config: BTreeMap::new(),
            config_origin: None,
        }
    }

    /// The shipped table with `overrides` (from `origin`, a config file) on top.
    pub fn with_overrides(
        overrides: BTreeMap<String, Price>,
        origin: Option<String>,
    ) -> Result<PriceTable, String> {
        for (id, p) in &overrides {
            let figures = [
                Some(p.input),
                Some(p.output),
                p.cache_read,
                p.cache_write,
                p.flex_input,
                p.flex_output,
                p.priority_input,
                p.priority_output,
                p.batch_input,
                p.batch_output,
                p.regional_premium,
            ];
            if figures.iter().flatten().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(format!(
                    "`prices.\"{id}\"`: every price must be a number of dollars per million tokens, 0 or more"
                ));
            }
        }
        let mut t = PriceTable::built_in();
        t.config = overrides;
        t.config_origin = origin;
        Ok(t)
    }

    /// The price for `model` (id, profile id or ARN): the config's entry for
    /// the id as given, then for its base model, then the built-in entry.
    pub fn find(&self, model: &str) -> Option<Found> {
        let id = model.rsplit('/').next().unwrap_or(model);
        let (base, premium_applies) = match GEO_PREFIXES.iter().find_map(|p| id.strip_prefix(p)) {
            Some(rest) => (rest, true),
            None => (id.strip_prefix(GLOBAL_PREFIX).unwrap_or(id), false),
        };
        let origin = |what: &str| match &self.config_origin {
            Some(f) => format!("{f}: [prices.\"{what}\"]"),
            None => format!("config: [prices.\"{what}\"]"),
        };
        // An entry for the exact profile id is the user's own figure: no premium on top.
        if let Some(p) = self.config.get(id) {
            return Some(Found {
                key: id.to_string(),
                price: p.clone(),
                origin: origin(id),
                premium: None,
            });
        }
        let (price, origin) = if let Some(p) = self.config.get(base) {
            (p.clone(), origin(base))
        } else {
            let p = self.built_in.get(base)?;
            // An entry with its own source names its own date; the table's date is not its.
            let origin = match &p.source {
                Some(src) => format!("built-in ({src})"),
                None => format!("built-in, {} ({})", self.date, self.source),
            };
            (p.clone(), origin)
        };
        let premium = price.regional_premium.filter(|_| premium_applies);
        Some(Found {
            key: base.to_string(),
            price,
            origin,
            premium,
        })
    }

    /// Every id the table knows, config entries first.
    pub fn entries(&self) -> Vec<(String, Found)> {
        let mut out: Vec<(String, Found)> = Vec::new();
        for id in self.config.keys().chain(self.built_in.keys()) {
            if out.iter().any(|(k, _)| k == id) {
                continue;
            }
            if let Some(f) = self.find(id) {
                out.push((id.clone(), f));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_is_dated() {
        let t = PriceTable::built_in();
        assert_eq!(t.date, "2025-07-20");
        assert!(t.source.contains("aws.amazon.com/bedrock/pricing"));
        assert!(t.entries().len() >= 25);
        for (id, f) in t.entries() {
            assert!(
                f.price.input >= 0.0 && f.price.output > 0.0,
                "{id}: {:?}",
                f.price
            );
            assert!(f.price.name.is_some(), "{id} has no name");
        }
    }

    #[test]
    fn haiku_costs_what_aws_publishes() {
        let t = PriceTable::built_in();
        let f = t.find("anthropic.claude-3-haiku-20240307-v1:0").unwrap();
        let usd = f
            .cost(
                ServiceTier::Default,
                &Tokens {
                    input: 1_000_000,
                    output: 1_000_000,
                    ..Tokens::default()
                },
            )
            .unwrap();
        assert!((usd - 1.5).abs() < 1e-9, "{usd}");
        assert_eq!(f.batch_rates(), Some((0.125, 0.625)));
    }

    #[test]
    fn profiles_and_arns_price_as_their_base_model() {
        let t = PriceTable::built_in();
        let base = t.find("amazon.nova-lite-v1:0").unwrap();
        for id in [
            "us.amazon.nova-lite-v1:0",
            "apac.amazon.nova-lite-v1:0",
            "global.amazon.nova-lite-v1:0",
            "arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.amazon.nova-lite-v1:0",
        ] {
            let f = t.find(id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(f.price, base.price, "{id}");
            assert_eq!(f.premium, None);
        }
    }

    #[test]
    fn claude_4_5_geographic_profiles_cost_ten_percent_more_than_global() {
        let t = PriceTable::built_in();
        let tokens = Tokens {
            input: 1_000_000,
            output: 1_000_000,
            cache_read: 1_000_000,
            cache_write: 1_000_000,
        };
        let cost = |id: &str| {
            t.find(id)
                .unwrap()
                .cost(ServiceTier::Default, &tokens)
                .unwrap()
        };
        // $3 + $15 + $0.30 + $3.75 per million of each.
        let base = cost("anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert!((base - 22.05).abs() < 1e-9, "{base}");
        assert!((cost("global.anthropic.claude-sonnet-4-5-20250929-v1:0") - base).abs() < 1e-9);
        for geo in ["us.", "eu.", "apac.", "jp.", "au."] {
            let id = format!("{geo}anthropic.claude-sonnet-4-5-20250929-v1:0");
            assert!((cost(&id) - base * 1.1).abs() < 1e-9, "{id}");
        }
        // A model before 4.5 has no such premium.
        let sonnet4 = cost("anthropic.claude-sonnet-4-20250514-v1:0");
        assert!((cost("us.anthropic.claude-sonnet-4-20250514-v1:0") - sonnet4).abs() < 1e-9);
    }

    #[test]
    fn a_regional_premium_applies_to_geographic_profiles_only() {
        let mut o = BTreeMap::new();
        o.insert(
            "anthropic.new-model-v1:0".to_string(),
            Price {
                input: 1.0,
                output: 5.0,
                regional_premium: Some(0.1),
                ..Price::default()
            },
        );
        let t = PriceTable::with_overrides(o, Some("job.toml".into())).unwrap();
        let one = Tokens {
            input: 1_000_000,
            ..Tokens::default()
        };
        let us = t.find("us.anthropic.new-model-v1:0").unwrap();
        assert!((us.cost(ServiceTier::Default, &one).unwrap() - 1.1).abs() < 1e-9);
        let global = t.find("global.anthropic.new-model-v1:0").unwrap();
        assert!((global.cost(ServiceTier::Default, &one).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(
            global.origin,
            "job.toml: [prices.\"anthropic.new-model-v1:0\"]"
        );
    }

    #[test]
    fn mistral_and_the_flex_tier_models_have_their_standard_prices_only() {
        let t = PriceTable::built_in();
        let million = Tokens {
            input: 1_000_000,
            output: 1_000_000,
            ..Tokens::default()
        };
        for (id, usd) in [
            ("mistral.mistral-7b-instruct-v0:2", 0.15 + 0.2),
            ("mistral.mixtral-8x7b-instruct-v0:1", 0.45 + 0.7),
            ("us.mistral.mistral-large-2402-v1:0", 8.0 + 24.0),
            ("openai.gpt-oss-120b-1:0", 0.15 + 0.6),
            ("qwen.qwen3-32b-v1:0", 0.15 + 0.6),
        ] {
            let f = t.find(id).unwrap_or_else(|| panic!("{id} has no price"));
            let got = f.cost(ServiceTier::Default, &million).unwrap();
            assert!((got - usd).abs() < 1e-9, "{id}: {got} != {usd}");
            assert!(f.price.source.is_some(), "{id} names its source");
            // No tier or batch figure was sourced: never derived from the standard one.
            assert_eq!(f.cost(ServiceTier::Flex, &million), None, "{id}");
            assert_eq!(f.cost(ServiceTier::Priority, &million), None, "{id}");
            assert_eq!(f.batch_rates(), None, "{id}");
        }
    }

    #[test]
    fn unknown_models_tiers_and_cache_figures_are_never_guessed() {
        let t = PriceTable::built_in();
        assert!(t.find("mistral.mistral-large-2407-v1:0").is_none());
        let haiku = t.find("anthropic.claude-3-haiku-20240307-v1:0").unwrap();
        let t1 = Tokens {
            input: 10,
            output: 10,
            ..Tokens::default()
        };
        assert_eq!(haiku.cost(ServiceTier::Flex, &t1), None);
        let cached = Tokens {
            cache_read: 5,
            ..t1
        };
        assert_eq!(haiku.cost(ServiceTier::Default, &cached), None);
        let sonnet = t.find("anthropic.claude-3-7-sonnet-20250219-v1:0").unwrap();
        let usd = sonnet.cost(ServiceTier::Default, &cached).unwrap();
        assert!((usd - (10.0 * 3.0 + 10.0 * 15.0 + 5.0 * 0.3) / 1e6).abs() < 1e-15);
    }

    #[test]
    fn config_entries_override_and_add() {
        let mut o = BTreeMap::new();
        o.insert(
            "anthropic.claude-3-haiku-20240307-v1:0".to_string(),
            Price {
                input: 0.2,
                output: 1.0,
                flex_input: Some(0.1),
                flex_output: Some(0.5),
                ..Price::default()
            },
        );
        let t = PriceTable::with_overrides(o.clone(), None).unwrap();
        let f = t
            .find("apac.anthropic.claude-3-haiku-20240307-v1:0")
            .unwrap();
        assert_eq!(f.rates(ServiceTier::Flex), Some((0.1, 0.5)));
        assert!(f.origin.starts_with("config"), "{}", f.origin);
        o.values_mut().next().unwrap().input = -1.0;
        assert!(PriceTable::with_overrides(o, None).is_err());
    }
}
