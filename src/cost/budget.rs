//! `--max-cost`: the cap a job may not pass, across resumes, and the checks
//! that make it fail closed.
//!
//! Before the run ([`preflight`]): every model and tier the job can use must
//! have a price, `max_tokens` must be set, and what earlier runs into the
//! directory paid is priced (`output/earlier.rs` reads it, once, with the
//! checkpoint). During the run
//! ([`Budget`]): a call is sent only if what is spent, plus the worst case
//! of every call in flight, plus its own worst case stays within the cap.
//! A call whose outcome may have been billed without an answer (a timeout,
//! a dropped connection) counts at its worst case. The dispatcher and the
//! call tasks hold the reservations; this module never sends anything.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::Value;

use crate::bedrock::request::ServiceTier;
use crate::config::Settings;
use crate::input::inventory;
use crate::input::matrix::pinned_model;
use crate::input::reader::Item;
use crate::input::rows::{RowSpec, Rows};
use crate::output::earlier::Paid;

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

/// Checks a job with `max_cost` can be held to it, and starts it at what
/// earlier runs paid (`paid`: the results, failures and superseded lines,
/// from the checkpoint's one read of them). Any model or tier without a
/// price, or no `max_tokens`, is a setup error: nothing is sent.
pub fn preflight(settings: &Settings, paid: &Paid) -> anyhow::Result<Option<Budget>> {
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
    for model in settings.models.iter().chain(models.iter()) {
        let Some(found) = prices.find(model) else {
            return Err(refuse(format!("{model} has no known price")));
        };
        // A model's own tier (`[models."ID"] service_tier`) is asked for too.
        let own_tier = settings.model_setting(model, |m| m.service_tier);
        let first = [default_tier].into_iter().chain(own_tier);
        for tier in first.chain(tiers.iter().copied()) {
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
    let (spent, unpriced) = paid.priced(prices);
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
        if let Some(Ok(m)) = pinned_model(&r.fields, &settings.id_columns) {
            models.insert(m.to_string());
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

    /// A row's `model` column is priced only when it names the model to
    /// call: in a judge job over another job's results it is part of the id.
    #[test]
    fn a_judged_model_in_the_id_needs_no_price() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("in.csv"),
            "id,model,prompt\n1,mistral.unknown-v9,judge this\n",
        )
        .unwrap();
        let job = |extra: &str| {
            let cfg = dir.path().join("job.toml");
            std::fs::write(
                &cfg,
                format!(
                    "model = \"anthropic.claude-3-haiku-20240307-v1:0\"\ninputs = [\"in.csv\"]\n\
                     output_dir = \"out\"\nmax_tokens = 10\nmax_cost = 1.0\n{extra}"
                ),
            )
            .unwrap();
            let argv = ["bedrock-batch", "run", "--config", cfg.to_str().unwrap()];
            let crate::cli::Command::Run(run) = crate::cli::Args::parse_from(argv).command else {
                panic!("not a run command")
            };
            Settings::resolve(&run, false).unwrap()
        };
        let judge = job("id_columns = [\"id\", \"model\"]\n");
        assert!(preflight(&judge, &Paid::default()).unwrap().is_some());
        let pinned = job("");
        let err = preflight(&pinned, &Paid::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mistral.unknown-v9 has no known price"),
            "{err}"
        );
    }

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
}
