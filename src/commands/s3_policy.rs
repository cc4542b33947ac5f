//! The S3 statements `policy --config` adds for a job that uses S3: `s3:GetObject` on each
//! `s3://` input, and `s3:PutObject` (with `s3:AbortMultipartUpload`, so an upload that
//! fails half-way can clear its parts) under the `upload` prefix.
//!
//! Not here: the Bedrock statements (`policy.rs`), and `s3:ListBucket`, which `run` does
//! not need: inputs are named object by object.

use serde_json::{json, Value};

use crate::input::s3::S3Uri;
use crate::output::upload::Destination;

/// The statements for `inputs` (only the `s3://` ones count) and `upload`; empty when the
/// job touches no S3.
pub(crate) fn statements(
    inputs: &[std::path::PathBuf],
    upload: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut objects = std::collections::BTreeSet::new();
    for p in inputs {
        if let Some(uri) = S3Uri::of(p) {
            let uri = uri?;
            objects.insert(format!("arn:aws:s3:::{}/{}", uri.bucket, uri.key));
        }
    }
    if !objects.is_empty() {
        out.push(json!({
            "Sid": "BedrockBatchReadInputs",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": objects,
        }));
    }
    if let Some(u) = upload {
        let to = Destination::parse(u).map_err(|e| anyhow::anyhow!("upload: {e}"))?;
        out.push(json!({
            "Sid": "BedrockBatchUploadOutputs",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": [format!("arn:aws:s3:::{}/{}*", to.bucket, to.prefix)],
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_upload() {
        let inputs = ["s3://evals/in/a.csv", "local.csv", "s3://evals/in/b.jsonl"].map(Into::into);
        let s = statements(&inputs, Some("s3://evals/out/nightly")).unwrap();
        assert_eq!(
            s,
            [
                json!({"Sid": "BedrockBatchReadInputs", "Effect": "Allow", "Action": ["s3:GetObject"],
                       "Resource": ["arn:aws:s3:::evals/in/a.csv", "arn:aws:s3:::evals/in/b.jsonl"]}),
                json!({"Sid": "BedrockBatchUploadOutputs", "Effect": "Allow",
                       "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                       "Resource": ["arn:aws:s3:::evals/out/nightly/*"]}),
            ]
        );
        assert!(statements(&["x.csv".into()], None).unwrap().is_empty());
    }
}
