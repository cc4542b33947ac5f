//! The IAM documents `submit` needs on top of `run`'s (`policy --batch`):
//!
//! - the caller's extra permissions: create, get, list and stop model
//!   invocation jobs; `iam:PassRole` on the service role, only to
//!   `bedrock.amazonaws.com`; S3 read and write under `[batch] s3_uri`;
//! - the service role's trust policy: `bedrock.amazonaws.com`, only for this
//!   account's model invocation jobs (`aws:SourceAccount`, `aws:SourceArn`),
//!   as AWS's "Create a service role for batch inference" page writes it;
//! - the service role's permissions: read the inputs, write the outputs, and
//!   invoke the job's models (the same resources `run`'s policy grants).
//!
//! Pure, like `policy.rs`: JSON from settings, nothing sent to AWS.

use serde_json::{json, Value};

use super::policy::{invoke_policy, partition_of, PolicyError};
use crate::batch::settings::{parse_s3_uri, BatchSettings};

pub(crate) fn batch_policies(
    models: &[String],
    region: &str,
    account: Option<&str>,
    batch: &BatchSettings,
) -> anyhow::Result<Value> {
    // The service role's own account is the job's (`aws:SourceAccount` needs a number).
    let account = match account {
        Some(a) => a.to_owned(),
        None => batch
            .role_arn
            .split(':')
            .nth(4)
            .filter(|a| a.len() == 12)
            .map(str::to_owned)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "policy --batch: no account: pass --account or a [batch] role_arn with one"
                )
            })?,
    };
    let p = partition_of(region);
    let (bucket, prefix) = parse_s3_uri(&batch.s3_uri)?;
    let under = if prefix.is_empty() {
        "*".to_owned()
    } else {
        format!("{prefix}/*")
    };
    let objects = format!("arn:{p}:s3:::{bucket}/{under}");
    let bucket_arn = format!("arn:{p}:s3:::{bucket}");
    let jobs = format!("arn:{p}:bedrock:{region}:{account}:model-invocation-job/*");
    let list_condition = json!({ "StringLike": { "s3:prefix": [under] } });

    let mut caller = invoke_policy(models, region, Some(&account)).map_err(policy_error)?;
    let statements = caller["Statement"]
        .as_array_mut()
        .expect("invoke_policy writes a Statement array");
    statements.extend([
        json!({
            "Sid": "BatchInferenceJobs",
            "Effect": "Allow",
            "Action": [
                "bedrock:CreateModelInvocationJob",
                "bedrock:GetModelInvocationJob",
                "bedrock:StopModelInvocationJob"
            ],
            "Resource": jobs
        }),
        json!({
            "Sid": "BatchInferenceList",
            "Effect": "Allow",
            "Action": "bedrock:ListModelInvocationJobs",
            "Resource": "*"
        }),
        json!({
            "Sid": "PassBatchServiceRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": batch.role_arn,
            "Condition": { "StringEquals": { "iam:PassedToService": "bedrock.amazonaws.com" } }
        }),
        json!({
            "Sid": "BatchRecordsAndOutputs",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            "Resource": objects
        }),
        json!({
            "Sid": "BatchPrefixListing",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": list_condition
        }),
    ]);

    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "BedrockBatchInference",
            "Effect": "Allow",
            "Principal": { "Service": "bedrock.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": { "aws:SourceAccount": account },
                "ArnLike": { "aws:SourceArn": jobs }
            }
        }]
    });

    let mut role = invoke_policy(models, region, Some(&account)).map_err(policy_error)?;
    let statements = role["Statement"]
        .as_array_mut()
        .expect("invoke_policy writes a Statement array");
    statements.extend([
        json!({
            "Sid": "ReadRecordsWriteOutputs",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": objects,
            "Condition": { "StringEquals": { "aws:ResourceAccount": account } }
        }),
        json!({
            "Sid": "ListRecords",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {
                "StringEquals": { "aws:ResourceAccount": account },
                "StringLike": { "s3:prefix": [under] }
            }
        }),
    ]);
    Ok(json!({
        "CallerPolicy": caller,
        "ServiceRoleTrustPolicy": trust,
        "ServiceRolePolicy": role,
    }))
}

fn policy_error(e: PolicyError) -> anyhow::Error {
    anyhow::anyhow!("policy --batch: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::request::Api;

    #[test]
    fn the_three_documents_name_the_role_prefix_and_account() {
        let batch = BatchSettings::resolve(
            None,
            Api::Converse,
            Some("s3://my-bucket/nightly/"),
            Some("arn:aws:iam::123456789012:role/BedrockBatchServiceRole"),
        )
        .unwrap();
        let v = batch_policies(
            &["anthropic.claude-3-haiku-20240307-v1:0".into()],
            "ap-northeast-2",
            None,
            &batch,
        )
        .unwrap();
        let caller = v["CallerPolicy"].to_string();
        assert!(caller.contains("bedrock:CreateModelInvocationJob"));
        assert!(caller.contains("\"iam:PassedToService\":\"bedrock.amazonaws.com\""));
        assert!(caller.contains("arn:aws:s3:::my-bucket/nightly/*"));
        let trust = &v["ServiceRoleTrustPolicy"]["Statement"][0];
        assert_eq!(trust["Principal"]["Service"], "bedrock.amazonaws.com");
        assert_eq!(
            trust["Condition"]["StringEquals"]["aws:SourceAccount"],
            "123456789012"
        );
        assert_eq!(
            trust["Condition"]["ArnLike"]["aws:SourceArn"],
            "arn:aws:bedrock:ap-northeast-2:123456789012:model-invocation-job/*"
        );
        let role = v["ServiceRolePolicy"].to_string();
        assert!(role.contains("bedrock:InvokeModel"));
        assert!(role.contains("s3:PutObject"));
    }
}
