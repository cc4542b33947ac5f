//! A property of resume, through the real binary: for random interleavings
//! of kill -9 (at random moments, some leaving a torn last line, as a write
//! cut off mid-line would) and resumes, under random faults and dropped
//! connections from the emulator, the output directory ends with every id
//! exactly once, each answer its own prompt's, and the calls paid for exceed
//! the rows by at most the concurrency per kill.
//!
//! Case count (kept modest so CI stays fast) is in README.md. The readers'
//! properties are unit tests (`src/input/properties.rs`).

use std::io::Write;
use std::time::Duration;

use bedrock_batch::emulator::{Emulator, EmulatorConfig};
use proptest::prelude::*;

use crate::cli_util::{
    assert_csv_answers, assert_each_id_once, csv_ids, csv_rows, paid_calls, read_jsonl, run_args,
    show, spawn, stop, Workspace, MODEL, STOP_WITHIN,
};

const ROWS: usize = 30;

#[derive(Debug, Clone)]
struct Kill {
    /// How long the run lives before kill -9.
    after_ms: u64,
    /// Leave a torn line: this many bytes of a line, no newline, appended
    /// to results.jsonl (true) or failures.jsonl (false).
    torn: Option<(usize, bool)>,
}

fn kill() -> impl Strategy<Value = Kill> {
    (
        30u64..900,
        proptest::option::of((1usize..200, any::<bool>())),
    )
        .prop_map(|(after_ms, torn)| Kill { after_ms, torn })
}

/// Appends the first `n` bytes of a record line (a whole one never: a torn
/// write has no newline) to `file` in `out`.
fn tear(out: &std::path::Path, file: &str, n: usize) {
    let line = format!(
        "{{\"id\":\"r00007\",\"model\":\"{MODEL}\",\"output\":\"{}\",\"stop_reason\":\"end_turn\"}}",
        "x".repeat(120)
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join(file))
        .unwrap();
    f.write_all(&line.as_bytes()[..n.min(line.len() - 1)])
        .unwrap();
}

async fn case(concurrency: usize, kills: Vec<Kill>, fault_rate: f64, drop_rate: f64, seed: u64) {
    let emu = Emulator::start(EmulatorConfig {
        latency_ms: 60,
        fault_rate,
        drop_rate,
        seed: Some(seed),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(ROWS));
    let c = concurrency.to_string();
    let mut args = run_args(&[MODEL], "50");
    args.extend(["--concurrency", &c, "--request-timeout-secs", "2"]);
    for (i, k) in kills.iter().enumerate() {
        let mut child = spawn(&ws, &format!("killed{i}"), &args);
        tokio::time::sleep(Duration::from_millis(k.after_ms)).await;
        // It may have finished already: then there is nothing to kill.
        if child.try_wait().unwrap().is_none() {
            stop(child, libc::SIGKILL, STOP_WITHIN).await;
        }
        // A write can only be torn once the run has opened its files,
        // which is after it wrote the manifest.
        let opened = ws.out().join("manifest.json").exists();
        if let (Some((n, results)), true) = (k.torn, opened) {
            tear(
                &ws.out(),
                if results {
                    "results.jsonl"
                } else {
                    "failures.jsonl"
                },
                n,
            );
        }
    }
    let out = ws.run(&args);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{}",
        show(&out)
    );
    assert_each_id_once(&ws.out(), &csv_ids(ROWS));
    assert_csv_answers(&read_jsonl(&ws.out().join("results.jsonl")));
    let paid: u64 = paid_calls(&emu).values().sum();
    let bound = (ROWS + kills.len() * concurrency) as u64;
    assert!(
        paid <= bound,
        "paid {paid} calls for {ROWS} rows with {} kill(s) at concurrency {concurrency}",
        kills.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        max_shrink_iters: 4,
        failure_persistence: None,
        // Fixed, so CI gives the same verdict on the same code.
        rng_seed: proptest::test_runner::RngSeed::Fixed(14),
        ..ProptestConfig::default()
    })]

    #[test]
    fn kills_torn_lines_and_faults_never_lose_or_double_a_row(
        concurrency in 1usize..=4,
        kills in proptest::collection::vec(kill(), 0..=3),
        fault_rate in 0.0f64..0.3,
        drop_rate in 0.0f64..0.1,
        seed in any::<u64>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(case(concurrency, kills, fault_rate, drop_rate, seed));
    }
}
