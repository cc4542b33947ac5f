//! One emulated model invocation job from Submitted to its end: validation
//! of its input files, the queue, each record answered by the emulator's
//! model, and the outputs Bedrock writes.
//!
//! Inputs are read from, and outputs written to, the directory the
//! emulator's S3 serves (`S3Store::root`): `s3://B/K` is
//! `ROOT/B/K`. Outputs follow Bedrock's layout: `OUTPUT_URI/JOB_ID/FILE.out`
//! for each input file (one line per processed record, `modelOutput` or
//! `error`) and `OUTPUT_URI/JOB_ID/manifest.json.out` with the totals.
//!
//! What decides the end: a job whose queue outlasts its timeout is Expired;
//! a job whose records outlast it is PartiallyCompleted (the records done so
//! far are written); StopModelInvocationJob makes it Stopped (likewise); a
//! validation failure (too few or too many records, a line that is not a
//! record, no input) makes it Failed with Bedrock's message. A record's
//! prompt markers (`[[emu:KIND]]`) fail that record alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use super::conversation::Conversation;
use super::family::{converse_stop, Family};
use super::invocation_job::{object_path, JobState, Status};
use super::marker::{Forced, Markers};
use super::model;
use super::server::Server;

/// One input file of a job: where its records came from and where its output goes.
struct InputFile {
    name: String,
    records: Vec<Value>,
}

fn lock(job: &Mutex<JobState>) -> std::sync::MutexGuard<'_, JobState> {
    job.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the job to its end; every exit leaves it in a final status.
pub async fn run(server: Arc<Server>, job: Arc<Mutex<JobState>>) {
    let cfg = server.cfg.invocation_jobs.clone();
    let (stop, input_uri, deadline) = {
        let j = lock(&job);
        let left = j
            .expiration
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        (j.stop.clone(), j.input_uri.clone(), Instant::now() + left)
    };
    // Submitted → Validating → Scheduled → InProgress, a third of the queue each.
    let step = cfg.queue / 3;
    if pause(&stop, step).await {
        return stopped(&server, &job, &[], &[]);
    }
    lock(&job).set_status(Status::Validating);
    let files = match read_inputs(server.s3.store().root(), &input_uri) {
        Ok(files) => files,
        Err(msg) => return fail(&job, msg),
    };
    let total: usize = files.iter().map(|f| f.records.len()).sum();
    if total < cfg.min_records {
        return fail(&job, format!(
            "The number of records in the input ({total}) is less than the minimum number of records per batch inference job ({}).",
            cfg.min_records
        ));
    }
    if total > cfg.max_records {
        return fail(&job, format!(
            "The number of records in the input ({total}) exceeds the maximum number of records per batch inference job ({}).",
            cfg.max_records
        ));
    }
    lock(&job).total = Some(total as u64);
    process(server, job, files, stop, deadline, step).await;
}

/// Scheduled → InProgress → a final status.
async fn process(
    server: Arc<Server>,
    job: Arc<Mutex<JobState>>,
    files: Vec<InputFile>,
    stop: tokio_util::sync::CancellationToken,
    deadline: Instant,
    step: std::time::Duration,
) {
    if pause(&stop, step).await {
        return stopped(&server, &job, &files, &[]);
    }
    lock(&job).set_status(Status::Scheduled);
    if Instant::now() + step > deadline {
        // Scheduled but never started within the timeout.
        tokio::time::sleep_until(deadline.into()).await;
        let mut j = lock(&job);
        j.message = Some("The job expired before it could start.".into());
        j.set_status(Status::Expired);
        return;
    }
    if pause(&stop, step).await {
        return stopped(&server, &job, &files, &[]);
    }
    lock(&job).set_status(Status::InProgress);
    let (model_id, converse) = {
        let j = lock(&job);
        (
            j.model_id.clone(),
            j.invocation_type.as_deref() == Some("Converse"),
        )
    };
    let record_time = server.cfg.invocation_jobs.record_time;
    let started = Instant::now();
    let mut outputs: Vec<Vec<Value>> = files.iter().map(|_| Vec::new()).collect();
    let mut n: u32 = 0;
    let mut timed_out = false;
    'files: for (fi, file) in files.iter().enumerate() {
        for record in &file.records {
            n += 1;
            let due = started + record_time * n;
            if due > deadline {
                timed_out = true;
                break 'files;
            }
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = stop.cancelled() => {}
                }
            }
            if stop.is_cancelled() {
                return stopped(&server, &job, &files, &outputs);
            }
            let out = answer(&model_id, converse, record);
            let mut j = lock(&job);
            j.processed += 1;
            if out.get("error").is_some() {
                j.error += 1;
            } else {
                j.success += 1;
            }
            drop(j);
            outputs[fi].push(out);
        }
    }
    let status = if timed_out {
        Status::PartiallyCompleted
    } else {
        Status::Completed
    };
    finish(&server, &job, &files, &outputs, status);
}

/// Sleeps `d` unless stopped first; true when stopped.
async fn pause(stop: &tokio_util::sync::CancellationToken, d: std::time::Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => stop.is_cancelled(),
        _ = stop.cancelled() => true,
    }
}

fn fail(job: &Mutex<JobState>, message: String) {
    let mut j = lock(job);
    j.message = Some(message);
    j.set_status(Status::Failed);
}

fn stopped(server: &Server, job: &Mutex<JobState>, files: &[InputFile], outputs: &[Vec<Value>]) {
    finish(server, job, files, outputs, Status::Stopped);
}

/// Writes each file's processed records and the manifest, then sets `status`.
fn finish(
    server: &Server,
    job: &Mutex<JobState>,
    files: &[InputFile],
    outputs: &[Vec<Value>],
    status: Status,
) {
    let (output_uri, id, total, processed, success, error) = {
        let j = lock(job);
        (
            j.output_uri.clone(),
            j.id.clone(),
            j.total.unwrap_or(0),
            j.processed,
            j.success,
            j.error,
        )
    };
    let written = (|| -> Result<(), String> {
        if files.is_empty() {
            return Ok(());
        }
        let root = server.s3.store().root();
        let base = format!("{}/{id}", output_uri.trim_end_matches('/'));
        let (mut tokens_in, mut tokens_out) = (0u64, 0u64);
        for (file, out) in files.iter().zip(outputs) {
            let mut text = String::new();
            for r in out {
                let (i, o) = usage_of(r);
                tokens_in += i;
                tokens_out += o;
                text.push_str(&r.to_string());
                text.push('\n');
            }
            write(root, &format!("{base}/{}.out", file.name), text.as_bytes())?;
        }
        let manifest = json!({
            "totalRecordCount": total,
            "processedRecordCount": processed,
            "successRecordCount": success,
            "errorRecordCount": error,
            "inputTokenCount": tokens_in,
            "outputTokenCount": tokens_out,
        });
        write(
            root,
            &format!("{base}/manifest.json.out"),
            manifest.to_string().as_bytes(),
        )
    })();
    let mut j = lock(job);
    match written {
        Ok(()) => {
            if status == Status::PartiallyCompleted {
                j.message =
                    Some("Not all records could be processed before the job timed out.".into());
            }
            j.set_status(status);
        }
        Err(e) => {
            j.message = Some(format!("Could not write the output: {e}"));
            j.set_status(Status::Failed);
        }
    }
}

fn write(root: &Path, uri: &str, bytes: &[u8]) -> Result<(), String> {
    let path = object_path(root, uri).ok_or_else(|| format!("{uri}: not a valid S3 URI"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{uri}: {e}"))?;
    }
    std::fs::write(&path, bytes).map_err(|e| format!("{uri}: {e}"))
}

/// Input and output token counts of one output record, whatever its format.
fn usage_of(r: &Value) -> (u64, u64) {
    let Some(o) = r.get("modelOutput") else {
        return (0, 0);
    };
    let n = |p: &str| o.pointer(p).and_then(Value::as_u64);
    let input = n("/usage/inputTokens")
        .or(n("/usage/input_tokens"))
        .or(n("/inputTextTokenCount"))
        .or(n("/prompt_token_count"))
        .unwrap_or(0);
    let output = n("/usage/outputTokens")
        .or(n("/usage/output_tokens"))
        .or(n("/generation_token_count"))
        .unwrap_or(0);
    (input, output)
}

/// The `.jsonl` files the job's input URI names (one object, or every
/// `.jsonl` under a prefix), each with its records, or the validation
/// failure Bedrock reports.
fn read_inputs(root: &Path, uri: &str) -> Result<Vec<InputFile>, String> {
    let path = object_path(root, uri).ok_or_else(|| format!("{uri} is not a valid S3 URI."))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    if path.is_file() {
        paths.push(path);
    } else if path.is_dir() {
        collect_jsonl(&path, &mut paths);
        paths.sort();
    }
    if paths.is_empty() {
        return Err(format!(
            "No .jsonl input file was found at {uri}, or the service role cannot read it."
        ));
    }
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.ends_with(".jsonl") {
            return Err(format!("The input file {name} does not end in .jsonl."));
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{name}: {e}"))?;
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v.get("modelInput").is_some_and(Value::is_object) => records.push(v),
                _ => {
                    return Err(format!(
                        "Line {} of {name} is not a valid record: each line must be a JSON object with a recordId and a modelInput object.",
                        i + 1
                    ))
                }
            }
        }
        files.push(InputFile { name, records });
    }
    Ok(files)
}

fn collect_jsonl(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_jsonl(&p, out);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
}

/// One record answered: `{recordId, modelInput, modelOutput}` or `{…, error}`.
fn answer(model_id: &str, converse: bool, record: &Value) -> Value {
    let mut out = json!({
        "recordId": record.get("recordId").cloned().unwrap_or(Value::Null),
        "modelInput": record["modelInput"],
    });
    if out["recordId"].is_null() {
        // Bedrock adds an id to a record that has none.
        out["recordId"] = format!(
            "{:011}",
            model::fnv1a(record.to_string().as_bytes()) % 100_000_000_000
        )
        .into();
    }
    match model_output(model_id, converse, &record["modelInput"]) {
        Ok(v) => out["modelOutput"] = v,
        Err((code, message)) => {
            out["error"] = json!({ "errorCode": code, "errorMessage": message });
        }
    }
    out
}

fn model_output(model_id: &str, converse: bool, input: &Value) -> Result<Value, (u16, String)> {
    let body = input.to_string();
    let (conv, family): (Conversation, Option<Family>) = if converse {
        (
            Conversation::from_converse(body.as_bytes()).map_err(|m| (400, m))?,
            None,
        )
    } else {
        let family = Family::of_model(model_id).ok_or_else(|| {
            (
                400,
                format!("The emulator does not implement the native request format of {model_id}; use Converse."),
            )
        })?;
        let n = family.parse(body.as_bytes()).map_err(|m| (400, m))?;
        (n.conversation, Some(n.family))
    };
    let markers = Markers::parse(&conv.prompt)
        .map_err(|bad| (400, format!("Unknown emulator marker {bad}")))?;
    if let Some((forced, _)) = markers.error {
        let f = match forced {
            Forced::Fault(f) => f,
            // No connection to drop inside a batch job: the record fails.
            Forced::Drop | Forced::Hang => super::fault::Fault::InternalServer,
        };
        return Err((f.status(), f.message().to_owned()));
    }
    let gen = model::generate(
        &conv.prompt,
        markers.tokens,
        conv.max_tokens,
        &conv.stop_sequences,
    );
    Ok(match family {
        None => json!({
            "output": {"message": {"role": "assistant", "content": [{"text": gen.text}]}},
            "stopReason": converse_stop(gen.stop),
            "usage": {
                "inputTokens": conv.input_tokens,
                "outputTokens": gen.output_tokens,
                "totalTokens": conv.input_tokens + gen.output_tokens,
            },
            "metrics": {"latencyMs": 0},
        }),
        Some(f) => f.render(
            model_id,
            conv.input_tokens,
            &gen,
            model::fnv1a(body.as_bytes()),
        ),
    })
}
