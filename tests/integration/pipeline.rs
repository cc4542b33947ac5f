//! `bedrock-batch run` end to end: the real binary, the real SDK, the emulator.

use std::collections::BTreeSet;

use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};
use serde_json::json;

use crate::cli_util::{bedrock_calls, csv_rows, run_args, show, Workspace, MODEL};

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_jsonl_rows_each_end_in_exactly_one_file() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "a.csv",
        "id,prompt,system,max_tokens,label\n\
         a1,What is 2+2?,,,four\n\
         a2,Translate hello,You translate.,5,greeting\n\
         a3,,,,empty\n\
         a4,Say [[emu:validation]] please,,,bad\n",
    );
    ws.write(
        "b.jsonl",
        "{\"id\": \"b1\", \"prompt\": \"Hi there\", \"tags\": [\"x\"], \"score\": 0.5}\n\
         {\"id\": \"b2\", \"messages\": [{\"role\": \"user\", \"content\": \"A\"}, {\"role\": \"assistant\", \"content\": \"B\"}, {\"role\": \"user\", \"content\": \"C?\"}]}\n\
         not json\n\
         {\"id\": \"b4\", \"prompt\": \"Use another model\", \"model\": \"apac.anthropic.claude-3-5-sonnet-20240620-v1:0\"}\n",
    );
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "a.csv",
        "--input",
        "b.jsonl",
        "--max-tokens",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    let results = ws.results();
    let failures = ws.failures();
    let ok: BTreeSet<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let bad: BTreeSet<&str> = failures.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ok, BTreeSet::from(["a1", "a2", "b1", "b2", "b4"]));
    assert_eq!(bad, BTreeSet::from(["a3", "a4", "b.jsonl:3"]));

    let by_id = |id: &str| results.iter().find(|r| r["id"] == id).unwrap().clone();
    // Each answer is the emulator's answer to that row's own prompt.
    assert_eq!(by_id("a1")["output"], answer("What is 2+2?"));
    assert_eq!(by_id("b2")["output"], answer("C?"));
    assert_eq!(by_id("a1")["meta"], json!({"label": "four"}));
    assert_eq!(by_id("b1")["meta"], json!({"tags": ["x"], "score": 0.5}));
    assert_eq!(
        by_id("b4")["model"],
        "apac.anthropic.claude-3-5-sonnet-20240620-v1:0"
    );
    assert_eq!(by_id("a2")["source"], json!({"file": "a.csv", "line": 3}));
    assert_eq!(by_id("a1")["attempts"], 1);
    assert!(by_id("a1")["usage"]["output_tokens"].as_u64().unwrap() > 0);
    // The row's max_tokens (5) cut the answer.
    assert_eq!(by_id("a2")["stop_reason"], "max_tokens");
    assert_eq!(by_id("a2")["usage"]["output_tokens"], 5);

    let fail = |id: &str| failures.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(fail("a3")["error"]["kind"], "input");
    assert_eq!(
        fail("a3")["error"]["message"],
        "a.csv: line 4: empty prompt (column `prompt`)"
    );
    assert_eq!(fail("a3")["attempts"], 0);
    assert_eq!(fail("a4")["error"]["kind"], "validation");
    assert_eq!(fail("a4")["error"]["code"], "ValidationException");
    assert_eq!(
        fail("a4")["attempts"],
        1,
        "validation errors are not retried"
    );
    assert_eq!(
        fail("b.jsonl:3")["source"],
        json!({"file": "b.jsonl", "line": 3})
    );
    assert!(fail("b.jsonl:3")["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("b.jsonl: line 3: invalid JSON"));

    let s = ws.summary();
    assert_eq!(s["total"], 8);
    assert_eq!(s["succeeded"], 5);
    assert_eq!(s["failed"], 3);
    assert_eq!(s["failed_by_kind"], json!({"input": 2, "validation": 1}));
    assert_eq!(
        s["tokens"]["output"],
        results
            .iter()
            .map(|r| r["usage"]["output_tokens"].as_u64().unwrap())
            .sum::<u64>()
    );
    // The human summary says where the files are.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("5 succeeded, 3 failed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_job_renders_each_row_and_checks_columns_first() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "r.csv",
        "id,product,review,label\n1,kettle,Boils fast.,positive\n2,bag,Tore.,negative\n",
    );
    ws.write(
        "job.toml",
        format!(
            "model = \"{MODEL}\"\ninputs = [\"r.csv\"]\noutput_dir = \"out\"\nmax_tokens = 20\ntemplate = \"Product: {{{{ product }}}}\\nReview: {{{{ review }}}}\"\n"
        ),
    );
    let out = ws.run(&["--config", "job.toml", "--output-dir", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = ws.results();
    assert_eq!(r.len(), 2);
    let one = r.iter().find(|x| x["id"] == "1").unwrap();
    assert_eq!(
        one["output"],
        answer("Product: kettle\nReview: Boils fast.")
    );
    assert_eq!(
        one["meta"],
        json!({"product": "kettle", "review": "Boils fast.", "label": "positive"})
    );

    // A column the template names but the file lacks: setup error, nothing sent.
    ws.write(
        "bad.toml",
        format!("model = \"{MODEL}\"\ninputs = [\"r.csv\"]\noutput_dir = \"out2\"\ntemplate = \"{{{{ question }}}}\"\n"),
    );
    let before = emu.stats().requests;
    let out = ws.run(&["--config", "bad.toml", "--output-dir", "out2"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "r.csv: line 1: the template uses column `question`, which the file does not have"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(emu.stats().requests, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_never_exceeded_and_rpm_is_honoured() {
    let emu = emulator(EmulatorConfig {
        latency_ms: 50,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(120));
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--concurrency",
        "4",
        "--max-tokens",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.results().len(), 120);
    let peak = emu.stats().peak_in_flight;
    assert!((2..=4).contains(&peak), "peak in flight {peak}");

    // 600 rpm = 10/s: 40 rows take about 4 s (the first goes at once).
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(40));
    let start = std::time::Instant::now();
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--concurrency",
        "16",
        "--rpm",
        "600",
        "--max-tokens",
        "50",
    ]);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        (3.5..8.0).contains(&secs),
        "40 rows at 10/s took {secs:.2}s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_are_refused_before_any_call_unless_allowed() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write("a.csv", "id,prompt\nx,one\ny,two\nx,three\n");
    ws.write("b.jsonl", "{\"id\": \"y\", \"prompt\": \"four\"}\n");
    let out = ws.run(&["--model", MODEL, "--input", "a.csv", "--input", "b.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("duplicate ids: `x` (a.csv: line 2, a.csv: line 4); `y` (a.csv: line 3, b.jsonl: line 1)"), "{err}");
    assert_eq!(emu.stats().requests, 0);

    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "a.csv",
        "--input",
        "b.jsonl",
        "--allow-duplicate-ids",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ids: BTreeSet<String> = ws
        .results()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["x".into(), "y".into(), "x#2".into(), "y#2".into()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_are_one_line_with_exit_2() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", MODEL, "--input", "missing.csv"],
            "missing.csv: cannot open: no such file",
        ),
        (vec!["--input", "x.csv"], "no `model` set"),
        (
            vec!["--model", MODEL, "--input", "x.txt"],
            "x.txt: unknown input format",
        ),
    ];
    ws.write("x.txt", "hello");
    for (args, want) in cases {
        let out = ws.run(&args);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(want), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // No region anywhere.
    ws.write("p.csv", csv_rows(1));
    let mut cmd = ws.command();
    cmd.env_remove("AWS_REGION");
    let out = ws
        .add_run(
            &mut cmd,
            &["--model", MODEL, "--input", "p.csv", "--output-dir", "o"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no region"),
        "{}",
        show(&out)
    );
    assert_eq!(emu.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_s_assume_role_profile_runs_the_job() {
    let emu = emulator(EmulatorConfig {
        require_assumed_role: true,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write_profiles();
    ws.write("p.csv", csv_rows(10));
    let mut cmd = ws.command();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env("AWS_PROFILE", "bedrock-app-dev");
    let out = ws
        .add_run(
            &mut cmd,
            &["--model", MODEL, "--input", "p.csv", "--output-dir", "out"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.results().len(), 10);
    let stats = emu.stats();
    assert_eq!(stats.assume_role, 1, "one AssumeRole for the whole run");
    let records = emu.requests();
    let bedrock: Vec<_> = records.iter().filter(|r| r.service == "bedrock").collect();
    assert_eq!(bedrock.len(), 10);
    assert!(bedrock.iter().all(|r| r
        .access_key
        .as_deref()
        .is_some_and(|k| k.starts_with("ASIA"))
        && r.session_token));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("profile with role_arn (AssumeRole), profile `bedrock-app-dev`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_sends_each_family_s_native_body() {
    use bedrock_batch::bedrock::native::{self, Family};
    use bedrock_batch::bedrock::request::{Message, Request, Role};

    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "p.jsonl",
        "{\"id\": \"claude\", \"prompt\": \"Name a colour\"}\n\
         {\"id\": \"nova\", \"prompt\": \"Name a fruit\", \"model\": \"amazon.nova-lite-v1:0\"}\n\
         {\"id\": \"llama\", \"prompt\": \"Name a tree\", \"model\": \"meta.llama3-8b-instruct-v1:0\"}\n\
         {\"id\": \"own\", \"body\": {\"anthropic_version\": \"bedrock-2023-05-31\", \"max_tokens\": 40, \"messages\": [{\"role\": \"user\", \"content\": \"My own body\"}]}}\n\
         {\"id\": \"unknown\", \"prompt\": \"x\", \"model\": \"cohere.command-r-v1:0\"}\n",
    );
    let out = ws.run(&[
        "--model",
        MODEL,
        "--api",
        "invoke",
        "--input",
        "p.jsonl",
        "--max-tokens",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let results = ws.results();
    let output = |id: &str| {
        results
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {}", show(&out)))["output"]
            .clone()
    };
    assert_eq!(output("claude"), answer("Name a colour"));
    assert_eq!(output("nova"), answer("Name a fruit"));
    assert_eq!(output("own"), answer("My own body"));
    // Llama reads one prompt string: the answer is to the whole chat template.
    let llama = native::request_body(
        Family::Llama,
        &Request {
            model: "meta.llama3-8b-instruct-v1:0".into(),
            messages: vec![Message {
                role: Role::User,
                text: "Name a tree".into(),
                ..Message::default()
            }],
            max_tokens: Some(100),
            ..Request::default()
        },
    )
    .unwrap();
    assert_eq!(output("llama"), answer(llama["prompt"].as_str().unwrap()));
    assert!(results
        .iter()
        .all(|r| r["usage"]["output_tokens"].as_u64().unwrap() > 0));
    assert!(bedrock_calls(&emu)
        .iter()
        .all(|r| r.operation == "InvokeModel"));

    let failures = ws.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["id"], "unknown");
    assert_eq!(failures[0]["error"]["kind"], "input");
    assert_eq!(failures[0]["attempts"], 0, "never sent");
    assert!(failures[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no known native body format"));
}

/// The library entry point, in-process: what an embedding program calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_run_returns_the_summary_and_stops_when_told() {
    use bedrock_batch::cli::RunArgs;
    use bedrock_batch::shutdown::StopReason;
    use bedrock_batch::{Settings, Shutdown};

    let mut env = crate::util::EnvGuard::new().await;
    let emu = emulator(EmulatorConfig {
        latency_ms: 20,
        ..EmulatorConfig::default()
    })
    .await;
    env.set("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emu.url());
    env.set("AWS_REGION", "ap-northeast-2");
    env.set(
        "AWS_ACCESS_KEY_ID",
        bedrock_batch::emulator::STATIC_ACCESS_KEY_ID,
    );
    env.set(
        "AWS_SECRET_ACCESS_KEY",
        bedrock_batch::emulator::STATIC_SECRET_ACCESS_KEY,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.csv"), csv_rows(30)).unwrap();
    let args = RunArgs {
        config: Some("/dev/null".into()),
        model: vec![MODEL.into()],
        input: vec![dir.path().join("p.csv")],
        output_dir: Some(dir.path().join("out")),
        concurrency: Some(3),
        max_tokens: Some(64),
        ..RunArgs::default()
    };
    let summary = bedrock_batch::run(Settings::resolve(&args, false).unwrap(), Shutdown::new())
        .await
        .unwrap();
    assert_eq!(
        (summary.total, summary.succeeded, summary.failed),
        (30, 30, 0)
    );
    assert_eq!(summary.attempts, 30);
    assert!(summary.latency_ms.p50 >= 20, "{:?}", summary.latency_ms);

    // Stopped before it starts: nothing is sent, every row is left for resume.
    let shutdown = Shutdown::new();
    shutdown.request(StopReason::Interrupt);
    let args = RunArgs {
        output_dir: Some(dir.path().join("out2")),
        ..args
    };
    let before = emu.stats().requests;
    let summary = bedrock_batch::run(Settings::resolve(&args, false).unwrap(), shutdown)
        .await
        .unwrap();
    assert_eq!(summary.stopped_by.as_deref(), Some("sigint"));
    assert_eq!((summary.succeeded, summary.unfinished), (0, 30));
    assert_eq!(emu.stats().requests, before);
}

/// Mistral's text-completion body carries no token counts: they come from
/// Bedrock's `X-Amzn-Bedrock-*-Token-Count` headers, so the results and the
/// token limiter see real usage, not zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_rows_of_a_family_without_body_usage_take_it_from_the_headers() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "p.csv",
        "id,prompt\nm1,Name a river\nm2,Name a mountain range in Europe\n",
    );
    let out = ws.run(&[
        "--model",
        "mistral.mistral-7b-instruct-v0:2",
        "--api",
        "invoke",
        "--input",
        "p.csv",
        "--max-tokens",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let results = ws.results();
    assert_eq!(results.len(), 2);
    for r in &results {
        assert!(r["usage"]["input_tokens"].as_u64().unwrap() > 0, "{r}");
        assert!(r["usage"]["output_tokens"].as_u64().unwrap() > 0, "{r}");
    }
    let summary = ws.summary();
    assert!(
        summary["tokens"]["input"].as_u64().unwrap() > 0,
        "{summary}"
    );
}

/// An output file that cannot be written (here, a file-size limit the
/// kernel enforces with EFBIG) stops the run: nothing new is sent and no row
/// is retried, so the answers paid for but not recorded are at most the calls
/// in flight when the write failed. Before this, a 3,000-row run paid for
/// 3,000 answers and recorded 828.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failure_stops_sending_at_once() {
    use std::os::unix::process::CommandExt;

    const LIMIT: u64 = 300 * 1024;
    const CONCURRENCY: usize = 8;
    let emu = emulator(EmulatorConfig {
        latency_ms: 5,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(3000));
    let mut cmd = ws.command();
    let concurrency = CONCURRENCY.to_string();
    let mut args = run_args(&[MODEL], "50");
    args.extend(["--concurrency", &concurrency]);
    ws.add_run(&mut cmd, &args);
    // SAFETY: setrlimit and signal are async-signal-safe, and nothing else
    // runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Ignored, a write past the limit fails with EFBIG instead of
            // killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().expect("run the binary");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("results.jsonl: cannot write (File too large")
            && stderr.contains("stopped sending"),
        "{stderr}"
    );

    let text = std::fs::read(ws.out().join("results.jsonl")).unwrap();
    let recorded = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as i64
        - i64::from(!text.ends_with(b"\n"));
    let paid = bedrock_calls(&emu)
        .iter()
        .filter(|r| r.status == 200)
        .count() as i64;
    assert!(
        recorded > 100,
        "the limit leaves room for some rows: {recorded}"
    );
    assert!(
        paid - recorded <= CONCURRENCY as i64,
        "paid {paid}, recorded {recorded}: more than the calls in flight were lost\n{}",
        show(&out)
    );
}

/// `--include-prompt` writes each row's prompt as sent into its results line:
/// the rendered template for one turn, the turns of a conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_prompt_writes_the_prompt_as_sent() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write("q.csv", "id,question\nq1,why is the sky blue\n");
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "q.csv",
        "--template",
        "Answer briefly: {{ question }}?",
        "--include-prompt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = &ws.results()[0];
    assert_eq!(r["prompt"], "Answer briefly: why is the sky blue?");
    assert_eq!(r["output"], answer("Answer briefly: why is the sky blue?"));

    let ws = Workspace::new(&emu.url());
    ws.write(
        "c.jsonl",
        "{\"id\":\"c1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\":\"user\",\"content\":\"bye\"}]}\n",
    );
    let out = ws.run(&["--model", MODEL, "--input", "c.jsonl", "--include-prompt"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        ws.results()[0]["prompt"],
        json!([{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}, {"role": "user", "text": "bye"}])
    );
    // Without the flag, no prompt in the line.
    let ws = Workspace::new(&emu.url());
    ws.write("q.csv", "id,prompt\nq1,plain\n");
    let out = ws.run(&["--model", MODEL, "--input", "q.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(ws.results()[0].get("prompt").is_none());
}

/// A file whose header lacks the prompt column (and no template) is refused
/// before anything is sent, naming the columns it does have; the flags that
/// name the columns make the same file run with no config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_the_prompt_column_is_refused_before_any_call() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "q.csv",
        "key,question,expected\nk1,why,because\nk2,how,so\n",
    );
    let out = ws.run(&["--model", MODEL, "--input", "q.csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("q.csv: line 1: no `prompt` column for the prompt (the file has: key, question, expected)"),
        "{stderr}"
    );
    assert_eq!(emu.stats().requests, 0);

    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "q.csv",
        "--id-column",
        "key",
        "--prompt-column",
        "question",
        "--system",
        "Be brief.",
        "--temperature",
        "0.2",
        "--top-p",
        "0.9",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ids: BTreeSet<String> = ws
        .results()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, BTreeSet::from(["k1".to_string(), "k2".to_string()]));
    assert_eq!(
        ws.results()[0]["meta"],
        json!({"expected": if ws.results()[0]["id"] == "k1" { "because" } else { "so" }})
    );
}

/// stdout carries the summary and nothing else, so a script can parse it: log
/// lines (INFO included) and progress go to stderr. Paths print normalised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_is_the_summary_alone_and_logs_go_to_stderr() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in/p.csv", csv_rows(3));
    std::fs::create_dir_all(ws.path("in")).unwrap();
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "in/p.csv",
        "--output-dir",
        "in/../out/./job",
        "--max-tokens",
        "20",
        "--no-progress",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INFO") && stderr.contains("credentials:"),
        "{stderr}"
    );
    for line in stdout.lines() {
        assert!(
            [
                "done:",
                "job:",
                "tokens:",
                "latency:",
                "calls:",
                "streamed:",
                "cost:",
                "results:",
                "failures:",
                "summary:",
                "report:",
                // The per-model table.
                "|"
            ]
            .iter()
            .any(|p| line.starts_with(p)),
            "not a summary line on stdout: {line:?}\n{stdout}"
        );
    }
    assert!(
        stdout.contains("results:  out/job/results.jsonl\n"),
        "{stdout}"
    );
    assert!(ws.path("out/job/results.jsonl").exists());
}
