//! Pass rates: each scorer's results counted per model, for `summary.json`
//! and the closing lines.
//!
//! Counted from the `scores` of results lines, whichever run wrote them: the
//! writer adds this run's, a resume adds the earlier lines' (`checkpoint.rs`).
//! A `true` is a pass, `false` a fail; a label (a `one_of` without a column)
//! is counted as that label and as a pass (the answer was one of the labels).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One scorer's figures for one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreTally {
    /// Answered rows scored.
    pub scored: u64,
    pub passed: u64,
    /// `passed / scored`, 0 to 1.
    pub pass_rate: f64,
    /// A `one_of` without a column: how many answers were each label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, u64>,
}

/// Model → scorer name → figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scores(pub BTreeMap<String, BTreeMap<String, ScoreTally>>);

impl Scores {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Counts one results line's `scores`.
    pub fn add(&mut self, model: &str, scores: &Map<String, Value>) {
        if scores.is_empty() {
            return;
        }
        let by_name = self.0.entry(model.to_string()).or_default();
        for (name, v) in scores {
            let t = by_name.entry(name.clone()).or_default();
            t.scored += 1;
            match v {
                Value::Bool(true) => t.passed += 1,
                Value::String(label) => {
                    t.passed += 1;
                    *t.labels.entry(label.clone()).or_default() += 1;
                }
                _ => {}
            }
            t.pass_rate = t.passed as f64 / t.scored as f64;
        }
    }

    pub fn merge(&mut self, other: &Scores) {
        for (model, names) in &other.0 {
            let mine = self.0.entry(model.clone()).or_default();
            for (name, o) in names {
                let t = mine.entry(name.clone()).or_default();
                t.scored += o.scored;
                t.passed += o.passed;
                for (l, n) in &o.labels {
                    *t.labels.entry(l.clone()).or_default() += n;
                }
                t.pass_rate = if t.scored == 0 {
                    0.0
                } else {
                    t.passed as f64 / t.scored as f64
                };
            }
        }
    }

    /// `scores (MODEL): name 4/6 (67%), …` — one line per model.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (model, names) in &self.0 {
            let parts: Vec<String> = names
                .iter()
                .map(|(name, t)| {
                    if t.labels.is_empty() {
                        return format!(
                            "{name} {}/{} ({:.0}%)",
                            t.passed,
                            t.scored,
                            t.pass_rate * 100.0
                        );
                    }
                    // Labels are counted, not graded: a pass rate would mislead.
                    let ls: Vec<String> =
                        t.labels.iter().map(|(l, n)| format!("{l} {n}")).collect();
                    format!(
                        "{name} [{}, none of the labels {}]",
                        ls.join(", "),
                        t.scored - t.passed
                    )
                })
                .collect();
            out.push_str(&format!("scores ({model}): {}\n", parts.join(", ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pass_rates_per_model_and_labels() {
        let mut s = Scores::default();
        let line = |v: Value| v.as_object().unwrap().clone();
        s.add("a", &line(json!({"label": true, "verdict": "correct"})));
        s.add("a", &line(json!({"label": false, "verdict": false})));
        s.add("b", &line(json!({"label": true})));
        let mut earlier = Scores::default();
        earlier.add("a", &line(json!({"label": true, "verdict": "incorrect"})));
        s.merge(&earlier);
        let a = &s.0["a"];
        assert_eq!((a["label"].passed, a["label"].scored), (2, 3));
        assert!((a["label"].pass_rate - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(a["verdict"].labels["correct"], 1);
        assert_eq!(a["verdict"].labels["incorrect"], 1);
        let text = s.render();
        assert!(
            text.contains(
                "scores (a): label 2/3 (67%), verdict [correct 1, incorrect 1, none of the labels 1]\n"
            ),
            "{text}"
        );
        assert!(text.contains("scores (b): label 1/1 (100%)\n"), "{text}");
    }
}
