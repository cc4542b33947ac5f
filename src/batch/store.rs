//! The job's objects on S3: record files up (through `output/upload.rs`), output
//! files down, with `aws-sdk-s3` and the caller's credentials.
//!
//! Addressing: virtual-hosted on AWS; path-style when an endpoint override
//! names the server (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`), as the
//! emulator and most S3-compatible servers need.

use std::path::Path;

use anyhow::Context;
use aws_config::SdkConfig;

pub(crate) fn client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let overridden = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(overridden)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// `s3://B/K` → (B, K).
pub(crate) fn split_uri(uri: &str) -> anyhow::Result<(&str, &str)> {
    let rest = uri
        .strip_prefix("s3://")
        .with_context(|| format!("{uri}: not an s3:// URI"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// Uploads `path` to `uri` (multipart for a large file: `output/upload.rs`).
pub(crate) async fn upload(s3: &aws_sdk_s3::Client, path: &Path, uri: &str) -> anyhow::Result<()> {
    let (bucket, key) = split_uri(uri)?;
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    crate::output::upload::file(s3, path, len, bucket, key)
        .await
        .map_err(|why| anyhow::anyhow!("{uri}: upload failed: {why}"))
}

/// The object at `uri`, or `None` when there is none (a job that wrote nothing).
pub(crate) async fn download(
    s3: &aws_sdk_s3::Client,
    uri: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    let (bucket, key) = split_uri(uri)?;
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => {
            let bytes = o
                .body
                .collect()
                .await
                .with_context(|| format!("{uri}: download broke off"))?;
            Ok(Some(bytes.into_bytes().to_vec()))
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
