//! The bad-input corpus (`tests/data/`) through the real binary: each file
//! gives its documented result (a failure of kind `input` naming file and
//! line, or a setup error before any request), and no valid row is lost.
//!
//! Not here: what the reader makes of each byte (its unit tests), and
//! duplicate-id refusal without `--allow-duplicate-ids` (pipeline.rs).

use std::collections::BTreeMap;

use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};
use serde_json::Value;

use crate::cli_util::{show, Workspace, MODEL};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/corpus.toml");

fn data(name: &str) -> String {
    format!("{DATA}/{name}")
}

/// What one corpus file must give: the good rows (id, line, prompt) and the
/// bad ones (id, line, message after `FILE: line N: `). `{file}` in an id or
/// message stands for the file's name, as stand-in ids name it.
struct Case {
    file: &'static str,
    good: &'static [(&'static str, u64, &'static str)],
    bad: &'static [(&'static str, u64, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        // q2's quote runs to q4's line; q5's never closes.
        file: "bad_quoting.csv",
        good: &[
            ("q1", 2, "First question"),
            ("q3", 4, "Third question"),
            ("q4", 5, "Fourth, quoted properly"),
        ],
        bad: &[
            ("q2", 3, "malformed quoting: text after a closing quote"),
            ("q5", 6, "malformed quoting: a quoted field is never closed"),
        ],
    },
    Case {
        file: "ragged.csv",
        good: &[("g1", 2, "Good one"), ("g4", 5, "Good four")],
        bad: &[
            ("g2", 3, "record has 3 fields, the header has 2"),
            ("g3", 4, "record has 1 field, the header has 2"),
        ],
    },
    Case {
        file: "invalid_json.jsonl",
        good: &[("j1", 1, "Good"), ("j3", 3, "Also good")],
        bad: &[(
            "{file}:2",
            2,
            "invalid JSON: EOF while parsing a string (column 27)",
        )],
    },
    Case {
        file: "not_object.jsonl",
        good: &[("o1", 1, "Good"), ("o6", 6, "Good six")],
        bad: &[
            ("{file}:2", 2, "line is a JSON array, not an object"),
            ("{file}:3", 3, "line is a JSON string, not an object"),
            ("{file}:4", 4, "line is a JSON number, not an object"),
            ("{file}:5", 5, "line is a JSON null, not an object"),
        ],
    },
    Case {
        file: "missing_id.csv",
        good: &[("i1", 2, "Good"), ("i3", 4, "Good three")],
        bad: &[(
            "{file}:3",
            3,
            "missing id (column `id`); recorded as `{file}:3`",
        )],
    },
    Case {
        file: "missing_id.jsonl",
        good: &[("k1", 1, "Good"), ("k4", 4, "Good four")],
        bad: &[
            (
                "{file}:2",
                2,
                "missing id (column `id`); recorded as `{file}:2`",
            ),
            (
                "{file}:3",
                3,
                "missing id (column `id`); recorded as `{file}:3`",
            ),
        ],
    },
    Case {
        file: "missing_prompt.jsonl",
        good: &[("m1", 1, "Good"), ("m4", 4, "Good four")],
        bad: &[
            ("m2", 2, "missing column `prompt`"),
            ("m3", 3, "empty prompt (column `prompt`)"),
        ],
    },
    Case {
        file: "empty_prompt.csv",
        good: &[("e1", 2, "Good"), ("e4", 5, "Good four")],
        bad: &[
            ("e2", 3, "empty prompt (column `prompt`)"),
            ("e3", 4, "empty prompt (column `prompt`)"),
        ],
    },
    Case {
        file: "invalid_utf8.csv",
        good: &[("u1", 2, "Good"), ("u3", 4, "Good three")],
        bad: &[("u2", 3, "column `prompt` is not valid UTF-8 (byte 3)")],
    },
    Case {
        file: "invalid_utf8.jsonl",
        good: &[("v1", 1, "Good"), ("v3", 3, "Good three")],
        bad: &[("{file}:2", 2, "not valid UTF-8 (byte 24)")],
    },
    Case {
        file: "bom.csv",
        good: &[("b1", 2, "Good"), ("b2", 3, "Good two")],
        bad: &[],
    },
    Case {
        file: "bom.jsonl",
        good: &[("c1", 1, "Good"), ("c2", 2, "Good two")],
        bad: &[],
    },
    Case {
        file: "crlf.csv",
        good: &[
            ("l1", 2, "Good"),
            ("l2", 3, "Two\r\nlines"),
            ("l4", 6, "Good four"),
        ],
        bad: &[("l3", 5, "empty prompt (column `prompt`)")],
    },
    Case {
        file: "crlf.jsonl",
        good: &[("n1", 1, "Good"), ("n3", 3, "Good three")],
        bad: &[(
            "{file}:2",
            2,
            "invalid JSON: EOF while parsing an object (column 10)",
        )],
    },
    Case {
        file: "huge_row.jsonl",
        good: &[("h1", 1, "Good"), ("h3", 3, "Good three")],
        bad: &[(
            "{file}:2",
            2,
            "row is 3024 bytes, over the limit of 1024 (max_row_bytes)",
        )],
    },
    Case {
        file: "huge_row.csv",
        good: &[("hc1", 2, "Good"), ("hc3", 4, "Good three")],
        bad: &[(
            "hc2",
            3,
            "row is 3003 bytes, over the limit of 1024 (max_row_bytes)",
        )],
    },
    Case {
        file: "blank_lines.jsonl",
        good: &[("z1", 2, "Good"), ("z2", 5, "Good two")],
        bad: &[],
    },
    Case {
        file: "header_only.csv",
        good: &[],
        bad: &[],
    },
];

fn by_id(rows: &[Value]) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for r in rows {
        let id = r["id"].as_str().expect("id is a string").to_string();
        assert!(m.insert(id.clone(), r.clone()).is_none(), "id {id} twice");
    }
    m
}

/// Checks the output directory of a run over `cases` against them, and
/// returns how many rows were good.
fn check(ws: &Workspace, cases: &[&Case]) -> usize {
    let results = by_id(&ws.results());
    let failures = by_id(&ws.failures());
    let mut good = 0;
    for case in cases {
        let path = data(case.file);
        for (id, line, prompt) in case.good {
            let r = results
                .get(*id)
                .unwrap_or_else(|| panic!("{}: row {id} has no result", case.file));
            assert_eq!(r["source"]["file"], path.as_str());
            assert_eq!(r["source"]["line"], *line, "{}: {id}", case.file);
            assert_eq!(r["output"], answer(prompt), "{}: {id}", case.file);
            good += 1;
        }
        for (id, line, message) in case.bad {
            let id = id.replace("{file}", case.file);
            let f = failures
                .get(&id)
                .unwrap_or_else(|| panic!("{}: row {id} has no failure", case.file));
            let want = format!(
                "{path}: line {line}: {}",
                message.replace("{file}", case.file)
            );
            assert_eq!(f["error"]["kind"], "input", "{}: {id}", case.file);
            assert_eq!(f["error"]["message"], want.as_str());
            assert_eq!(f["source"]["line"], *line);
            assert_eq!(f["attempts"], 0, "an input failure is never sent");
        }
    }
    let bad: usize = cases.iter().map(|c| c.bad.len()).sum();
    assert_eq!(results.len(), good, "no row beyond the expected ones");
    assert_eq!(failures.len(), bad, "no failure beyond the expected ones");
    good
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_corpus_file_gives_its_documented_result() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    for case in CASES {
        let ws = Workspace::new(&emu.url());
        let before = emu.stats().requests;
        let out = ws.run(&["--config", CONFIG, "--input", &data(case.file)]);
        let want = if !case.bad.is_empty() { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{}: {}",
            case.file,
            show(&out)
        );
        let good = check(&ws, &[case]);
        assert_eq!(
            emu.stats().requests - before,
            good as u64,
            "{}: one request per good row, none for a bad one",
            case.file
        );
        let summary = ws.summary();
        assert_eq!(
            summary["failed_by_kind"]["input"].as_u64().unwrap_or(0),
            case.bad.len() as u64
        );
        assert_eq!(summary["unfinished"], 0);
        if good + case.bad.len() == 0 {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("{}: no rows", data(case.file))),
                "{}",
                show(&out)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_corpus_in_one_job_loses_no_row_and_resumes_without_spend() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    let mut args = vec!["--config".to_string(), CONFIG.to_string()];
    for case in CASES {
        args.push("--input".into());
        args.push(data(case.file));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let cases: Vec<&Case> = CASES.iter().collect();
    let good = check(&ws, &cases);
    assert_eq!(emu.stats().requests, good as u64);

    // Bad rows are done too: the resume sends nothing and writes nothing.
    // The job still holds the bad rows' failures: exit 1, whatever this run did.
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    check(&ws, &cases);
    assert_eq!(emu.stats().requests, good as u64, "the resume sent nothing");
    let summary = ws.summary();
    let bad: usize = CASES.iter().map(|c| c.bad.len()).sum();
    assert_eq!(summary["this_run"]["skipped"], (good + bad) as u64);
    assert_eq!(summary["this_run"]["succeeded"], 0);
    assert_eq!(summary["succeeded"], good as u64);
    assert_eq!(summary["failed"], bad as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_input_is_a_setup_error_before_any_request() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    for file in ["empty.csv", "empty.jsonl"] {
        let ws = Workspace::new(&emu.url());
        // With a good file first: nothing of it is sent either.
        let out = ws.run(&[
            "--config",
            CONFIG,
            "--input",
            &data("bom.csv"),
            "--input",
            &data(file),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors,
            [format!("error: {}: the file is empty", data(file))],
            "{}",
            show(&out)
        );
        assert!(
            !ws.out().exists(),
            "no output directory for a job that never started"
        );
    }
    assert_eq!(emu.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_duplicate_ids_stay_unique_when_some_of_their_rows_are_bad() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    // `a`'s first row is ragged, its second good; `b` repeats across files
    // and its second row has no prompt.
    ws.write("one.csv", "id,prompt\na,first,extra\na,second\nb,third\n");
    ws.write(
        "two.jsonl",
        "{\"id\":\"b\",\"prompt\":\"\"}\n{\"id\":\"a\",\"prompt\":\"fourth\"}\n",
    );
    let args = [
        "--config",
        CONFIG,
        "--input",
        "one.csv",
        "--input",
        "two.jsonl",
        "--allow-duplicate-ids",
    ];
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let results = by_id(&ws.results());
    let failures = by_id(&ws.failures());
    let ok: Vec<(&str, &str)> = results
        .iter()
        .map(|(id, r)| (id.as_str(), r["source"]["file"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ok,
        [("a#2", "one.csv"), ("a#3", "two.jsonl"), ("b", "one.csv")]
    );
    assert_eq!(results["a#2"]["output"], answer("second"));
    assert_eq!(results["a#3"]["output"], answer("fourth"));
    let bad: Vec<&str> = failures.keys().map(String::as_str).collect();
    assert_eq!(bad, ["a", "b#2"], "each id in exactly one file");

    // The job still holds failures: exit 1, whatever this run did.
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(ws.summary()["this_run"]["skipped"], 5);
    assert_eq!(emu.stats().requests, 3);
}

/// A row without an id is recorded under its file's name and line, not the
/// path as typed: a resume from another working directory finds it done and
/// writes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_in_ids_survive_a_resume_from_another_directory() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("data/p.csv", "id,prompt\na,first\n,no id here\nb,second\n");
    let out = ws.run(&["--model", MODEL, "--input", "data/p.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(ws.failures()[0]["id"], "p.csv:3");

    let mut cmd = ws.command();
    cmd.current_dir(ws.path("data"));
    let out = ws
        .add_run(&mut cmd, &["--model", MODEL, "--input", "p.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(
        ws.failures().len(),
        1,
        "the id-less row is not written again"
    );
    assert_eq!(ws.summary()["this_run"]["skipped"], 3);
    assert_eq!(emu.stats().requests, 2);
}

/// With --allow-duplicate-ids the second `a` would be `a#2`: a literal id
/// `a#2` in the inputs would share it, so the job is refused, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_literal_id_that_a_duplicate_suffix_would_take_is_refused() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", "id,prompt\na,one\nb,two\na,three\na#2,four\n");
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--allow-duplicate-ids",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("p.csv: line 5: the id `a#2` is also what --allow-duplicate-ids names row 2 of the repeated id `a`"),
        "{stderr}"
    );
    assert_eq!(emu.stats().requests, 0);

    // Without the literal, the same duplicates run with suffixed ids.
    ws.write("p.csv", "id,prompt\na,one\nb,two\na,three\n");
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--allow-duplicate-ids",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.results().len(), 3);
}
