//! Resume through the real binary: the same command into the same
//! `--output-dir` sends only what is not done yet, refuses another job,
//! `--fresh` moves old files aside, `--retry-failures` moves rows that now
//! succeed out of failures.jsonl, a torn last line is cut and its row sent
//! again, and every output file is owner-only. Also a fault soak: under
//! transient faults and dropped connections every row is answered once and
//! the attempts add up.
//!
//! Not here: signals and kill -9 (shutdown.rs), bad input rows (bad_input.rs).

use std::collections::{BTreeMap, BTreeSet};

use bedrock_batch::cli::{Args, Command};
use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};
use bedrock_batch::output::manifest::Manifest;
use bedrock_batch::{output::checkpoint, Settings};
use serde_json::Value;

use crate::cli_util::{
    assert_csv_answers, assert_each_id_once, bedrock_calls, csv_ids, csv_prompt, csv_rows, ids,
    paid_calls, run_args, show, start_job, start_workspace, Workspace, MODEL,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_sends_only_the_rows_not_yet_written() {
    let (emu, ws) = start_job(30, 0).await;
    let args = run_args(&[MODEL], "50");
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 30);

    // As if the first run had died after 12 rows: keep their lines only.
    let results = ws.out().join("results.jsonl");
    let text = std::fs::read_to_string(&results).unwrap();
    let kept: Vec<&str> = text.lines().take(12).collect();
    std::fs::write(&results, kept.join("\n") + "\n").unwrap();
    let kept_ids: BTreeSet<String> = ids(&results).into_iter().collect();

    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 30 + 18, "only the 18 missing rows");
    let summary = ws.summary();
    // The job's figures cover both runs; this run's, what it sent.
    assert_eq!(summary["this_run"]["skipped"], 12);
    assert_eq!(summary["this_run"]["succeeded"], 18);
    assert_eq!(summary["succeeded"], 30);
    assert_eq!(summary["unfinished"], 0);
    assert_each_id_once(&ws.out(), &csv_ids(30));
    // The rows sent again are exactly the ones that were missing.
    let paid = paid_calls(&emu);
    for i in 0..30 {
        let id = format!("r{i:05}");
        let want = if kept_ids.contains(&id) { 1 } else { 2 };
        assert_eq!(paid[&csv_prompt(i)], want, "{id}");
    }
    assert_csv_answers(&ws.results());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_200_000_row_job_resumes_without_a_request() {
    const ROWS: usize = 200_000;
    let (emu, ws) = start_workspace(0).await;
    let input = ws.write("big.csv", csv_rows(ROWS));
    let out_dir = ws.out();
    let argv = [
        "bedrock-batch",
        "run",
        "--config",
        "/dev/null",
        "--model",
        MODEL,
        "--input",
        input.to_str().unwrap(),
        "--output-dir",
        out_dir.to_str().unwrap(),
        "--max-tokens",
        "50",
    ];
    // The directory as an earlier run of this very command left it: its
    // manifest, 9 in 10 rows answered and 1 in 10 failed.
    let Command::Run(run) = <Args as clap::Parser>::try_parse_from(argv)
        .unwrap()
        .command
    else {
        panic!("not a run command")
    };
    let settings = Settings::resolve(&run, false).unwrap();
    checkpoint::prepare(&out_dir, &settings.resume, &Manifest::of(&settings), &[]).unwrap();
    let (mut results, mut failures) = (String::new(), String::new());
    for i in 0..ROWS {
        let id = format!("r{i:05}");
        if i % 10 == 0 {
            failures.push_str(&format!(
                "{{\"id\":\"{id}\",\"error\":{{\"kind\":\"validation\"}}}}\n"
            ));
        } else {
            results.push_str(&format!(
                "{{\"id\":\"{id}\",\"output\":{}}}\n",
                Value::from(answer(&csv_prompt(i)))
            ));
        }
    }
    std::fs::write(out_dir.join("results.jsonl"), results).unwrap();
    std::fs::write(out_dir.join("failures.jsonl"), failures).unwrap();

    let started = std::time::Instant::now();
    let out = ws.command().args(&argv[1..]).output().unwrap();
    let elapsed = started.elapsed();
    // A tenth of the job's rows are failures: exit 1, though this run sent nothing.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(emu.stats().requests, 0, "not a single Bedrock request");
    let summary = ws.summary();
    assert_eq!(summary["total"], ROWS);
    assert_eq!(summary["this_run"]["skipped"], ROWS);
    assert_eq!(summary["this_run"]["succeeded"], 0);
    assert_eq!(summary["unfinished"], 0);
    // Generous: about 4 s in a debug build on a shared 2-core machine.
    assert!(elapsed.as_secs() < 60, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_job_in_the_same_directory_is_refused_until_fresh() {
    let (emu, ws) = start_job(5, 0).await;
    ws.write("q.csv", csv_rows(6));
    ws.write("t1.toml", "template = \"Q: {{ prompt }}\"\n");
    ws.write("t2.toml", "template = \"Question: {{ prompt }}\"\n");
    let job = run_args(&[MODEL], "50");
    let out = ws.run(&job);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let sent = emu.stats().requests;
    let before = std::fs::read(ws.out().join("results.jsonl")).unwrap();

    let other_model = "amazon.nova-lite-v1:0";
    let cases: [(Vec<&str>, &str); 4] = [
        (
            run_args(&[other_model], "50"),
            "model: \"anthropic.claude-3-haiku-20240307-v1:0\" → \"amazon.nova-lite-v1:0\"",
        ),
        (run_args(&[MODEL], "60"), "max_tokens: 50 → 60"),
        (
            vec!["--model", MODEL, "--input", "q.csv", "--max-tokens", "50"],
            "inputs: [",
        ),
        (
            [run_args(&[MODEL], "50"), vec!["--config", "t1.toml"]].concat(),
            "template: null → \"Q: {{ prompt }}\"",
        ),
    ];
    for (args, change) in &cases {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{}", show(&out));
        let e = errors[0];
        assert!(e.contains("holds a different job ("), "{e}");
        assert!(e.contains(change), "{e}\nshould name {change}");
        assert!(
            e.contains("--fresh") && e.contains("another --output-dir"),
            "{e}"
        );
    }
    assert_eq!(emu.stats().requests, sent, "nothing sent for a refused job");
    assert_eq!(
        std::fs::read(ws.out().join("results.jsonl")).unwrap(),
        before,
        "nothing written"
    );

    // How fast it runs is not part of the job: this resumes (all done).
    let mut faster = job.to_vec();
    faster.extend(["--concurrency", "3", "--rpm", "600"]);
    let out = ws.run(&faster);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.summary()["this_run"]["skipped"], 5);

    // --fresh: the old files move to previous-<secs>/, the new job starts over.
    let mut t1 = run_args(&[MODEL], "50");
    t1.extend(["--config", "t1.toml", "--fresh"]);
    let out = ws.run(&t1);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, sent + 5);
    let aside: Vec<_> = std::fs::read_dir(ws.out())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let name = aside[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("previous-"), "{name}");
    assert_eq!(
        std::fs::read(aside[0].join("results.jsonl")).unwrap(),
        before
    );
    for f in ["failures.jsonl", "summary.json", "manifest.json"] {
        assert!(aside[0].join(f).exists(), "{f} moved aside too");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--fresh: earlier files moved to"),
        "{stderr}"
    );
    let r = ws.results();
    assert_eq!(r.len(), 5);
    for row in &r {
        let i: usize = row["id"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(
            row["output"],
            answer(&format!("Q: {}", csv_prompt(i))).as_str()
        );
    }

    // A changed template is refused too, now against the new job.
    let mut t2 = run_args(&[MODEL], "50");
    t2.extend(["--config", "t2.toml"]);
    let out = ws.run(&t2);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("template: \"Q: {{ prompt }}\" → \"Question: {{ prompt }}\""),
        "{}",
        show(&out)
    );
    assert_eq!(emu.stats().requests, sent + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failures_moves_rows_that_now_succeed_out_of_failures() {
    let (emu, ws) = start_workspace(0).await;
    // t1: throttled once; t2: throttled twice; s1: a server error once;
    // v1: always invalid; ok1: fine. With --max-attempts 1 every forced
    // error fails its row.
    ws.write(
        "p.csv",
        "id,prompt\n\
         ok1,Plain question\n\
         t1,Busy [[emu:throttle*1]] once\n\
         t2,Busy [[emu:throttle*2]] twice\n\
         s1,Broken [[emu:server*1]] once\n\
         v1,Invalid [[emu:validation]] always\n",
    );
    let mut job = run_args(&[MODEL], "50");
    job.extend(["--max-attempts", "1"]);
    let all: BTreeSet<String> = ["ok1", "t1", "t2", "s1", "v1"].map(String::from).into();
    let kinds = |ws: &Workspace| -> BTreeMap<String, String> {
        ws.failures()
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_string(),
                    f["error"]["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let out = ws.run(&job);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_each_id_once(&ws.out(), &all);
    assert_eq!(
        kinds(&ws),
        BTreeMap::from([
            ("t1".into(), "throttled".into()),
            ("t2".into(), "throttled".into()),
            ("s1".into(), "server".into()),
            ("v1".into(), "validation".into()),
        ])
    );
    assert_eq!(emu.stats().requests, 5);

    // Only throttled rows: t1 now succeeds, t2 is throttled again.
    let mut retry = job.to_vec();
    retry.extend(["--retry-failures", "throttled"]);
    let out = ws.run(&retry);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(emu.stats().requests, 5 + 2, "only t1 and t2 sent");
    assert_each_id_once(&ws.out(), &all);
    assert_eq!(
        kinds(&ws),
        BTreeMap::from([
            ("t2".into(), "throttled".into()),
            ("s1".into(), "server".into()),
            ("v1".into(), "validation".into()),
        ])
    );
    let summary = ws.summary();
    assert_eq!(summary["this_run"]["succeeded"], 1);
    assert_eq!(summary["this_run"]["failed"], 1);
    assert_eq!(summary["this_run"]["skipped"], 3);

    // Several kinds at once.
    let mut retry = job.to_vec();
    retry.extend(["--retry-failures", "throttled,server"]);
    let out = ws.run(&retry);
    // v1's validation failure is still in the job: exit 1.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(emu.stats().requests, 7 + 2, "t2 and s1 sent");
    assert_each_id_once(&ws.out(), &all);
    assert_eq!(
        kinds(&ws),
        BTreeMap::from([("v1".into(), "validation".into())])
    );

    // No kinds: every failure; v1 fails again and stays, once.
    let mut retry = job.to_vec();
    retry.push("--retry-failures");
    let out = ws.run(&retry);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(emu.stats().requests, 9 + 1);
    assert_each_id_once(&ws.out(), &all);
    assert_eq!(ws.failures()[0]["id"], "v1");
    assert!(
        !ws.out().join("failures.tmp").exists(),
        "the atomic rewrite leaves no temp file"
    );
    let r = ws.results();
    let out_of = |id: &str| r.iter().find(|x| x["id"] == id).unwrap()["output"].clone();
    assert_eq!(out_of("t2"), answer("Busy [[emu:throttle*2]] twice"));
    assert_eq!(out_of("s1"), answer("Broken [[emu:server*1]] once"));

    // An unknown kind is a setup error.
    let mut retry = job.to_vec();
    retry.extend(["--retry-failures", "throttled,bogus"]);
    let out = ws.run(&retry);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind `bogus`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_is_cut_reported_and_its_row_sent_again() {
    let (emu, ws) = start_job(10, 0).await;
    let args = run_args(&[MODEL], "50");
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // The process died in the middle of writing the last line.
    let path = ws.out().join("results.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let last = text.trim_end().rsplit('\n').next().unwrap();
    let torn_id = serde_json::from_str::<Value>(last).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let keep = text.len() - last.len() - 1 + last.len() / 2;
    std::fs::write(&path, &text[..keep]).unwrap();

    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let note = format!(
        "results.jsonl: cut a torn last line ({} bytes) left by an interrupted run; that row will be sent again",
        last.len() / 2
    );
    assert!(stderr.contains(&note), "{}", show(&out));
    assert_eq!(emu.stats().requests, 11, "only the torn row again");
    assert_eq!(ws.summary()["this_run"]["skipped"], 9);
    assert_each_id_once(&ws.out(), &csv_ids(10));
    let last = ws.results().pop().unwrap();
    assert_eq!(last["id"], torn_id.as_str());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_emu, ws) = start_workspace(0).await;
    ws.write("p.csv", "id,prompt\na,Fine\nb,Bad [[emu:validation]]\n");
    let job = run_args(&[MODEL], "50");
    let mode = |name: &str| {
        let p = ws.out().join(name);
        std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let files = [
        "results.jsonl",
        "failures.jsonl",
        "summary.json",
        "manifest.json",
    ];
    let mut retry = job.to_vec();
    retry.push("--retry-failures");
    let mut fresh = job.to_vec();
    fresh.push("--fresh");
    // A first run, a rewrite of failures.jsonl, and files created anew.
    for args in [&job[..], &retry[..], &fresh[..]] {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        for f in files {
            assert_eq!(mode(f), 0o600, "{f} after run {args:?}");
        }
    }
}

/// The soak's rows: one in five attempts fails with a transient fault. Per
/// row markers, not the emulator's random `fault_rate`: that one mixes in
/// 429s, and a steady stream of 429s rightly holds the adaptive limiter at a
/// crawl (a few rows a second), which is the limiter's test, not this one.
fn soak_prompt(i: usize) -> String {
    let fault = match i % 20 {
        0 | 10 => " [[emu:server*1]]",
        3 => " [[emu:unavailable*2]]",
        7 => " [[emu:timeout*1]]",
        _ => "",
    };
    format!("Soak row {i}: what is {i} squared?{fault}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_soak_loses_nothing_duplicates_nothing_and_attempts_add_up() {
    const ROWS: usize = 3000;
    // Plus 5 % of all calls dropped without an answer, at random.
    let emu = Emulator::start(EmulatorConfig {
        latency_ms: 5,
        drop_rate: 0.05,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new(&emu.url());
    let mut csv = String::from("id,prompt\n");
    for i in 0..ROWS {
        csv.push_str(&format!("s{i:05},{}\n", soak_prompt(i)));
    }
    ws.write("p.csv", csv);
    // Up to 3 forced faults a row, and each attempt has a 5 % chance to
    // drop: 12 attempts leave a row unanswered with odds below 1e-9.
    let mut args = run_args(&[MODEL], "30");
    args.extend(["--concurrency", "32", "--max-attempts", "12"]);
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let all: BTreeSet<String> = (0..ROWS).map(|i| format!("s{i:05}")).collect();
    assert_each_id_once(&ws.out(), &all);
    let results = ws.results();
    assert_eq!(results.len(), ROWS);

    let stats = emu.stats();
    let forced: u64 = (0..ROWS)
        .map(|i| match i % 20 {
            0 | 10 | 7 => 1,
            3 => 2,
            _ => 0,
        })
        .sum();
    assert_eq!(stats.forced, forced);
    assert!(
        stats.dropped > ROWS as u64 / 50,
        "the soak dropped connections: {} of {}",
        stats.dropped,
        stats.requests
    );
    assert_eq!(
        stats.successes, ROWS as u64,
        "each row answered exactly once"
    );
    assert_eq!(
        stats.successes + stats.forced + stats.dropped,
        stats.requests
    );

    // Attempts add up: per row, in total, and in the summary.
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for r in bedrock_calls(&emu) {
        *seen.entry(r.prompt.expect("prompt recorded")).or_default() += 1;
    }
    let mut attempts = 0;
    for r in &results {
        let i: usize = r["id"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(r["output"], answer(&soak_prompt(i)));
        let n = r["attempts"].as_u64().unwrap();
        assert_eq!(
            n,
            seen[&soak_prompt(i)],
            "row {i}: its attempts are the calls the emulator saw"
        );
        attempts += n;
    }
    assert_eq!(attempts, stats.requests);
    let summary = ws.summary();
    assert_eq!(summary["attempts"], stats.requests);
    assert_eq!(summary["this_run"]["retries"], stats.requests - ROWS as u64);
    assert_eq!(summary["succeeded"], ROWS);
    eprintln!(
        "fault soak: {ROWS} rows, {} calls ({} forced faults, {} dropped) in {} s",
        stats.requests, stats.forced, stats.dropped, summary["this_run"]["elapsed_secs"]
    );
}

/// summary.json and the exit code describe the job, not the last run: a
/// resume that sends nothing still reports the job's 5 answers and 1 failure,
/// with latency over every answered row, and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_and_exit_code_describe_the_whole_job_after_a_resume() {
    let (_emu, ws) = start_workspace(20).await;
    ws.write(
        "p.csv",
        "id,prompt\na,one\nb,two\nc,three [[emu:validation]]\nd,four\ne,five\nf,six\n",
    );
    let args = run_args(&[MODEL], "50");
    let first = ws.run(&args);
    assert_eq!(first.status.code(), Some(1), "{}", show(&first));
    let before = ws.summary();

    let again = ws.run(&args);
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    let s = ws.summary();
    assert_eq!(
        (s["total"].as_u64(), s["succeeded"].as_u64()),
        (Some(6), Some(5))
    );
    assert_eq!(s["failed"], 1);
    assert_eq!(s["failed_by_kind"]["validation"], 1);
    assert_eq!(s["unfinished"], 0);
    assert_eq!(
        s["tokens"], before["tokens"],
        "tokens of every answer in the job"
    );
    assert_eq!(s["attempts"], before["attempts"]);
    assert_eq!(s["latency_ms"], before["latency_ms"]);
    assert!(s["latency_ms"]["p50"].as_u64().unwrap() >= 20, "{s}");
    assert_eq!(s["this_run"]["skipped"], 6);
    assert_eq!(s["this_run"]["succeeded"], 0);
    assert_eq!(s["this_run"]["attempts"], 0);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("job: 6 rows — 5 succeeded, 1 failed (validation 1), 0 not yet sent"),
        "{stdout}"
    );
}
