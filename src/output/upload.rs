//! `--upload s3://BUCKET/PREFIX/`: at the end of a run, the output files are copied to S3
//! for nightly jobs whose outputs are read elsewhere.
//!
//! What is copied is whatever exists of results.jsonl, failures.jsonl, summary.json and
//! report.html, each to `PREFIX` + its name; a file over [`MULTIPART_OVER`] goes up in
//! parts, read from disk a part at a time. The local files are only read, never moved: a
//! failed upload loses nothing, and the run's command reports it on one line and exits 2
//! (the run itself is done and resumable as usual; run again or copy the files by hand).
//!
//! Not here: the run (this happens after it), and the manifest, lock and superseded lines,
//! which describe the local directory rather than the job's answers.

use std::path::Path;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::input::s3::{describe, S3Uri};

/// The files copied, in this order, when they exist.
pub const FILES: [&str; 4] = [
    "results.jsonl",
    "failures.jsonl",
    "summary.json",
    "report.html",
];

/// Files larger than this go up as a multipart upload.
const MULTIPART_OVER: u64 = 16 * 1024 * 1024;
/// Size of each part (S3's minimum is 5 MiB, its maximum count 10,000: 80 GB of output).
const PART: u64 = 8 * 1024 * 1024;

/// `s3://BUCKET/PREFIX/`: where the output files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl Destination {
    /// `s3://BUCKET/PREFIX/` (a missing final `/` is added: the files go *under* the prefix).
    pub fn parse(s: &str) -> Result<Destination, String> {
        let uri = S3Uri::parse(s).map_err(|e| format!("{e:#}"))?;
        let mut prefix = uri.key;
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Destination {
            bucket: uri.bucket,
            prefix,
        })
    }

    fn uri(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket, self.prefix)
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Copies the output files of `dir` to `to`; returns the URIs written, in order. Stops at
/// the first file that fails, with an error naming it.
pub async fn run(
    client: &aws_sdk_s3::Client,
    dir: &Path,
    to: &Destination,
) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    for name in FILES {
        let path = dir.join(name);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => anyhow::bail!("upload: {}: {e}", path.display()),
        };
        let key = format!("{}{name}", to.prefix);
        file(client, &path, size, &to.bucket, &key)
            .await
            .map_err(|why| {
                anyhow::anyhow!(
                    "upload: {}: {why}; the local files are kept in {}",
                    to.uri(name),
                    dir.display()
                )
            })?;
        written.push(to.uri(name));
    }
    Ok(written)
}

/// Copies one file of `size` bytes to `bucket`/`key`: one PutObject, or
/// over [`MULTIPART_OVER`] a multipart upload read from disk a part at a
/// time (aborted if it fails, as unfinished parts are billed storage). The
/// one uploader: `--upload` and batch inference's record files use it.
pub(crate) async fn file(
    client: &aws_sdk_s3::Client,
    path: &Path,
    size: u64,
    bucket: &str,
    key: &str,
) -> Result<(), String> {
    if size > MULTIPART_OVER {
        multipart(client, path, size, bucket, key).await
    } else {
        put(client, path, bucket, key).await
    }
}

async fn put(
    client: &aws_sdk_s3::Client,
    path: &Path,
    bucket: &str,
    key: &str,
) -> Result<(), String> {
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(())
}

async fn multipart(
    client: &aws_sdk_s3::Client,
    path: &Path,
    size: u64,
    bucket: &str,
    key: &str,
) -> Result<(), String> {
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let id = created
        .upload_id()
        .ok_or("S3 gave no upload id")?
        .to_string();
    let parts = send_parts(client, path, size, bucket, key, &id).await;
    let done = match parts {
        Ok(parts) => client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| describe(&e)),
        Err(e) => Err(e),
    };
    if done.is_err() {
        // Parts of an unfinished upload are stored (and billed) until aborted.
        let _ = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .send()
            .await;
    }
    done
}

async fn send_parts(
    client: &aws_sdk_s3::Client,
    path: &Path,
    size: u64,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<Vec<CompletedPart>, String> {
    let mut parts = Vec::new();
    let mut offset = 0;
    let mut number = 1;
    while offset < size {
        let len = PART.min(size - offset);
        let body = ByteStream::read_from()
            .path(path)
            .offset(offset)
            .length(Length::Exact(len))
            .build()
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let sent = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("part {number}: {}", describe(&e)))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .build(),
        );
        offset += len;
        number += 1;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d = Destination::parse("s3://evals/nightly/2026-11-30").unwrap();
        assert_eq!(
            (d.bucket.as_str(), d.prefix.as_str()),
            ("evals", "nightly/2026-11-30/")
        );
        assert_eq!(
            d.uri("summary.json"),
            "s3://evals/nightly/2026-11-30/summary.json"
        );
        let root = Destination::parse("s3://evals").unwrap();
        assert_eq!(root.uri("results.jsonl"), "s3://evals/results.jsonl");
        assert!(Destination::parse("evals/out/").is_err());
    }
}
