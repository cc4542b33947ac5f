//! Money end to end, through the real binary and SDK against the emulator:
//! costs per row and in the summary, unpriced models, the budget across a
//! resume, service tiers (sent, echoed, refused), prompt caching, and
//! `--dry-run` with CountTokens and a pilot (the ±10% target).

use std::collections::BTreeSet;

use bedrock_batch::emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

use crate::cli_util::{csv_rows, show, Workspace, MODEL};

const HAIKU_IN: f64 = 0.25;
const HAIKU_OUT: f64 = 1.25;
const SONNET_37: &str = "anthropic.claude-3-7-sonnet-20250219-v1:0";

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_is_priced_and_the_summary_adds_it_up() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(20));
    let out = ws.run(&["--model", MODEL, "--input", "in.csv", "--max-tokens", "64"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let mut total = 0.0;
    for r in ws.results() {
        let u = &r["usage"];
        let want = (f(&u["input_tokens"]) * HAIKU_IN + f(&u["output_tokens"]) * HAIKU_OUT) / 1e6;
        assert!((f(&r["cost_usd"]) - want).abs() < 1e-12, "{r}");
        assert!(r["service_tier"].is_null(), "{r}");
        assert!(u.get("cache_read_input_tokens").is_none(), "{r}");
        total += want;
    }
    let s = ws.summary();
    assert!((f(&s["cost"]["total_usd"]) - total).abs() < 1e-9, "{s}");
    assert!((f(&s["cost"]["job_total_usd"]) - total).abs() < 1e-9, "{s}");
    assert_eq!(s["cost"]["by_model"][MODEL]["rows"], 20);
    assert_eq!(s["cost"]["unpriced_models"], serde_json::json!([]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("cost: ${total:.4} this run")),
        "{stdout}"
    );

    // A resume adds nothing to this run and keeps the job's total.
    let again = ws.run(&["--model", MODEL, "--input", "in.csv", "--max-tokens", "64"]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    let s = ws.summary();
    assert_eq!(f(&s["cost"]["total_usd"]), 0.0);
    assert!((f(&s["cost"]["job_total_usd"]) - total).abs() < 1e-9, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_price_gets_null_and_is_listed() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(3));
    let model = "mistral.mistral-large-2407-v1:0";
    let out = ws.run(&["--model", model, "--input", "in.csv", "--max-tokens", "64"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(ws.results().iter().all(|r| r["cost_usd"].is_null()));
    let s = ws.summary();
    assert_eq!(s["cost"]["unpriced_models"], serde_json::json!([model]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("no price known").count(),
        1,
        "warned once: {stderr}"
    );

    // A budget with that model refuses to start: nothing is sent.
    let before = emu.stats().requests;
    let ws2 = Workspace::new(&emu.url());
    ws2.write("in.csv", csv_rows(3));
    let out = ws2.run(&[
        "--model",
        model,
        "--input",
        "in.csv",
        "--max-tokens",
        "64",
        "--max-cost",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no known price"),
        "{}",
        show(&out)
    );
    assert_eq!(emu.stats().requests, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_stops_within_the_cap_and_a_resume_with_more_finishes() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let rows = 60;
    let args = |cap: &str| -> Vec<String> {
        [
            "--model",
            MODEL,
            "--input",
            "in.csv",
            "--max-tokens",
            "64",
            "--concurrency",
            "4",
            "--max-cost",
            cap,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // The full job's cost, measured.
    let full = Workspace::new(&emu.url());
    full.write("in.csv", csv_rows(rows));
    let out = full.run(&["--model", MODEL, "--input", "in.csv", "--max-tokens", "64"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let job_cost = f(&full.summary()["cost"]["total_usd"]);

    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(rows));
    let cap = job_cost / 3.0;
    let a = args(&format!("{cap}"));
    let out = ws.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let s = ws.summary();
    assert_eq!(s["stopped_by"], "budget");
    let spent = f(&s["cost"]["job_total_usd"]);
    assert!(spent <= cap + 1e-12, "spent {spent} > cap {cap}");
    let first = ids(&ws.results());
    assert!(!first.is_empty() && first.len() < rows, "{}", first.len());
    assert!(ws.failures().is_empty(), "rows not sent are not failures");
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped by the budget"));

    // The cap is for the job: the same cap again sends at most what is left of it.
    let out = ws.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(f(&ws.summary()["cost"]["job_total_usd"]) <= cap + 1e-12);

    let b = args(&format!("{}", job_cost * 2.0));
    let out = ws.run(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let all = ids(&ws.results());
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), rows, "every row once");
    assert_eq!(unique.len(), rows, "no id twice");
    let total = f(&ws.summary()["cost"]["job_total_usd"]);
    assert!((total - job_cost).abs() < 1e-9, "{total} vs {job_cost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_tier_is_sent_echoed_and_priced() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(4));
    // No flex price is published in the built-in table: the job file adds one.
    ws.write(
        "job.toml",
        format!(
            "model = \"{MODEL}\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\nmax_tokens = 64\nservice_tier = \"flex\"\n\
             [prices.\"{MODEL}\"]\ninput = 0.25\noutput = 1.25\nflex_input = 0.125\nflex_output = 0.625\n"
        ),
    );
    let out = ws.run(&["--config", "job.toml", "--api", "converse"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for r in ws.results() {
        assert_eq!(r["service_tier"], "flex", "{r}");
        // The emulator holds a flex answer back (20 ms with no latency set),
        // as Bedrock queues flex behind standard: a lower bound, not a timing.
        assert!(r["latency_ms"].as_u64().unwrap() >= 20, "{r}");
        let u = &r["usage"];
        let want = (f(&u["input_tokens"]) * 0.125 + f(&u["output_tokens"]) * 0.625) / 1e6;
        assert!((f(&r["cost_usd"]) - want).abs() < 1e-12, "{r}");
    }
    assert!(emu
        .requests()
        .iter()
        .filter(|r| r.operation == "Converse")
        .all(|r| r.service_tier.as_deref() == Some("flex")));

    // InvokeModel carries it in a header, and a row's column overrides the job's tier.
    let ws = Workspace::new(&emu.url());
    ws.write(
        "in.csv",
        "id,prompt,service_tier\nx,first question,priority\ny,second question,\n",
    );
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "in.csv",
        "--max-tokens",
        "64",
        "--api",
        "invoke",
        "--service-tier",
        "default",
    ]);
    // Priority has no price here: the row is answered, its cost is null.
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let res = ws.results();
    let x = res.iter().find(|r| r["id"] == "x").unwrap();
    let y = res.iter().find(|r| r["id"] == "y").unwrap();
    assert_eq!(x["service_tier"], "priority");
    assert!(x["cost_usd"].is_null(), "{x}");
    assert_eq!(y["service_tier"], "default");
    assert!(f(&y["cost_usd"]) > 0.0);
}

/// 50 rows on flex to `models` (concurrency 2) against an emulator that
/// refuses the tiers `refused` names; the run must stop on the refused
/// model's first rows (exit 2) with at most 3 of them failed. Returns the
/// workspace and the failures.
async fn stopped_by_a_refused_tier(refused: &str, models: &[&str]) -> (Workspace, Vec<Value>) {
    let emu = Emulator::start(EmulatorConfig {
        refused_tiers: vec![refused.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(50));
    let mut args = Vec::new();
    for m in models {
        args.extend(["--model", m]);
    }
    args.extend(["--input", "in.csv", "--max-tokens", "64"]);
    args.extend(["--service-tier", "flex", "--concurrency", "2"]);
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let failures = ws.failures();
    assert!(
        !failures.is_empty() && failures.len() <= 3,
        "stopped after the first rows, not 50: {}",
        failures.len()
    );
    assert_eq!(ws.summary()["stopped_by"], "service_tier");
    (ws, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tier_fails_its_row_naming_the_tier_and_stops_the_job() {
    let (ws, failures) = stopped_by_a_refused_tier("flex", &[MODEL]).await;
    let msg = failures[0]["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("service tier `flex` refused for"), "{msg}");
    assert_eq!(failures[0]["error"]["kind"], "validation");
    let s = ws.summary();
    assert!(f(&s["unfinished"]) >= 40.0, "{s}");
}

/// The tier refusal is per model, as the breaker's count is: a model of the
/// matrix without the tier stops the job on its first rows, although the
/// other model answers on that tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_refused_for_one_model_of_a_matrix_stops_the_job() {
    const NOVA: &str = "amazon.nova-lite-v1:0";
    let (ws, failures) = stopped_by_a_refused_tier("anthropic.=flex", &[NOVA, MODEL]).await;
    assert!(failures.iter().all(|f| f["model"] == MODEL), "{failures:?}");
    assert!(ws.results().iter().all(|r| r["model"] == NOVA));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_system_writes_once_then_reads_and_is_priced() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(5));
    // 1,200 short words: 1,200 tokens in the emulator, over Claude 3.7 Sonnet's 1,024.
    let system = "word ".repeat(1200);
    ws.write(
        "job.toml",
        format!(
            "model = \"{SONNET_37}\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\nmax_tokens = 64\n\
             concurrency = 1\ncache_system = true\nsystem = \"{}\"\n",
            system.trim()
        ),
    );
    let out = ws.run(&["--config", "job.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let mut res = ws.results();
    res.sort_by_key(|r| r["id"].as_str().unwrap().to_string());
    let u0 = &res[0]["usage"];
    assert_eq!(u0["cache_write_input_tokens"], 1200, "{u0}");
    assert_eq!(u0["cache_read_input_tokens"], 0, "{u0}");
    for r in &res[1..] {
        let u = &r["usage"];
        assert_eq!(u["cache_read_input_tokens"], 1200, "{u}");
        assert_eq!(u["cache_write_input_tokens"], 0, "{u}");
        let want =
            (f(&u["input_tokens"]) * 3.0 + f(&u["output_tokens"]) * 15.0 + 1200.0 * 0.3) / 1e6;
        assert!((f(&r["cost_usd"]) - want).abs() < 1e-12, "{r}");
    }
    let first =
        (f(&u0["input_tokens"]) * 3.0 + f(&u0["output_tokens"]) * 15.0 + 1200.0 * 3.75) / 1e6;
    assert!((f(&res[0]["cost_usd"]) - first).abs() < 1e-12);
    let share = f(&ws.summary()["cost"]["cache_read_share"]);
    assert!(share > 0.7 && share < 1.0, "{share}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("of input read from the prompt cache"));

    // A model without prompt caching refuses the cache point, as Bedrock does.
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(1));
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "in.csv",
        "--max-tokens",
        "64",
        "--cache-system",
    ]);
    // No system prompt: no cache point is sent, nothing to refuse.
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_cache_points_pass_through() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let doc = "lorem ".repeat(1100);
    let row = serde_json::json!({
        "id": "d1",
        "messages": [{"role": "user", "content": [
            {"text": doc.trim()}, {"cachePoint": {"type": "default"}}, {"text": "Summarise it."}
        ]}]
    });
    ws.write("in.jsonl", format!("{row}\n"));
    let out = ws.run(&[
        "--model",
        SONNET_37,
        "--input",
        "in.jsonl",
        "--max-tokens",
        "64",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = &ws.results()[0];
    assert_eq!(r["usage"]["cache_write_input_tokens"], 1100, "{r}");
    let rec = emu
        .requests()
        .into_iter()
        .find(|r| r.operation == "Converse")
        .unwrap();
    assert_eq!(rec.cache_write_tokens, 1100);

    // The same row against Claude 3 Haiku (no prompt caching): Bedrock's refusal.
    let ws = Workspace::new(&emu.url());
    ws.write("in.jsonl", format!("{row}\n"));
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "in.jsonl",
        "--max-tokens",
        "64",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let f = &ws.failures()[0];
    assert!(
        f["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unsupported model or your request did not allow prompt caching"),
        "{f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_nothing_and_count_tokens_counts_what_a_run_is_billed() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let mut csv = String::from("id,prompt\n");
    for i in 0..30 {
        csv.push_str(&format!(
            "q{i},\"Explain, in {i} words, why 2+{i}={}; 안녕하세요!\"\n",
            2 + i
        ));
    }
    csv.push_str("bad,\n");
    ws.write("in.csv", &csv);
    let base = ["--model", MODEL, "--input", "in.csv", "--max-tokens", "64"];

    let mut a = base.to_vec();
    a.push("--dry-run");
    let out = ws.run(&a);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 0, "a dry run sends nothing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dry run: 30 row(s) to send"), "{stdout}");
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("dry-run.json")).unwrap())
            .unwrap();
    assert_eq!(d["rows"]["rows"], 30);
    assert_eq!(d["rows"]["input_failures"], 1);
    assert_eq!(d["output_tokens"]["max"], 30 * 64);
    assert!(f(&d["cost_usd"]["worst_case"]) >= f(&d["cost_usd"]["expected"]));
    assert!(d["tiers"]["flex"].is_null(), "no flex price: {d}");
    assert!(d["batch"]["expected"].as_f64().is_some(), "{d}");
    assert!(ws.results().is_empty() && ws.failures().is_empty());

    let mut a = base.to_vec();
    a.extend(["--dry-run", "--count-tokens"]);
    let out = ws.run(&a);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 30, "one CountTokens per row");
    assert!(emu.requests().iter().all(|r| r.operation == "CountTokens"));
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("dry-run.json")).unwrap())
            .unwrap();
    assert_eq!(d["input_tokens"]["method"], "counted: Bedrock CountTokens");
    let counted = d["input_tokens"]["expected"].as_u64().unwrap();

    let out = ws.run(&base);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(ws.summary()["tokens"]["input"].as_u64().unwrap(), counted);
}

/// `prices` says what a run would charge and where each figure came from:
/// a profile priced as its base model, a config entry over the table, a
/// model without a price said so (never guessed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_names_each_figures_source_and_what_has_none() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write(
        "job.toml",
        "[prices.\"amazon.nova-lite-v1:0\"]\ninput = 0.05\noutput = 0.2\nflex_input = 0.025\nflex_output = 0.1\n",
    );
    let out = ws
        .command()
        .args(["prices", "--config", "job.toml"])
        .args(["--model", "apac.anthropic.claude-3-5-sonnet-20240620-v1:0"])
        .args(["--model", "amazon.nova-lite-v1:0"])
        .args(["--model", "mistral.mistral-large-2407-v1:0"])
        .output()
        .unwrap();
    // Exit 1: a model asked for has no price (README, the commands table).
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "priced as anthropic.claude-3-5-sonnet-20240620-v1:0; from built-in, 2025-07-20"
        ),
        "{text}"
    );
    assert!(text.contains("$1.50/$7.50"), "the batch price: {text}");
    assert!(
        text.contains("job.toml: [prices.\"amazon.nova-lite-v1:0\"]"),
        "{text}"
    );
    assert!(
        text.contains("$0.025/$0.10"),
        "the config's flex price: {text}"
    );
    assert!(
        text.contains("mistral.mistral-large-2407-v1:0                 no price known"),
        "{text}"
    );
    assert_eq!(emu.stats().requests, 0, "prices sends nothing");
}

/// `--count-tokens` with `api = "invoke"` counts the InvokeModel body form,
/// and the count is what the run is then billed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_counts_invoke_bodies_as_the_run_is_billed() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(6));
    let base = [
        "--model",
        MODEL,
        "--api",
        "invoke",
        "--input",
        "in.csv",
        "--max-tokens",
        "64",
    ];
    let mut a = base.to_vec();
    a.extend(["--dry-run", "--count-tokens"]);
    let out = ws.run(&a);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(emu.requests().iter().all(|r| r.operation == "CountTokens"));
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("dry-run.json")).unwrap())
            .unwrap();
    assert_eq!(d["input_tokens"]["method"], "counted: Bedrock CountTokens");
    let counted = d["input_tokens"]["expected"].as_u64().unwrap();
    let out = ws.run(&base);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.summary()["tokens"]["input"].as_u64().unwrap(), counted);
}

/// A dry run refuses, with `run`'s one line and exit 2, what `run` would
/// refuse: a directory holding another job's answers, or answers with no
/// manifest. An estimate for it would price the wrong rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_refuses_a_directory_that_holds_another_job() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(3));
    let out = ws.run(&["--model", MODEL, "--input", "in.csv", "--max-tokens", "64"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let sent = emu.stats().requests;

    let other = [
        "--model",
        MODEL,
        "--input",
        "in.csv",
        "--max-tokens",
        "99",
        "--dry-run",
    ];
    let out = ws.run(&other);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("holds a different job"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("max_tokens: 64 → 99"), "{line}");
    assert!(
        !ws.out().join("dry-run.json").exists(),
        "no estimate written"
    );

    // With --fresh the estimate is for the whole job, and nothing is moved:
    // a dry run never touches the earlier answers.
    let mut fresh = other.to_vec();
    fresh.push("--fresh");
    let out = ws.run(&fresh);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dry run: 3 row(s) to send"), "{stdout}");
    assert_eq!(ws.results().len(), 3, "earlier answers left in place");

    // Answers without a manifest belong to no known job.
    std::fs::remove_file(ws.out().join("manifest.json")).unwrap();
    let same = [
        "--model",
        MODEL,
        "--input",
        "in.csv",
        "--max-tokens",
        "64",
        "--dry-run",
    ];
    let out = ws.run(&same);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("but no manifest.json"),
        "{}",
        show(&out)
    );
    assert_eq!(emu.stats().requests, sent, "no dry run sent anything");
}

/// Each model of a matrix has its own quota and lane, so a dry run's time is
/// the slowest model's at its own quota, not the rows of all models at the
/// job's quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_dry_run_times_each_model_at_its_own_quota() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(60));
    ws.write(
        "job.toml",
        format!(
            "inputs = [\"in.csv\"]\nmax_tokens = 32\nrpm = 600\nsamples = 2\n\n[models.\"{MODEL}\"]\nrpm = 30\n\n[models.\"amazon.nova-lite-v1:0\"]\nconcurrency = 2\n"
        ),
    );
    let out = ws.run(&["--config", "job.toml", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 0);
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("dry-run.json")).unwrap())
            .unwrap();
    let t = &d["time"];
    let haiku = &t["by_model"][MODEL];
    let nova = &t["by_model"]["amazon.nova-lite-v1:0"];
    assert_eq!(haiku["rows"], 120, "{t}");
    assert_eq!(nova["rows"], 120, "{t}");
    assert_eq!(haiku["rpm"], 30, "its own table: {t}");
    assert_eq!(nova["rpm"], 600, "the job's quota: {t}");
    assert_eq!(nova["concurrency"], 2, "{t}");
    assert!((f(&haiku["minutes_at_quota"]) - 4.0).abs() < 1e-9, "{t}");
    assert!((f(&nova["minutes_at_quota"]) - 0.2).abs() < 1e-9, "{t}");
    assert!(
        (f(&t["minutes_at_quota"]) - 4.0).abs() < 1e-9,
        "the slowest lane: {t}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("time at your quotas: 4.0 min (the slowest model's"),
        "{stdout}"
    );
}

/// The measured target of issue 10, recorded in BENCHMARKS.md:
/// `cargo test --test integration pilot_estimate -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pilot_estimate_is_within_ten_percent_and_the_worst_case_is_never_below() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", varied_rows(1200, 7));
    let base = [
        "--model",
        MODEL,
        "--input",
        "in.csv",
        "--max-tokens",
        "300",
        "--concurrency",
        "16",
    ];
    let mut a = base.to_vec();
    a.extend(["--dry-run", "--pilot", "50"]);
    let out = ws.run(&a);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("dry-run.json")).unwrap())
            .unwrap();
    let pilot_spent = f(&d["already_spent_usd"]);
    let expected = f(&d["cost_usd"]["expected"]) + pilot_spent;
    let worst = f(&d["cost_usd"]["worst_case"]) + pilot_spent;
    assert_eq!(d["rows"]["rows"], 1150);

    let out = ws.run(&base);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let actual = f(&ws.summary()["cost"]["job_total_usd"]);
    let err = (expected - actual) / actual;
    println!(
        "pilot estimate: 1200 rows, pilot 50: expected ${expected:.6}, worst case ${worst:.6}, actual ${actual:.6}, error {:+.2}%",
        err * 100.0
    );
    assert!(err.abs() <= 0.10, "expected {expected} vs actual {actual}");
    assert!(worst >= actual, "worst case {worst} below actual {actual}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pilot_learns_the_prompt_cache_and_the_estimate_prices_reads() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", varied_rows(240, 3));
    // A long shared instruction read from the cache by nearly every row: an
    // estimate that priced it as plain input would be several times too high.
    let system = "word ".repeat(1500);
    ws.write(
        "job.toml",
        format!(
            "model = \"{SONNET_37}\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\nmax_tokens = 200\n\
             concurrency = 4\ncache_system = true\nsystem = \"{}\"\n",
            system.trim()
        ),
    );
    let out = ws.run(&["--config", "job.toml", "--dry-run", "--pilot", "30"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("dry-run.json")).unwrap())
            .unwrap();
    assert!(f(&d["learned_from"]["cache_share"]) > 0.5, "{d}");
    assert!(f(&d["learned_from"]["cache_write_tokens"]) > 0.0, "{d}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("prompt cache: answers so far sent"));
    let pilot_spent = f(&d["already_spent_usd"]);
    let expected = f(&d["cost_usd"]["expected"]) + pilot_spent;
    let worst = f(&d["cost_usd"]["worst_case"]) + pilot_spent;

    let out = ws.run(&["--config", "job.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let actual = f(&ws.summary()["cost"]["job_total_usd"]);
    let err = (expected - actual) / actual;
    println!(
        "cached pilot estimate: expected ${expected:.6}, worst ${worst:.6}, actual ${actual:.6}, error {:+.2}%",
        err * 100.0
    );
    assert!(err.abs() <= 0.10, "expected {expected} vs actual {actual}");
    assert!(worst >= actual, "worst case {worst} below actual {actual}");
}

/// `n` rows of varied length and script, shuffled with `seed`: short and long
/// English, punctuation and digits, Korean, accented text.
fn varied_rows(n: usize, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let words = [
        "the",
        "model",
        "answers",
        "questions",
        "about",
        "international",
        "regulations",
        "quickly",
        "and",
        "evaluation",
        "datasets",
        "with",
        "care",
    ];
    let mut out = String::from("id,prompt\n");
    for i in 0..n {
        let len = rng.usize(5..400);
        let kind = rng.u8(0..10);
        let mut text = String::new();
        for j in 0..len {
            let w = match kind {
                0 => ["안녕하세요", "데이터", "평가를", "합니다"][j % 4].to_string(),
                1 => format!("{}-{};", rng.u32(0..100_000), words[j % words.len()]),
                2 => ["café", "naïve", "résumé", "über"][j % 4].to_string(),
                _ => words[rng.usize(..words.len())].to_string(),
            };
            if j > 0 {
                text.push(' ');
            }
            text.push_str(&w);
        }
        out.push_str(&format!("v{i:05},\"Question {i}: {text}\"\n"));
    }
    out
}
