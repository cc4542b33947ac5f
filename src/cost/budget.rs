//! `--max-cost`: the cap a job may not pass, across resumes, and the checks
//! that make it fail closed.
//!
//! Before the run ([`preflight`]): every model and tier the job can use must
//! have a price, `max_tokens` must be set, and what earlier runs into the
//! directory spent is counted from `results.jsonl`. During the run
//! ([`Budget`]): a call is sent only if what is spent, plus the worst case
//! of every call in flight, plus its own worst case stays within the cap.
//! A call whose outcome may have been billed without an answer (a timeout,
//! a dropped connection) counts at its worst case. The dispatcher and the
//! call tasks hold the reservations; this module never sends anything.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;

use crate::bedrock::request::ServiceTier;
use crate::config::Settings;
use crate::cost::price::PriceTable;
use crate::cost::spend::{priced_tier, row_cost};
use crate::input::inventory;
use crate::input::reader::Item;
use crate::input::rows::{RowSpec, Rows};
use crate::outcome::Usage;
use crate::output::checkpoint::SUPERSEDED;
use crate::output::sink::{FAILURES, RESULTS};

/// The cap and what counts against it.
#[derive(Debug)]
pub struct Budget {
    cap: f64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Spent for sure: earlier runs, answered calls, calls that may have been billed.
    spent: f64,
    /// Worst cases of the calls in flight.
    in_flight: f64,
}

/// A call's worst case, reserved against the cap until the call ends.
#[derive(Debug)]
#[must_use = "a reservation must be settled"]
pub struct Hold(f64);

impl Hold {
    pub fn worst_case(&self) -> f64 {
        self.0
    }
}

impl Budget {
    pub fn new(cap: f64, spent_before: f64) -> Budget {
        Budget {
            cap,
            state: Mutex::new(State {
                spent: spent_before,
                in_flight: 0.0,
            }),
        }
    }

    /// Reserves `worst` if spent + in flight + `worst` stays within the cap.
    pub fn reserve(&self, worst: f64) -> Option<Hold> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.spent + s.in_flight + worst > self.cap {
            return None;
        }
        s.in_flight += worst;
        Some(Hold(worst))
    }

    /// Ends a reservation: `charged` is what the call cost (its worst case
    /// when that is unknown, 0 when Bedrock refused it before running it).
    pub fn settle(&self, hold: Hold, charged: f64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight = (s.in_flight - hold.0).max(0.0);
        s.spent += charged;
    }

    pub fn spent(&self) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).spent
    }
}

/// The fields of a results line that say what it cost; the rest (the
/// answer, the meta) is skipped unparsed.
#[derive(serde::Deserialize)]
struct Priced {
    model: Option<String>,
    usage: Option<Usage>,
    cost_usd: Option<f64>,
    service_tier: Option<String>,
}

/// What earlier runs into `dir` spent, from its results, failures and
/// superseded lines: each line's
/// `cost_usd`, or its price from usage for rows written before costs were
/// recorded. The second value lists models whose rows have no price.
pub fn spent_so_far(dir: &Path, prices: &PriceTable) -> anyhow::Result<(f64, BTreeSet<String>)> {
    let mut total = 0.0;
    let mut unpriced = BTreeSet::new();
    // Failures lines carry usage too (answers refused as invalid output),
    // and superseded lines were paid for when they were current.
    for name in [RESULTS, FAILURES, SUPERSEDED] {
        let path = dir.join(name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        spent_in(file, prices, &mut total, &mut unpriced)?;
    }
    Ok((total, unpriced))
}

/// Adds what one output file's lines cost.
fn spent_in(
    file: std::fs::File,
    prices: &PriceTable,
    total: &mut f64,
    unpriced: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        // Checkpoint has cut a torn tail already; a line that does not parse
        // is not a row of ours.
        let Ok(s) = serde_json::from_str::<Priced>(&line) else {
            continue;
        };
        let (Some(model), Some(usage)) = (s.model, s.usage) else {
            continue;
        };
        let cost = s.cost_usd.or_else(|| {
            let tier = priced_tier(s.service_tier.as_deref(), None);
            row_cost(prices, &model, tier, &usage)
        });
        match cost {
            Some(c) => *total += c,
            None => {
                unpriced.insert(model);
            }
        }
    }
    Ok(())
}

/// Checks a job with `max_cost` can be held to it, and returns what earlier
/// runs spent. Any model or tier without a price, or no `max_tokens`, is a
/// setup error: nothing is sent.
pub fn preflight(settings: &Settings) -> anyhow::Result<Option<Budget>> {
    let Some(cap) = settings.cost.max_cost else {
        return Ok(None);
    };
    let refuse = |why: String| {
        anyhow::anyhow!(
            "max_cost: {why}; a budget cannot hold without it (add [prices.\"MODEL-ID\"] to the config, or drop max_cost)"
        )
    };
    if settings.max_tokens.is_none() {
        anyhow::bail!(
            "max_cost: max_tokens is not set, so an answer's cost has no bound; set max_tokens"
        );
    }
    let (models, tiers) = row_values(settings)?;
    let prices = &settings.cost.prices;
    let default_tier = settings.cost.service_tier.unwrap_or(ServiceTier::Default);
    for model in std::iter::once(&settings.model).chain(models.iter()) {
        let Some(found) = prices.find(model) else {
            return Err(refuse(format!("{model} has no known price")));
        };
        for tier in std::iter::once(default_tier).chain(tiers.iter().copied()) {
            if found.rates(tier).is_none() {
                return Err(refuse(format!(
                    "{model} has no price for service tier {}",
                    tier.as_str()
                )));
            }
            if settings.cost.cache_system && found.worst_input_rate(tier, true).is_none() {
                return Err(refuse(format!(
                    "{model} has no cache-write price (cache_system is on)"
                )));
            }
        }
    }
    let (spent, unpriced) = spent_so_far(&settings.output_dir, prices)?;
    if let Some(m) = unpriced.iter().next() {
        return Err(refuse(format!(
            "earlier rows in {} of {m} have no price",
            settings.output_dir.display()
        )));
    }
    Ok(Some(Budget::new(cap, spent)))
}

/// The distinct per-row `model` and `service_tier` values of the inputs: a
/// row may name its own, and the budget must be able to price it.
fn row_values(settings: &Settings) -> anyhow::Result<(BTreeSet<String>, BTreeSet<ServiceTier>)> {
    let mut models = BTreeSet::new();
    let mut tiers = BTreeSet::new();
    // Only these two columns matter here, not whether rows have prompts.
    let spec = RowSpec {
        prompt_column: None,
        scorers: &[],
        ..inventory::spec(settings, None)
    };
    for row in Rows::new(spec, None) {
        let Item::Record(r) = row?.item else { continue };
        if let Some(Value::String(m)) = r.fields.get("model") {
            if !m.trim().is_empty() {
                models.insert(m.trim().to_string());
            }
        }
        if let Some(t) = r
            .fields
            .get("service_tier")
            .and_then(Value::as_str)
            .and_then(ServiceTier::parse)
        {
            tiers.insert(t);
        }
    }
    Ok((models, tiers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_within_the_cap_only() {
        let b = Budget::new(1.0, 0.25);
        let a = b.reserve(0.5).unwrap();
        assert!(b.reserve(0.5).is_none(), "0.25 + 0.5 + 0.5 > 1");
        b.settle(a, 0.1);
        assert!((b.spent() - 0.35).abs() < 1e-12);
        let c = b.reserve(0.6).unwrap();
        assert_eq!(c.worst_case(), 0.6);
        b.settle(c, 0.6);
        assert!(b.reserve(0.1).is_none());
    }

    #[test]
    fn earlier_rows_count_with_or_without_cost_usd() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"id":"1","model":"anthropic.claude-3-haiku-20240307-v1:0","output":"x","stop_reason":"end_turn","usage":{"input_tokens":1000000,"output_tokens":0},"latency_ms":1,"attempts":1,"source":{"file":"f","line":2},"meta":{}}"#;
        let new = r#"{"id":"2","model":"m","output":"x","stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1},"cost_usd":0.5,"service_tier":null,"latency_ms":1,"attempts":1,"source":{"file":"f","line":3},"meta":{}}"#;
        let unknown = r#"{"id":"3","model":"mistral.x","output":"x","stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1},"cost_usd":null,"service_tier":null,"latency_ms":1,"attempts":1,"source":{"file":"f","line":4},"meta":{}}"#;
        std::fs::write(
            dir.path().join(RESULTS),
            format!("{old}\n{new}\n{unknown}\n"),
        )
        .unwrap();
        let (spent, unpriced) = spent_so_far(dir.path(), &PriceTable::built_in()).unwrap();
        assert!((spent - 0.75).abs() < 1e-12, "{spent}");
        assert_eq!(unpriced.into_iter().collect::<Vec<_>>(), vec!["mistral.x"]);
    }
}
