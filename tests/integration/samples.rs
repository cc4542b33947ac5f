//! The files we ship are the fixtures: the demo, `config.toml` and `samples/`
//! must keep working as the README says.

use std::process::Command;

use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};

use crate::cli_util::{read_jsonl, show, Workspace, BIN, MODEL};

const TOP: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn demo_runs_the_sample_job_through_assume_role() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", out_dir.path())
        .current_dir(TOP)
        .args(["demo", "--latency-ms", "5", "--output-dir"])
        .arg(out_dir.path().join("demo"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let results = read_jsonl(&out_dir.path().join("demo/results.jsonl"));
    // 12 CSV rows + 5 JSONL rows in config.toml's inputs.
    assert_eq!(results.len(), 17, "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("whoami → arn:aws:sts::123456789012:assumed-role/BedrockExecutionRole/"),
        "{err}"
    );
    assert!(err.contains("2 AssumeRole call(s)"), "{err}");
    // The count says what it counts.
    assert!(
        err.contains("all signed by the 2 distinct session key(s) AssumeRole issued"),
        "{err}"
    );
    let q001 = results.iter().find(|r| r["id"] == "q001").unwrap();
    assert_eq!(
        q001["output"],
        answer("What is the capital of South Korea?")
    );
    assert_eq!(q001["meta"]["expected"], "Seoul");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templated_sample_job_runs_as_documented() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let out = ws
        .command()
        .current_dir(TOP)
        .args(["run", "--config", "samples/reviews.toml", "--output-dir"])
        .arg(ws.out())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let results = ws.results();
    assert_eq!(results.len(), 6);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("given as an instruction in the system prompt"),
        "{stderr}"
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{TOP}/samples/review.schema.json")).unwrap(),
    )
    .unwrap();
    for r in &results {
        assert!(jsonschema::is_valid(&schema, &r["output_json"]), "{r}");
        let label_ok = r["output_json"]["label"] == r["meta"]["label"];
        assert_eq!(r["scores"]["label"], label_ok, "{r}");
        assert!(r["scores"]["stars"].is_boolean(), "{r}");
    }
    let r1 = results.iter().find(|r| r["id"] == "r001").unwrap();
    assert_eq!(r1["meta"]["label"], "mixed");
    let summary = ws.summary();
    assert_eq!(summary["scores"][MODEL]["label"]["scored"], 6, "{summary}");

    // The judge grades those results with a second model.
    let judged = ws.path("judged");
    let out = ws
        .command()
        .current_dir(TOP)
        .args(["run", "--config", "samples/judge.toml", "--input"])
        .arg(ws.out().join("results.jsonl"))
        .arg("--output-dir")
        .arg(&judged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let verdicts = read_jsonl(&judged.join("results.jsonl"));
    assert_eq!(verdicts.len(), 6);
    for v in &verdicts {
        let id = v["id"].as_str().unwrap();
        assert!(id.ends_with(&format!("|{MODEL}")), "{id}");
        assert!(
            ["correct", "incorrect"].contains(&v["scores"]["verdict"].as_str().unwrap()),
            "{v}"
        );
    }
}
