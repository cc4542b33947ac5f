//! A finished job's outputs → `results.jsonl` and `failures.jsonl` lines in
//! `run`'s schema, each marked `"engine": "batch"`.
//!
//! Each `.jsonl.out` line is mapped back through the part's `map.jsonl` to its
//! row (id, file and line, meta, fingerprint). `modelOutput` becomes a
//! success with the usage it reports and its cost at the model's batch price
//! (`cost/prices.toml`; no batch price → `cost_usd: null`, never a guess);
//! `error` becomes a failure whose kind follows Bedrock's `errorCode`. Records
//! the job never ran are written nowhere: they stay unfinished and the next
//! `submit`, `run` or `--replay on-demand` sends them. A row already in
//! either file (a collect cut short and repeated) is not written twice. The
//! manifest's totals are checked against what was mapped.

use crate::input::matrix::FIRST_SAMPLE;
use std::collections::HashMap;
use std::io::BufRead;

use serde_json::Value;

use super::records::Mapped;
use super::state::{Collected, Part};
use crate::bedrock::native;
use crate::bedrock::request::Answer;
use crate::cost::price::PriceTable;
use crate::outcome::{ErrorInfo, ErrorKind, Failure, Success, Times, Usage};
use crate::output::checkpoint::IdSet;

/// Where collected lines go: the output directory's two files, open for appending.
pub(crate) struct Sink<'a> {
    pub(crate) results: &'a mut std::fs::File,
    pub(crate) failures: &'a mut std::fs::File,
    /// Ids already in either file.
    pub(crate) done: &'a IdSet,
    pub(crate) prices: &'a PriceTable,
    pub(crate) include_prompt: bool,
}

/// What one part's outputs held, beyond the counts written.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) collected: Collected,
    /// The manifest disagreed with the lines found (said in words).
    pub(crate) mismatch: Option<String>,
}

/// Reads the part's mapping (`map.jsonl`): record id → row.
pub(crate) fn read_map(
    part: &Part,
    output_dir: &std::path::Path,
) -> anyhow::Result<HashMap<String, Mapped>> {
    let path = part.dir(output_dir).join("map.jsonl");
    let f = std::fs::File::open(&path).map_err(|e| {
        anyhow::anyhow!("{}: cannot read the record-id mapping: {e}", path.display())
    })?;
    let mut map = HashMap::with_capacity(part.records as usize);
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let m: Mapped = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", path.display(), i + 1))?;
        map.insert(m.record_id.clone(), m);
    }
    Ok(map)
}

/// Writes the lines of one output file (`bytes`); counts go into `report`.
pub(crate) fn lines(
    bytes: &[u8],
    file: &str,
    map: &mut HashMap<String, Mapped>,
    sink: &mut Sink<'_>,
    converse: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let finished = Some(crate::time::rfc3339_ms_now());
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| anyhow::anyhow!("{file}: line {}: not JSON: {e}", i + 1))?;
        let Some(record_id) = v.get("recordId").and_then(Value::as_str) else {
            anyhow::bail!("{file}: line {}: no recordId", i + 1);
        };
        // Removed, so a record listed twice is written once.
        let Some(row) = map.remove(record_id) else {
            tracing::warn!(
                "{file}: line {}: record {record_id:?} is not one this part sent; ignored",
                i + 1
            );
            continue;
        };
        // The done set holds units (id, model, sample); batch sends sample 1.
        let unit = crate::input::matrix::unit_key(&row.id, &row.model, FIRST_SAMPLE);
        if sink.done.contains(&unit) {
            continue;
        }
        let times = Times {
            started_at: None,
            finished_at: finished.clone(),
            throttles: 0,
        };
        if let Some(err) = v.get("error") {
            let code = err.get("errorCode").and_then(Value::as_u64).unwrap_or(0);
            let message = err
                .get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            write(
                sink.failures,
                &failure(row, kind_of(code), code.to_string(), message, times),
            )?;
            report.collected.failed += 1;
            continue;
        }
        let output = v.get("modelOutput").cloned().unwrap_or(Value::Null);
        let answer = match answer_of(&output, &row.model, converse) {
            Ok(a) => a,
            Err(e) => {
                let f = failure(row, ErrorKind::Model, "UnreadableResponse".into(), e, times);
                write(sink.failures, &f)?;
                report.collected.failed += 1;
                continue;
            }
        };
        let usage = crate::cost::spend::usage_of(&answer);
        let cost_usd = batch_cost(sink.prices, &row.model, &usage);
        let s = Success {
            id: row.id,
            model: row.model,
            sample: FIRST_SAMPLE,
            output: answer.text,
            output_json: None,
            scores: None,
            stop_reason: answer.stop_reason,
            usage,
            cost_usd,
            service_tier: None,
            latency_ms: 0,
            ttft_ms: None,
            output_tokens_per_sec: None,
            attempts: 1,
            source: row.source,
            meta: row.meta,
            prompt: if sink.include_prompt {
                row.prompt
            } else {
                None
            },
            times,
            fingerprint: Some(row.fingerprint),
        };
        write(sink.results, &s)?;
        report.collected.succeeded += 1;
    }
    Ok(())
}

/// A record's failures line: one attempt, Bedrock's answer as the error.
fn failure(row: Mapped, kind: ErrorKind, code: String, message: String, times: Times) -> Failure {
    Failure {
        id: row.id,
        model: row.model,
        sample: FIRST_SAMPLE,
        output: None,
        usage: None,
        cost_usd: None,
        error: ErrorInfo {
            kind,
            code,
            message,
        },
        attempts: 1,
        source: row.source,
        meta: row.meta,
        fingerprint: Some(row.fingerprint),
        times,
    }
}

/// A line in `run`'s schema plus `"engine": "batch"`.
fn write<T: serde::Serialize>(file: &mut std::fs::File, row: &T) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(row)?;
    if let Value::Object(o) = &mut v {
        o.insert("engine".into(), "batch".into());
    }
    crate::output::fs::write_line(file, &v)
}

/// A record's answer: a Converse response body, or the model's native one.
fn answer_of(output: &Value, model: &str, converse: bool) -> Result<Answer, String> {
    if converse {
        let text = output
            .pointer("/output/message/content")
            .and_then(Value::as_array)
            .ok_or("modelOutput has no output.message.content")?
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("");
        let n = |p: &str| output.pointer(p).and_then(Value::as_u64);
        return Ok(Answer {
            text,
            stop_reason: output
                .get("stopReason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            input_tokens: n("/usage/inputTokens").unwrap_or(0),
            output_tokens: n("/usage/outputTokens").unwrap_or(0),
            cache_read_input_tokens: n("/usage/cacheReadInputTokens"),
            cache_write_input_tokens: n("/usage/cacheWriteInputTokens"),
            ..Answer::default()
        });
    }
    let bytes = serde_json::to_vec(output).map_err(|e| e.to_string())?;
    match native::family(model) {
        Some(f) => native::parse_response(f, &bytes),
        None => native::parse_any(&bytes),
    }
    .map_err(|e| e.to_string())
}

/// The cost at the model's batch price (`Found::batch_cost`, which the
/// job's bill prices unrecorded batch lines with too).
pub(crate) fn batch_cost(prices: &PriceTable, model: &str, u: &Usage) -> Option<f64> {
    prices
        .find(model)?
        .batch_cost(&crate::cost::spend::tokens(u))
}

/// Bedrock's `errorCode` (an HTTP status) as one of our kinds.
pub(crate) fn kind_of(code: u64) -> ErrorKind {
    match code {
        400 | 413 | 422 => ErrorKind::Validation,
        401 | 403 => ErrorKind::AccessDenied,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        429 => ErrorKind::Throttled,
        424 => ErrorKind::Model,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Model,
    }
}

/// Compares the job's `manifest.json.out` with the lines mapped.
pub(crate) fn check_manifest(manifest: &[u8], found: u64, report: &mut Report) {
    let Ok(m) = serde_json::from_slice::<Value>(manifest) else {
        report.mismatch = Some("manifest.json.out is not JSON".into());
        return;
    };
    let processed = m.get("processedRecordCount").and_then(Value::as_u64);
    if processed != Some(found) {
        report.mismatch = Some(format!(
            "manifest.json.out says {} records were processed, the output files hold {found}",
            processed.map_or("no number of".into(), |n| n.to_string())
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        assert_eq!(kind_of(400), ErrorKind::Validation);
        assert_eq!(kind_of(429), ErrorKind::Throttled);
        assert_eq!(kind_of(503), ErrorKind::Server);
        assert_eq!(kind_of(424), ErrorKind::Model);
    }

    #[test]
    fn a_converse_output_reads_like_a_converse_answer() {
        let out = serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 7, "outputTokens": 2, "totalTokens": 9},
        });
        let a = answer_of(&out, "m", true).unwrap();
        assert_eq!(
            (a.text.as_str(), a.input_tokens, a.output_tokens),
            ("hi", 7, 2)
        );
        assert!(answer_of(&serde_json::json!({}), "m", true).is_err());
    }

    #[test]
    fn no_batch_price_means_no_cost() {
        let prices = PriceTable::built_in();
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            ..Usage::default()
        };
        assert_eq!(batch_cost(&prices, "no.such-model-v1", &u), None);
    }
}
