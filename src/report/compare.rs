//! `report --compare BEFORE AFTER`: what changed between two runs of the same
//! inputs, as a short text for a person or a nightly job's log, the
//! [`Changes`] the comparison page lists (`compare_page.rs`), and the
//! regressions `--fail-on-regression` exits on.
//!
//! Rows are matched by (id, model, sample). Answers are compared trimmed. A
//! regression is a drop in a model's (or all models') success rate or in a
//! scorer's pass rate by more than the threshold, in percentage points.

use std::collections::{BTreeMap, BTreeSet};

use crate::report::rows::{Row, RunData};
use crate::report::stats::{self, ModelStats};

/// Ids listed by name per change before "…".
const NAMED: usize = 5;

#[derive(Debug, Default)]
pub struct Comparison {
    /// The text summary, ready to print.
    pub text: String,
    /// One phrase per regression beyond the threshold; empty when none.
    pub regressions: Vec<String>,
    /// Per model (and all models): name and the change, in words.
    pub models: Vec<(String, String)>,
    pub changes: Changes,
}

pub fn compare(before: &RunData, after: &RunData, threshold: f64) -> Comparison {
    let mut out = String::new();
    let mut regressions = Vec::new();
    let mut models = Vec::new();
    out.push_str(&format!(
        "compare: {} → {}\n",
        before.dir.display(),
        after.dir.display()
    ));

    let b_models = stats::per_model(&before.rows);
    let a_models = stats::per_model(&after.rows);
    let mut pairs: Vec<(String, Option<ModelStats>, Option<ModelStats>)> = Vec::new();
    let names: BTreeSet<&String> = b_models.iter().chain(&a_models).map(|m| &m.model).collect();
    for name in names {
        let find = |v: &[ModelStats]| v.iter().find(|m| &m.model == name).cloned();
        pairs.push((name.clone(), find(&b_models), find(&a_models)));
    }
    if pairs.len() > 1 {
        pairs.push((
            "all models".into(),
            Some(stats::overall("all models", &before.rows)),
            Some(stats::overall("all models", &after.rows)),
        ));
    }
    for (name, b, a) in &pairs {
        let line = match (b, a) {
            (Some(b), Some(a)) => {
                regressions.extend(regressed(name, b, a, threshold));
                model_line(b, a)
            }
            (None, _) => "only in the after run".to_string(),
            (_, None) => "only in the before run".to_string(),
        };
        out.push_str(&format!("{name}: {line}\n"));
        models.push((name.clone(), line));
    }

    let changes = row_changes(&before.rows, &after.rows);
    for (label, list) in changes.lists() {
        out.push_str(&format!("{label}: {}\n", named(list)));
    }
    if regressions.is_empty() {
        out.push_str(&format!(
            "regressions: none (a drop of more than {threshold} percentage points in a success or pass rate)\n"
        ));
    } else {
        out.push_str(&format!(
            "regressions (more than {threshold} percentage points): {}\n",
            regressions.join("; ")
        ));
    }
    Comparison {
        text: out,
        regressions,
        models,
        changes,
    }
}

fn model_line(b: &ModelStats, a: &ModelStats) -> String {
    let mut parts = vec![format!(
        "success {:.1}% → {:.1}% ({:+.1})",
        b.success_pct,
        a.success_pct,
        a.success_pct - b.success_pct
    )];
    let scorers: BTreeSet<&String> = b.scorers.keys().chain(a.scorers.keys()).collect();
    for s in scorers {
        match (b.pass_pct(s), a.pass_pct(s)) {
            (Some(x), Some(y)) => parts.push(format!("{s} pass {x:.1}% → {y:.1}% ({:+.1})", y - x)),
            (x, y) => parts.push(format!("{s} pass {} → {}", pct(x), pct(y))),
        }
    }
    if b.cost_usd.is_some() || a.cost_usd.is_some() {
        parts.push(format!("cost {} → {}", usd(b.cost_usd), usd(a.cost_usd)));
    }
    parts.push(format!(
        "latency p50 {} → {}, p95 {} → {}",
        ms(b.latency_p50),
        ms(a.latency_p50),
        ms(b.latency_p95),
        ms(a.latency_p95)
    ));
    parts.push(format!(
        "tokens {} → {}",
        b.input_tokens + b.output_tokens,
        a.input_tokens + a.output_tokens
    ));
    parts.join("; ")
}

fn regressed(name: &str, b: &ModelStats, a: &ModelStats, threshold: f64) -> Vec<String> {
    let mut out = Vec::new();
    let drop = b.success_pct - a.success_pct;
    if drop > threshold {
        out.push(format!("{name} success rate −{drop:.1} points"));
    }
    for s in b.scorers.keys() {
        if let (Some(x), Some(y)) = (b.pass_pct(s), a.pass_pct(s)) {
            if x - y > threshold {
                out.push(format!("{name} {s} pass rate −{:.1} points", x - y));
            }
        }
    }
    out
}

/// (id, model, sample): what a row of one run is matched by in the other.
type Key<'a> = (&'a str, &'a str, Option<&'a str>);

fn index(rows: &[Row]) -> BTreeMap<Key<'_>, &Row> {
    let mut m = BTreeMap::new();
    for r in rows {
        m.entry((r.id.as_str(), r.model.as_str(), r.sample.as_deref()))
            .or_insert(r);
    }
    m
}

/// The rows that changed, each kind of change in id order.
#[derive(Debug, Default)]
pub struct Changes {
    pub answers: Vec<Change>,
    pub scores: Vec<Change>,
    pub new_failures: Vec<Change>,
    pub fixed: Vec<Change>,
    pub only_before: Vec<Change>,
    pub only_after: Vec<Change>,
}

/// One row in both runs (or one of them): its label and what each run says.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The id, with the model (and sample) when the runs have several.
    pub label: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl Changes {
    /// Each list with its name, in the order the text and the page show them.
    pub fn lists(&self) -> [(&'static str, &Vec<Change>); 6] {
        [
            ("answers changed", &self.answers),
            ("scores changed", &self.scores),
            ("new failures", &self.new_failures),
            ("fixed failures", &self.fixed),
            ("only in before", &self.only_before),
            ("only in after", &self.only_after),
        ]
    }
}

/// What a run says of a row: its answer (and scores), or its error.
fn said(r: &Row) -> String {
    if r.ok {
        let scores: Vec<String> = r
            .scores
            .iter()
            .map(|(n, s)| format!("{n}: {}", s.text))
            .collect();
        if scores.is_empty() {
            r.output.clone()
        } else {
            format!("{}\n[{}]", r.output, scores.join(" · "))
        }
    } else {
        let e = r.error.clone().unwrap_or_default();
        format!("{} {}: {}", e.kind, e.code, e.message)
    }
}

fn row_changes(before: &[Row], after: &[Row]) -> Changes {
    let (b, a) = (index(before), index(after));
    let first = before.first().or(after.first()).map(|r| r.model.as_str());
    let one_model = before
        .iter()
        .chain(after)
        .all(|r| Some(r.model.as_str()) == first);
    let change = |k: &Key, rb: Option<&Row>, ra: Option<&Row>| Change {
        label: match (one_model, k.2) {
            (true, None) => k.0.to_string(),
            (_, None) => format!("{} ({})", k.0, k.1),
            (_, Some(s)) => format!("{} ({}, sample {s})", k.0, k.1),
        },
        before: rb.map(said),
        after: ra.map(said),
    };
    let mut c = Changes::default();
    for (k, rb) in &b {
        let Some(ra) = a.get(k) else {
            c.only_before.push(change(k, Some(rb), None));
            continue;
        };
        let both = change(k, Some(rb), Some(ra));
        match (rb.ok, ra.ok) {
            (true, false) => c.new_failures.push(both),
            (false, true) => c.fixed.push(both),
            (true, true) => {
                if rb.answer_hash != ra.answer_hash {
                    c.answers.push(both.clone());
                }
                if rb.scores != ra.scores {
                    c.scores.push(both);
                }
            }
            (false, false) => {}
        }
    }
    c.only_after = a
        .iter()
        .filter(|(k, _)| !b.contains_key(*k))
        .map(|(k, ra)| change(k, None, Some(ra)))
        .collect();
    c
}

fn named(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "0".into();
    }
    let ids: Vec<&String> = changes.iter().map(|c| &c.label).collect();
    let shown: Vec<&str> = ids.iter().take(NAMED).map(|s| s.as_str()).collect();
    let more = if ids.len() > NAMED { ", …" } else { "" };
    format!("{} ({}{more})", ids.len(), shown.join(", "))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |p| format!("{p:.1}%"))
}

fn usd(v: Option<f64>) -> String {
    v.map_or("–".into(), |c| format!("${c:.4}"))
}

fn ms(v: Option<u64>) -> String {
    v.map_or("–".into(), |m| format!("{m} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::rows::{RowError, Score};

    fn row(id: &str, ok: bool, output: &str, pass: Option<bool>) -> Row {
        Row {
            id: id.into(),
            model: "m".into(),
            ok,
            output: output.into(),
            answer_hash: crate::report::rows::answer_hash(output),
            latency_ms: ok.then_some(10),
            error: (!ok).then(RowError::default),
            scores: pass
                .map(|p| {
                    vec![(
                        "exact".to_string(),
                        Score {
                            pass: Some(p),
                            text: String::new(),
                        },
                    )]
                })
                .unwrap_or_default(),
            ..Row::default()
        }
    }

    fn data(dir: &str, rows: Vec<Row>) -> RunData {
        RunData {
            dir: dir.into(),
            rows,
            ..RunData::default()
        }
    }

    #[test]
    fn finds_changed_new_and_fixed_rows_and_regressions() {
        let before = data(
            "before",
            vec![
                row("a", true, "four", Some(true)),
                row("b", true, "same ", Some(true)),
                row("c", false, "", None),
                row("d", true, "x", Some(true)),
                row("gone", true, "x", None),
            ],
        );
        let after = data(
            "after",
            vec![
                row("a", true, "4", Some(false)),
                row("b", true, " same", Some(true)),
                row("c", true, "ok", Some(true)),
                row("d", false, "", None),
                row("new", true, "x", None),
            ],
        );
        let c = compare(&before, &after, 1.0);
        assert!(c.text.contains("answers changed: 1 (a)"), "{}", c.text);
        assert!(c.text.contains("scores changed: 1 (a)"), "{}", c.text);
        assert!(c.text.contains("new failures: 1 (d)"), "{}", c.text);
        assert!(c.text.contains("fixed failures: 1 (c)"), "{}", c.text);
        assert!(c.text.contains("only in before: 1 (gone)"), "{}", c.text);
        assert!(c.text.contains("only in after: 1 (new)"), "{}", c.text);
        // exact: 3/3 before, 2/3 after: a drop of 33.3 points.
        assert_eq!(c.regressions, vec!["m exact pass rate −33.3 points"]);
        let same = compare(&before, &before, 1.0);
        assert!(same.regressions.is_empty());
        assert!(same.text.contains("answers changed: 0"));
        // A threshold above the drop lets it pass.
        assert!(compare(&before, &after, 40.0).regressions.is_empty());
    }
}
