//! The job's objects on S3: record files up (multipart above 64 MiB), output
//! files down, with `aws-sdk-s3` and the caller's credentials.
//!
//! Addressing: virtual-hosted on AWS; path-style when an endpoint override
//! names the server (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`), as the
//! emulator and most S3-compatible servers need.

use std::path::Path;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::AsyncReadExt;

/// Files above this go up in parts of this size (S3 allows 5 MiB to 5 GiB per part).
const PART_BYTES: usize = 64 * 1024 * 1024;

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

/// Uploads `path` to `uri`: one PutObject, or a multipart upload for a large file.
pub(crate) async fn upload(s3: &aws_sdk_s3::Client, path: &Path, uri: &str) -> anyhow::Result<()> {
    let (bucket, key) = split_uri(uri)?;
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("{uri}: upload failed: {e}");
    if len <= PART_BYTES as u64 {
        let body = ByteStream::from_path(path)
            .await
            .with_context(|| format!("{}: cannot read", path.display()))?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/jsonl")
            .body(body)
            .send()
            .await
            .map_err(|e| fail(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
        return Ok(());
    }
    let started = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/jsonl")
        .send()
        .await
        .map_err(|e| fail(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let upload_id = started
        .upload_id()
        .context("S3 returned no upload id")?
        .to_owned();
    let result = async {
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let mut done = Vec::new();
        let mut number = 1;
        loop {
            let mut buf = Vec::with_capacity(PART_BYTES);
            (&mut file)
                .take(PART_BYTES as u64)
                .read_to_end(&mut buf)
                .await?;
            if buf.is_empty() {
                break;
            }
            let part = s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| fail(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
            done.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
            number += 1;
        }
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| fail(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        // Parts of an unfinished upload are billed storage until aborted.
        let _ = s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
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
