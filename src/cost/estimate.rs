//! Token and dollar figures for a request *before* it is sent: the local
//! input estimate, a bound no real count can exceed, and a call's worst-case
//! cost (what the budget reserves and the dry-run's worst case adds up).
//!
//! Local estimates are deliberately simple and stated as such (`chars / 4`);
//! `dry_run.rs` corrects them with what a pilot or CountTokens measured.

use crate::bedrock::request::ServiceTier;
use crate::cost::price::PriceTable;
use crate::input::job::Job;

/// How the local estimate counts, for the dry-run's report.
pub const LOCAL_METHOD: &str = "local estimate: characters / 4";

/// Tokens a model may add around each message and the system prompt (role
/// markers, separators). Generous on purpose: it only feeds upper bounds.
const OVERHEAD_PER_MESSAGE: u64 = 16;

/// Characters the model reads for `job`: the rendered text, or a verbatim
/// native body's JSON.
pub fn input_chars(job: &Job) -> usize {
    let text = job.request.input_chars();
    match &job.body {
        Some(b) if job.request.messages.is_empty() => {
            serde_json::to_string(&b.body).map_or(text, |s| s.chars().count())
        }
        _ => text,
    }
}

fn input_bytes(job: &Job) -> u64 {
    let text: usize = job.request.system.as_deref().map_or(0, str::len)
        + job
            .request
            .messages
            .iter()
            .map(|m| m.text.len())
            .sum::<usize>();
    let body = match &job.body {
        Some(b) => serde_json::to_vec(&b.body).map_or(0, |v| v.len()),
        None => 0,
    };
    text.max(body) as u64
}

/// The local estimate of `job`'s input tokens.
pub fn local_input_tokens(job: &Job) -> u64 {
    (input_chars(job) as u64).div_ceil(4).max(1)
}

/// An upper bound of `job`'s input tokens: a byte-level tokenizer never makes
/// more tokens than bytes, plus a generous allowance per message.
pub fn input_upper_bound(job: &Job) -> u64 {
    let messages = job.request.messages.len() as u64 + 1;
    input_bytes(job) + OVERHEAD_PER_MESSAGE * messages
}

/// Whether a call of `job` may read or write the prompt cache.
pub fn uses_cache(job: &Job) -> bool {
    (job.request.cache_system && job.request.system.is_some())
        || job
            .request
            .messages
            .iter()
            .any(|m| !m.cache_after.is_empty())
}

/// The most one call of `job` can cost: every input token at the highest
/// input price it may be charged (a cache write costs more than input) and
/// `max_tokens` of output. `Err` says why it cannot be bounded: a budget
/// must then refuse rather than guess.
pub fn worst_case_usd(prices: &PriceTable, job: &Job) -> Result<f64, String> {
    let model = &job.request.model;
    let tier = job.request.service_tier.unwrap_or(ServiceTier::Default);
    let found = prices
        .find(model)
        .ok_or_else(|| format!("{model}: no price known"))?;
    let caching = uses_cache(job);
    let input_rate = found.worst_input_rate(tier, caching).ok_or_else(|| {
        if caching {
            format!("{model}: no cache-write price for tier {}", tier.as_str())
        } else {
            format!("{model}: no price for service tier {}", tier.as_str())
        }
    })?;
    let (_, output_rate) = found
        .rates(tier)
        .ok_or_else(|| format!("{model}: no price for service tier {}", tier.as_str()))?;
    let max_out = job
        .request
        .max_tokens
        .ok_or_else(|| "max_tokens is not set, so an answer's length has no bound".to_string())?;
    Ok((input_upper_bound(job) as f64 * input_rate + f64::from(max_out) * output_rate) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::request::{Message, Request};
    use crate::outcome::Source;

    fn job(model: &str, text: &str, max_tokens: Option<u32>) -> Job {
        Job {
            id: "1".into(),
            sample: 1,
            source: Source {
                file: "f".into(),
                line: 1,
            },
            request: Request {
                model: model.into(),
                messages: vec![Message {
                    text: text.into(),
                    ..Message::default()
                }],
                max_tokens,
                ..Request::default()
            },
            body: None,
            meta: Default::default(),
            fingerprint: String::new(),
        }
    }

    #[test]
    fn the_worst_case_bounds_input_by_bytes_and_output_by_max_tokens() {
        let prices = PriceTable::built_in();
        let j = job("anthropic.claude-3-haiku-20240307-v1:0", "abcd", Some(100));
        // (4 bytes + 2 × 16) × $0.25 + 100 × $1.25, per million
        let want = (36.0 * 0.25 + 100.0 * 1.25) / 1e6;
        assert!((worst_case_usd(&prices, &j).unwrap() - want).abs() < 1e-15);
        assert_eq!(local_input_tokens(&j), 1);
    }

    #[test]
    fn what_cannot_be_bounded_is_refused() {
        let prices = PriceTable::built_in();
        let e = worst_case_usd(
            &prices,
            &job("mistral.mistral-large-2407-v1:0", "x", Some(5)),
        )
        .unwrap_err();
        assert!(e.contains("no price known"), "{e}");
        let e = worst_case_usd(&prices, &job("amazon.nova-lite-v1:0", "x", None)).unwrap_err();
        assert!(e.contains("max_tokens"), "{e}");
        let mut flex = job("amazon.nova-lite-v1:0", "x", Some(5));
        flex.request.service_tier = Some(ServiceTier::Flex);
        assert!(worst_case_usd(&prices, &flex)
            .unwrap_err()
            .contains("service tier flex"));
    }
}
