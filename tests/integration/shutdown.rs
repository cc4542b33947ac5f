//! Stopping the real binary: SIGINT/SIGTERM (calls in flight finish within
//! the grace period and are written, exit 130/143, summary.json says why), a
//! second signal or the end of the grace period (calls in flight are dropped
//! unwritten and sent on resume), and kill -9 at random moments (resume ends
//! with every id once and at most `concurrency` rows paid twice per kill).
//! Each is checked against the emulator's request records.
//!
//! Not here: resume without a crash (resume.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bedrock_batch::emulator::answer;
use tokio::process::Child;

use crate::cli_util::{
    assert_csv_answers, assert_each_id_once, csv_ids, csv_prompt, lines, paid_calls, read_jsonl,
    run_args, run_to_end, signal, spawn, spawn_until, start_job, start_workspace, stderr_of, stop,
    MODEL, STOP_WITHIN,
};

/// The first signal: no new rows; the calls in flight finish and are
/// written; exit `code`; resume finishes the job with no row paid twice.
async fn first_signal_lets_calls_in_flight_finish(sig: libc::c_int, code: i32, name: &str) {
    const ROWS: usize = 40;
    let (emu, ws) = start_job(ROWS, 400).await;
    let mut args = run_args(&[MODEL], "50");
    args.extend(["--concurrency", "4"]);
    // Four rows written: the next four are on their way (400 ms each).
    let child = spawn_until(&ws, "first", &args, "4 results", || {
        lines(&ws, "results.jsonl") >= 4
    })
    .await;
    let written_at_signal = lines(&ws, "results.jsonl");
    let status = stop(child, sig, STOP_WITHIN).await;
    let stderr = stderr_of(&ws, "first");
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(&format!("{name}: stopping: waiting up to 30s for "))
            && stderr.contains("call(s) in flight to finish and be written"),
        "{stderr}"
    );

    let summary = ws.summary();
    assert_eq!(summary["stopped_by"], name);
    let written = lines(&ws, "results.jsonl");
    assert_eq!(summary["succeeded"], written);
    assert!(
        written > written_at_signal,
        "the calls in flight at the signal were finished and written ({written_at_signal} → {written})"
    );
    assert!(written < ROWS, "stopped taking rows ({written} of {ROWS})");
    assert_eq!(summary["unfinished"], ROWS - written);
    // Every answer paid for is on disk: nothing to pay for twice.
    let paid: u64 = paid_calls(&emu).values().sum();
    assert_eq!(paid, written as u64);
    let stdout = std::fs::read_to_string(ws.path("first.stdout")).unwrap();
    assert!(stdout.contains(&format!("stopped by {name}")), "{stdout}");
    // The report is written on a stop too, and says why the run stopped.
    let report = std::fs::read_to_string(ws.out().join("report.html")).expect("report.html");
    assert!(report.contains(&format!("\"stopped_by\":\"{name}\"")));
    assert!(stdout.contains("report:   "), "{stdout}");

    let (resumed, resume_err) = run_to_end(&ws, "resume", &args).await;
    assert_eq!(resumed, Some(0), "{resume_err}");
    assert_each_id_once(&ws.out(), &csv_ids(ROWS));
    let summary = ws.summary();
    assert_eq!(summary["this_run"]["skipped"], written);
    assert_eq!(
        summary["succeeded"], ROWS,
        "the job's figures cover both runs"
    );
    assert_eq!(summary["stopped_by"], serde_json::Value::Null);
    let paid = paid_calls(&emu);
    for i in 0..ROWS {
        assert_eq!(paid.get(&csv_prompt(i)), Some(&1), "row {i} paid once");
    }
    assert_csv_answers(&ws.results());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_finishes_calls_in_flight_and_exits_130() {
    first_signal_lets_calls_in_flight_finish(libc::SIGINT, 130, "sigint").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_calls_in_flight_and_exits_143() {
    first_signal_lets_calls_in_flight_finish(libc::SIGTERM, 143, "sigterm").await;
}

/// Four slow rows in flight when the run is stopped; `stop` does the
/// stopping. Returns how long the process took to exit after the first
/// signal. The rows in flight are not written, and the resume sends them.
async fn in_flight_rows_are_dropped_and_sent_on_resume(
    extra: &[&str],
    stop: impl AsyncFnOnce(&Child),
    code: i32,
) -> (Duration, String) {
    const ROWS: usize = 12;
    let (emu, ws) = start_job(ROWS, 6000).await;
    let mut args = run_args(&[MODEL], "50");
    args.extend(["--concurrency", "4"]);
    args.extend(extra);
    let mut child = spawn_until(&ws, "first", &args, "4 calls in flight", || {
        emu.stats().in_flight == 4
    })
    .await;
    let t0 = Instant::now();
    stop(&child).await;
    let status = child.wait().await.unwrap();
    let took = t0.elapsed();
    let stderr = stderr_of(&ws, "first");
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert_eq!(
        lines(&ws, "results.jsonl"),
        0,
        "aborted rows are not written"
    );
    assert_eq!(lines(&ws, "failures.jsonl"), 0, "nor counted as failed");
    let summary = ws.summary();
    assert_eq!(summary["succeeded"], 0);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["unfinished"], ROWS);

    emu.set_latency_ms(0);
    let (resumed, resume_err) = run_to_end(&ws, "resume", &args).await;
    assert_eq!(resumed, Some(0), "{resume_err}");
    assert_each_id_once(&ws.out(), &csv_ids(ROWS));
    assert_eq!(ws.summary()["succeeded"], ROWS);
    // The aborted calls may or may not have been billed; at most the four
    // in flight are paid for twice.
    let paid = paid_calls(&emu);
    let twice: u64 = paid.values().map(|n| n - 1).sum();
    assert!(twice <= 4, "{paid:?}");
    for i in 0..ROWS {
        assert!(paid.contains_key(&csv_prompt(i)), "row {i} answered");
    }
    (took, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_aborts_calls_in_flight_at_once() {
    let (took, stderr) = in_flight_rows_are_dropped_and_sent_on_resume(
        &[],
        async |child| {
            signal(child, libc::SIGINT);
            tokio::time::sleep(Duration::from_millis(300)).await;
            signal(child, libc::SIGTERM);
        },
        130,
    )
    .await;
    assert!(
        stderr.contains("second signal: aborting calls in flight"),
        "{stderr}"
    );
    // The calls take 6 s and the grace period is 30 s: generous.
    assert!(took < Duration::from_secs(4), "exited after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_ends_calls_still_in_flight() {
    let (took, stderr) = in_flight_rows_are_dropped_and_sent_on_resume(
        &["--grace-period-secs", "1"],
        async |child| signal(child, libc::SIGTERM),
        143,
    )
    .await;
    assert!(
        stderr.contains("grace period over: aborting 4 call(s) in flight"),
        "{stderr}"
    );
    // 1 s of grace against 6 s calls: generous either way.
    assert!(took >= Duration::from_millis(900), "exited after {took:?}");
    assert!(took < Duration::from_secs(4), "exited after {took:?}");
}

/// kill -9 at random moments, then resume until done: every id ends in
/// exactly one file, no line is torn or repeated, each answer is its own
/// row's, and at most `concurrency` rows per kill were paid for twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_and_pays_twice_at_most_the_rows_in_flight() {
    const ROWS: usize = 2000;
    const CONCURRENCY: u64 = 8;
    const KILLS: u64 = 4;
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let (emu, ws) = start_workspace(20).await;
    // 20–50 ms a call; every 101st row is refused (a failure, not a retry).
    let prompt = |i: usize| {
        let bad = if i % 101 == 50 {
            " [[emu:validation]]"
        } else {
            ""
        };
        format!("Row {i}: [[emu:sleep={}]] what is {i}?{bad}", i * 7 % 31)
    };
    let mut csv = String::from("id,prompt\n");
    for i in 0..ROWS {
        csv.push_str(&format!("k{i:05},{}\n", prompt(i)));
    }
    ws.write("p.csv", csv);
    let mut args = run_args(&[MODEL], "30");
    args.extend(["--concurrency", "8"]);
    let mut torn = 0;
    let mut written_before_kill = Vec::new();
    for k in 0..KILLS {
        let child = spawn(&ws, &format!("run{k}"), &args);
        let after = Duration::from_millis(rng.u64(400..1500));
        tokio::time::sleep(after).await;
        let status = stop(child, libc::SIGKILL, STOP_WITHIN).await;
        assert_eq!(status.code(), None, "killed, not exited (seed {seed})");
        let results = std::fs::read(ws.out().join("results.jsonl")).unwrap_or_default();
        torn += (!results.is_empty() && !results.ends_with(b"\n")) as u32;
        written_before_kill.push(lines(&ws, "results.jsonl") + lines(&ws, "failures.jsonl"));
    }
    let (last, last_err) = run_to_end(&ws, "last", &args).await;
    assert_eq!(last, Some(1), "seed {seed}: {last_err}");
    let context = format!(
        "seed {seed}, rows written after each kill {written_before_kill:?}, torn tails {torn}"
    );
    assert!(
        written_before_kill.windows(2).any(|w| w[1] > w[0]),
        "the kills fell where work was being done ({context})"
    );

    let all: BTreeSet<String> = (0..ROWS).map(|i| format!("k{i:05}")).collect();
    assert_each_id_once(&ws.out(), &all);
    let by_id: BTreeMap<String, usize> = (0..ROWS).map(|i| (format!("k{i:05}"), i)).collect();
    for r in read_jsonl(&ws.out().join("results.jsonl")) {
        let i = by_id[r["id"].as_str().unwrap()];
        assert_eq!(r["output"], answer(&prompt(i)), "{context}");
        assert_ne!(i % 101, 50);
    }
    let failures = read_jsonl(&ws.out().join("failures.jsonl"));
    assert_eq!(failures.len(), (0..ROWS).filter(|i| i % 101 == 50).count());
    for f in &failures {
        assert_eq!(f["error"]["kind"], "validation", "{context}");
    }

    let paid = paid_calls(&emu);
    for (i, p) in (0..ROWS).map(|i| (i, prompt(i))) {
        if i % 101 != 50 {
            assert!(paid.contains_key(&p), "row {i} never answered ({context})");
        }
    }
    let twice: u64 = paid.values().map(|n| n - 1).sum();
    assert!(
        twice <= CONCURRENCY * KILLS,
        "{twice} rows paid twice; at most {} allowed ({context})",
        CONCURRENCY * KILLS
    );
    eprintln!("kill -9: {twice} rows paid twice over {KILLS} kills ({context})");
}
