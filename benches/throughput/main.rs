//! Throughput control, measured: the real `bedrock-batch` binary against the
//! in-process emulator, one scenario per quota situation, and a table of what
//! was achieved against what physics allows.
//!
//! ```text
//! cargo bench --bench throughput                      # every scenario
//! cargo bench --bench throughput -- rpm-unknown cpu   # some of them
//! cargo bench --bench throughput -- tpm-known --rows 500
//! BEDROCK_BATCH_BIN=/path/to/other/bedrock-batch cargo bench --bench throughput -- heavy-noise
//! ```
//!
//! `BEDROCK_BATCH_BIN` measures another build of the binary (an older
//! commit's, for a before/after table) with this harness.
//!
//! The binary runs as a child process with a cleared environment pointed at
//! the emulator on 127.0.0.1 (static test keys, no IMDS), so its CPU and peak
//! RSS come from `wait4` and never include the emulator's. Every scenario is
//! bounded (rows × quota) and talks to loopback only. BENCHMARKS.md records
//! the figures and reads them; this file only measures. Run without `--bench`
//! (as `cargo test --benches` would) it does nothing.

mod bare;
mod child;

use std::io::BufRead;
use std::path::Path;
use std::process::Command;

use bedrock_batch::emulator::{
    Emulator, EmulatorConfig, STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY,
};
use serde_json::Value;
use tempfile::TempDir;

use child::Measured;

pub const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const BUILT_BIN: &str = env!("CARGO_BIN_EXE_bedrock-batch");

/// The binary under measurement: this build's, or `BEDROCK_BATCH_BIN`.
fn bin() -> String {
    std::env::var("BEDROCK_BATCH_BIN").unwrap_or_else(|_| BUILT_BIN.to_string())
}

/// The emulator's request quota in every quota scenario: 1,200/min with 5 s
/// of burst (a bucket of 100 that starts full).
const RPM: u64 = 1200;
const BURST_SECS: f64 = 5.0;
const LATENCY_MS: u64 = 100;
const CONCURRENCY: u32 = 16;
/// Token scenarios: answers of exactly 50 tokens, `max_tokens` 4× that, and a
/// token quota that binds at about 20 requests a second.
const ANSWER_TOKENS: u64 = 50;
const TPM: u64 = 75_000;

const SCENARIOS: [&str; 10] = [
    "rpm-known",
    "rpm-unknown",
    "tpm-known",
    "tpm-unknown",
    "tpm-small-burst",
    "faults",
    "heavy-noise",
    "cpu",
    "rss",
    "rss-s3",
];

/// Row `i`'s prompt; `prefix` carries emulator markers.
pub fn prompt(prefix: &str, i: u64) -> String {
    format!("{prefix}Question number {i}: what is {i} + {i}?")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bare") {
        return bare::main(&args[1..]);
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("throughput: a benchmark; run it with `cargo bench --bench throughput`");
        return;
    }
    let mut rows_override = None;
    let mut chosen = Vec::new();
    let mut it = args.iter().filter(|a| *a != "--bench");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rows" => rows_override = it.next().and_then(|n| n.parse::<u64>().ok()),
            name if SCENARIOS.contains(&name) => chosen.push(name.to_string()),
            other => panic!("unknown argument `{other}`; scenarios: {SCENARIOS:?}, --rows N"),
        }
    }
    if chosen.is_empty() {
        chosen = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "throughput bench: {} cores, binary {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bin()
    );
    let mut table = Vec::new();
    for name in &chosen {
        println!("\n== {name}");
        let rows = rt.block_on(scenario(name, rows_override));
        table.extend(rows);
    }
    println!("\n{}", render(&table));
}

/// One line of the final table; `None` prints as `-`.
#[derive(Default)]
struct Line {
    name: String,
    rows: u64,
    wall_s: f64,
    ideal_s: Option<f64>,
    /// Achieved rate over the middle 80% of successes, and the quota, per minute.
    steady: Option<(f64, f64)>,
    throttles: u64,
    emu_requests: u64,
    failed: u64,
    attempts: u64,
    cpu_us: Option<f64>,
    rss_mb: Option<f64>,
}

fn render(lines: &[Line]) -> String {
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    let mut s = String::from(
        "| scenario | rows | wall s | ideal s | time/ideal | steady /min | quota /min | steady/quota | 429s | 429 % | failed | attempts | emulator requests | CPU µs/req | peak RSS MB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for l in lines {
        s.push_str(&format!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            l.name,
            l.rows,
            l.wall_s,
            opt(l.ideal_s, 1),
            opt(l.ideal_s.map(|i| l.wall_s / i), 3),
            opt(l.steady.map(|s| s.0), 0),
            opt(l.steady.map(|s| s.1), 0),
            opt(l.steady.map(|s| s.0 / s.1), 3),
            l.throttles,
            if l.emu_requests > 0 {
                format!("{:.2}", 100.0 * l.throttles as f64 / l.emu_requests as f64)
            } else {
                "-".into()
            },
            l.failed,
            l.attempts,
            l.emu_requests,
            opt(l.cpu_us, 0),
            opt(l.rss_mb, 1),
        ));
    }
    s
}

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("the emulator starts")
}

fn quota_emulator() -> EmulatorConfig {
    EmulatorConfig {
        rpm: Some(RPM),
        burst_secs: BURST_SECS,
        latency_ms: LATENCY_MS,
        max_records: 50_000,
        ..EmulatorConfig::default()
    }
}

async fn scenario(name: &str, rows: Option<u64>) -> Vec<Line> {
    let burst = RPM as f64 * BURST_SECS / 60.0;
    let per_sec = RPM as f64 / 60.0;
    match name {
        "rpm-known" => {
            let n = rows.unwrap_or(600);
            let emu = emulator(quota_emulator()).await;
            let r = pipeline(&emu, n, "", &["--rpm", &RPM.to_string()]).await;
            let mut l = r.line(name, &emu);
            l.ideal_s = Some((n as f64 - burst) / per_sec);
            l.steady = steady(&emu, false).map(|s| (s, RPM as f64));
            vec![l]
        }
        "rpm-unknown" => {
            let n = rows.unwrap_or(2000);
            let emu = emulator(quota_emulator()).await;
            let r = pipeline(&emu, n, "", &[]).await;
            let mut l = r.line(name, &emu);
            l.ideal_s = Some((n as f64 - burst) / per_sec);
            l.steady = steady(&emu, false).map(|s| (s, RPM as f64));
            vec![l]
        }
        "tpm-known" | "tpm-unknown" | "tpm-small-burst" => {
            // tpm-small-burst: --tpm known, but Bedrock's bucket (1 s) is
            // smaller than ours (2 s), so our mirror starts out optimistic.
            let small = name == "tpm-small-burst";
            let burst_secs = if small { 1.0 } else { BURST_SECS };
            let n = rows.unwrap_or(if small { 1000 } else { 2000 });
            let emu = emulator(EmulatorConfig {
                rpm: None,
                tpm: Some(TPM),
                burst_secs,
                ..quota_emulator()
            })
            .await;
            let tpm = TPM.to_string();
            let flags: &[&str] = if name == "tpm-unknown" {
                &[]
            } else {
                &["--tpm", &tpm]
            };
            let prefix = format!("[[emu:tokens={ANSWER_TOKENS}]] ");
            let max_tokens = (4 * ANSWER_TOKENS).to_string();
            let mut all = vec!["--max-tokens", &max_tokens];
            all.extend_from_slice(flags);
            let r = pipeline(&emu, n, &prefix, &all).await;
            let mut l = r.line(name, &emu);
            // What was actually used (input + output of every answer) less the
            // emulator's starting bucket, at the quota's rate.
            let s = emu.stats();
            let used = (s.input_tokens + s.output_tokens) as f64;
            let burst_tokens = TPM as f64 * burst_secs / 60.0;
            l.ideal_s = Some((used - burst_tokens) / (TPM as f64 / 60.0));
            l.steady = steady(&emu, true).map(|s| (s, TPM as f64));
            println!("steady and quota columns are tokens/min for this scenario");
            vec![l]
        }
        "faults" => {
            let n = rows.unwrap_or(600);
            let emu = emulator(EmulatorConfig {
                fault_rate: 0.10,
                drop_rate: 0.02,
                seed: Some(7),
                ..quota_emulator()
            })
            .await;
            let r = pipeline(&emu, n, "", &["--rpm", &RPM.to_string()]).await;
            let mut l = r.line(name, &emu);
            l.ideal_s = Some((n as f64 - burst) / per_sec);
            l.steady = steady(&emu, false).map(|s| (s, RPM as f64));
            let s = emu.stats();
            println!(
                "emulator: {} requests, {} successes, faults {:?}, {} dropped",
                s.requests, s.successes, s.faults, s.dropped
            );
            vec![l]
        }
        "heavy-noise" => heavy_noise(rows.unwrap_or(1500)).await,
        "cpu" => cpu(rows.unwrap_or(20_000)).await,
        "rss" => rss(rows.unwrap_or(1_000_000)).await,
        "rss-s3" => rss_s3(rows.unwrap_or(100_000)).await,
        _ => unreachable!("scenario names are checked in main"),
    }
}

/// Heavy noise and no quota: 20% transient faults (a quarter of them 429s),
/// 5% dropped connections, 100 ms latency, concurrency 16. No 429 here is
/// about our rate, so the yardstick is a pool that never slows down: the
/// bare SDK loop retrying each row on the pipeline's backoff schedule, on a
/// second emulator with the same faults (and seed), in the same run.
async fn heavy_noise(n: u64) -> Vec<Line> {
    let noisy = || EmulatorConfig {
        fault_rate: 0.20,
        drop_rate: 0.05,
        seed: Some(11),
        latency_ms: LATENCY_MS,
        max_records: 50_000,
        ..EmulatorConfig::default()
    };
    // The concurrency-bound ideal: every row's successful call is 100 ms, 16
    // at a time; failures answer at once and are not counted.
    let ideal = n as f64 * LATENCY_MS as f64 / 1000.0 / CONCURRENCY as f64;
    let emu = emulator(noisy()).await;
    let r = pipeline(&emu, n, "", &["--max-tokens", "100"]).await;
    let mut l = r.line("heavy-noise: pipeline", &emu);
    l.ideal_s = Some(ideal);
    let s = emu.stats();
    println!(
        "emulator: {} requests, {} successes, faults {:?}, {} dropped",
        s.requests, s.successes, s.faults, s.dropped
    );

    let emu = emulator(noisy()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.args([
        "bare",
        &n.to_string(),
        &CONCURRENCY.to_string(),
        "100",
        "retry",
    ]);
    client_env(&mut cmd, &emu.url(), dir.path());
    let m = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || child::run(cmd, &dir, "bare")
    })
    .await
    .expect("bare pool");
    assert_eq!(m.code, 0, "bare pool failed: {}", m.stderr);
    let field = |name: &str| -> u64 {
        let words: Vec<&str> = m.stdout.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bare pool printed `{}`", m.stdout.trim()))
    };
    let s = emu.stats();
    let pool = Line {
        name: "heavy-noise: non-adaptive pool".into(),
        rows: n,
        wall_s: m.wall.as_secs_f64(),
        ideal_s: Some(ideal),
        throttles: s.faults.get("ThrottlingException").copied().unwrap_or(0),
        emu_requests: s.requests,
        failed: field("failed"),
        attempts: field("attempts"),
        ..Line::default()
    };
    println!(
        "non-adaptive pool: {}, {:.1}s; pipeline/pool wall {:.2} (target ≤ 2)",
        m.stdout.trim(),
        pool.wall_s,
        l.wall_s / pool.wall_s
    );
    vec![l, pool]
}

/// Client CPU per request: the pipeline and the bare SDK loop, same rows,
/// same concurrency, zero latency, twice each (interleaved); the lower of
/// each pair is the figure, since a shared machine only ever adds.
async fn cpu(n: u64) -> Vec<Line> {
    let concurrency = 32u32;
    let emu = emulator(EmulatorConfig {
        max_records: 0,
        ..EmulatorConfig::default()
    })
    .await;
    let mut pipe: Vec<(Measured, Line)> = Vec::new();
    let mut bare_runs: Vec<(Measured, u64)> = Vec::new();
    for _ in 0..2 {
        let before = emu.stats().requests;
        let r = pipeline_with(&emu, n, "", &["--max-tokens", "100"], concurrency, false).await;
        let mut l = r.line("cpu: pipeline", &emu);
        l.emu_requests = emu.stats().requests - before;
        l.cpu_us = Some(r.measured.cpu.as_secs_f64() * 1e6 / n as f64);
        l.rss_mb = Some(r.measured.max_rss_kb as f64 / 1024.0);
        pipe.push((r.measured.clone(), l));

        let before = emu.stats().requests;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        cmd.args(["bare", &n.to_string(), &concurrency.to_string(), "100"]);
        client_env(&mut cmd, &emu.url(), dir.path());
        let m = tokio::task::spawn_blocking({
            let dir = dir.path().to_path_buf();
            move || child::run(cmd, &dir, "bare")
        })
        .await
        .expect("bare loop");
        assert_eq!(m.code, 0, "bare loop failed: {}", m.stderr);
        assert_eq!(
            m.stdout.trim(),
            format!("ok {n} failed 0 attempts {n}"),
            "{}",
            m.stderr
        );
        let sent = emu.stats().requests - before;
        println!(
            "bare SDK loop: {n} calls in {:.1}s, CPU {:.2}s ({:.0} µs/call), peak RSS {:.1} MB",
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
            m.cpu.as_secs_f64() * 1e6 / n as f64,
            m.max_rss_kb as f64 / 1024.0
        );
        bare_runs.push((m, sent));
    }
    let (_, best_pipe) = pipe
        .into_iter()
        .min_by_key(|(m, _)| m.cpu)
        .expect("two runs");
    let (best_bare, sent) = bare_runs
        .into_iter()
        .min_by_key(|(m, _)| m.cpu)
        .expect("two runs");
    let bare_us = best_bare.cpu.as_secs_f64() * 1e6 / n as f64;
    let pipe_us = best_pipe.cpu_us.unwrap_or(0.0);
    println!(
        "CPU per request: pipeline {pipe_us:.0} µs, bare SDK loop {bare_us:.0} µs, ratio {:.2} (target ≤ 1.3)",
        pipe_us / bare_us
    );
    let bare_line = Line {
        name: "cpu: bare SDK loop".into(),
        rows: n,
        wall_s: best_bare.wall.as_secs_f64(),
        emu_requests: sent,
        attempts: sent,
        cpu_us: Some(bare_us),
        rss_mb: Some(best_bare.max_rss_kb as f64 / 1024.0),
        ..Line::default()
    };
    vec![best_pipe, bare_line]
}

/// Peak RSS for a big CSV: the whole run at zero latency, then a resume of
/// the finished job (every row skipped: the done-id set at full size).
async fn rss(n: u64) -> Vec<Line> {
    let emu = emulator(EmulatorConfig {
        max_records: 0,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = tempfile::tempdir().expect("temp dir");
    let flags = ["--max-tokens", "100"];
    let first = run_in(&emu, &ws, n, "", &flags, 64, true).await;
    let mut a = first.line("rss: full run", &emu);
    a.rss_mb = Some(first.measured.max_rss_kb as f64 / 1024.0);
    a.cpu_us = Some(first.measured.cpu.as_secs_f64() * 1e6 / n as f64);
    let before = emu.stats().requests;
    let again = run_in(&emu, &ws, n, "", &flags, 64, true).await;
    assert_eq!(
        again.summary["this_run"]["skipped"].as_u64(),
        Some(n),
        "the resume skips every row"
    );
    let mut b = again.line("rss: all-done resume", &emu);
    b.emu_requests = emu.stats().requests - before;
    b.rss_mb = Some(again.measured.max_rss_kb as f64 / 1024.0);
    vec![a, b]
}

/// Peak RSS for a large input on S3 next to the same file on disk: rows with 1 KB prompts,
/// so the object (about 100 MB at 100,000 rows) is several times what the run holds if it
/// is streamed, and would show whole in the peak if it were downloaded first.
async fn rss_s3(n: u64) -> Vec<Line> {
    let emu = emulator(EmulatorConfig {
        max_records: 0,
        ..EmulatorConfig::default()
    })
    .await;
    let pad = format!("{} ", "pad ".repeat(250));
    let flags = ["--max-tokens", "100"];
    let local = tempfile::tempdir().expect("temp dir");
    let on_disk = run_in(&emu, &local, n, &pad, &flags, 64, true).await;
    let mut a = on_disk.line("rss-s3: local file", &emu);
    a.rss_mb = Some(on_disk.measured.max_rss_kb as f64 / 1024.0);

    let remote = tempfile::tempdir().expect("temp dir");
    let object = emu
        .s3()
        .object_path("bench", "in.csv")
        .expect("object path");
    std::fs::create_dir_all(object.parent().expect("a bucket")).expect("bucket");
    std::fs::copy(local.path().join("in.csv"), &object).expect("seed the object");
    let size = std::fs::metadata(&object).expect("object").len();
    println!("object: s3://bench/in.csv, {:.1} MB", size as f64 / 1e6);
    let from_s3 = run_from(
        &emu,
        &remote,
        "s3://bench/in.csv".as_ref(),
        &flags,
        64,
        true,
    )
    .await;
    let mut b = from_s3.line("rss-s3: S3 object", &emu);
    b.rss_mb = Some(from_s3.measured.max_rss_kb as f64 / 1024.0);
    vec![a, b]
}

/// One finished pipeline run and what it wrote.
struct Run {
    rows: u64,
    measured: Measured,
    summary: Value,
    failed: u64,
    attempts: u64,
}

impl Run {
    fn line(&self, name: &str, emu: &Emulator) -> Line {
        let s = emu.stats();
        Line {
            name: name.into(),
            rows: self.rows,
            wall_s: self.measured.wall.as_secs_f64(),
            throttles: s.throttles.requests
                + s.throttles.tokens
                + s.faults.get("ThrottlingException").copied().unwrap_or(0),
            emu_requests: s.requests,
            failed: self.failed,
            attempts: self.attempts,
            ..Line::default()
        }
    }
}

async fn pipeline(emu: &Emulator, n: u64, prefix: &str, flags: &[&str]) -> Run {
    pipeline_with(emu, n, prefix, flags, CONCURRENCY, false).await
}

async fn pipeline_with(
    emu: &Emulator,
    n: u64,
    prefix: &str,
    flags: &[&str],
    concurrency: u32,
    big: bool,
) -> Run {
    let ws = tempfile::tempdir().expect("temp dir");
    run_in(emu, &ws, n, prefix, flags, concurrency, big).await
}

/// Runs the binary on rows 0..n in `ws` (writing the CSV once) and reads
/// back what it wrote. `big` skips parsing results row by row.
async fn run_in(
    emu: &Emulator,
    ws: &TempDir,
    n: u64,
    prefix: &str,
    flags: &[&str],
    concurrency: u32,
    big: bool,
) -> Run {
    let input = ws.path().join("in.csv");
    if !input.exists() {
        write_csv(&input, n, prefix);
    }
    run_from(emu, ws, input.as_os_str(), flags, concurrency, big).await
}

/// A run of the job in `ws` over `input` (a path or an `s3://` URI).
async fn run_from(
    emu: &Emulator,
    ws: &TempDir,
    input: &std::ffi::OsStr,
    flags: &[&str],
    concurrency: u32,
    big: bool,
) -> Run {
    let out = ws.path().join("out");
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .args(["--config", "/dev/null", "--model", MODEL, "--no-progress"])
        .arg("--input")
        .arg(input)
        .arg("--output-dir")
        .arg(&out)
        .args(["--concurrency", &concurrency.to_string()])
        .args(flags);
    client_env(&mut cmd, &emu.url(), ws.path());
    let m = tokio::task::spawn_blocking({
        let dir = ws.path().to_path_buf();
        move || child::run(cmd, &dir, "run")
    })
    .await
    .expect("pipeline run");
    assert!(
        m.code == 0 || m.code == 1,
        "bedrock-batch exited {}: {}",
        m.code,
        m.stderr
    );
    let summary: Value = serde_json::from_slice(
        &std::fs::read(out.join("summary.json")).expect("summary.json is written"),
    )
    .expect("summary.json is JSON");
    let (ok, mut attempts) = if big {
        (count_lines(&out.join("results.jsonl")), 0)
    } else {
        sum_attempts(&out.join("results.jsonl"))
    };
    let (failed, failed_attempts) = sum_attempts(&out.join("failures.jsonl"));
    attempts += failed_attempts;
    if big {
        attempts = summary["attempts"].as_u64().unwrap_or(0);
    }
    println!(
        "bedrock-batch: exit {}, results.jsonl {ok} lines, failures.jsonl {failed} lines, {:.1}s; CPU {:.2}s, peak RSS {:.1} MB",
        m.code,
        m.wall.as_secs_f64(),
        m.cpu.as_secs_f64(),
        m.max_rss_kb as f64 / 1024.0
    );
    println!(
        "summary.json: throttles {}, retries {}, attempts {}, {:.0} requests/min, {:.0} tokens/min, elapsed {:.1}s",
        summary["this_run"]["throttles"],
        summary["this_run"]["retries"],
        summary["attempts"],
        summary["this_run"]["throughput"]["requests_per_min"].as_f64().unwrap_or(0.0),
        summary["this_run"]["throughput"]["tokens_per_min"].as_f64().unwrap_or(0.0),
        summary["this_run"]["elapsed_secs"].as_f64().unwrap_or(0.0),
    );
    Run {
        rows: summary["total"].as_u64().unwrap_or(0),
        measured: m,
        summary,
        failed,
        attempts,
    }
}

/// The environment a user's shell would give the binary, and nothing else:
/// static test keys, endpoints at the emulator, IMDS off.
fn client_env(cmd: &mut Command, url: &str, dir: &Path) {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home dir");
    cmd.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "ap-northeast-2")
        .env("AWS_ACCESS_KEY_ID", STATIC_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", STATIC_SECRET_ACCESS_KEY)
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url)
        .env("AWS_ENDPOINT_URL_STS", url)
        .env("AWS_ENDPOINT_URL_S3", url);
}

fn write_csv(path: &Path, n: u64, prefix: &str) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create the CSV"));
    writeln!(w, "id,prompt").expect("write the CSV");
    for i in 0..n {
        writeln!(w, "r{i:07},{}", prompt(prefix, i)).expect("write the CSV");
    }
    w.flush().expect("write the CSV");
}

/// Lines in a JSONL file, and the sum of their `attempts`.
fn sum_attempts(path: &Path) -> (u64, u64) {
    let Ok(f) = std::fs::File::open(path) else {
        return (0, 0);
    };
    let (mut lines, mut attempts) = (0, 0);
    for line in std::io::BufReader::new(f).lines() {
        let v: Value = serde_json::from_str(&line.expect("read JSONL")).expect("JSONL line");
        lines += 1;
        attempts += v["attempts"].as_u64().unwrap_or(0);
    }
    (lines, attempts)
}

fn count_lines(path: &Path) -> u64 {
    std::fs::File::open(path)
        .map(|f| std::io::BufReader::new(f).lines().count() as u64)
        .unwrap_or(0)
}

/// Achieved rate per minute over the middle 80% of the run's successes (by
/// arrival at the emulator): requests, or tokens when `tokens`.
fn steady(emu: &Emulator, tokens: bool) -> Option<f64> {
    let mut ok: Vec<(u64, u64)> = emu
        .requests()
        .into_iter()
        .filter(|r| r.service == "bedrock" && r.status == 200)
        .map(|r| (r.at_ms, r.input_tokens + r.output_tokens))
        .collect();
    ok.sort_unstable();
    let k = ok.len() / 10;
    if ok.len() < 20 {
        return None;
    }
    let window = &ok[k..ok.len() - k];
    let span = (window[window.len() - 1].0 - window[0].0) as f64 / 60_000.0;
    // Rate of what arrived after the window's first success.
    let amount: f64 = if tokens {
        window[1..].iter().map(|r| r.1 as f64).sum()
    } else {
        (window.len() - 1) as f64
    };
    (span > 0.0).then(|| amount / span)
}
