//! The report page: one HTML file holding its styles, its data (once, as
//! JSON) and its scripts (the page's own and uPlot, embedded in the binary),
//! so it opens anywhere and makes no network request. A Content Security
//! Policy in the page forbids every request, so an answer that contains a
//! link or an image tag cannot make one either.
//!
//! This module computes every figure (the page only lays them out), so the
//! page, the terminal table and `--compare` agree. Not the layout: that is
//! `assets/report/report.js`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use crate::report::rows::{by_id, Row, RunData};
use crate::report::stats::{self, ModelStats};

const TEMPLATE: &str = include_str!("../../assets/report/report.html");
const STYLE: &str = include_str!("../../assets/report/report.css");
const SCRIPT: &str = include_str!("../../assets/report/report.js");
const UPLOT_JS: &str = include_str!("../../assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/vendor/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../../assets/vendor/uplot/LICENSE");

/// Characters of an answer or error message kept in the page: enough to
/// read and compare, while a 100,000-row report stays a file a browser opens
/// quickly. The full text stays in the JSONL files.
pub const TEXT_LIMIT: usize = 2000;

/// Examples shown per failure group.
const EXAMPLES: usize = 3;

/// Buckets of the latency histogram and of the charts over time.
const LATENCY_BUCKETS: usize = 30;
const TIME_BUCKETS: i64 = 60;

/// The whole page for `data`.
pub fn render(data: &RunData) -> anyhow::Result<String> {
    let payload = payload(data);
    // `<` is escaped so no answer can close the script element; `\u003c` is
    // the same character to JSON.parse.
    let json = serde_json::to_string(&payload)?.replace('<', "\\u003c");
    let title = format!("bedrock-batch report: {}", data.dir.display());
    let license = UPLOT_LICENSE.replace("*/", "* /");
    Ok(TEMPLATE
        .replacen("{{TITLE}}", &html_escape(&title), 1)
        .replacen("{{UPLOT_CSS}}", UPLOT_CSS, 1)
        .replacen("{{STYLE}}", STYLE, 1)
        .replacen("{{UPLOT_LICENSE}}", &license, 1)
        .replacen("{{UPLOT_JS}}", UPLOT_JS, 1)
        .replacen("{{SCRIPT}}", SCRIPT, 1)
        // Last, so nothing in the data is taken for a placeholder.
        .replacen("{{DATA}}", &json, 1))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Serialize)]
struct Payload {
    generated_at: String,
    dir: String,
    summary: Option<Value>,
    manifest: Option<Value>,
    context: Option<Value>,
    unreadable: u64,
    overall: ModelStats,
    models: Vec<ModelStats>,
    latency: Value,
    timeline: Value,
    failures: Vec<FailureGroup>,
    columns: Vec<String>,
    /// `[id, flags, cell…]`, one per id in input order; flags: 1 models
    /// disagree, 2 failed a scorer, 4 some model failed. A cell is `null` or
    /// `[1 answered / 0 failed, text, scores or error code]`.
    rows: Vec<Value>,
}

#[derive(Serialize)]
struct FailureGroup {
    kind: String,
    code: String,
    count: u64,
    examples: Vec<Value>,
}

fn payload(data: &RunData) -> Payload {
    Payload {
        generated_at: crate::time::rfc3339_ms_now(),
        dir: data.dir.display().to_string(),
        summary: data.summary.clone(),
        manifest: data.manifest.clone(),
        context: data.context.clone(),
        unreadable: data.unreadable,
        overall: stats::overall("all models", &data.rows),
        models: stats::per_model(&data.rows),
        latency: latency(&data.rows),
        timeline: timeline(&data.rows),
        failures: failures(&data.rows),
        columns: columns(&data.rows).into_keys().collect(),
        rows: side_by_side(&data.rows),
    }
}

/// Latency histogram per model: bucket lower edges (whole ms, increasing),
/// and counts per model. Buckets are log-spaced when latencies span more
/// than a factor of four; never narrower than 1 ms.
fn latency(rows: &[Row]) -> Value {
    let all: Vec<u64> = rows
        .iter()
        .filter(|r| r.ok)
        .filter_map(|r| r.latency_ms)
        .collect();
    let (Some(&lo), Some(&hi)) = (all.iter().min(), all.iter().max()) else {
        return Value::Null;
    };
    let lo = lo.max(1);
    let hi = hi.max(lo) + 1;
    let log = hi > lo * 4;
    let mut edges: Vec<u64> = (0..LATENCY_BUCKETS)
        .map(|i| {
            let f = i as f64 / LATENCY_BUCKETS as f64;
            let e = if log {
                lo as f64 * (hi as f64 / lo as f64).powf(f)
            } else {
                lo as f64 + (hi - lo) as f64 * f
            };
            e.floor() as u64
        })
        .collect();
    edges.dedup();
    let bucket = |v: u64| edges.iter().rposition(|e| v >= *e).unwrap_or(0);
    let mut counts: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ok) {
        if let Some(l) = r.latency_ms {
            counts
                .entry(&r.model)
                .or_insert_with(|| vec![0; edges.len()])[bucket(l)] += 1;
        }
    }
    json!({ "log": log, "edges": edges, "counts": counts })
}

/// Rows completed, rows failed and throttled attempts per model, and the
/// cost when rows carry one, each cumulative at the end of every time bucket
/// (by each row's `finished_at`): a running total reads the same for a
/// one-second demo and a ten-hour job.
fn timeline(rows: &[Row]) -> Value {
    let timed: Vec<&Row> = rows.iter().filter(|r| r.finished_ms.is_some()).collect();
    let (Some(start), Some(end)) = (
        timed
            .iter()
            .map(|r| r.started_ms.or(r.finished_ms).unwrap_or(0))
            .min(),
        timed.iter().filter_map(|r| r.finished_ms).max(),
    ) else {
        return Value::Null;
    };
    let step = ((end - start + 1) as f64 / TIME_BUCKETS as f64)
        .ceil()
        .max(1.0) as i64;
    let n = ((end - start) / step + 1) as usize;
    let mut completed: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut failed: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut throttled: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut cost = vec![0.0f64; n];
    let mut costed = false;
    for r in &timed {
        let i = ((r.finished_ms.unwrap_or(start) - start) / step) as usize;
        let zeros = || vec![0u64; n];
        let series = if r.ok { &mut completed } else { &mut failed };
        series.entry(&r.model).or_insert_with(zeros)[i] += 1;
        throttled.entry(&r.model).or_insert_with(zeros)[i] += r.throttles as u64;
        if let Some(c) = r.cost_usd {
            cost[i] += c;
            costed = true;
        }
    }
    for series in [&mut completed, &mut failed, &mut throttled] {
        for counts in series.values_mut() {
            let mut running = 0;
            for c in counts.iter_mut() {
                running += *c;
                *c = running;
            }
        }
    }
    let mut running = 0.0;
    for c in cost.iter_mut() {
        running += *c;
        *c = running;
    }
    json!({
        "start_ms": start,
        "step_ms": step,
        "x": (0..n).map(|i| (start + i as i64 * step) as f64 / 1000.0).collect::<Vec<_>>(),
        "completed": completed,
        "failed": failed,
        "throttled": throttled,
        "cost": if costed { json!(cost) } else { Value::Null },
    })
}

/// Failures grouped by kind and code, largest group first, with a few examples.
fn failures(rows: &[Row]) -> Vec<FailureGroup> {
    let mut groups: BTreeMap<(String, String), FailureGroup> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.ok) {
        let e = r.error.clone().unwrap_or_default();
        let g = groups
            .entry((e.kind.clone(), e.code.clone()))
            .or_insert_with(|| FailureGroup {
                kind: e.kind.clone(),
                code: e.code.clone(),
                count: 0,
                examples: Vec::new(),
            });
        g.count += 1;
        if g.examples.len() < EXAMPLES {
            g.examples.push(json!({
                "id": r.id,
                "model": r.model,
                "file": r.file,
                "line": r.line,
                "message": clip(&e.message),
            }));
        }
    }
    let mut out: Vec<FailureGroup> = groups.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
    out
}

/// The side-by-side columns: one per model (and sample, when there are
/// several), name → index.
fn columns(rows: &[Row]) -> BTreeMap<String, usize> {
    let mut names: Vec<String> = rows.iter().map(column_of).collect();
    names.sort();
    names.dedup();
    names.into_iter().enumerate().map(|(i, n)| (n, i)).collect()
}

fn column_of(r: &Row) -> String {
    match &r.sample {
        Some(s) => format!("{} · sample {s}", r.model),
        None => r.model.clone(),
    }
}

fn side_by_side(rows: &[Row]) -> Vec<Value> {
    let columns = columns(rows);
    by_id(rows)
        .into_iter()
        .map(|(id, group)| {
            let mut cells = vec![Value::Null; columns.len()];
            let mut answers: Vec<u64> = Vec::new();
            let mut flags = 0u8;
            for r in &group {
                let i = columns[&column_of(r)];
                if !cells[i].is_null() {
                    continue;
                }
                cells[i] = if r.ok {
                    answers.push(r.answer_hash);
                    let scores: Vec<String> = r
                        .scores
                        .iter()
                        .map(|(n, s)| format!("{n}: {}", s.text))
                        .collect();
                    json!([1, r.output, scores.join(" · ")])
                } else {
                    flags |= 4;
                    let e = r.error.clone().unwrap_or_default();
                    json!([0, clip(&e.message), format!("{} {}", e.kind, e.code)])
                };
                if r.failed_a_scorer() {
                    flags |= 2;
                }
            }
            answers.sort_unstable();
            answers.dedup();
            if answers.len() > 1 {
                flags |= 1;
            }
            let mut row = vec![json!(id), json!(flags)];
            row.extend(cells);
            Value::Array(row)
        })
        .collect()
}

/// `s`, cut to [`TEXT_LIMIT`] characters with a note saying so.
pub fn clip(s: &str) -> String {
    if s.chars().count() <= TEXT_LIMIT {
        return s.to_string();
    }
    let kept: String = s.chars().take(TEXT_LIMIT).collect();
    format!(
        "{kept}… [{} more characters in the JSONL file]",
        s.chars().count() - TEXT_LIMIT
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::rows::RowError;

    fn row(id: &str, model: &str, ok: bool, output: &str, finished: i64) -> Row {
        Row {
            id: id.into(),
            model: model.into(),
            ok,
            output: output.into(),
            answer_hash: crate::report::rows::answer_hash(output),
            error: (!ok).then(|| RowError {
                kind: "throttled".into(),
                code: "ThrottlingException".into(),
                message: "</script><img src=http://example.invalid/x>".into(),
            }),
            latency_ms: ok.then_some(100 + finished as u64),
            started_ms: Some(finished - 50),
            finished_ms: Some(finished),
            throttles: 1,
            ..Row::default()
        }
    }

    #[test]
    fn the_page_embeds_everything_and_no_answer_can_break_out() {
        let data = RunData {
            dir: "out/x".into(),
            rows: vec![
                row("a", "m1", true, "four", 1000),
                row("a", "m2", true, "4", 1500),
                row("b", "m1", true, "same", 2000),
                row("b", "m2", false, "", 9000),
            ],
            ..RunData::default()
        };
        let html = render(&data).unwrap();
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("Content-Security-Policy"));
        assert!(!html.contains("{{"), "every placeholder is filled");
        assert_eq!(
            html.matches("</script>").count(),
            3,
            "only our own script elements close"
        );
        assert!(!html.contains("<img"), "no answer becomes markup");
        let p = payload(&data);
        assert_eq!(p.columns, vec!["m1", "m2"]);
        assert_eq!(p.rows[0], json!(["a", 1, [1, "four", ""], [1, "4", ""]]));
        assert_eq!(
            p.rows[1][1],
            json!(4),
            "b: one model failed, answers do not disagree"
        );
        assert_eq!(p.failures.len(), 1);
        assert_eq!(p.failures[0].count, 1);
        let t = &p.timeline;
        let completed = t["completed"]["m1"].as_array().unwrap();
        assert_eq!(
            completed.last(),
            Some(&json!(2)),
            "cumulative: both m1 rows by the end"
        );
        assert_eq!(completed[0], json!(1));
        assert_eq!(t["cost"], Value::Null, "no row carries a cost");
        let edges = p.latency["edges"].as_array().unwrap();
        assert!(
            edges.windows(2).all(|w| w[0].as_u64() < w[1].as_u64()),
            "{edges:?}"
        );
        let hist: u64 = p.latency["counts"]["m1"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(hist, 2);
    }

    #[test]
    fn long_answers_are_clipped_with_a_note() {
        let long = "x".repeat(TEXT_LIMIT + 5);
        assert!(clip(&long).ends_with("[5 more characters in the JSONL file]"));
        assert_eq!(clip("short"), "short");
    }
}
