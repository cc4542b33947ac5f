//! What a row's calls were billed, added up over its attempts: an answer
//! refused as invalid output was paid for like the one kept, so both count
//! in the row's line (and from there in the summary, the spend and a
//! resume's budget).

use crate::bedrock::request::Answer;
use crate::outcome::Usage;

#[derive(Debug, Default)]
pub(crate) struct Paid {
    pub(crate) usage: Usage,
    /// `None` once any answer had no price: the sum is then unknown.
    pub(crate) cost_usd: Option<f64>,
    /// Answered calls added.
    calls: u32,
}

impl Paid {
    /// Adds one answered call and its price (`None`: unpriced).
    pub(crate) fn add(&mut self, answer: &Answer, cost: Option<f64>) {
        let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        let u = &mut self.usage;
        u.input_tokens += answer.input_tokens;
        u.output_tokens += answer.output_tokens;
        u.cache_read_input_tokens = sum(u.cache_read_input_tokens, answer.cache_read_input_tokens);
        u.cache_write_input_tokens =
            sum(u.cache_write_input_tokens, answer.cache_write_input_tokens);
        self.cost_usd = match (self.calls, self.cost_usd, cost) {
            (0, _, c) => c,
            (_, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.calls += 1;
    }

    /// For a failures line: the usage, when any call was answered.
    pub(crate) fn usage(&self) -> Option<Usage> {
        (self.calls > 0).then(|| self.usage.clone())
    }

    pub(crate) fn cost_usd(&self) -> Option<f64> {
        (self.calls > 0).then_some(self.cost_usd).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_calls_and_loses_the_price_once_one_is_unknown() {
        let answer = |i, o| Answer {
            input_tokens: i,
            output_tokens: o,
            ..Answer::default()
        };
        let mut p = Paid::default();
        assert_eq!(p.usage(), None);
        p.add(&answer(10, 3), Some(0.5));
        p.add(&answer(10, 4), Some(0.25));
        assert_eq!(p.usage().unwrap().input_tokens, 20);
        assert_eq!(p.usage().unwrap().output_tokens, 7);
        assert_eq!(p.cost_usd(), Some(0.75));
        p.add(&answer(1, 1), None);
        assert_eq!(p.cost_usd(), None);
    }
}
