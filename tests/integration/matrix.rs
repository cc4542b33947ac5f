//! A matrix of models and samples through the real binary: every (id,
//! model, sample) written exactly once, kill -9 and resume paying nothing
//! twice beyond the calls in flight, a model added to a finished job sending
//! only its own units, a model removed (or fewer samples) refused, lines
//! written before samples existed resuming as sample 1, and a model
//! throttled hard by its own quota not holding up another.
//!
//! Not here: the per-model settings of a request (input/job.rs unit tests),
//! the manifest's comparison rules (output/manifest.rs unit tests).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bedrock_batch::emulator::{answer, Emulator};
use serde_json::Value;

use crate::cli_util::{
    assert_csv_answers, bedrock_calls, csv_prompt, csv_rows, csv_units, lines, read_jsonl,
    run_args, run_to_end, show, spawn_until, start_job, start_workspace, stderr_of, stop, units,
    MODEL, STOP_WITHIN,
};

const OTHER: &str = "amazon.nova-lite-v1:0";

/// Successful calls per (model, prompt).
fn paid(emu: &Emulator) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for r in bedrock_calls(emu) {
        if r.status == 200 {
            *m.entry((r.model.unwrap(), r.prompt.unwrap())).or_default() += 1;
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_models_two_samples_write_every_unit_exactly_once() {
    let (emu, ws) = start_job(20, 0).await;
    // A row whose `model` column pins it to one model: its samples only.
    ws.write(
        "pinned.jsonl",
        format!("{{\"id\": \"pin\", \"prompt\": \"Pinned row\", \"model\": \"{OTHER}\"}}\n"),
    );
    let mut args = run_args(&[MODEL, OTHER], "40");
    args.extend(["--samples", "2", "--input", "pinned.jsonl"]);
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let mut want = csv_units(20, &[MODEL, OTHER], 2);
    want.insert(("pin".into(), OTHER.into(), 1));
    want.insert(("pin".into(), OTHER.into(), 2));
    assert_eq!(units(&ws, "results.jsonl"), want);
    assert!(units(&ws, "failures.jsonl").is_empty());
    for r in ws.results() {
        let id = r["id"].as_str().unwrap();
        let p = match id {
            "pin" => "Pinned row".to_string(),
            _ => csv_prompt(id[1..].parse().unwrap()),
        };
        assert_eq!(r["output"], answer(&p), "{id}: its own prompt's answer");
    }
    // Each model was asked each prompt once per sample, and nothing more.
    let paid = paid(&emu);
    assert_eq!(paid.values().sum::<u64>(), 82);
    assert!(paid.values().all(|&n| n == 2), "{paid:?}");
    assert_eq!(emu.stats().requests, 82);

    let summary = ws.summary();
    assert_eq!(
        summary["total"], 82,
        "rows × models × samples, pinned × samples"
    );
    assert_eq!(summary["succeeded"], 82);
    assert_eq!(summary["unfinished"], 0);
    let by_model = &summary["cost"]["by_model"];
    assert_eq!(by_model[MODEL]["rows"], 40);
    assert_eq!(by_model[OTHER]["rows"], 42);
    assert_eq!(by_model[OTHER]["failed"], 0);
    assert!(by_model[MODEL]["latency_ms"]["p50"].as_u64().unwrap() >= 1);
    // The closing table: one row per model.
    let text = String::from_utf8_lossy(&out.stdout);
    let row = |m: &str| {
        let start = format!("| {m} ");
        text.lines()
            .find(|l| l.starts_with(&start))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row(OTHER).contains("|   42 |  100.0% |      0 |"), "{text}");
    assert!(row(MODEL).contains("|   40 |  100.0% |      0 |"), "{text}");

    // Run again: everything is done, nothing is sent.
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 82);
    assert_eq!(ws.summary()["this_run"]["skipped"], 82);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_added_sends_only_its_units_and_one_removed_is_refused() {
    let (emu, ws) = start_job(10, 0).await;
    let one = run_args(&[MODEL], "40");
    let out = ws.run(&one);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 10);

    // Lines written before samples existed have no `sample`: they are sample 1.
    let results = ws.out().join("results.jsonl");
    let old: Vec<String> = read_jsonl(&results)
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("sample");
            r.to_string()
        })
        .collect();
    std::fs::write(&results, old.join("\n") + "\n").unwrap();
    let out = ws.run(&one);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        emu.stats().requests,
        10,
        "an old one-model directory resumes as done"
    );

    // A second model: only its 10 units are sent.
    let two = run_args(&[MODEL, OTHER], "40");
    let out = ws.run(&two);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 20);
    let other_calls = bedrock_calls(&emu)
        .iter()
        .filter(|r| r.model.as_deref() == Some(OTHER))
        .count();
    assert_eq!(other_calls, 10);
    let summary = ws.summary();
    assert_eq!(
        (
            summary["succeeded"].clone(),
            summary["this_run"]["skipped"].clone()
        ),
        (20.into(), 10.into())
    );

    // A second sample of both: only the 20 sample-2 units.
    let mut two_samples = two.clone();
    two_samples.extend(["--samples", "2"]);
    let out = ws.run(&two_samples);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 40);
    let mut missing_sample: Vec<Value> = read_jsonl(&results);
    missing_sample.retain(|r| r.get("sample").is_none());
    assert_eq!(missing_sample.len(), 10, "old lines are left as they were");

    // Fewer samples, or a model removed: a changed job, refused (exit 2) before any call.
    let out = ws.run(&two);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds a different job (samples: 2 → 1)"),
        "{err}"
    );
    let mut only_other = run_args(&[OTHER], "40");
    only_other.extend(["--samples", "2"]);
    let out = ws.run(&only_other);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "holds a different job (models: {MODEL:?} removed)"
        )),
        "{err}"
    );
    assert!(err.contains("--fresh"), "{err}");
    assert_eq!(emu.stats().requests, 40, "nothing sent when refused");

    // --fresh starts the smaller job over.
    only_other.push("--fresh");
    let out = ws.run(&only_other);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 60);
    assert_eq!(units(&ws, "results.jsonl"), csv_units(10, &[OTHER], 2));
}

/// kill -9 mid-run, then resume: every unit once, each answer its own, and
/// no unit paid twice beyond those in flight at a kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_matrix_then_resume_writes_every_unit_once() {
    const ROWS: usize = 300;
    const CONCURRENCY: u64 = 4;
    let (emu, ws) = start_job(ROWS, 20).await;
    let mut args = run_args(&[MODEL, OTHER], "30");
    args.extend(["--samples", "2", "--concurrency", "4"]);
    let child = spawn_until(&ws, "first", &args, "a few hundred units written", || {
        lines(&ws, "results.jsonl") >= 200
    })
    .await;
    let status = stop(child, libc::SIGKILL, STOP_WITHIN).await;
    assert_eq!(status.code(), None, "killed, not exited");
    let written = lines(&ws, "results.jsonl");
    assert!(
        written < ROWS * 4,
        "killed before the end ({written} lines)"
    );
    // Both models have partial results: the lanes run side by side.
    let early: BTreeSet<String> = units(&ws, "results.jsonl")
        .into_iter()
        .map(|u| u.1)
        .collect();
    assert_eq!(
        early.len(),
        2,
        "both models answered before the kill: {early:?}"
    );

    let (resumed, resume_err) = run_to_end(&ws, "resume", &args).await;
    assert_eq!(resumed, Some(0), "{resume_err}");
    assert_eq!(
        units(&ws, "results.jsonl"),
        csv_units(ROWS, &[MODEL, OTHER], 2)
    );
    assert_csv_answers(&ws.results());
    let paid = paid(&emu);
    assert_eq!(paid.len(), ROWS * 2, "every (model, prompt) answered");
    let twice: u64 = paid.values().map(|n| n - 2).sum();
    // Each lane has its own `concurrency` permits: 2 lanes × 4 in flight.
    assert!(twice <= 2 * CONCURRENCY, "{twice} units paid twice");
    let summary = ws.summary();
    assert_eq!(summary["succeeded"], (ROWS * 4) as u64);
    assert_eq!(summary["this_run"]["skipped"], written as u64);
    // `by_model` is the whole job's (both runs), `cost.by_model` this run's.
    let results = ws.results();
    for model in [MODEL, OTHER] {
        let job = &summary["by_model"][model];
        assert_eq!(job["succeeded"], (ROWS * 2) as u64, "{summary}");
        assert_eq!(job["failed"], 0, "{summary}");
        let input: u64 = results
            .iter()
            .filter(|r| r["model"] == model)
            .map(|r| r["usage"]["input_tokens"].as_u64().unwrap())
            .sum();
        assert_eq!(job["tokens"]["input"], input, "{summary}");
        assert!(job["latency_ms"]["p50"].as_u64().unwrap() >= 1, "{summary}");
    }
    let this_run: u64 = [MODEL, OTHER]
        .iter()
        .map(|m| summary["cost"]["by_model"][m]["rows"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(this_run, (ROWS * 4 - written) as u64, "{summary}");
}

/// One model throttled hard by its own quota: the other's units all finish
/// while the throttled one has done only a few, not interleaved at its pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_model_does_not_hold_up_the_other() {
    const ROWS: usize = 40;
    let (emu, ws) = start_job(ROWS, 10).await;
    // 60 requests a minute with 5 seconds of burst: 5 at once, then 1 a second.
    emu.set_model_quota(OTHER, Some(60), None);
    let mut args = run_args(&[OTHER, MODEL], "30");
    args.extend(["--concurrency", "4", "--grace-period-secs", "1"]);
    let count = |model: &str| {
        read_jsonl(&ws.out().join("results.jsonl"))
            .iter()
            .filter(|r| r["model"] == model)
            .count()
    };
    let child = spawn_until(&ws, "run", &args, "the unthrottled model's units", || {
        count(MODEL) == ROWS
    })
    .await;
    let slow_done = count(OTHER);
    // With a 1 s grace period, 30 s is generous.
    let status = stop(child, libc::SIGINT, Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(130), "{}", stderr_of(&ws, "run"));
    assert!(
        slow_done < ROWS / 2,
        "the fast model finished while the throttled one had {slow_done} of {ROWS}"
    );
    // The throttled model was refused by its quota; the other never was.
    let throttled = |model: &str| {
        emu.requests()
            .iter()
            .filter(|r| r.model.as_deref() == Some(model) && r.status == 429)
            .count()
    };
    assert_eq!(throttled(MODEL), 0);
    assert!(
        throttled(OTHER) > 0,
        "the quota did throttle the slow model"
    );
}

/// `--retry-failures` goes by unit: only the (id, model, sample) that
/// failed is sent again, not the row's other units.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failures_sends_only_the_failed_units() {
    let (emu, ws) = start_workspace(0).await;
    // The emulator fails the first call of each marked prompt (whichever
    // model sends it first) with a 500; with one attempt that unit fails.
    let mut csv = String::from("id,prompt\n");
    for i in 0..12 {
        let mark = if i % 3 == 0 { " [[emu:server*1]]" } else { "" };
        csv.push_str(&format!("r{i:05},{}{mark}\n", csv_prompt(i)));
    }
    ws.write("p.csv", csv);
    let mut args = run_args(&[MODEL, OTHER], "30");
    args.extend(["--max-attempts", "1"]);
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let failed = units(&ws, "failures.jsonl");
    assert_eq!(failed.len(), 4, "one unit of each marked row: {failed:?}");
    assert_eq!(emu.stats().requests, 24);

    let mut retry = args.clone();
    retry.extend(["--retry-failures", "server"]);
    let out = ws.run(&retry);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 28, "only the 4 failed units");
    assert!(units(&ws, "failures.jsonl").is_empty());
    let answered = units(&ws, "results.jsonl");
    assert_eq!(answered, csv_units(12, &[MODEL, OTHER], 1));
    for unit in &failed {
        assert!(answered.contains(unit), "{unit:?} answered on retry");
    }
}

/// A prompt edited after a matrix run: the row is named once, and resend
/// sends each of its units again, moving their old lines aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_row_is_refused_once_and_resent_for_every_model() {
    let (emu, ws) = start_job(5, 0).await;
    let mut args = run_args(&[MODEL, OTHER], "30");
    args.extend(["--samples", "2"]);
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 20);
    ws.write(
        "p.csv",
        csv_rows(5).replace("Question number 3:", "Question number 3 (edited):"),
    );

    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 row(s) changed since they were answered: `r00003`"),
        "{err}"
    );

    let mut resend = args.clone();
    resend.extend(["--on-changed", "resend"]);
    let out = ws.run(&resend);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 24, "the row's 4 units, nothing else");
    assert_eq!(
        units(&ws, "results.jsonl"),
        csv_units(5, &[MODEL, OTHER], 2)
    );
    assert_eq!(read_jsonl(&ws.out().join("superseded.jsonl")).len(), 4);
}
