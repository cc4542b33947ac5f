//! The emulator's Batch Inference control plane through the real `aws-sdk-bedrock`:
//! create, get, list, stop; outputs in Bedrock's layout; per-record errors,
//! partial completion, expiry, validation failures, the concurrent-jobs
//! quota and `clientRequestToken` idempotency.

use std::path::Path;
use std::time::Duration;

use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
    ModelInvocationJobStatus as S, ModelInvocationType,
};
use bedrock_batch::emulator::{Emulator, EmulatorConfig, InvocationJobConfig};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::util::{control_client, HAIKU};

const ROLE: &str = "arn:aws:iam::123456789012:role/BedrockBatchServiceRole";

/// One test's control plane: an S3 root holding the job's records under
/// `bucket/in/`, the emulator serving it, and a client for that emulator.
/// Every test starts from this, and some restart the emulator with other
/// settings over the same root.
struct Plane {
    root: TempDir,
    emu: Emulator,
    c: aws_sdk_bedrock::Client,
}

impl Plane {
    /// `n` records (`prompt(i)` is record i's prompt) and the emulator with `jobs`.
    async fn start(n: usize, prompt: impl Fn(usize) -> String, jobs: InvocationJobConfig) -> Plane {
        let root = tempfile::tempdir().unwrap();
        write_records(root.path(), n, prompt);
        Plane::serve(root, jobs).await
    }

    async fn serve(root: TempDir, jobs: InvocationJobConfig) -> Plane {
        let emu = Emulator::start(EmulatorConfig {
            s3_dir: Some(root.path().to_path_buf()),
            invocation_jobs: jobs,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let c = control_client(&emu.url());
        Plane { root, emu, c }
    }

    /// The emulator stopped, then started again over the same root with `jobs`.
    async fn restart(self, jobs: InvocationJobConfig) -> Plane {
        drop(self.emu);
        Plane::serve(self.root, jobs).await
    }

    /// Creates job `name` and waits for its final state: its ARN and that state.
    async fn run_job(
        &self,
        name: &str,
    ) -> (
        String,
        aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput,
    ) {
        let arn = create(&self.c, name)
            .send()
            .await
            .expect("create")
            .job_arn()
            .to_owned();
        let j = wait_final(&self.c, &arn).await;
        (arn, j)
    }
}

fn fast() -> InvocationJobConfig {
    InvocationJobConfig {
        queue: Duration::from_millis(30),
        min_records: 3,
        ..InvocationJobConfig::default()
    }
}

/// Writes `n` Converse records to `ROOT/bucket/in/part.jsonl`; `prompt(i)` is record i's prompt.
fn write_records(root: &Path, n: usize, prompt: impl Fn(usize) -> String) {
    let dir = root.join("bucket/in");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for i in 0..n {
        let rec = json!({
            "recordId": format!("R{i:010}"),
            "modelInput": {
                "messages": [{"role": "user", "content": [{"text": prompt(i)}]}],
                "inferenceConfig": {"maxTokens": 64},
            },
        });
        text.push_str(&rec.to_string());
        text.push('\n');
    }
    std::fs::write(dir.join("part.jsonl"), text).unwrap();
}

fn create(
    c: &aws_sdk_bedrock::Client,
    name: &str,
) -> aws_sdk_bedrock::operation::create_model_invocation_job::builders::CreateModelInvocationJobFluentBuilder
{
    c.create_model_invocation_job()
        .job_name(name)
        .role_arn(ROLE)
        .model_id(HAIKU)
        .model_invocation_type(ModelInvocationType::Converse)
        .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(
            ModelInvocationJobS3InputDataConfig::builder()
                .s3_uri("s3://bucket/in/")
                .build()
                .unwrap(),
        ))
        .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
            ModelInvocationJobS3OutputDataConfig::builder()
                .s3_uri("s3://bucket/out/")
                .build()
                .unwrap(),
        ))
        .timeout_duration_in_hours(24)
}

async fn wait_final(
    c: &aws_sdk_bedrock::Client,
    arn: &str,
) -> aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput {
    for _ in 0..500 {
        let j = c
            .get_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .expect("get");
        if !matches!(
            j.status(),
            Some(S::Submitted | S::Validating | S::Scheduled | S::InProgress | S::Stopping)
        ) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {arn} did not finish");
}

fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

fn read_out(root: &Path, arn: &str) -> (Vec<Value>, Value) {
    let dir = root.join("bucket/out").join(job_id(arn));
    let lines = std::fs::read_to_string(dir.join("part.jsonl.out")).unwrap_or_default();
    let recs = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json.out")).unwrap())
            .unwrap();
    (recs, manifest)
}

#[tokio::test]
async fn a_job_runs_to_completion_and_writes_bedrocks_layout() {
    let p = Plane::start(
        5,
        |i| {
            if i == 2 {
                "fail me [[emu:validation]]".into()
            } else {
                format!("question {i}")
            }
        },
        fast(),
    )
    .await;
    let (arn, j) = p.run_job("nightly-1").await;
    assert!(arn.starts_with("arn:aws:bedrock:ap-northeast-2:123456789012:model-invocation-job/"));
    assert_eq!(j.status(), Some(&S::Completed), "{:?}", j.message());
    assert_eq!(j.total_record_count(), Some(5));
    assert_eq!(j.processed_record_count(), Some(5));
    assert_eq!(j.success_record_count(), Some(4));
    assert_eq!(j.error_record_count(), Some(1));
    assert!(j.end_time().is_some());
    let (recs, manifest) = read_out(p.root.path(), &arn);
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0]["recordId"], "R0000000000");
    assert!(recs[0]["modelOutput"]["output"]["message"]["content"][0]["text"].is_string());
    assert_eq!(recs[2]["error"]["errorCode"], 400);
    assert_eq!(manifest["totalRecordCount"], 5);
    assert_eq!(manifest["successRecordCount"], 4);
    assert_eq!(manifest["errorRecordCount"], 1);
    assert!(manifest["inputTokenCount"].as_u64().unwrap() > 0);

    let listed =
        p.c.list_model_invocation_jobs()
            .name_contains("nightly")
            .send()
            .await
            .expect("list");
    assert_eq!(listed.invocation_job_summaries().len(), 1);
    assert_eq!(listed.invocation_job_summaries()[0].job_arn(), arn);
}

#[tokio::test]
async fn the_same_client_request_token_never_creates_a_second_job() {
    let p = Plane::start(3, |i| format!("q{i}"), fast()).await;
    let c = &p.c;
    let a = create(c, "j1")
        .client_request_token("tok-1")
        .send()
        .await
        .unwrap();
    let b = create(c, "j1")
        .client_request_token("tok-1")
        .send()
        .await
        .unwrap();
    let other = create(c, "j1")
        .client_request_token("tok-2")
        .send()
        .await
        .unwrap();
    assert_eq!(a.job_arn(), b.job_arn());
    assert_ne!(a.job_arn(), other.job_arn());
    let all = c.list_model_invocation_jobs().send().await.unwrap();
    assert_eq!(all.invocation_job_summaries().len(), 2);
}

#[tokio::test]
async fn validation_failures_end_the_job_with_bedrocks_reason() {
    let p = Plane::start(2, |i| format!("q{i}"), fast()).await;
    let (_, j) = p.run_job("few").await;
    assert_eq!(j.status(), Some(&S::Failed));
    assert!(
        j.message().unwrap().contains("minimum number of records"),
        "{:?}",
        j.message()
    );

    std::fs::write(
        p.root.path().join("bucket/in/part.jsonl"),
        "{\"recordId\":\"a\"}\nnot json\n",
    )
    .unwrap();
    let (_, j) = p.run_job("bad").await;
    assert_eq!(j.status(), Some(&S::Failed));
    assert!(
        j.message().unwrap().contains("Line 1 of part.jsonl"),
        "{:?}",
        j.message()
    );

    // Refused at create: a bad timeout, a role the caller cannot pass.
    let e = create(&p.c, "t")
        .timeout_duration_in_hours(2)
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_validation_exception());
    let p = p
        .restart(InvocationJobConfig {
            unpassable_roles: vec![ROLE.into()],
            ..fast()
        })
        .await;
    let e = create(&p.c, "p")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_access_denied_exception(), "{e:?}");
    assert!(format!("{e:?}").contains("iam:PassRole"));
}

#[tokio::test]
async fn the_concurrent_jobs_quota_refuses_one_more() {
    let p = Plane::start(
        3,
        |i| format!("q{i}"),
        InvocationJobConfig {
            queue: Duration::from_secs(30),
            max_concurrent: 2,
            ..fast()
        },
    )
    .await;
    let c = &p.c;
    let a = create(c, "a").send().await.unwrap();
    create(c, "b").send().await.unwrap();
    let e = create(c, "c")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_service_quota_exceeded_exception(), "{e:?}");
    // Stopping one frees a slot.
    c.stop_model_invocation_job()
        .job_identifier(a.job_arn())
        .send()
        .await
        .unwrap();
    let j = wait_final(c, a.job_arn()).await;
    assert_eq!(j.status(), Some(&S::Stopped));
    create(c, "c").send().await.expect("a slot is free again");
    let e = c
        .stop_model_invocation_job()
        .job_identifier(a.job_arn())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        e.is_validation_exception(),
        "a stopped job cannot be stopped again: {e:?}"
    );
}

#[tokio::test]
async fn a_job_that_outlasts_its_timeout_completes_partially_or_expires() {
    // 24 "hours" = 240 ms; 40 records at 10 ms each do not fit.
    let p = Plane::start(
        40,
        |i| format!("q{i}"),
        InvocationJobConfig {
            hour: Duration::from_millis(10),
            record_time: Duration::from_millis(10),
            ..fast()
        },
    )
    .await;
    let (arn, j) = p.run_job("slow").await;
    assert_eq!(j.status(), Some(&S::PartiallyCompleted));
    let done = j.processed_record_count().unwrap();
    assert!(done > 0 && done < 40, "{done}");
    let (recs, manifest) = read_out(p.root.path(), &arn);
    assert_eq!(recs.len() as i64, done);
    assert_eq!(manifest["totalRecordCount"], 40);
    assert_eq!(manifest["processedRecordCount"], done);

    // A queue longer than the timeout: never starts.
    let p = p
        .restart(InvocationJobConfig {
            hour: Duration::from_millis(5),
            queue: Duration::from_millis(600),
            ..fast()
        })
        .await;
    let (_, j) = p.run_job("late").await;
    assert_eq!(j.status(), Some(&S::Expired));
}
