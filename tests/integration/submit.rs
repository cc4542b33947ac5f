//! `submit` and `collect` through the real binary against the emulator's
//! Batch Inference control plane and S3, with the real SDKs: splitting and
//! collecting exactly once, crashes between upload, create and record,
//! partial completion replayed on demand, odd ids mapped back, too few
//! records, `--no-wait` + `collect`.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use bedrock_batch::emulator::{Emulator, EmulatorConfig, InvocationJobConfig};
use serde_json::Value;

use crate::cli_util::{
    assert_each_id_once, csv_ids, csv_rows, read_jsonl, show, stderr, Workspace, MODEL,
};
use crate::util::control_client;

const ROLE: &str = "arn:aws:iam::123456789012:role/BedrockBatchServiceRole";

/// The emulator with the job's bucket created (as a user creates theirs before a submit).
async fn emulator(s3: &std::path::Path, jobs: InvocationJobConfig) -> Emulator {
    let emu = Emulator::start(EmulatorConfig {
        s3_dir: Some(s3.to_path_buf()),
        invocation_jobs: jobs,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    emu.s3().create_bucket("batch-bucket").expect("bucket");
    emu
}

fn fast(min_records: usize) -> InvocationJobConfig {
    InvocationJobConfig {
        queue: Duration::from_millis(30),
        min_records,
        ..InvocationJobConfig::default()
    }
}

/// A job file with `[batch]` (quick polls) plus `extra` lines in `[batch]`.
fn config(ws: &Workspace, input: &str, extra: &str) -> std::path::PathBuf {
    ws.write(
        "config.toml",
        format!(
            "model = \"{MODEL}\"\ninputs = [\"{input}\"]\noutput_dir = \"out\"\nmax_tokens = 64\n\n[batch]\ns3_uri = \"s3://batch-bucket/nightly/\"\nrole_arn = \"{ROLE}\"\njob_name = \"nightly\"\npoll_secs = 0.05\n{extra}"
        ),
    )
}

/// `bedrock-batch ARGS` with the Bedrock control plane and S3 at the emulator.
fn batch(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = ws.command();
    c.env("AWS_ENDPOINT_URL_BEDROCK", &ws.url).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run the binary")
}

/// Every job the emulator created, as ARNs.
async fn created_jobs(url: &str) -> Vec<String> {
    control_client(url)
        .list_model_invocation_jobs()
        .send()
        .await
        .expect("list jobs")
        .invocation_job_summaries()
        .iter()
        .map(|j| j.job_arn().to_owned())
        .collect()
}

fn state(ws: &Workspace) -> Value {
    serde_json::from_str(&std::fs::read_to_string(ws.out().join("batch/state.json")).unwrap())
        .unwrap()
}

/// A record file over the multipart threshold (16 MiB) goes up in parts
/// through the real SDK and the emulator's S3, and the job reads it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_file_over_16_mib_goes_up_in_parts_and_is_read_whole() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(100)).await;
    let ws = Workspace::new(&emu.url());
    let rows = 1_100;
    let filler = "lorem ipsum dolor sit amet ".repeat(600); // 16.2 kB a row
    let mut csv = String::from("id,prompt\n");
    for i in 0..rows {
        csv.push_str(&format!("r{i:05},Question {i}: {filler}\n"));
    }
    ws.write("in.csv", &csv);
    config(&ws, "in.csv", "");
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let uploads: Vec<_> = emu
        .requests()
        .iter()
        .filter(|r| r.service == "s3")
        .map(|r| r.operation.to_string())
        .collect();
    let parts = uploads.iter().filter(|op| *op == "UploadPart").count();
    assert!(
        uploads.iter().any(|op| op == "CreateMultipartUpload")
            && uploads.iter().any(|op| op == "CompleteMultipartUpload")
            && parts >= 3,
        "{uploads:?}"
    );
    let records = emu
        .s3()
        .list("batch-bucket", "nightly/")
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with(".jsonl"))
        .map(|k| emu.s3().stat("batch-bucket", &k).unwrap().unwrap().0)
        .max()
        .unwrap();
    assert!(records > 16 * 1024 * 1024, "{records} bytes");
    assert_each_id_once(&ws.out(), &csv_ids(rows));
    assert_eq!(ws.results().len(), rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10000_row_job_is_split_into_several_jobs_and_collected_exactly_once() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(100)).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(10_000));
    config(
        &ws,
        "in.csv",
        "records_per_job = 4000\nrecords_per_file = 1500\n",
    );
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_each_id_once(&ws.out(), &csv_ids(10_000));
    let results = ws.results();
    assert!(results.iter().all(|r| r["engine"] == "batch"));
    // The summary has the bill: the rows' batch prices added up.
    let rows_usd: f64 = results
        .iter()
        .map(|r| r["cost_usd"].as_f64().unwrap())
        .sum();
    // Batch reports no time per record: no latency is made up from the lines' 0.
    assert_eq!(ws.summary()["latency_ms"]["max"], 0, "{}", ws.summary());
    let cost = &ws.summary()["cost"];
    assert!(rows_usd > 0.0);
    for key in ["total_usd", "job_total_usd"] {
        assert!(
            (cost[key].as_f64().unwrap() - rows_usd).abs() < 1e-9,
            "{key}: {cost}"
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!(
            "batch: cost ${rows_usd:.4} at batch prices; the job so far ${rows_usd:.4}\n"
        )),
        "{stdout}"
    );
    let st = state(&ws);
    let parts = st["parts"].as_array().unwrap();
    // 10,000 under 4,000 per job: three jobs of 3,334, 3,333 and 3,333.
    assert_eq!(parts.len(), 3);
    assert!(parts
        .iter()
        .all(|p| p["files"].as_array().unwrap().len() == 3));
    assert_eq!(created_jobs(&emu.url()).await.len(), 3);
    // The answer is the emulator's for the prompt run would have sent.
    let r0 = results.iter().find(|r| r["id"] == "r00000").unwrap();
    assert_eq!(
        r0["output"].as_str().unwrap(),
        bedrock_batch::emulator::answer("Question number 0: what is 0 + 0?")
    );
    assert_eq!(r0["meta"]["expected"], "0");
    assert!(r0["usage"]["input_tokens"].as_u64().unwrap() > 0);

    // A second submit has nothing left to send, and creates nothing.
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_each_id_once(&ws.out(), &csv_ids(10_000));
    assert_eq!(created_jobs(&emu.url()).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_upload_create_and_record_never_creates_a_second_job() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(10)).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(60));
    config(&ws, "in.csv", "records_per_job = 20\nmin_records = 10\n");
    for fault in [
        "after-upload",
        "after-create",
        "after-upload",
        "after-create",
    ] {
        let o = batch(
            &ws,
            &["submit", "--no-progress"],
            &[("BEDROCK_BATCH_FAULT", fault)],
        );
        assert_ne!(o.status.code(), Some(0), "{fault}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("aborting"),
            "{}",
            show(&o)
        );
    }
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_each_id_once(&ws.out(), &csv_ids(60));
    let jobs = created_jobs(&emu.url()).await;
    assert_eq!(jobs.len(), 3, "one job per part: {jobs:?}");
    let recorded: BTreeSet<String> = state(&ws)["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["job_arn"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recorded, jobs.into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_completed_job_is_replayed_on_demand_and_every_id_lands_once() {
    let s3 = tempfile::tempdir().unwrap();
    // 24 "hours" last 240 ms; 300 records at 2 ms each do not all fit.
    let emu = emulator(
        s3.path(),
        InvocationJobConfig {
            hour: Duration::from_millis(10),
            record_time: Duration::from_millis(2),
            ..fast(100)
        },
    )
    .await;
    let ws = Workspace::new(&emu.url());
    let mut csv = csv_rows(300);
    csv = csv.replace(
        "r00007,Question number 7",
        "r00007,[[emu:validation]] Question number 7",
    );
    ws.write("in.csv", csv);
    config(&ws, "in.csv", "");
    let o = batch(
        &ws,
        &["submit", "--no-progress", "--replay", "on-demand"],
        &[],
    );
    let text = show(&o);
    assert!(text.contains("PartiallyCompleted"), "{text}");
    assert!(text.contains("go on demand now"), "{text}");
    assert_each_id_once(&ws.out(), &csv_ids(300));
    let results = ws.results();
    let by_batch = results.iter().filter(|r| r["engine"] == "batch").count();
    let on_demand = results.iter().filter(|r| r.get("engine").is_none()).count();
    assert!(by_batch > 0 && on_demand > 0, "{by_batch} + {on_demand}");
    let failures = ws.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["id"], "r00007");
    assert_eq!(failures[0]["error"]["kind"], "validation");
    assert_eq!(o.status.code(), Some(1), "a failed row: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_ids_are_sent_as_generated_record_ids_and_mapped_back() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(1)).await;
    let ws = Workspace::new(&emu.url());
    let long = "L".repeat(300);
    let odd = ["질문-1", "has space", "a#b", long.as_str(), "ok1"];
    let mut csv = String::from("id,prompt\n");
    for (i, id) in odd.iter().enumerate() {
        csv.push_str(&format!("{id},prompt {i}\n"));
    }
    ws.write("in.csv", csv);
    config(&ws, "in.csv", "min_records = 1\n");
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let want: BTreeSet<String> = odd.iter().map(|s| s.to_string()).collect();
    assert_each_id_once(&ws.out(), &want);
    let map = read_jsonl(&ws.out().join("batch/part-0001/map.jsonl"));
    let kept: Vec<&Value> = map.iter().filter(|m| m["record_id"] == m["id"]).collect();
    assert_eq!(kept.len(), 1, "only ok1 fits as a record id: {map:?}");
    for r in ws.results() {
        let i: usize = r["id"]
            .as_str()
            .and_then(|id| odd.iter().position(|o| *o == id))
            .unwrap();
        assert_eq!(
            r["output"].as_str().unwrap(),
            bedrock_batch::emulator::answer(&format!("prompt {i}"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_records_say_so_and_fallback_sends_them_on_demand() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(100)).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(5));
    config(&ws, "in.csv", "");
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    let text = show(&o);
    assert!(
        text.contains("5 record(s), below Bedrock's minimum of 100 per batch job"),
        "{text}"
    );
    assert!(text.contains("bedrock-batch run"), "{text}");
    assert_eq!(o.status.code(), Some(1), "rows left unfinished: {text}");
    assert!(ws.results().is_empty());
    assert!(created_jobs(&emu.url()).await.is_empty());

    let o = batch(
        &ws,
        &["submit", "--no-progress", "--fallback", "on-demand"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_each_id_once(&ws.out(), &csv_ids(5));
    assert!(ws.results().iter().all(|r| r.get("engine").is_none()));
}

/// SIGTERM while submit waits for its jobs: it stops waiting, says where the
/// jobs stand, and exits 143 as `run` does, so a nightly alarm sees it; the
/// jobs go on and `collect` follows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_waiting_exits_with_its_code() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(
        s3.path(),
        InvocationJobConfig {
            queue: Duration::from_secs(120),
            min_records: 10,
            ..InvocationJobConfig::default()
        },
    )
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(20));
    config(&ws, "in.csv", "min_records = 10\n");
    let mut c = ws.command();
    c.env("AWS_ENDPOINT_URL_BEDROCK", &ws.url)
        .args(["submit", "--no-progress"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = tokio::process::Command::from(c).spawn().unwrap();
    let state = ws.out().join("batch/state.json");
    crate::cli_util::until("a job created", || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("model-invocation-job/"))
    })
    .await;
    let status = crate::cli_util::stop(child, libc::SIGTERM, Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(143));
    assert_eq!(created_jobs(&emu.url()).await.len(), 1, "the job goes on");
}

/// A row edited since batch answered it is refused as `run` refuses it
/// (`on_changed`), and an unedited input is not: the batch lines' request
/// fingerprints are the ones `run` computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_row_is_refused_as_run_refuses_it() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(10)).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(20));
    config(&ws, "in.csv", "min_records = 10\n");
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // Nothing edited: nothing to say, nothing sent.
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!stderr(&o).contains("changed since"), "{}", show(&o));
    let edited = csv_rows(20).replace("Question number 3:", "Question number three:");
    ws.write("in.csv", edited);
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("1 row(s) changed since they were answered: `r00003`"),
        "{}",
        show(&o)
    );
    // Nothing was planned for it: the job's state and results are as before.
    assert_eq!(ws.results().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_returns_after_creating_and_collect_picks_up() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(
        s3.path(),
        InvocationJobConfig {
            queue: Duration::from_millis(300),
            ..fast(10)
        },
    )
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(40));
    config(&ws, "in.csv", "min_records = 10\n");
    let o = batch(&ws, &["submit", "--no-progress", "--no-wait"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("bedrock-batch collect"));
    assert!(ws.results().is_empty());
    assert_eq!(created_jobs(&emu.url()).await.len(), 1);

    let out = ws.out();
    let o = batch(&ws, &["collect", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_each_id_once(&ws.out(), &csv_ids(40));
    assert_eq!(ws.summary()["succeeded"], 40);
}

/// `submit --no-wait --fallback on-demand`: the rows below the minimum go on
/// demand when `collect` ends the jobs, as they would had submit waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_keeps_the_recorded_fallback() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(10)).await;
    let ws = Workspace::new(&emu.url());
    // 20 rows of one model (a job), 3 pinned to another (below the minimum).
    let mut csv = String::from("id,prompt,model\n");
    for i in 0..23 {
        let model = if i < 20 {
            MODEL
        } else {
            "amazon.nova-lite-v1:0"
        };
        csv.push_str(&format!("r{i:05},Question {i},{model}\n"));
    }
    ws.write("in.csv", csv);
    config(&ws, "in.csv", "min_records = 10\n");
    let o = batch(
        &ws,
        &[
            "submit",
            "--no-progress",
            "--no-wait",
            "--fallback",
            "on-demand",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = ws.out();
    let o = batch(&ws, &["collect", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_each_id_once(&ws.out(), &(0..23).map(|i| format!("r{i:05}")).collect());
    let results = ws.results();
    let on_demand = results.iter().filter(|r| r.get("engine").is_none()).count();
    assert_eq!(on_demand, 3, "the three below the minimum went on demand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_job_quota_is_waited_out_not_failed() {
    let s3 = tempfile::tempdir().unwrap();
    // Bedrock admits one job per model at a time; [batch] believes in 20.
    let emu = emulator(
        s3.path(),
        // A queue long enough that the first job is still active when the
        // second is created (right after the first, in the same pass).
        InvocationJobConfig {
            max_concurrent: 1,
            queue: Duration::from_millis(1500),
            ..fast(10)
        },
    )
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(60));
    config(&ws, "in.csv", "records_per_job = 20\nmin_records = 10\n");
    let o = batch(&ws, &["submit", "--no-progress"], &[]);
    let text = show(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("no free batch job slot yet"), "{text}");
    assert_each_id_once(&ws.out(), &csv_ids(60));
    assert_eq!(created_jobs(&emu.url()).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_or_a_schema_is_refused_before_anything_is_uploaded() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(1)).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(5));
    ws.write("s.json", r#"{"type": "object"}"#);
    for (top, says) in [
        ("samples = 2\n", "several models or samples"),
        (
            "output_schema = \"s.json\"\n",
            "`output_schema` and `[[score]]`",
        ),
        ("max_cost = 1.0\n", "`max_cost` is kept by `run` only"),
        (
            "upload = \"s3://batch-bucket/out/\"\n",
            "`upload` is done by `run` only",
        ),
    ] {
        ws.write(
            "config.toml",
            format!(
                "model = \"{MODEL}\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\nmax_tokens = 64\n{top}\n[batch]\ns3_uri = \"s3://batch-bucket/nightly/\"\nrole_arn = \"{ROLE}\"\n"
            ),
        );
        // `--dry-run` too: no estimate for a job submit would refuse.
        for args in [
            &["submit", "--no-progress"][..],
            &["submit", "--no-progress", "--dry-run"][..],
        ] {
            let o = batch(&ws, args, &[]);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(stderr.contains(says), "{args:?}: {stderr}");
            assert_eq!(
                stderr.lines().filter(|l| l.starts_with("error")).count(),
                1,
                "{stderr}"
            );
            assert!(!ws.path("out/dry-run.json").exists(), "{args:?}");
        }
    }
    assert!(created_jobs(&emu.url()).await.is_empty());
    assert!(emu.s3().list("batch-bucket", "").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_gives_the_batch_price_and_the_number_of_jobs_and_sends_nothing() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(s3.path(), fast(1)).await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(250));
    config(&ws, "in.csv", "records_per_job = 100\n");
    let o = batch(&ws, &["submit", "--no-progress", "--dry-run"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("batch inference"), "{stdout}");
    assert!(
        stdout.contains("submit: 250 rows make 3 Bedrock batch job(s)"),
        "{stdout}"
    );
    assert!(created_jobs(&emu.url()).await.is_empty());
    assert_eq!(emu.stats().requests, 0);

    // Jobs are counted per model, each with its minimum: 150 rows of one
    // model make 2 jobs of at most 100; 60 pinned to another are below the
    // default minimum of 100 and make none (3 if counted together).
    let mut csv = String::from("id,prompt,model\n");
    for i in 0..210 {
        let model = if i < 150 {
            MODEL
        } else {
            "amazon.nova-lite-v1:0"
        };
        csv.push_str(&format!("r{i:05},Question {i},{model}\n"));
    }
    ws.write("pinned.csv", csv);
    config(&ws, "pinned.csv", "records_per_job = 100\n");
    let o = batch(&ws, &["submit", "--no-progress", "--dry-run"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("submit: 210 rows make 2 Bedrock batch job(s)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_stops_the_jobs_it_created() {
    let s3 = tempfile::tempdir().unwrap();
    let emu = emulator(
        s3.path(),
        InvocationJobConfig {
            queue: Duration::from_secs(60),
            ..fast(10)
        },
    )
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("in.csv", csv_rows(20));
    config(&ws, "in.csv", "min_records = 10\n");
    let o = batch(&ws, &["submit", "--no-progress", "--no-wait"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let jobs = created_jobs(&emu.url()).await;
    assert_eq!(jobs.len(), 1);
    let o = batch(&ws, &["submit", "--no-progress", "--stop"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("submit --stop: 1 job(s) stopping"),
        "{}",
        show(&o)
    );
    let job = control_client(&emu.url())
        .get_model_invocation_job()
        .job_identifier(&jobs[0])
        .send()
        .await
        .expect("get job");
    let status = job
        .status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        ["Stopping", "Stopped"].contains(&status.as_str()),
        "{status}"
    );
    // Nothing was answered, so nothing was written.
    assert!(ws.results().is_empty());
}
