//! `run` with inputs on S3 and `--upload`, through the real binary and the emulator's S3:
//! CSV and JSONL objects streamed end to end, a missing object or bucket as a one-line
//! setup error, a resume after the object changed judged like an edited local file, a
//! badly quoted CSV read from S3 exactly as from disk, and every output file uploaded
//! (multipart for a large one), with a failed upload keeping the local files.
//!
//! Not here: the emulator's S3 itself (emulator_s3.rs).

use std::collections::BTreeSet;

use bedrock_batch::emulator::{answer, Emulator, EmulatorConfig};
use bedrock_batch::output::upload::{self, Destination};

use crate::cli_util::{
    assert_each_id_once, bedrock_calls, csv_ids, csv_prompt, csv_rows, read_jsonl, show, Workspace,
    MODEL,
};

const BUCKET: &str = "nightly-evals";

fn jsonl_rows(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"id\":\"j{i}\",\"prompt\":\"JSONL question {i}\"}}\n"))
        .collect()
}

/// A workspace whose (empty) AWS config files exist, as on a configured machine: the
/// SDK warns on stderr about configured files that are missing.
fn workspace(emu: &Emulator) -> Workspace {
    let ws = Workspace::new(&emu.url());
    ws.write("home/.aws/config", "");
    ws.write("home/.aws/credentials", "");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_jsonl_objects_run_end_to_end_and_every_output_is_uploaded() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = workspace(&emu);
    emu.s3()
        .put(BUCKET, "in/p.csv", csv_rows(30).as_bytes())
        .unwrap();
    emu.s3()
        .put(BUCKET, "in/q.jsonl", jsonl_rows(12).as_bytes())
        .unwrap();
    let out = ws.run(&[
        "--model",
        MODEL,
        "--max-tokens",
        "40",
        "--input",
        &format!("s3://{BUCKET}/in/p.csv"),
        "--input",
        &format!("s3://{BUCKET}/in/q.jsonl"),
        "--upload",
        &format!("s3://{BUCKET}/out/run-1/"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let results = ws.results();
    assert_eq!(results.len(), 42, "{}", show(&out));
    for r in &results {
        let id = r["id"].as_str().unwrap();
        let prompt = match id.strip_prefix('j') {
            Some(i) => format!("JSONL question {i}"),
            None => csv_prompt(id[1..].parse().unwrap()),
        };
        assert_eq!(r["output"].as_str(), Some(answer(&prompt).as_str()), "{r}");
    }
    let mut want = csv_ids(30);
    want.extend((0..12).map(|i| format!("j{i}")));
    assert_each_id_once(&ws.out(), &want);

    // The manifest names the inputs by their URIs.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.out().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["inputs"],
        serde_json::json!([
            format!("s3://{BUCKET}/in/p.csv"),
            format!("s3://{BUCKET}/in/q.jsonl")
        ])
    );

    // Every output file that exists is in S3, byte for byte, and the run said so.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut uploaded = 0;
    for name in upload::FILES {
        let local = ws.out().join(name);
        let remote = emu.s3().get(BUCKET, &format!("out/run-1/{name}")).unwrap();
        if !local.exists() {
            assert_eq!(remote, None, "{name} was not written, so not uploaded");
            continue;
        }
        uploaded += 1;
        assert!(
            remote.as_deref() == Some(std::fs::read(&local).unwrap().as_slice()),
            "{name} uploaded as written"
        );
        assert!(
            stdout.contains(&format!("uploaded: s3://{BUCKET}/out/run-1/{name}")),
            "{stdout}"
        );
    }
    assert!(uploaded >= 3, "results, failures and summary at least");

    // The inputs were read with GetObject pinned to the version checked at the start:
    // each object's reads all carry the same If-Match (not visible here), and the reads
    // were signed with the run's key.
    let reads: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.operation == "GetObject")
        .collect();
    assert!(reads.len() >= 4, "two passes over two objects: {reads:?}");
    assert!(reads.iter().all(|r| r.status == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_or_bucket_is_a_one_line_setup_error() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = workspace(&emu);
    emu.s3()
        .put(BUCKET, "in/p.csv", csv_rows(3).as_bytes())
        .unwrap();
    for (uri, why) in [
        (
            format!("s3://{BUCKET}/in/nope.csv"),
            "cannot open: no such object".to_string(),
        ),
        (
            "s3://no-such-bucket/in/p.csv".to_string(),
            "cannot open: no such bucket `no-such-bucket`".to_string(),
        ),
        (
            format!("s3://{BUCKET}/in/"),
            "names a bucket or prefix, not an object".to_string(),
        ),
    ] {
        let out = ws.run(&["--model", MODEL, "--input", &uri]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("{uri}: {why}")), "{stderr}");
    }
    assert_eq!(bedrock_calls(&emu).len(), 0, "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_the_object_changed_is_refused_like_an_edited_file() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = workspace(&emu);
    let uri = format!("s3://{BUCKET}/in/p.csv");
    let args = ["--model", MODEL, "--max-tokens", "40", "--input", &uri];
    emu.s3()
        .put(BUCKET, "in/p.csv", b"id,prompt\nr1,one\nr2,two\nr3,three\n")
        .unwrap();
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(bedrock_calls(&emu).len(), 3);

    // Unchanged: nothing to send.
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(bedrock_calls(&emu).len(), 3);

    // The object is replaced with r2 edited: refused before anything is sent.
    emu.s3()
        .put(
            BUCKET,
            "in/p.csv",
            b"id,prompt\nr1,one\nr2,two edited\nr3,three\n",
        )
        .unwrap();
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "1 row(s) changed since they were answered: `r2` (s3://nightly-evals/in/p.csv: line 3)"
        ),
        "{stderr}"
    );
    assert_eq!(
        bedrock_calls(&emu).len(),
        3,
        "refused before sending anything"
    );

    // Resent on request: every id still has exactly one current line.
    let mut resend = args.to_vec();
    resend.extend(["--on-changed", "resend"]);
    let out = ws.run(&resend);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(bedrock_calls(&emu).len(), 4);
    let want: BTreeSet<String> = ["r1", "r2", "r3"].map(String::from).into();
    assert_each_id_once(&ws.out(), &want);
    let r2 = ws.results().into_iter().find(|r| r["id"] == "r2").unwrap();
    assert_eq!(r2["output"].as_str(), Some(answer("two edited").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_quoted_csv_reads_the_same_from_s3_as_from_disk() {
    // The scanner steps back to the line after a badly quoted record: on S3 that is a
    // ranged GetObject from that line's offset.
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let mut csv = String::from("id,prompt\n");
    for i in 0..40 {
        csv.push_str(&format!("a{i},plain {i}\n"));
    }
    csv.push_str("bad1,\"opens and never closes\n");
    for i in 0..40 {
        csv.push_str(&format!("b{i},after {i}\n"));
    }
    csv.push_str("bad2,\"closed\" then text\n");
    csv.push_str("c0,last\n");
    emu.s3().put(BUCKET, "in/q.csv", csv.as_bytes()).unwrap();

    let outcome = |ws: &Workspace| {
        let ok: BTreeSet<String> = ws
            .results()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let bad: BTreeSet<(String, u64)> = read_jsonl(&ws.out().join("failures.jsonl"))
            .iter()
            .map(|f| (f["id"].to_string(), f["line"].as_u64().unwrap_or(0)))
            .collect();
        (ok, bad)
    };
    let local = workspace(&emu);
    local.write("q.csv", &csv);
    let out = local.run(&["--model", MODEL, "--input", "q.csv", "--max-tokens", "20"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let remote = workspace(&emu);
    let uri = format!("s3://{BUCKET}/in/q.csv");
    let out = remote.run(&["--model", MODEL, "--input", &uri, "--max-tokens", "20"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let (ok_local, bad_local) = outcome(&local);
    let (ok_remote, bad_remote) = outcome(&remote);
    assert_eq!(ok_local.len(), 81, "{ok_local:?}");
    assert_eq!(ok_local, ok_remote);
    assert_eq!(bad_local, bad_remote);
    assert_eq!(bad_remote.len(), 2, "{bad_remote:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_is_one_line_and_keeps_the_local_files() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = workspace(&emu);
    ws.write("p.csv", csv_rows(4));
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--upload",
        "s3://no-such-bucket/out/",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The run's own log lines come first; the error is its last line, whole.
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("error: upload: "), "{stderr}");
    assert!(
        last.contains("upload: s3://no-such-bucket/out/results.jsonl: NoSuchBucket"),
        "{stderr}"
    );
    assert!(last.contains("the local files are kept in"), "{stderr}");
    assert_eq!(ws.results().len(), 4, "the run's answers are on disk");
    assert!(ws.out().join("summary.json").exists());
}

#[tokio::test]
async fn a_large_output_file_goes_up_in_parts() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.s3().create_bucket(BUCKET).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 17 MiB: over the multipart threshold, three parts of 8 MiB, 8 MiB and 1 MiB.
    let mut rng = fastrand::Rng::with_seed(7);
    let big: Vec<u8> = (0..17 * 1024 * 1024)
        .map(|_| rng.alphanumeric() as u8)
        .collect();
    std::fs::write(dir.path().join("results.jsonl"), &big).unwrap();
    std::fs::write(dir.path().join("summary.json"), b"{}").unwrap();
    let client = crate::util::s3_client(&emu.url(), crate::util::static_credentials());
    let to = Destination::parse(&format!("s3://{BUCKET}/big")).unwrap();
    let written = upload::run(&client, dir.path(), &to).await.expect("upload");
    assert_eq!(
        written,
        [
            format!("s3://{BUCKET}/big/results.jsonl"),
            format!("s3://{BUCKET}/big/summary.json")
        ]
    );
    let got = emu.s3().get(BUCKET, "big/results.jsonl").unwrap().unwrap();
    assert!(got == big, "the parts join into the file");
    let ops: Vec<&str> = emu.requests().iter().map(|r| r.operation).collect();
    assert_eq!(
        ops,
        [
            "CreateMultipartUpload",
            "UploadPart",
            "UploadPart",
            "UploadPart",
            "CompleteMultipartUpload",
            "PutObject"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_grants_reading_the_inputs_and_writing_the_upload_prefix() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = workspace(&emu);
    ws.write(
        "job.toml",
        format!(
            "model = \"{MODEL}\"\nregion = \"ap-northeast-2\"\ninputs = [\"s3://{BUCKET}/in/p.csv\", \"local.csv\"]\noutput_dir = \"out\"\nupload = \"s3://{BUCKET}/out/nightly\"\n"
        ),
    );
    ws.write("local.csv", "id,prompt\n1,hi\n");
    let out = ws
        .command()
        .args([
            "policy",
            "--config",
            "job.toml",
            "--account",
            "123456789012",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_sid = |sid: &str| {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .cloned()
            .unwrap_or_else(|| panic!("no {sid} in {doc}"))
    };
    let read = by_sid("BedrockBatchReadInputs");
    assert_eq!(read["Action"], serde_json::json!(["s3:GetObject"]));
    assert_eq!(
        read["Resource"],
        serde_json::json!([format!("arn:aws:s3:::{BUCKET}/in/p.csv")])
    );
    let write = by_sid("BedrockBatchUploadOutputs");
    assert_eq!(
        write["Resource"],
        serde_json::json!([format!("arn:aws:s3:::{BUCKET}/out/nightly/*")])
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not scanned for a `model` column"));
}
