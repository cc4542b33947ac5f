//! Structured output and scoring end to end, through the real binary and SDK
//! against the emulator: the schema's two routes, invalid answers retried and
//! then failed with every paid call counted, `[[score]]` in results and the
//! summary, ids from several columns, a judge job over a real results file,
//! and the setup errors that stop a job before any call.

use std::collections::BTreeMap;

use bedrock_batch::emulator::{Emulator, EmulatorConfig};
use serde_json::{json, Value};

use crate::cli_util::{bedrock_calls, show, stderr, Workspace, MODEL};

/// A model whose Converse calls take `outputConfig.textFormat` (AWS docs).
const NATIVE: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "label": {"enum": ["positive", "negative", "mixed"]},
    "stars": {"type": "integer", "minimum": 1, "maximum": 5},
    "reason": {"type": "string", "maxLength": 60}
  },
  "required": ["label", "stars", "reason"],
  "additionalProperties": false
}"#;

fn job(model: &str, extra: &str) -> String {
    format!(
        "model = \"{model}\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\nmax_tokens = 200\noutput_schema = \"label.schema.json\"\n{extra}"
    )
}

fn reviews(n: usize) -> String {
    let labels = ["positive", "negative", "mixed"];
    let mut s = String::from("id,prompt,label,stars\n");
    for i in 0..n {
        s.push_str(&format!(
            "r{i:02},Review {i}: the thing number {i} works,{},{}\n",
            labels[i % 3],
            1 + i % 5
        ));
    }
    s
}

fn setup(ws: &Workspace, model: &str, rows: &str, extra: &str) {
    ws.write("label.schema.json", SCHEMA);
    ws.write("in.csv", rows);
    ws.write("job.toml", job(model, extra));
}

fn valid(v: &Value) -> bool {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    jsonschema::is_valid(&schema, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_route_sends_output_config_and_writes_output_json() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    setup(&ws, NATIVE, &reviews(6), "");
    let out = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out).contains(&format!(
            "label.schema.json: {NATIVE}: sent as outputConfig.textFormat (json_schema)"
        )),
        "{}",
        show(&out)
    );
    let results = ws.results();
    assert_eq!(results.len(), 6);
    for r in &results {
        assert!(valid(&r["output_json"]), "{r}");
        let parsed: Value = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
        assert_eq!(parsed, r["output_json"], "output_json is the answer parsed");
    }
    let calls = bedrock_calls(&emu);
    assert_eq!(calls.len(), 6);
    assert!(
        calls
            .iter()
            .all(|c| c.schema_source == Some("output_config")),
        "{calls:?}"
    );

    // ConverseStream carries the schema the same way.
    let out = ws.run(&[
        "--config",
        "job.toml",
        "--output-dir",
        "streamed",
        "--stream",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let streamed = crate::cli_util::read_jsonl(&ws.path("streamed/results.jsonl"));
    assert_eq!(streamed.len(), 6);
    for r in &streamed {
        assert!(valid(&r["output_json"]) && r["ttft_ms"].is_u64(), "{r}");
    }
    let calls = bedrock_calls(&emu);
    assert!(
        calls[6..]
            .iter()
            .all(|c| c.operation == "ConverseStream" && c.schema_source == Some("output_config")),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruction_route_for_a_model_without_native_support() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    setup(&ws, MODEL, &reviews(4), "system = \"You label reviews.\"\n");
    let out = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{MODEL}: given as an instruction in the system prompt"
        )),
        "{}",
        show(&out)
    );
    for r in ws.results() {
        assert!(valid(&r["output_json"]), "{r}");
    }
    let calls = bedrock_calls(&emu);
    assert!(
        calls.iter().all(|c| c.schema_source == Some("instruction")),
        "{calls:?}"
    );
}

/// Tokens the emulator charged for each prompt, over all its calls.
fn charged(emu: &Emulator) -> BTreeMap<String, (u64, u64, u32)> {
    let mut by_prompt: BTreeMap<String, (u64, u64, u32)> = BTreeMap::new();
    for c in bedrock_calls(emu) {
        let e = by_prompt
            .entry(c.prompt.clone().unwrap_or_default())
            .or_default();
        e.0 += c.input_tokens;
        e.1 += c.output_tokens;
        e.2 += 1;
    }
    by_prompt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_answer_is_asked_again_and_every_call_is_counted() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let rows = "id,prompt,label,stars\n\
        a,Not JSON the first time [[emu:invalid_json*1]],mixed,1\n\
        b,Wrong shape the first time [[emu:schema_violation*1]],mixed,1\n\
        c,Fine at once,mixed,1\n";
    setup(&ws, MODEL, rows, "");
    let out = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let charged = charged(&emu);
    let results = ws.results();
    assert_eq!(results.len(), 3);
    let mut input = 0;
    let mut output = 0;
    for r in &results {
        assert!(valid(&r["output_json"]), "{r}");
        let want_attempts = if r["id"] == "c" { 1 } else { 2 };
        assert_eq!(r["attempts"], want_attempts, "{r}");
        input += r["usage"]["input_tokens"].as_u64().unwrap();
        output += r["usage"]["output_tokens"].as_u64().unwrap();
        // Its usage is that of every call for its prompt, the refused one included.
        let (i, o, calls) = charged
            .iter()
            .find(|(p, _)| {
                p.starts_with(match r["id"].as_str().unwrap() {
                    "a" => "Not JSON",
                    "b" => "Wrong shape",
                    _ => "Fine",
                })
            })
            .map(|(_, v)| *v)
            .unwrap();
        assert_eq!(calls, want_attempts as u32);
        assert_eq!(
            (
                r["usage"]["input_tokens"].as_u64().unwrap(),
                r["usage"]["output_tokens"].as_u64().unwrap()
            ),
            (i, o),
            "{r}"
        );
        // The price is of both calls (claude-3-haiku: $0.25 / $1.25 per million).
        let cost = (i as f64 * 0.25 + o as f64 * 1.25) / 1e6;
        assert!(
            (r["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
            "{r}"
        );
    }
    let s = ws.summary();
    assert_eq!(s["this_run"]["retries"], 2, "{s}");
    assert_eq!(s["tokens"]["input"].as_u64(), Some(input));
    assert_eq!(s["tokens"]["output"].as_u64(), Some(output));
    assert_eq!(s["attempts"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_invalid_every_time_fails_with_its_text_and_usage() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let rows = "id,prompt,label,stars\n\
        bad,Always the wrong shape [[emu:schema_violation]],mixed,1\n\
        good,A fine review,mixed,1\n";
    setup(&ws, MODEL, rows, "invalid_output_retries = 2\n");
    let out = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let failures = ws.failures();
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    assert_eq!(f["error"]["kind"], "invalid_output", "{f}");
    assert_eq!(f["error"]["code"], "InvalidOutput", "{f}");
    assert!(
        f["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the answer does not match the schema: "),
        "{f}"
    );
    assert_eq!(
        f["output"], "\"not what the schema asks for\"",
        "the raw text"
    );
    assert_eq!(f["attempts"], 3, "{f}");
    let (i, o, calls) = charged(&emu)["Always the wrong shape [[emu:schema_violation]]"];
    assert_eq!(calls, 3);
    assert_eq!(f["usage"]["input_tokens"].as_u64(), Some(i), "{f}");
    assert_eq!(f["usage"]["output_tokens"].as_u64(), Some(o), "{f}");
    let paid = (i as f64 * 0.25 + o as f64 * 1.25) / 1e6;
    assert!(
        (f["cost_usd"].as_f64().unwrap() - paid).abs() < 1e-12,
        "{f}"
    );

    // The summary, the spend and the job's total count the failed row's calls.
    let s = ws.summary();
    let good = &ws.results()[0];
    let good_cost = good["cost_usd"].as_f64().unwrap();
    assert_eq!(
        s["tokens"]["input"].as_u64(),
        Some(i + good["usage"]["input_tokens"].as_u64().unwrap())
    );
    assert!(
        (s["cost"]["total_usd"].as_f64().unwrap() - (paid + good_cost)).abs() < 1e-12,
        "{s}"
    );
    assert_eq!(s["failed_by_kind"]["invalid_output"], 1);

    // Sent again on request: the refused answers stay on record (superseded)
    // and in the job's total.
    let again = ws.run(&[
        "--config",
        "job.toml",
        "--output-dir",
        "out",
        "--retry-failures",
        "invalid_output",
    ]);
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    let superseded = crate::cli_util::read_jsonl(&ws.out().join("superseded.jsonl"));
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0]["usage"], f["usage"]);
    let s = ws.summary();
    let job_total = s["cost"]["job_total_usd"].as_f64().unwrap();
    assert!((job_total - (2.0 * paid + good_cost)).abs() < 1e-12, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_in_results_and_pass_rates_in_the_summary() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let scorers = r#"
[[score]]
name = "label"
kind = "json_field"
field = "label"
column = "label"

[[score]]
name = "label_one_of"
kind = "one_of"
field = "label"
labels = ["Positive", "Negative", "Mixed"]
column = "label"

[[score]]
name = "predicted"
kind = "one_of"
field = "label"
labels = ["positive", "negative", "mixed"]

[[score]]
name = "label_exact"
kind = "exact"
field = "label"
column = "label"
case_sensitive = false

[[score]]
name = "stars"
kind = "number"
field = "stars"
column = "stars"
tolerance = 1

[[score]]
name = "quotes_review"
kind = "contains"
column = "word"

[[score]]
name = "shape"
kind = "regex"
pattern = "^\\{\"label\":\"(positive|negative|mixed)\""
"#;
    let mut rows = String::from("id,prompt,label,stars,word\n");
    let labels = ["positive", "negative", "mixed"];
    for i in 0..12 {
        // The emulator's `reason` quotes the prompt's first words.
        let word = if i % 2 == 0 { "Review" } else { "absent" };
        rows.push_str(&format!(
            "r{i:02},Review {i} of a kettle,{},{},{word}\n",
            labels[i % 3],
            1 + i % 5
        ));
    }
    setup(&ws, MODEL, &rows, scorers);
    let out = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let results = ws.results();
    let mut passed: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &results {
        let s = &r["scores"];
        let j = &r["output_json"];
        let m = &r["meta"];
        let same_label = j["label"] == m["label"];
        assert_eq!(s["label"], same_label, "{r}");
        assert_eq!(s["label_one_of"], same_label, "{r}");
        assert_eq!(s["label_exact"], same_label, "{r}");
        assert_eq!(
            s["predicted"], j["label"],
            "a one_of without a column gives the label"
        );
        let stars: i64 = m["stars"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            s["stars"],
            (j["stars"].as_i64().unwrap() - stars).abs() <= 1,
            "{r}"
        );
        assert_eq!(s["quotes_review"], m["word"] == "Review", "{r}");
        assert_eq!(s["shape"], true, "{r}");
        for (name, v) in s.as_object().unwrap() {
            if v != &json!(false) {
                *passed.entry(name.as_str()).or_default() += 1;
            }
        }
    }
    // Both outcomes occur, so the comparisons above are not vacuous.
    assert!((1..12).contains(&passed["label"]), "{passed:?}");
    assert_eq!(passed["quotes_review"], 6);
    let summary = ws.summary();
    let by_scorer = &summary["scores"][MODEL];
    for (name, n) in &passed {
        let t = &by_scorer[*name];
        assert_eq!(t["scored"], 12, "{summary}");
        assert_eq!(t["passed"].as_u64(), Some(*n), "{name}: {summary}");
        let rate = *n as f64 / 12.0;
        assert!((t["pass_rate"].as_f64().unwrap() - rate).abs() < 1e-12);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "scores ({MODEL}): label {}/12 ({:.0}%)",
            passed["label"],
            passed["label"] as f64 * 100.0 / 12.0
        )),
        "{stdout}"
    );

    // A resume counts the earlier lines' scores for the job.
    let again = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert_eq!(ws.summary()["scores"], summary["scores"]);
}

/// Scorers changed between runs: the answers already written are scored
/// again (no call sent), so results.jsonl and the summary describe the new
/// scorers only; the same scorers again change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_scorers_rescore_the_answers_already_written() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let first = "[[score]]\nname = \"label\"\nkind = \"json_field\"\nfield = \"label\"\ncolumn = \"label\"\n";
    setup(&ws, MODEL, &reviews(9), first);
    let out = ws.run(&["--config", "job.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(ws
        .results()
        .iter()
        .all(|r| r["scores"]["label"].is_boolean()));
    let calls = emu.stats().requests;

    // Another scorer, under another name: every answer gets it, the old one goes.
    let second = "[[score]]\nname = \"stars_close\"\nkind = \"number\"\nfield = \"stars\"\ncolumn = \"stars\"\ntolerance = 1\n";
    ws.write("job.toml", job(MODEL, second));
    let out = ws.run(&["--config", "job.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out)
            .contains("[[score]] changed since the last run: 9 earlier answer(s) scored again"),
        "{}",
        show(&out)
    );
    assert_eq!(emu.stats().requests, calls, "re-scoring sends nothing");
    let results = ws.results();
    assert_eq!(results.len(), 9);
    let mut passed = 0;
    for r in &results {
        let s = r["scores"].as_object().unwrap();
        assert_eq!(s.keys().collect::<Vec<_>>(), vec!["stars_close"], "{r}");
        let want: i64 = r["meta"]["stars"].as_str().unwrap().parse().unwrap();
        let close = (r["output_json"]["stars"].as_i64().unwrap() - want).abs() <= 1;
        assert_eq!(s["stars_close"], close, "{r}");
        passed += u64::from(close);
    }
    let summary = ws.summary();
    let scores = &summary["scores"][MODEL];
    assert!(scores.get("label").is_none(), "{summary}");
    assert_eq!(scores["stars_close"]["scored"], 9, "{summary}");
    assert_eq!(scores["stars_close"]["passed"], passed, "{summary}");

    // The same scorers again: nothing to re-score, no note.
    let out = ws.run(&["--config", "job.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        !stderr(&out).contains("[[score]] changed"),
        "{}",
        show(&out)
    );
    assert_eq!(ws.summary()["scores"], summary["scores"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_job_grades_a_real_results_file_with_ids_from_several_columns() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    setup(&ws, MODEL, &reviews(5), "");
    // The same rows answered by two models: ids repeat across the two files.
    for (model, dir) in [(MODEL, "out-a"), (NATIVE, "out-b")] {
        let out = ws.run(&[
            "--config",
            "job.toml",
            "--model",
            model,
            "--output-dir",
            dir,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    let mut both = std::fs::read_to_string(ws.path("out-a/results.jsonl")).unwrap();
    both.push_str(&std::fs::read_to_string(ws.path("out-b/results.jsonl")).unwrap());
    ws.write("answers.jsonl", both);
    ws.write(
        "verdict.schema.json",
        r#"{"type": "object", "properties": {"verdict": {"enum": ["correct", "incorrect"]}}, "required": ["verdict"]}"#,
    );
    let judge = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    ws.write(
        "judge.toml",
        format!(
            r#"model = "{judge}"
inputs = ["answers.jsonl"]
output_dir = "judged"
id_columns = ["id", "model"]
output_schema = "verdict.schema.json"
max_tokens = 50
template = """
Expected label: {{{{ meta.label }}}}
Answer: {{{{ output }}}}
Is the answer's label the expected one?"""

[[score]]
name = "verdict"
kind = "one_of"
field = "verdict"
labels = ["correct", "incorrect"]
"#
        ),
    );
    let out = ws.run(&["--config", "judge.toml", "--output-dir", "judged"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let judged = crate::cli_util::read_jsonl(&ws.path("judged/results.jsonl"));
    let mut ids: Vec<&str> = judged.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<String> = (0..5)
        .flat_map(|i| [format!("r{i:02}|{MODEL}"), format!("r{i:02}|{NATIVE}")])
        .collect();
    want.sort();
    assert_eq!(ids, want);
    for r in &judged {
        // Sent to the judge, not to the model the row names.
        assert_eq!(r["model"], judge, "{r}");
        assert!(r["scores"]["verdict"].is_string(), "{r}");
        // The id columns are the id, not meta; the rest of the line is.
        assert!(
            r["meta"].get("id").is_none() && r["meta"].get("model").is_none(),
            "{r}"
        );
        assert!(r["meta"]["meta"]["label"].is_string(), "{r}");
    }
    let judge_calls: Vec<_> = bedrock_calls(&emu)
        .into_iter()
        .filter(|c| c.model.as_deref() == Some(judge))
        .collect();
    assert_eq!(judge_calls.len(), 10);
    let prompt = judge_calls[0].prompt.clone().unwrap();
    assert!(prompt.starts_with("Expected label: "), "{prompt}");
    assert!(prompt.contains("Answer: {\"label\":"), "{prompt}");
    let s = ws.path("judged/summary.json");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(s).unwrap()).unwrap();
    assert_eq!(s["scores"][judge]["verdict"]["scored"], 10, "{s}");

    // Resumed: the joined ids are found done, nothing is sent twice.
    let before = bedrock_calls(&emu).len();
    let again = ws.run(&["--config", "judge.toml", "--output-dir", "judged"]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert_eq!(bedrock_calls(&emu).len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_schema_regex_or_column_stops_the_job_before_any_call() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    setup(&ws, MODEL, &reviews(2), "");
    let cases: [(&str, &str, &str); 5] = [
        ("{\"type\": \"objekt\"}", "", "label.schema.json: output_schema: not a valid JSON Schema: "),
        ("{\"type\": ", "", "label.schema.json: output_schema: not JSON: "),
        (SCHEMA, "[[score]]\nname = \"r\"\nkind = \"regex\"\npattern = \"(unclosed\"\n", "job.toml: [[score]] \"r\": bad regex `(unclosed`: "),
        (SCHEMA, "[[score]]\nname = \"s\"\nkind = \"exact\"\ncolumn = \"nope\"\n", "in.csv: line 1: [[score]] \"s\" compares with column `nope`, which the file does not have"),
        (SCHEMA, "[[score]]\nname = \"k\"\nkind = \"fuzzy\"\ncolumn = \"label\"\n", "job.toml: [[score]] \"k\": unknown kind `fuzzy`"),
    ];
    for (schema, extra, want) in cases {
        ws.write("label.schema.json", schema);
        ws.write("job.toml", job(MODEL, extra));
        let out = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = stderr(&out);
        let line = err
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        assert!(line.contains(want), "want {want:?} in: {err}");
        assert_eq!(err.matches("error: ").count(), 1, "{err}");
    }
    assert_eq!(bedrock_calls(&emu).len(), 0, "nothing was sent");
}
