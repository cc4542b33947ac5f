//! A prompt edited under the same id, through the real binary: each line
//! records its request's fingerprint; a resume that finds a done row whose
//! request changed refuses by default (exit 2, nothing sent, the rows named
//! with their lines), keeps the old answers with `--on-changed keep`, or
//! sends the new request with `--on-changed resend`, moving the old line to
//! superseded.jsonl so every id still has exactly one current line.
//!
//! Not here: resume of unchanged rows (resume.rs).

use std::collections::BTreeSet;

use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};

use crate::cli_util::{assert_each_id_once, read_jsonl, run_args, show, Workspace, MODEL};

fn input(third: &str, fifth: &str) -> String {
    format!("id,prompt\nr1,one\nr2,two\nr3,{third}\nr4,four\nr5,{fifth}\n")
}

fn all_ids() -> BTreeSet<String> {
    (1..=5).map(|i| format!("r{i}")).collect()
}

fn run(ws: &Workspace, extra: &[&str]) -> std::process::Output {
    let mut a = run_args(&[MODEL], "50");
    a.extend_from_slice(extra);
    ws.run(&a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_prompt_is_refused_kept_or_resent() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    // r5 has an empty prompt: an input error, nothing sent.
    ws.write("p.csv", input("three", ""));
    let out = run(&ws, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let results = ws.results();
    assert_eq!(results.len(), 4);
    for r in &results {
        let fp = r["fingerprint"].as_str().expect("a fingerprint per result");
        assert_eq!(fp.len(), 16);
    }
    assert!(
        ws.failures()[0].get("fingerprint").is_none(),
        "nothing was sent for r5"
    );
    assert_eq!(emu.stats().requests, 4);

    // Unchanged: a resume sends nothing and says nothing about changes
    // (exit 1: r5's input failure is still in the job).
    let out = run(&ws, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("changed"),
        "{}",
        show(&out)
    );

    // r3 edited, r5 fixed.
    ws.write("p.csv", input("three edited", "five"));
    let out = run(&ws, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("2 row(s) changed since they were answered: `r3` (p.csv: line 4), `r5` (p.csv: line 6); pass --on-changed resend"),
        "{stderr}"
    );
    assert_eq!(emu.stats().requests, 4, "refused before sending anything");

    // Kept: r5's old input failure stays the job's, so exit 1.
    let out = run(&ws, &["--on-changed", "keep"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kept their old answers (on_changed = keep)"),
        "{}",
        show(&out)
    );
    assert_eq!(emu.stats().requests, 4);
    assert_eq!(ws.summary()["this_run"]["skipped"], 5);

    let old_r3 = results.iter().find(|r| r["id"] == "r3").unwrap().clone();
    let out = run(&ws, &["--on-changed", "resend"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 6, "r3 and r5 sent, nothing else");
    assert_each_id_once(&ws.out(), &all_ids());
    let results = ws.results();
    let r3 = results.iter().find(|r| r["id"] == "r3").unwrap();
    assert_eq!(r3["output"], answer("three edited"));
    assert_ne!(r3["fingerprint"], old_r3["fingerprint"]);
    let r5 = results.iter().find(|r| r["id"] == "r5").unwrap();
    assert_eq!(r5["output"], answer("five"));
    let superseded = read_jsonl(&ws.out().join("superseded.jsonl"));
    let moved: Vec<&str> = superseded
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(moved, ["r3", "r5"], "the old lines, verbatim");
    assert_eq!(superseded[0], old_r3);
    assert_eq!(superseded[1]["error"]["kind"], "input");
    // The job's figures count current lines only, not the superseded ones.
    let s = ws.summary();
    assert_eq!(
        (s["succeeded"].as_u64(), s["failed"].as_u64()),
        (Some(5), Some(0))
    );

    // Settled: the next resume sends nothing and refuses nothing.
    let out = run(&ws, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.stats().requests, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_without_a_fingerprint_are_not_reported() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", input("three", "five"));
    let out = run(&ws, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // As an earlier version wrote them.
    let path = ws.out().join("results.jsonl");
    let text: String = read_jsonl(&path)
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("fingerprint");
            format!("{r}\n")
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    ws.write("p.csv", input("three edited", "five"));
    let out = run(&ws, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        emu.stats().requests,
        5,
        "nothing to compare, nothing resent"
    );
}
