//! An output directory read back for the report: every line of
//! `results.jsonl` and `failures.jsonl` as a [`Row`], plus `summary.json`,
//! `manifest.json` and `run.json` as they are.
//!
//! Reads fields that other features add when they are there (`cost_usd`,
//! `service_tier`, `sample`, `scores`, `ttft_ms`) and does without them when
//! they are not, so a report of an older directory still opens. Not the
//! resume reader (`checkpoint.rs` reads ids only, for speed).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::output::{checkpoint, manifest, sink};
use crate::report::page;

/// The run context `run` leaves beside the outputs (see `context.rs`).
pub const CONTEXT: &str = "run.json";

/// One output line, whichever file it came from.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub id: String,
    pub model: String,
    /// Which sample of several per id and model: `None` for the first (and
    /// for lines written before samples existed).
    pub sample: Option<String>,
    /// In `results.jsonl` (answered) rather than `failures.jsonl`.
    pub ok: bool,
    /// The answer, cut to what the page shows ([`page::TEXT_LIMIT`]), so a
    /// report of a million long answers does not hold them all in memory.
    pub output: String,
    /// A hash of the whole answer, trimmed: what `--compare` and "models
    /// disagree" compare.
    pub answer_hash: u64,
    pub error: Option<RowError>,
    pub file: String,
    pub line: u64,
    pub latency_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub throttles: u32,
    /// Milliseconds since the epoch, from `started_at` / `finished_at`.
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub cost_usd: Option<f64>,
    pub service_tier: Option<String>,
    /// Scorer name → verdict, in the order the line gives them.
    pub scores: Vec<(String, Score)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowError {
    pub kind: String,
    pub code: String,
    pub message: String,
}

/// One scorer's verdict on one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Passed or failed, when the scorer says (`true`/`false`, or `{"pass": …}`).
    pub pass: Option<bool>,
    /// What to show: the value as written.
    pub text: String,
}

impl Row {
    pub fn failed_a_scorer(&self) -> bool {
        self.scores.iter().any(|(_, s)| s.pass == Some(false))
    }
}

/// Everything a report is made from.
#[derive(Debug, Default)]
pub struct RunData {
    pub dir: PathBuf,
    /// `summary.json` as written (the last run's counts), if there is one.
    pub summary: Option<Value>,
    pub manifest: Option<Value>,
    pub context: Option<Value>,
    /// Results first, then failures, each in file order.
    pub rows: Vec<Row>,
    /// Lines that could not be read (a torn last line of a killed run).
    pub unreadable: u64,
}

impl RunData {
    /// Reads `dir`. A directory with none of the output files is an error;
    /// a missing file among them is not (a run with no failures has none).
    pub fn load(dir: &Path) -> anyhow::Result<RunData> {
        let mut data = RunData {
            dir: dir.to_path_buf(),
            summary: read_json(&dir.join(checkpoint::SUMMARY))?,
            manifest: read_json(&dir.join(manifest::FILE))?,
            context: read_json(&dir.join(CONTEXT))?,
            ..RunData::default()
        };
        let mut found = data.summary.is_some();
        for (name, ok) in [(sink::RESULTS, true), (sink::FAILURES, false)] {
            let path = dir.join(name);
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
            };
            found = true;
            for line in std::io::BufReader::new(file).lines() {
                let line = line.with_context(|| format!("{}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Line>(&line) {
                    Ok(l) => data.rows.push(l.into_row(ok)),
                    Err(_) => data.unreadable += 1,
                }
            }
        }
        if !found {
            anyhow::bail!(
                "{}: no results.jsonl, failures.jsonl or summary.json: not a bedrock-batch output directory",
                dir.display()
            );
        }
        Ok(data)
    }
}

fn read_json(path: &Path) -> anyhow::Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{}: not valid JSON", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

/// A line of either file, every field optional.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Line {
    id: String,
    model: String,
    sample: Option<Value>,
    output: String,
    error: Option<LineError>,
    source: Option<LineSource>,
    usage: Option<LineUsage>,
    latency_ms: Option<u64>,
    ttft_ms: Option<u64>,
    throttles: u32,
    started_at: Option<String>,
    finished_at: Option<String>,
    cost_usd: Option<f64>,
    service_tier: Option<String>,
    scores: Option<Map<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LineError {
    kind: String,
    code: String,
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LineSource {
    file: String,
    line: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LineUsage {
    input_tokens: u64,
    output_tokens: u64,
}

impl Line {
    fn into_row(self, ok: bool) -> Row {
        let source = self.source.unwrap_or_default();
        let usage = self.usage.unwrap_or_default();
        let time = |t: &Option<String>| t.as_deref().and_then(crate::time::parse_epoch_ms);
        Row {
            started_ms: time(&self.started_at),
            finished_ms: time(&self.finished_at),
            id: self.id,
            model: self.model,
            // Every line carries its sample now, 1 for a job of one sample:
            // sample 1 reads as none, so such a job shows (and compares with
            // a run written before samples existed) as it always did.
            sample: self
                .sample
                .map(|v| match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .filter(|s| s != "1"),
            ok,
            answer_hash: answer_hash(&self.output),
            output: page::clip(&self.output),
            error: self.error.map(|e| RowError {
                kind: e.kind,
                code: e.code,
                message: e.message,
            }),
            file: source.file,
            line: source.line,
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            throttles: self.throttles,
            cost_usd: self.cost_usd,
            service_tier: self.service_tier,
            scores: self
                .scores
                .unwrap_or_default()
                .into_iter()
                .map(|(name, v)| (name, score(&v)))
                .collect(),
        }
    }
}

pub fn answer_hash(output: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    output.trim().hash(&mut h);
    h.finish()
}

/// A scorer's value as the line writes it: a bool, a number, a string, or an
/// object with `pass`/`passed` and maybe `score`.
fn score(v: &Value) -> Score {
    match v {
        Value::Bool(b) => Score {
            pass: Some(*b),
            text: if *b { "pass" } else { "fail" }.into(),
        },
        Value::Object(o) => {
            let pass = o
                .get("pass")
                .or_else(|| o.get("passed"))
                .and_then(Value::as_bool);
            let text = match (o.get("score"), pass) {
                (Some(s), _) => s.to_string(),
                (None, Some(true)) => "pass".into(),
                (None, Some(false)) => "fail".into(),
                (None, None) => v.to_string(),
            };
            Score { pass, text }
        }
        Value::String(s) => Score {
            pass: None,
            text: s.clone(),
        },
        other => Score {
            pass: None,
            text: other.to_string(),
        },
    }
}

/// Rows grouped by id, in input order (file, then line): what the
/// side-by-side view and `--compare` walk.
pub fn by_id(rows: &[Row]) -> Vec<(&str, Vec<&Row>)> {
    let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups.entry(&r.id).or_default().push(r);
    }
    let mut out: Vec<(&str, Vec<&Row>)> = groups.into_iter().collect();
    // Each group's first place in the inputs, computed once per group.
    out.sort_by_cached_key(|(id, g)| {
        let first = g.iter().map(|r| (r.file.as_str(), r.line)).min();
        (first.map(|(f, l)| (f.to_string(), l)), id.to_string())
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_todays_lines_and_tomorrows_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("results.jsonl"),
            concat!(
                r#"{"id":"a","model":"m1","output":" hi ","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2},"latency_ms":40,"attempts":2,"source":{"file":"p.csv","line":2},"meta":{},"started_at":"2026-11-30T16:00:00.000Z","finished_at":"2026-11-30T16:00:00.250Z","throttles":1}"#,
                "\n",
                r#"{"id":"a","model":"m2","sample":1,"output":"hi","usage":{"input_tokens":3,"output_tokens":2},"latency_ms":50,"attempts":1,"source":{"file":"p.csv","line":2},"meta":{},"cost_usd":0.002,"service_tier":"flex","ttft_ms":12,"scores":{"exact":false,"judge":{"pass":true,"score":0.9}}}"#,
                "\n{\"id\":\"torn\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("failures.jsonl"),
            r#"{"id":"b","model":"m1","error":{"kind":"input","code":"InvalidRow","message":"p.csv: line 3: empty prompt"},"attempts":0,"source":{"file":"p.csv","line":3},"meta":{}}"#,
        )
        .unwrap();
        let data = RunData::load(dir.path()).unwrap();
        assert_eq!(data.rows.len(), 3);
        assert_eq!(data.unreadable, 1);
        let a = &data.rows[0];
        assert_eq!((a.output.as_str(), a.throttles), (" hi ", 1));
        assert_eq!(a.answer_hash, data.rows[1].answer_hash, "compared trimmed");
        assert_eq!(a.finished_ms.unwrap() - a.started_ms.unwrap(), 250);
        let b = &data.rows[1];
        assert_eq!(b.sample, None, "sample 1 is the sample of a one-sample job");
        assert_eq!(
            (b.cost_usd, b.service_tier.as_deref(), b.ttft_ms),
            (Some(0.002), Some("flex"), Some(12))
        );
        assert_eq!(b.scores[0].1.pass, Some(false));
        assert_eq!(
            b.scores[1].1,
            Score {
                pass: Some(true),
                text: "0.9".into()
            }
        );
        assert!(b.failed_a_scorer());
        let f = &data.rows[2];
        assert!(!f.ok);
        assert_eq!(f.error.as_ref().unwrap().code, "InvalidRow");
        let groups = by_id(&data.rows);
        assert_eq!(
            groups.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn a_directory_without_outputs_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = RunData::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("not a bedrock-batch output directory"),
            "{err}"
        );
    }
}
