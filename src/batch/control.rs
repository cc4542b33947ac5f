//! The Bedrock control plane for one part's job: create it (with its
//! `clientRequestToken`), read its status and counts, stop it.
//!
//! Through `aws-sdk-bedrock` with the run's credentials and region, reached
//! at `AWS_ENDPOINT_URL_BEDROCK` when that is set (the emulator). The SDK's
//! standard retries stay on here: these calls are free and idempotent
//! (create by its token), unlike a model call.

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_sdk_bedrock::error::DisplayErrorContext;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig, ModelInvocationType,
    S3InputFormat, Tag,
};

use super::settings::BatchSettings;
use super::state::Part;

pub(crate) fn client(sdk: &SdkConfig) -> aws_sdk_bedrock::Client {
    let conf = aws_sdk_bedrock::config::Builder::from(sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .build();
    aws_sdk_bedrock::Client::from_conf(conf)
}

/// What CreateModelInvocationJob answered.
pub(crate) enum Created {
    /// The new job's ARN, or the first one's when the token was seen before.
    Arn(String),
    /// The account's quota of submitted and in-progress jobs is full (other
    /// jobs than ours may hold it): try again when one ends.
    NoSlot(String),
}

/// Creates the part's job, or finds the one its token already created.
pub(crate) async fn create(
    c: &aws_sdk_bedrock::Client,
    part: &Part,
    batch: &BatchSettings,
) -> anyhow::Result<Created> {
    let input = ModelInvocationJobS3InputDataConfig::builder()
        .s3_uri(&part.input_uri)
        .s3_input_format(S3InputFormat::Jsonl)
        .build()?;
    let output = ModelInvocationJobS3OutputDataConfig::builder()
        .s3_uri(&part.output_uri)
        .build()?;
    let mut req = c
        .create_model_invocation_job()
        .job_name(&part.job_name)
        .role_arn(&batch.role_arn)
        .model_id(&part.model)
        .client_request_token(&part.token)
        .model_invocation_type(if batch.converse {
            ModelInvocationType::Converse
        } else {
            ModelInvocationType::InvokeModel
        })
        .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(input))
        .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
            output,
        ))
        .timeout_duration_in_hours(batch.timeout_hours as i32);
    for (k, v) in &batch.tags {
        req = req.tags(Tag::builder().key(k).value(v).build()?);
    }
    match req.send().await {
        Ok(out) => Ok(Created::Arn(out.job_arn().to_owned())),
        Err(e) => {
            let quota = e
                .as_service_error()
                .is_some_and(|s| s.is_service_quota_exceeded_exception());
            let text = one_line(&DisplayErrorContext(e).to_string());
            if quota {
                return Ok(Created::NoSlot(text));
            }
            Err(anyhow::anyhow!(
                "part {} ({}): CreateModelInvocationJob failed: {text}",
                part.index,
                part.model
            ))
        }
    }
}

/// What GetModelInvocationJob says about a job.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Seen {
    pub(crate) status: String,
    pub(crate) message: Option<String>,
    pub(crate) total: Option<u64>,
    pub(crate) processed: u64,
    pub(crate) succeeded: u64,
    pub(crate) errors: u64,
}

impl Seen {
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Completed" | "PartiallyCompleted" | "Failed" | "Stopped" | "Expired"
        )
    }
}

pub(crate) async fn status(c: &aws_sdk_bedrock::Client, arn: &str) -> anyhow::Result<Seen> {
    let j = c
        .get_model_invocation_job()
        .job_identifier(arn)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{arn}: GetModelInvocationJob failed: {}",
                one_line(&DisplayErrorContext(e).to_string())
            )
        })?;
    let n = |v: Option<i64>| v.map(|n| n.max(0) as u64);
    Ok(Seen {
        status: j
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        message: j.message().map(str::to_owned),
        total: n(j.total_record_count()),
        processed: n(j.processed_record_count()).unwrap_or(0),
        succeeded: n(j.success_record_count()).unwrap_or(0),
        errors: n(j.error_record_count()).unwrap_or(0),
    })
}

/// Stops a job; a job already ended is not an error.
pub(crate) async fn stop(c: &aws_sdk_bedrock::Client, arn: &str) -> anyhow::Result<()> {
    match c
        .stop_model_invocation_job()
        .job_identifier(arn)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            if let Ok(seen) = status(c, arn).await {
                if seen.is_final() || seen.status == "Stopping" {
                    return Ok(());
                }
            }
            Err(anyhow::anyhow!(
                "{arn}: StopModelInvocationJob failed: {}",
                one_line(&DisplayErrorContext(e).to_string())
            ))
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
