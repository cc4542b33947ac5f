//! `stream = true`: ConverseStream through the real SDK against the emulator —
//! time to first token, exception frames mid-answer, and cut streams.

use std::collections::BTreeSet;

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseStreamOutput, Message,
};
use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};
use serde_json::Value;

use crate::cli_util::{show, Workspace, MODEL};
use crate::util::{bedrock_client, quick_retries, static_credentials};

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

fn by_id<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_rows_carry_time_to_first_token_and_output_rate() {
    let emu = emulator(EmulatorConfig {
        latency_ms: 150,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "in.csv",
        "id,prompt\nr1,What is two plus two today\nr2,Name three colours of the rainbow\nr3,Say hello [[emu:tokens=40]]\n",
    );
    let out = ws.run(&["--model", MODEL, "--input", "in.csv", "--stream"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let results = ws.results();
    assert_eq!(results.len(), 3);
    for r in &results {
        let prompt = match r["id"].as_str().unwrap() {
            "r1" => "What is two plus two today",
            "r2" => "Name three colours of the rainbow",
            _ => "Say hello [[emu:tokens=40]]",
        };
        if r["id"] != "r3" {
            assert_eq!(
                r["output"],
                answer(prompt),
                "the whole answer, deltas joined"
            );
        }
        assert_eq!(r["stop_reason"], "end_turn");
        let ttft = r["ttft_ms"].as_u64().expect("ttft_ms");
        let latency = r["latency_ms"].as_u64().unwrap();
        // The emulator waits 150 ms before the first frame; the first delta
        // cannot come sooner, nor after the whole call.
        assert!(ttft >= 150, "{r}");
        assert!(ttft <= latency, "{r}");
        let tokens = r["usage"]["output_tokens"].as_u64().unwrap();
        assert!(tokens > 0);
        let rate = r["output_tokens_per_sec"].as_f64().expect("rate");
        let want = tokens as f64 * 1000.0 / latency as f64;
        assert!((rate - want).abs() <= 0.05 + 1e-9, "{rate} vs {want}: {r}");
    }
    assert_eq!(by_id(&results, "r3")["usage"]["output_tokens"], 40);

    let s = ws.summary();
    let ttft = &s["this_run"]["ttft_ms"];
    assert!(ttft["p50"].as_u64().unwrap() >= 150, "{s}");
    assert!(ttft["p99"].as_u64().unwrap() >= ttft["p50"].as_u64().unwrap());
    assert_eq!(
        s["ttft_ms"], *ttft,
        "one run: the job's figures are the run's"
    );
    assert!(s["output_tokens_per_sec"]["p50"].as_f64().unwrap() > 0.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("streamed: time to first token p50"),
        "{stdout}"
    );

    // A rerun sends nothing; the job's figures come from the lines on disk.
    let again = ws.run(&["--model", MODEL, "--input", "in.csv", "--stream"]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    let s2 = ws.summary();
    assert_eq!(s2["this_run"]["skipped"], 3);
    assert!(s2["this_run"].get("ttft_ms").is_none(), "{s2}");
    assert_eq!(s2["ttft_ms"], s["ttft_ms"]);
    assert_eq!(s2["output_tokens_per_sec"], s["output_tokens_per_sec"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stream_lines_and_summary_have_no_stream_fields() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", "id,prompt\nr1,Hello there\n");
    let out = ws.run(&["--model", MODEL, "--input", "in.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = &ws.results()[0];
    assert!(r.get("ttft_ms").is_none() && r.get("output_tokens_per_sec").is_none());
    let s = ws.summary();
    assert!(s.get("ttft_ms").is_none() && s["this_run"].get("ttft_ms").is_none());
    assert_eq!(emu.stats().requests, 1);
}

/// Each in-stream exception, arriving after part of the answer, ends its row
/// as its HTTP twin would: the same kind, code and number of attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_in_stream_exception_is_judged_like_its_http_twin() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    let kinds = ["throttle", "server", "unavailable", "validation"];
    let mut csv = String::from("id,prompt\n");
    for k in kinds {
        csv.push_str(&format!("http_{k},always fails the same way [[emu:{k}]]\n"));
        csv.push_str(&format!(
            "stream_{k},always fails the same way [[emu:stream_{k}]]\n"
        ));
    }
    csv.push_str("stream_model,the model stream breaks here [[emu:stream_model_stream_error]]\n");
    ws.write("in.csv", csv);
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "in.csv",
        "--stream",
        "--max-attempts",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(ws.results().is_empty(), "no partial answer is a result");
    let failures = ws.failures();
    assert_eq!(failures.len(), 9);
    let verdict = |id: &str| {
        let f = by_id(&failures, id);
        (
            f["error"]["kind"].clone(),
            f["error"]["code"].clone(),
            f["attempts"].clone(),
        )
    };
    for (k, kind, code, attempts) in [
        ("throttle", "throttled", "ThrottlingException", 2),
        ("server", "server", "InternalServerException", 2),
        ("unavailable", "server", "ServiceUnavailableException", 2),
        ("validation", "validation", "ValidationException", 1),
    ] {
        let want = (Value::from(kind), Value::from(code), Value::from(attempts));
        assert_eq!(verdict(&format!("stream_{k}")), want, "stream_{k}");
        assert_eq!(verdict(&format!("http_{k}")), want, "http_{k}");
    }
    assert_eq!(
        verdict("stream_model"),
        (
            Value::from("model"),
            Value::from("ModelStreamErrorException"),
            Value::from(1)
        )
    );
    // The in-stream throttles count as throttles (and slow the limiter).
    let s = ws.summary();
    assert_eq!(s["this_run"]["throttles"]["requests"], 4, "{s}");
}

/// A stream broken mid-answer (an exception frame after some deltas, or the
/// body just ending) is retried as a whole; the line written is the whole
/// answer of the attempt that finished, never the partial one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_answer_is_retried_and_never_written_partially() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    let rows = [
        (
            "t1",
            "one two three four five six [[emu:stream_throttle*1]]",
            2,
        ),
        (
            "t2",
            "one two three four five six [[emu:stream_throttle_tokens*1]]",
            2,
        ),
        (
            "s1",
            "one two three four five six [[emu:stream_server*2]]",
            3,
        ),
        (
            "u1",
            "one two three four five six [[emu:stream_unavailable*1]]",
            2,
        ),
        ("c1", "one two three four five six [[emu:stream_cut*1]]", 2),
        ("ok", "one two three four five six", 1),
    ];
    let mut csv = String::from("id,prompt\n");
    for (id, prompt, _) in rows {
        csv.push_str(&format!("{id},{prompt}\n"));
    }
    ws.write("in.csv", csv);
    let out = ws.run(&["--model", MODEL, "--input", "in.csv", "--stream"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(ws.failures().is_empty());
    let results = ws.results();
    let ids: BTreeSet<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "one line per row");
    for (id, prompt, attempts) in rows {
        let r = by_id(&results, id);
        assert_eq!(r["output"], answer(prompt), "{id}: the whole answer");
        assert_eq!(r["attempts"], attempts, "{id}");
        assert!(r["ttft_ms"].as_u64().is_some(), "{id}");
    }
    let s = ws.summary();
    assert_eq!(s["this_run"]["retries"], 6, "{s}");
    assert_eq!(s["this_run"]["throttles"]["requests"], 1);
    assert_eq!(s["this_run"]["throttles"]["tokens"], 1);
    assert_eq!(emu.stats().requests, 12);
}

/// What the emulator sends for a `stream_KIND` marker, as the SDK reads it:
/// content deltas first, then the exception as `recv()`'s error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_breaks_a_stream_after_some_deltas() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = bedrock_client(&emu.url(), static_credentials(), quick_retries(1));
    let prompt = "one two three four five six [[emu:stream_model_stream_error]]";
    let mut out = client
        .converse_stream()
        .model_id(MODEL)
        .messages(
            Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::Text(prompt.into()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("the stream opens with 200");
    let mut text = String::new();
    let err = loop {
        match out.stream.recv().await {
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(d))) => {
                text.push_str(d.delta().unwrap().as_text().unwrap())
            }
            Ok(Some(ConverseStreamOutput::MessageStop(_))) => panic!("the stream was not broken"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("ended without the exception"),
            Err(e) => break e,
        }
    };
    let full = answer(prompt);
    assert!(!text.is_empty() && text.len() < full.len(), "{text:?}");
    assert!(full.starts_with(&text));
    let e = err.into_service_error();
    assert!(e.is_model_stream_error_exception(), "{e:?}");
}
