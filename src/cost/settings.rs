//! The cost keys of a job, validated: `service_tier`, `cache_system`,
//! `max_cost`, `[prices."MODEL-ID"]`, and the `--dry-run` flags.
//!
//! `config.rs` calls [`CostSettings::resolve`] from `Settings::resolve` with
//! the same flag-over-file-over-default rule as every other key; the rules
//! live here so the cost feature is one module. Nothing here reads files
//! beyond what `config.rs` already parsed.

use std::collections::BTreeMap;
use std::path::Path;

use crate::bedrock::request::Api;
use crate::bedrock::request::ServiceTier;
use crate::cli::RunArgs;
use crate::cost::price::{Price, PriceTable};

/// The job's cost settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CostSettings {
    /// The tier every row is sent on unless its `service_tier` column says
    /// otherwise; `None` sends no tier (Bedrock's default).
    pub service_tier: Option<ServiceTier>,
    /// Put a Converse cache point after the system prompt.
    pub cache_system: bool,
    /// The most the whole job may spend, in USD, across resumes.
    pub max_cost: Option<f64>,
    pub prices: PriceTable,
    /// `--dry-run`: estimate instead of running.
    pub dry_run: Option<DryRun>,
    /// Most rows to send (a dry-run's pilot); never set from the config.
    pub row_limit: Option<u64>,
}

/// What `--dry-run` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DryRun {
    /// Rows to send for real first (`--pilot N`); 0 sends nothing.
    pub pilot: u64,
    /// Count input tokens with Bedrock's CountTokens (`--count-tokens`).
    pub count_tokens: bool,
}

impl Default for CostSettings {
    fn default() -> Self {
        CostSettings {
            service_tier: None,
            cache_system: false,
            max_cost: None,
            prices: PriceTable::built_in(),
            dry_run: None,
            row_limit: None,
        }
    }
}

/// The cost keys as the config file has them.
pub struct FileKeys<'a> {
    pub service_tier: Option<ServiceTier>,
    pub cache_system: Option<bool>,
    pub max_cost: Option<f64>,
    pub prices: Option<&'a BTreeMap<String, Price>>,
    /// The job's API as resolved: prompt caching needs Converse.
    pub api: Api,
}

impl CostSettings {
    /// Flags over the file over defaults; `origin` is the config file, for messages.
    pub fn resolve(
        args: &RunArgs,
        file: FileKeys<'_>,
        origin: Option<&Path>,
    ) -> anyhow::Result<CostSettings> {
        let where_ = |key: &str| match origin {
            Some(p) => format!("{}: `{key}`", p.display()),
            None => format!("--{}", key.replace('_', "-")),
        };
        let max_cost = args.max_cost.or(file.max_cost);
        if let Some(c) = max_cost {
            if !c.is_finite() || c <= 0.0 {
                anyhow::bail!(
                    "{}: must be a number of US dollars above 0, got {c}",
                    where_("max_cost")
                );
            }
        }
        if args.count_tokens && !args.dry_run {
            anyhow::bail!("--count-tokens needs --dry-run (it counts instead of running)");
        }
        if args.pilot.is_some() && !args.dry_run {
            anyhow::bail!("--pilot needs --dry-run (it sends N rows, then estimates the rest)");
        }
        let cache_system = args.cache_system || file.cache_system.unwrap_or(false);
        if cache_system && file.api == Api::Invoke {
            anyhow::bail!(
                "{}: needs api = \"converse\" (InvokeModel bodies carry their own cache markers)",
                where_("cache_system")
            );
        }
        let prices = PriceTable::with_overrides(
            file.prices.cloned().unwrap_or_default(),
            origin.map(|p| p.display().to_string()),
        )
        .map_err(|e| match origin {
            Some(p) => anyhow::anyhow!("{}: {e}", p.display()),
            None => anyhow::anyhow!(e),
        })?;
        Ok(CostSettings {
            service_tier: args.service_tier.or(file.service_tier),
            cache_system,
            max_cost,
            prices,
            dry_run: args.dry_run.then(|| DryRun {
                pilot: args.pilot.unwrap_or(0),
                count_tokens: args.count_tokens,
            }),
            row_limit: None,
        })
    }

    /// Flex answers can queue for much longer than standard ones.
    pub fn is_flex(&self) -> bool {
        self.service_tier == Some(ServiceTier::Flex)
    }
}
