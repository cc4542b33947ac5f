//! The model matrix, measured: three models with their own request quotas
//! in the emulator (600, 1,200 and 2,400 a minute), one job of 500 rows × 2
//! samples to all three, run by the real `bedrock-batch` binary. Each model
//! has its own lane (`src/pipeline/lane.rs`), so the job should take about
//! the slowest model's ideal time, and each faster model should finish
//! about at its own ideal, not wait on the slowest.
//!
//! ```text
//! cargo bench --bench matrix            # 500 rows × 2 samples × 3 models
//! cargo bench --bench matrix -- --rows 100
//! ```
//!
//! A model's ideal is its units less the emulator's starting burst, over its
//! quota: `(units − rpm × burst / 60) / rpm` minutes. Its finish time is the
//! latest `finished_at` of its lines, from the moment the binary started.
//! The child runs with a cleared environment pointed at the emulator on
//! 127.0.0.1 (static test keys, no IMDS). BENCHMARKS.md records the figures;
//! this file only measures. Run without `--bench` it does nothing.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bedrock_batch::emulator::{
    Emulator, EmulatorConfig, STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-batch");

/// (model, requests a minute): each model's own quota, in the emulator and
/// in the job's `[models."ID"]` table.
const MODELS: [(&str, u64); 3] = [
    ("amazon.nova-micro-v1:0", 600),
    ("amazon.nova-lite-v1:0", 1200),
    ("anthropic.claude-3-haiku-20240307-v1:0", 2400),
];
const SAMPLES: u64 = 2;
const LATENCY_MS: u64 = 100;
/// One second of burst: a model's bucket starts with a second of its quota.
const BURST_SECS: f64 = 1.0;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("matrix: a benchmark; run it with `cargo bench --bench matrix`");
        return;
    }
    let rows = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(rows));
}

async fn run(rows: u64) {
    let emu = Emulator::start(EmulatorConfig {
        latency_ms: LATENCY_MS,
        burst_secs: BURST_SECS,
        max_records: 100_000,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    for (model, rpm) in MODELS {
        emu.set_model_quota(model, Some(rpm), None);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut csv = String::from("id,prompt\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "r{i:05},Question number {i}: what is {i} + {i}?\n"
        ));
    }
    std::fs::write(dir.path().join("p.csv"), csv).unwrap();
    let mut job = format!(
        "inputs = [\"p.csv\"]\noutput_dir = \"out\"\nsamples = {SAMPLES}\nmax_tokens = 30\nconcurrency = 16\n"
    );
    for (model, rpm) in MODELS {
        job.push_str(&format!("[models.\"{model}\"]\nrpm = {rpm}\n"));
    }
    std::fs::write(dir.path().join("job.toml"), job).unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();

    let url = emu.url();
    let started_at = SystemTime::now();
    let started = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir.path())
        .env("HOME", dir.path().join("home"))
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &url)
        .env("AWS_ENDPOINT_URL_STS", &url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "ap-northeast-2")
        .env("AWS_ACCESS_KEY_ID", STATIC_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", STATIC_SECRET_ACCESS_KEY)
        .args(["run", "--config", "job.toml"]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run the binary");
    let total_s = started.elapsed().as_secs_f64();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let start_ms = started_at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut finish: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let text = std::fs::read_to_string(dir.path().join("out/results.jsonl")).unwrap();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let model = r["model"].as_str().unwrap().to_string();
        let at = r["finished_at"]
            .as_str()
            .and_then(bedrock_batch::time::parse_epoch_ms)
            .expect("finished_at");
        let e = finish.entry(model).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(at - start_ms);
    }
    let units = rows * SAMPLES;
    let ideal = |rpm: u64| {
        let burst = rpm as f64 * BURST_SECS / 60.0;
        (units as f64 - burst).max(0.0) / rpm as f64 * 60.0
    };
    let slowest_ideal = MODELS.iter().map(|m| ideal(m.1)).fold(0.0, f64::max);
    let stats = emu.stats();
    println!(
        "matrix bench: {rows} rows × {SAMPLES} samples × {} models, {LATENCY_MS} ms latency, {} cores",
        MODELS.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| model | quota /min | units | ideal s | finished s | finished/ideal |");
    println!("|---|---|---|---|---|---|");
    for (model, rpm) in MODELS {
        let (n, ms) = finish.get(model).copied().unwrap_or_default();
        let done_s = ms as f64 / 1000.0;
        println!(
            "| {model} | {rpm} | {n} | {:.1} | {done_s:.1} | {:.3} |",
            ideal(rpm),
            done_s / ideal(rpm)
        );
    }
    println!(
        "| whole job | - | {} | {slowest_ideal:.1} (slowest) | {total_s:.1} (process) | {:.3} |",
        finish.values().map(|v| v.0).sum::<u64>(),
        total_s / slowest_ideal
    );
    println!(
        "emulator: {} requests, {} throttled (requests {}, tokens {})",
        stats.requests,
        stats.throttles.requests + stats.throttles.tokens,
        stats.throttles.requests,
        stats.throttles.tokens
    );
}
