//! One run per output directory, through the real binary: while a run holds
//! the directory, a second `run` (plain, `--fresh` or `--retry-failures`)
//! exits 2 before sending anything and names the holder; the first finishes
//! with every id once; after a kill -9 the kernel has released the lock and
//! a new run starts at once.
//!
//! Not here: what resume does once it holds the lock (resume.rs).

use crate::cli_util::{
    assert_each_id_once, csv_ids, paid_calls, run_args, show, spawn_until, start_job, stop, MODEL,
    STOP_WITHIN,
};

const ROWS: usize = 24;

fn args() -> Vec<&'static str> {
    let mut a = run_args(&[MODEL], "50");
    a.extend(["--concurrency", "2"]);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_into_a_held_directory_exits_2_having_sent_nothing() {
    let (emu, ws) = start_job(ROWS, 250).await;
    let mut first = spawn_until(&ws, "first", &args(), "the first run sending", || {
        emu.stats().requests > 0
    })
    .await;
    let pid = first.id().unwrap();

    for extra in [&[][..], &["--fresh"], &["--retry-failures"]] {
        let mut a = args();
        a.extend_from_slice(extra);
        let out = ws.run(&a);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!(
            "error: {}: in use by another bedrock-batch run (pid {pid} on ",
            ws.out().display()
        );
        assert!(stderr.contains(&want), "{extra:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
    let status = first.wait().await.unwrap();
    assert_eq!(status.code(), Some(0));
    assert_each_id_once(&ws.out(), &csv_ids(ROWS));
    // The refused runs sent nothing: one call per row, all from the first.
    assert_eq!(emu.stats().requests, ROWS as u64);
    assert!(paid_calls(&emu).values().all(|&n| n == 1));
    let aside = std::fs::read_dir(ws.out())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("previous-")
        })
        .count();
    assert_eq!(aside, 0, "the refused --fresh moved nothing aside");
    assert_eq!(ws.summary()["succeeded"], ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_new_run_starts_at_once() {
    let (emu, ws) = start_job(ROWS, 5000).await;
    let first = spawn_until(&ws, "first", &args(), "two calls in flight", || {
        emu.stats().in_flight == 2
    })
    .await;
    let status = stop(first, libc::SIGKILL, STOP_WITHIN).await;
    assert_eq!(status.code(), None, "killed");

    emu.set_latency_ms(0);
    let out = ws.run(&args());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        show(&out)
    );
    assert_each_id_once(&ws.out(), &csv_ids(ROWS));
}
