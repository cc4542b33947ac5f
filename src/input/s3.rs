//! Inputs on S3: `s3://BUCKET/KEY` objects read as a stream, so a run over a large object
//! starts at once and holds a few chunks of it, never the whole object.
//!
//! [`S3Inputs::attach`] runs once before the first pass, with the run's credentials: it
//! checks that each object exists (a missing bucket or key is a setup error naming it) and
//! pins the version it saw (ETag and size). Every later pass reads that version with
//! `If-Match`, so the inventory, the resume check and the run read the same bytes; an
//! object replaced during the run stops it with a one-line error instead of mixing two
//! versions. A resume after the object changed is judged row by row like an edited local
//! file (`output/changed.rs`): rows already answered whose request changed are refused,
//! resent or kept by `on_changed`.
//!
//! The body is pulled by a task on the run's runtime and handed to the (blocking) reader
//! through a small bounded channel: [`S3Read`] is a plain `io::Read`, so the CSV scanner and
//! the JSONL reader treat it as a file. A connection that breaks mid-object is resumed with
//! a ranged GetObject from the byte it stopped at (same `If-Match`), a few times.
//!
//! Not here: a prefix (`s3://BUCKET/PREFIX/`) standing for every object under it; inputs
//! name their objects one by one.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::bedrock::auth::{self, Session};
use crate::config::Settings;

/// Chunks of the body read ahead of the reader (each a network read, tens of KB).
const CHUNKS_AHEAD: usize = 8;
/// Ranged re-requests after the body broke off, per object read.
const RESUMES: u32 = 3;

/// `s3://BUCKET/KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Uri {
    pub(crate) bucket: String,
    pub(crate) key: String,
}

impl S3Uri {
    /// `None` when `path` is not an `s3://` URI at all; an error when it is one but names
    /// no single object.
    pub(crate) fn of(path: &Path) -> Option<anyhow::Result<S3Uri>> {
        let s = path.to_str()?;
        let rest = s.strip_prefix("s3://")?;
        Some(S3Uri::parse_rest(s, rest))
    }

    /// Parses a whole `s3://…` string.
    pub(crate) fn parse(s: &str) -> anyhow::Result<S3Uri> {
        match s.strip_prefix("s3://") {
            Some(rest) => S3Uri::parse_rest(s, rest),
            None => anyhow::bail!("{s}: not an S3 URI (expected s3://BUCKET/KEY)"),
        }
    }

    fn parse_rest(s: &str, rest: &str) -> anyhow::Result<S3Uri> {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            anyhow::bail!("{s}: no bucket (expected s3://BUCKET/KEY)");
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    fn object(self, s: &str) -> anyhow::Result<S3Uri> {
        if self.key.is_empty() || self.key.ends_with('/') {
            anyhow::bail!(
                "{s}: names a bucket or prefix, not an object; list each input object (s3://BUCKET/KEY)"
            );
        }
        Ok(self)
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// An S3 client on the run's credentials. Path-style addressing when an endpoint override
/// is set (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`): a local or compatible S3 (the
/// emulator, MinIO) serves buckets as paths, not as host names.
pub(crate) fn client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let overridden = sdk.endpoint_url().is_some()
        || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(overridden)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// For a job with `s3://` inputs: resolves the run's credentials and checks and pins every
/// S3 input into `settings`, returning the session for the run to go on with. `None` (and
/// nothing done) for a job whose inputs are all local, so its credentials are resolved at
/// the usual step, after the inputs are read.
pub(crate) async fn prepare(settings: &mut Settings) -> anyhow::Result<Option<Session>> {
    if !settings.inputs.iter().any(|p| is_s3(p)) {
        return Ok(None);
    }
    let session = auth::connect(&settings.auth()).await?;
    let s3 = S3Inputs::attach(&settings.inputs, &client(&session.sdk)).await?;
    settings.s3_inputs = s3.map(std::sync::Arc::new);
    Ok(Some(session))
}

/// Whether an input is on S3.
pub(crate) fn is_s3(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// The version of an object a run reads.
#[derive(Debug, Clone)]
struct Pinned {
    etag: String,
    size: u64,
}

/// S3 access for one run's inputs: the client, the runtime its reads run on, and the
/// version of each object pinned at the start.
#[derive(Debug)]
pub(crate) struct S3Inputs {
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Handle,
    pinned: HashMap<String, Pinned>,
}

impl S3Inputs {
    /// Checks and pins every `s3://` input; `None` when there is none. Call from the run's
    /// runtime: reads run on it.
    pub(crate) async fn attach(
        inputs: &[std::path::PathBuf],
        client: &aws_sdk_s3::Client,
    ) -> anyhow::Result<Option<S3Inputs>> {
        let mut pinned = HashMap::new();
        for path in inputs {
            let Some(uri) = S3Uri::of(path) else { continue };
            let name = path.display().to_string();
            let uri = uri?.object(&name)?;
            if pinned.contains_key(&name) {
                continue;
            }
            let head = client
                .head_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .send()
                .await;
            let head = match head {
                Ok(h) => h,
                Err(e) => return Err(open_error(client, &uri, &e).await),
            };
            let etag = head.e_tag().unwrap_or_default().to_string();
            let size = head.content_length().unwrap_or(0).max(0) as u64;
            pinned.insert(name, Pinned { etag, size });
        }
        if pinned.is_empty() {
            return Ok(None);
        }
        Ok(Some(S3Inputs {
            client: client.clone(),
            runtime: tokio::runtime::Handle::current(),
            pinned,
        }))
    }

    /// The object's size as pinned, `None` for an input not on S3.
    pub(crate) fn size(&self, name: &str) -> Option<u64> {
        self.pinned.get(name).map(|p| p.size)
    }

    /// Starts reading the object `name` (an input as given) and waits for its first bytes,
    /// so a refusal is an error here rather than mid-read. Call from a blocking thread.
    pub(crate) fn open(&self, name: &str) -> anyhow::Result<S3Read> {
        let pinned = self
            .pinned
            .get(name)
            .with_context(|| format!("{name}: not among the S3 inputs checked at the start"))?
            .clone();
        let mut read = S3Read::start(
            Object {
                client: self.client.clone(),
                runtime: self.runtime.clone(),
                uri: S3Uri::parse(name)?,
                pinned,
            },
            0,
        );
        // The first message says whether the object could be opened at all.
        match read.rx.blocking_recv() {
            Some(Msg::Chunk(b)) => read.chunk = b,
            Some(Msg::End) => read.done = true,
            Some(Msg::Fail(m)) => anyhow::bail!("{name}: {m}"),
            None => anyhow::bail!("{name}: the S3 read stopped before it started"),
        }
        Ok(read)
    }
}

/// One pinned object and how to reach it, kept by [`S3Read`] to start over at an offset.
#[derive(Clone)]
struct Object {
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Handle,
    uri: S3Uri,
    pinned: Pinned,
}

enum Msg {
    Chunk(Bytes),
    End,
    Fail(String),
}

/// Streams the pinned version of `uri` into `tx`, resuming a broken body with a ranged
/// request. Ends quietly when the reader has gone.
async fn pull(object: Object, mut offset: u64, tx: mpsc::Sender<Msg>) {
    let Object {
        client,
        uri,
        pinned,
        ..
    } = object;
    let mut resumes = 0u32;
    loop {
        let mut req = client
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .if_match(&pinned.etag);
        if offset > 0 {
            req = req.range(format!("bytes={offset}-"));
        }
        let mut body = match req.send().await {
            Ok(out) => out.body,
            Err(e) => {
                let m = if e.code() == Some("PreconditionFailed") {
                    "the object changed while the run was reading it (its ETag is no longer the one checked at the start); run again to read the new version".to_string()
                } else {
                    describe(&e)
                };
                let _ = tx.send(Msg::Fail(m)).await;
                return;
            }
        };
        let broke = loop {
            match body.next().await {
                Some(Ok(b)) => {
                    offset += b.len() as u64;
                    if tx.send(Msg::Chunk(b)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => break e.to_string(),
                None => break String::new(),
            }
        };
        if broke.is_empty() {
            let msg = if offset == pinned.size {
                Msg::End
            } else {
                Msg::Fail(format!(
                    "the object ended after {offset} of its {} bytes",
                    pinned.size
                ))
            };
            let _ = tx.send(msg).await;
            return;
        }
        resumes += 1;
        if resumes > RESUMES {
            let _ = tx
                .send(Msg::Fail(format!(
                    "reading broke off at byte {offset} {RESUMES} times, last: {broke}"
                )))
                .await;
            return;
        }
        tracing::warn!(
            "s3://{}/{}: reading broke off at byte {offset} ({broke}); resuming from there",
            uri.bucket,
            uri.key
        );
    }
}

/// An S3 object's body as an `io::Read`, for a blocking thread. Seeking (the CSV scanner
/// steps back after a badly quoted record) starts a ranged read at the new offset.
pub(crate) struct S3Read {
    object: Object,
    rx: mpsc::Receiver<Msg>,
    chunk: Bytes,
    done: bool,
    /// Offset of the first byte of `chunk`, plus what was taken from it.
    pos: u64,
}

impl S3Read {
    fn start(object: Object, offset: u64) -> S3Read {
        let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
        object.runtime.spawn(pull(object.clone(), offset, tx));
        S3Read {
            object,
            rx,
            chunk: Bytes::new(),
            done: false,
            pos: offset,
        }
    }
}

impl Read for S3Read {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Chunk(b)) => self.chunk = b,
                Some(Msg::End) => self.done = true,
                Some(Msg::Fail(m)) => return Err(io::Error::other(m)),
                None => return Err(io::Error::other("the S3 read stopped mid-object")),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for S3Read {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let size = self.object.pinned.size;
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => size.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            ));
        };
        if target == self.pos {
            return Ok(target);
        }
        // Dropping the receiver ends the old pull at its next chunk.
        *self = if target >= size {
            // Past the end: nothing to ask S3 for.
            S3Read {
                object: self.object.clone(),
                rx: mpsc::channel(1).1,
                chunk: Bytes::new(),
                done: true,
                pos: target,
            }
        } else {
            S3Read::start(self.object.clone(), target)
        };
        Ok(target)
    }
}

/// What an S3 call's error says, on one line.
pub(crate) fn describe<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => err.to_string(),
            }
        }
        other => {
            let mut text = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                text = format!("{text}: {s}");
                src = s.source();
            }
            text
        }
    }
}

/// Why an input object could not be opened: HeadObject's 404 has no body, so a missing
/// bucket is told from a missing key by asking about the bucket.
async fn open_error(
    client: &aws_sdk_s3::Client,
    uri: &S3Uri,
    e: &SdkError<HeadObjectError, HttpResponse>,
) -> anyhow::Error {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let why = match status {
        Some(404) => {
            let bucket = client.head_bucket().bucket(&uri.bucket).send().await;
            match bucket {
                Err(b) if b.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                    format!("no such bucket `{}`", uri.bucket)
                }
                _ => "no such object".to_string(),
            }
        }
        // Without s3:ListBucket on the bucket, S3 answers 403 for a missing key too.
        Some(403) => "access denied (the credentials need s3:GetObject on it; without s3:ListBucket, S3 also says this for a key that does not exist)".to_string(),
        _ => describe(e),
    };
    anyhow::anyhow!("{uri}: cannot open: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = S3Uri::of(Path::new("s3://evals/in/p.csv"))
            .unwrap()
            .unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("evals", "in/p.csv"));
        assert_eq!(u.to_string(), "s3://evals/in/p.csv");
        assert!(S3Uri::of(Path::new("in/p.csv")).is_none());
        assert!(S3Uri::of(Path::new("s3:///k")).unwrap().is_err());
        let prefix = S3Uri::of(Path::new("s3://evals/in/")).unwrap().unwrap();
        let e = prefix.object("s3://evals/in/").unwrap_err().to_string();
        assert!(
            e.starts_with("s3://evals/in/: names a bucket or prefix"),
            "{e}"
        );
        assert!(is_s3(Path::new("s3://b/k")) && !is_s3(Path::new("./s3:/b")));
    }
}
