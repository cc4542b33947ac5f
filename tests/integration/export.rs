//! `bedrock-batch export` on the output of a real run against the emulator:
//! input order, the columns, CSV quoting, stand-in and suffixed ids, unsent
//! rows, the cost column, and a directory that is not an output directory.

use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};
use serde_json::{json, Value};

use crate::cli_util::{read_jsonl, show, Workspace, MODEL};

/// A CSV and a JSONL input whose rows finish out of order (the first one
/// sleeps), with a quoted multi-line prompt, a row without an id, a repeated
/// id, a row Bedrock refuses and a JSONL column holding an array.
fn job(ws: &Workspace) {
    ws.write(
        "a.csv",
        "id,prompt,label\n\
         a1,Slow one [[emu:sleep=400]],first\n\
         a2,\"Say \"\"hi\"\", then, a comma\nand a second line\",quoted\n\
         a3,Refuse this [[emu:validation]],bad\n\
         ,No id here,stand-in\n\
         dup,First of two,one\n\
         dup,Second of two,two\n\
         a7,Never sent (its line is removed below),gone\n",
    );
    ws.write(
        "b.jsonl",
        "{\"id\": \"b1\", \"prompt\": \"From JSONL\", \"tags\": [\"x\", \"y\"], \"score\": 0.5}\n",
    );
}

fn run_job(ws: &Workspace) {
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "a.csv",
        "--input",
        "b.jsonl",
        "--max-tokens",
        "100",
        "--concurrency",
        "4",
        "--allow-duplicate-ids",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // Stand-in for a run stopped before row a7 was sent: its line goes.
    let path = ws.out().join("results.jsonl");
    let kept: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"id\":\"a7\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, kept).unwrap();
}

/// `export` run from another directory than the run was (the workspace's
/// `home/`), so the inputs are found through the manifest alone.
fn export(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.command()
        .current_dir(ws.path("home"))
        .arg("export")
        .arg(ws.out())
        .args(args)
        .output()
        .expect("run export")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_is_in_input_order_with_every_column_and_quoting() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    job(&ws);
    run_job(&ws);
    // The output files are in completion order: the slow first row is not first.
    assert_ne!(ws.results()[0]["id"], "a1");

    let table = ws.path("table.csv");
    let out = ws
        .command()
        .current_dir(ws.path("home"))
        .arg("export")
        .arg(ws.out())
        .args(["--format", "csv", "--order", "input", "-o"])
        .arg(&table)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(out.stdout.is_empty(), "the table went to the file");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("export: 8 rows: 5 succeeded, 2 failed, 1 unsent"),
        "{err}"
    );

    let text = std::fs::read_to_string(&table).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "id",
            "prompt",
            "label",
            "tags",
            "score",
            "status",
            "answer",
            "stop_reason",
            "input_tokens",
            "output_tokens",
            // The run prices every row (issue 10), so the lines carry cost_usd.
            "cost_usd",
            "latency_ms",
            "attempts",
            "model",
            "error_kind",
            "error_code",
            "error",
            "source"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let col = |row: &csv::StringRecord, name: &str| -> String {
        row[header.iter().position(|h| h == name).unwrap()].to_string()
    };
    let ids: Vec<String> = rows.iter().map(|r| col(r, "id")).collect();
    assert_eq!(
        ids,
        ["a1", "a2", "a3", "a.csv:6", "dup", "dup#2", "a7", "b1"],
        "input order, with the stand-in and suffixed ids the run recorded"
    );
    let statuses: Vec<String> = rows.iter().map(|r| col(r, "status")).collect();
    assert_eq!(
        statuses,
        [
            "succeeded",
            "succeeded",
            "failed",
            "failed",
            "succeeded",
            "succeeded",
            "unsent",
            "succeeded"
        ]
    );
    // Each row carries its own answer, quotes, commas and line breaks intact.
    let quoted = "Say \"hi\", then, a comma\nand a second line";
    assert_eq!(col(&rows[1], "prompt"), quoted);
    assert_eq!(col(&rows[1], "answer"), answer(quoted));
    assert!(
        text.contains("\"Say \"\"hi\"\", then, a comma\nand a second line\""),
        "CSV quoting doubles quotes and keeps the line break inside quotes:\n{text}"
    );
    assert_eq!(
        col(&rows[0], "answer"),
        answer("Slow one [[emu:sleep=400]]")
    );
    assert_eq!(col(&rows[4], "answer"), answer("First of two"));
    assert_eq!(col(&rows[5], "answer"), answer("Second of two"));
    assert_eq!(col(&rows[5], "label"), "two");
    assert_eq!(col(&rows[0], "label"), "first");
    assert_eq!(col(&rows[0], "model"), MODEL);
    assert_eq!(col(&rows[0], "source"), "a.csv:2");
    let a2 = ws.results().into_iter().find(|r| r["id"] == "a2").unwrap();
    assert_eq!(
        col(&rows[1], "output_tokens"),
        a2["usage"]["output_tokens"].to_string()
    );
    assert_eq!(col(&rows[2], "error_kind"), "validation");
    assert_eq!(col(&rows[2], "error_code"), "ValidationException");
    assert_eq!(col(&rows[2], "answer"), "");
    assert_eq!(col(&rows[3], "error_kind"), "input");
    assert!(col(&rows[3], "error").contains("missing id"));
    assert_eq!(col(&rows[3], "prompt"), "No id here");
    // Unsent: the input's columns, nothing else.
    assert_eq!(col(&rows[6], "label"), "gone");
    for c in ["answer", "input_tokens", "error_kind", "source"] {
        assert_eq!(col(&rows[6], c), "", "{c}");
    }
    // JSONL columns: arrays as JSON, numbers as written; CSV rows leave them empty.
    assert_eq!(col(&rows[7], "tags"), "[\"x\",\"y\"]");
    assert_eq!(col(&rows[7], "score"), "0.5");
    assert_eq!(col(&rows[7], "answer"), answer("From JSONL"));
    assert_eq!(col(&rows[0], "tags"), "");

    // The output directory is only read.
    assert_eq!(ws.results().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_export_keeps_types_and_adds_cost_when_lines_carry_it() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    job(&ws);
    run_job(&ws);

    // Without `cost_usd` in the lines (as versions before prices wrote
    // them) there is no cost column.
    let path = ws.out().join("results.jsonl");
    let unpriced: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("cost_usd");
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&path, unpriced).unwrap();
    let out = export(&ws, &["--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let first: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert!(first.get("cost_usd").is_none(), "{first}");

    // Lines that carry a price (written by a run that knows it) add the column.
    let priced: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["cost_usd"] = json!(0.00025);
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&path, priced).unwrap();
    let file = ws.path("table.jsonl");
    let out = ws
        .command()
        .arg("export")
        .arg(ws.out())
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let rows = read_jsonl(&file);
    assert_eq!(rows.len(), 8, "the .jsonl extension chose the format");
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["a1", "a2", "a3", "a.csv:6", "dup", "dup#2", "a7", "b1"]
    );
    let b1 = &rows[7];
    assert_eq!(b1["tags"], json!(["x", "y"]));
    assert_eq!(b1["score"], json!(0.5));
    assert_eq!(b1["cost_usd"], json!(0.00025));
    assert_eq!(b1["status"], "succeeded");
    assert!(b1["input_tokens"].is_u64(), "{b1}");
    assert_eq!(
        rows[2]["cost_usd"],
        Value::Null,
        "a failure carries no price"
    );
    assert_eq!(rows[6]["status"], "unsent");
    // Every row has every column.
    let keys: Vec<Vec<&String>> = rows
        .iter()
        .map(|r| r.as_object().unwrap().keys().collect())
        .collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn a_directory_without_a_manifest_is_a_setup_error() {
    let ws = Workspace::new("http://127.0.0.1:9");
    std::fs::create_dir_all(ws.out()).unwrap();
    let out = ws.command().arg("export").arg(ws.out()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no manifest.json: not a bedrock-batch output directory"),
        "{err}"
    );
}
