//! Throughput control against small emulator quotas: runs finish with every
//! row answered, a bounded number of 429s, and summary.json's throttles,
//! retries and attempts agree with what the emulator counted.
//!
//! The speed figures themselves are the benchmark's (`benches/throughput`,
//! BENCHMARKS.md); the only time bounds here are generous ones on behaviour
//! that is about time (a rate limit must not collapse the rate).

use std::time::Instant;

use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig, StatsSnapshot};
use serde_json::Value;

use crate::cli_util::{show, Workspace, MODEL};

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// A CSV of `n` rows whose prompts start with `prefix` (emulator markers).
fn rows(n: usize, prefix: &str) -> String {
    let mut s = String::from("id,prompt\n");
    for i in 0..n {
        s.push_str(&format!(
            "t{i:03},{prefix}Question {i}: what is {i} + {i}?\n"
        ));
    }
    s
}

/// Every row succeeded with its own answer (cut to `4 × tokens` characters
/// when the prompt carries a `[[emu:tokens=N]]` marker), and the run's own
/// accounting matches the emulator's: attempts = requests received, retries
/// = attempts beyond the first, throttles by kind = the quota's refusals.
fn check_accounting(
    ws: &Workspace,
    n: usize,
    prefix: &str,
    tokens: Option<usize>,
    emu: &StatsSnapshot,
) -> Value {
    let results = ws.results();
    assert_eq!(results.len(), n);
    assert!(ws.failures().is_empty(), "{:?}", ws.failures());
    for r in &results {
        let i: usize = r["id"].as_str().unwrap()[1..].parse().unwrap();
        let full = answer(&format!("{prefix}Question {i}: what is {i} + {i}?"));
        let expected: String = match tokens {
            Some(t) => full.chars().take(4 * t).collect(),
            None => full,
        };
        assert_eq!(r["output"], expected);
    }
    let attempts: u64 = results
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap())
        .sum();
    let s = ws.summary();
    assert_eq!(s["succeeded"], n as u64);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["attempts"], attempts, "summary vs results");
    assert_eq!(
        attempts, emu.requests,
        "every attempt reached the emulator once"
    );
    assert_eq!(s["this_run"]["retries"], attempts - n as u64);
    assert_eq!(
        s["this_run"]["throttles"]["requests"],
        emu.throttles.requests
    );
    assert_eq!(s["this_run"]["throttles"]["tokens"], emu.throttles.tokens);
    // The only errors were the quota's 429s: each one retried once.
    assert_eq!(
        s["this_run"]["retries"],
        emu.throttles.requests + emu.throttles.tokens,
        "{s}"
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_request_quota_is_found_without_losing_a_row() {
    // 300/min = 5/s with a bucket of 5: 50 rows need (50 − 5) / 5 = 9 s.
    let emu = emulator(EmulatorConfig {
        rpm: Some(300),
        burst_secs: 1.0,
        latency_ms: 50,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", rows(50, ""));
    let start = Instant::now();
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--concurrency",
        "8",
        "--max-tokens",
        "50",
        "--no-progress",
    ]);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stats = emu.stats();
    let s = check_accounting(&ws, 50, "", None, &stats);
    // Sending at 8 in flight (about 160/s) into 5/s must draw 429s; the
    // adaptive cut keeps them to a fraction of the rows.
    let throttles = stats.throttles.requests;
    assert!((1..=40).contains(&throttles), "{throttles} 429s: {s}");
    // The cut must not collapse the rate: well within 2.5× the ideal 9 s.
    assert!(secs < 22.5, "took {secs:.1}s: {s}");
    assert!(
        s["this_run"]["throughput"]["requests_per_min"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_request_quota_draws_no_throttles() {
    // --rpm equal to the quota: paced at 5/s, never above, so never refused.
    let emu = emulator(EmulatorConfig {
        rpm: Some(300),
        burst_secs: 1.0,
        latency_ms: 50,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", rows(30, ""));
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--concurrency",
        "8",
        "--rpm",
        "300",
        "--max-tokens",
        "50",
        "--no-progress",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stats = emu.stats();
    let s = check_accounting(&ws, 30, "", None, &stats);
    assert_eq!(stats.throttles.requests, 0, "{s}");
    assert_eq!(s["this_run"]["retries"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_quota_binds_with_max_tokens_reserved_and_refunded() {
    // 6,000 tokens/min = 100/s, bucket of 100. Each row: about 12 input
    // tokens, max_tokens 40 reserved, 10 used. Reservations (52) would admit
    // under 2/s; refunds let about 4.5/s through. 40 rows ≈ 880 tokens ≈ 8 s.
    let emu = emulator(EmulatorConfig {
        tpm: Some(6000),
        burst_secs: 1.0,
        latency_ms: 50,
        ..EmulatorConfig::default()
    })
    .await;
    let prefix = "[[emu:tokens=10]] ";
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", rows(40, prefix));
    let start = Instant::now();
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--concurrency",
        "8",
        "--tpm",
        "6000",
        "--max-tokens",
        "40",
        "--no-progress",
    ]);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stats = emu.stats();
    let s = check_accounting(&ws, 40, prefix, Some(10), &stats);
    assert_eq!(stats.throttles.requests, 0, "no request quota here");
    // Our bucket holds 2 s of quota and the emulator's 1 s, so the opening
    // overruns it; the first "too many tokens" empties our bucket and after
    // that the mirror keeps under it.
    assert!(stats.throttles.tokens <= 5, "{s}");
    let used = stats.input_tokens + stats.output_tokens;
    assert_eq!(
        s["tokens"]["input"].as_u64().unwrap() + s["tokens"]["output"].as_u64().unwrap(),
        used
    );
    // Refunds are what make this fast: reserving 52 per row without them
    // would take (40 × 52 − 100) / 100 ≈ 20 s; the ideal is ≈ 8 s.
    assert!(secs < 14.0, "took {secs:.1}s: {s}");
}
