//! The job's objects on S3: record files up (through `output/upload.rs`), output
//! files down, with `aws-sdk-s3` and the caller's credentials.
//!
//! The client and the `s3://` URIs are the inputs' (`input/s3.rs`): one
//! rule for path-style addressing and one parser.

use std::path::Path;

use anyhow::Context;

use crate::input::s3::S3Uri;

/// Uploads `path` to `uri` (multipart for a large file: `output/upload.rs`).
pub(crate) async fn upload(s3: &aws_sdk_s3::Client, path: &Path, uri: &str) -> anyhow::Result<()> {
    let S3Uri { bucket, key } = S3Uri::parse(uri)?;
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    crate::output::upload::file(s3, path, len, &bucket, &key)
        .await
        .map_err(|why| anyhow::anyhow!("{uri}: upload failed: {why}"))
}

/// The object at `uri`, or `None` when there is none (a job that wrote
/// nothing). Whole, in the SDK's buffer (no second copy): one output file of
/// one job part, which `records_per_file`/`bytes_per_file` bound.
pub(crate) async fn download(
    s3: &aws_sdk_s3::Client,
    uri: &str,
) -> anyhow::Result<Option<bytes::Bytes>> {
    let S3Uri { bucket, key } = S3Uri::parse(uri)?;
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => {
            let bytes = o
                .body
                .collect()
                .await
                .with_context(|| format!("{uri}: download broke off"))?;
            Ok(Some(bytes.into_bytes()))
        }
        Err(e) => {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                return Ok(None);
            }
            Err(anyhow::anyhow!(
                "{uri}: download failed: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            ))
        }
    }
}
