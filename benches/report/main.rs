//! The HTML report of a 100,000-row job, measured: how big the file is, how
//! long `bedrock-batch report` takes to write it, how long headless Chromium
//! takes to first render it, and how long the filter takes over every row.
//!
//! ```text
//! cargo bench --bench report                          # 100,000 rows
//! cargo bench --bench report -- --rows 20000 --answer-chars 1000
//! ```
//!
//! The output directory is written by this program in the format the README
//! documents (and `Summary` for summary.json): 2% failed rows, answers
//! of about `--answer-chars` characters, rows finishing over an hour. The
//! real release binary then writes the report, and Debian's Chromium opens
//! it with the network off (the same driver as the integration test).
//! BENCHMARKS.md records the figures. Without `--bench` it does nothing.

// Shared with the integration test; the bench takes no screenshot.
#[allow(dead_code)]
#[path = "../../tests/integration/browser.rs"]
mod browser;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bedrock_batch::output::summary::{Latency, Run, Summary, Throttles, Throughput, Tokens};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-batch");
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows = arg("--rows", 100_000);
    let answer_chars = arg("--answer-chars", 400);
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    write_job(dir.path(), rows, answer_chars);
    eprintln!("wrote {rows} rows in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let out = Command::new(BIN)
        .arg("report")
        .arg(dir.path())
        .output()
        .expect("run bedrock-batch report");
    let write_secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dir.path().join("report.html");
    let jsonl: u64 = ["results.jsonl", "failures.jsonl"]
        .iter()
        .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
        .sum();
    let size = std::fs::metadata(&report).unwrap().len();

    let mut b = browser::Browser::launch(1280, 1400);
    let t = Instant::now();
    b.open(&report);
    let rendered = b.wait_for(
        "document.documentElement.dataset.rendered",
        Duration::from_secs(300),
    );
    let wall_ms = t.elapsed().as_millis();
    let page_ms: f64 = rendered.as_str().unwrap().parse().unwrap();
    let heap = b.eval("performance.memory ? performance.memory.usedJSHeapSize : 0");

    // The first search builds the lower-cased text of every row; later ones reuse it.
    b.eval("document.getElementById('filter').focus()");
    let mut filters = Vec::new();
    for text in ["number 4242", "2"] {
        b.eval("(() => { const f = document.getElementById('filter'); f.value = ''; })()");
        b.type_text(text);
        b.wait_for(
            &format!("document.getElementById('filter').value === {text:?} && !document.getElementById('shown').textContent.startsWith('{rows}')"),
            Duration::from_secs(60),
        );
        std::thread::sleep(Duration::from_millis(150));
        let ms = b.eval("document.documentElement.dataset.filterMs");
        let shown = b.eval("document.getElementById('shown').textContent");
        filters.push((text, ms, shown));
    }
    // Scrolling to the middle repaints only what is on screen.
    let scroll = b.eval(
        "new Promise(r => { const v = document.getElementById('rows'); \
         const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); \
         setTimeout(() => { const t0 = performance.now(); v.scrollTop = v.scrollHeight / 2; \
         requestAnimationFrame(() => requestAnimationFrame(() => r([performance.now() - t0, \
         document.querySelectorAll('#rows .sbs-row[data-id]').length]))); }, 200); })",
    );
    let errors = b.errors();
    let requests = b.requests();
    drop(b);

    println!(
        "rows:                         {rows} ({} failed), answers ~{answer_chars} chars",
        rows / 50
    );
    println!("results + failures JSONL:     {:.1} MB", jsonl as f64 / 1e6);
    println!("report.html:                  {:.1} MB", size as f64 / 1e6);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("`report` wall time:           {write_secs:.2} s ({profile} binary: reads the directory, writes the page)");
    println!(
        "first render, page's clock:   {page_ms:.0} ms (navigation start → every section drawn)"
    );
    println!(
        "first render, wall:           {wall_ms} ms (Page.navigate → rendered, from the driver)"
    );
    println!(
        "JS heap after render:         {:.0} MB",
        heap.as_f64().unwrap_or(0.0) / 1e6
    );
    for (text, ms, shown) in &filters {
        println!(
            "filter {text:>13}:         {} ms → {}",
            ms.as_str().unwrap_or("?"),
            shown.as_str().unwrap_or("?")
        );
    }
    println!(
        "scroll to the middle:         {:.0} ms, {} rows in the DOM",
        scroll[0].as_f64().unwrap_or(-1.0),
        scroll[1]
    );
    println!("console errors:               {}", errors.len());
    println!(
        "requests besides the file:    {}",
        requests.len().saturating_sub(1)
    );
}

/// An output directory as a finished run leaves it: results, failures,
/// summary and manifest.
fn write_job(dir: &Path, rows: usize, answer_chars: usize) {
    let start_ms: i64 = 1_764_504_000_000; // 2025-11-30T12:00:00Z
    let span_ms = 3_600_000i64;
    let mut results =
        std::io::BufWriter::new(std::fs::File::create(dir.join("results.jsonl")).unwrap());
    let mut failures =
        std::io::BufWriter::new(std::fs::File::create(dir.join("failures.jsonl")).unwrap());
    let (mut ok, mut bad, mut tin, mut tout) = (0u64, 0u64, 0u64, 0u64);
    let filler =
        "The answer explains its reasoning step by step and ends with a short conclusion. ";
    for i in 0..rows {
        let finished = start_ms + span_ms * i as i64 / rows as i64;
        let latency = 300 + (i as u64 * 7919) % 2400;
        let started_at = bedrock_batch::time::format_epoch_ms(finished - latency as i64);
        let finished_at = bedrock_batch::time::format_epoch_ms(finished);
        let throttles = (i % 97 == 0) as u32;
        let id = format!("r{i:06}");
        let prompt = format!("Question number {i}: explain item {i} in plain words.");
        let source = json!({"file": "prompts.csv", "line": i + 2});
        if i % 50 == 49 {
            bad += 1;
            let (kind, code) = if i % 100 == 49 {
                ("validation", "ValidationException")
            } else {
                ("throttled", "ThrottlingException")
            };
            let f = json!({
                "id": id, "model": MODEL,
                "error": {"kind": kind, "code": code,
                          "message": "the model refused the request: input is too long for the model's context"},
                "attempts": 8, "source": source, "meta": {},
                "started_at": started_at, "finished_at": finished_at, "throttles": throttles,
            });
            serde_json::to_writer(&mut failures, &f).unwrap();
            failures.write_all(b"\n").unwrap();
            continue;
        }
        let mut output = bedrock_batch::emulator::answer(&prompt);
        while output.len() < answer_chars {
            output.push(' ');
            output.push_str(filler);
        }
        output.truncate(answer_chars);
        let (input_tokens, output_tokens) = (14u64, answer_chars as u64 / 4);
        ok += 1;
        tin += input_tokens;
        tout += output_tokens;
        let s = json!({
            "id": id, "model": MODEL, "output": output, "stop_reason": "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            "latency_ms": latency, "attempts": 1, "source": source, "meta": {},
            "started_at": started_at, "finished_at": finished_at, "throttles": throttles,
        });
        serde_json::to_writer(&mut results, &s).unwrap();
        results.write_all(b"\n").unwrap();
    }
    results.flush().unwrap();
    failures.flush().unwrap();
    let failed_by_kind: std::collections::BTreeMap<String, u64> = [
        ("throttled".to_string(), bad / 2),
        ("validation".to_string(), bad - bad / 2),
    ]
    .into();
    let tokens = Tokens {
        input: tin,
        output: tout,
    };
    let latency_ms = Latency {
        p50: 1500,
        p95: 2580,
        p99: 2676,
        max: 2699,
    };
    let summary = Summary {
        total: rows as u64,
        succeeded: ok,
        failed: bad,
        failed_by_kind: failed_by_kind.clone(),
        tokens: tokens.clone(),
        attempts: ok + bad * 8,
        latency_ms: latency_ms.clone(),
        output_dir: dir.to_path_buf(),
        this_run: Run {
            succeeded: ok,
            failed: bad,
            failed_by_kind,
            tokens,
            elapsed_secs: 3600.0,
            throughput: Throughput {
                rows_per_min: rows as f64 / 60.0,
                requests_per_min: rows as f64 / 60.0,
                tokens_per_min: (tin + tout) as f64 / 60.0,
            },
            latency_ms,
            throttles: Throttles {
                requests: rows as u64 / 97,
                tokens: 0,
            },
            retries: bad * 7,
            attempts: ok + bad * 8,
            ..Run::default()
        },
        ..Summary::default()
    };
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(&summary).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(
            &json!({"inputs": ["prompts.csv"], "model": MODEL, "api": "converse"}),
        )
        .unwrap(),
    )
    .unwrap();
}
