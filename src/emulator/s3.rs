//! The emulator's S3: the `s3s` protocol implementation serving a directory through
//! `s3s-fs`, reached on the emulator's own port with path-style addressing
//! (`AWS_ENDPOINT_URL_S3`, `force_path_style`), plus [`S3Store`], a direct handle on the
//! backing directory for tests and for the emulator's own batch jobs.
//!
//! A request is S3's when its SigV4 credential scope names the `s3` service: path-style S3
//! paths (`/BUCKET/KEY`, `GET /`) overlap the Bedrock, STS and IMDS routes, and the scope is
//! the one thing every SDK request carries that tells them apart.
//!
//! Signatures are checked by `s3s` (it handles S3's streaming and chunked payload signing)
//! with the secrets the emulator knows: the static keys and every credential set it issued
//! through STS or IMDS ([`KeyringAuth`]). The session token and expiry of issued credentials,
//! which `s3s` does not know about, are checked in [`TokenAccess`] the way `auth.rs` checks
//! them for Bedrock. A key the emulator never issued is refused (`InvalidAccessKeyId`), even
//! when `verify_signatures` is off, since S3 has no unsigned mode to fall back on.
//!
//! It is not a model of S3's semantics beyond what `s3s-fs` implements (no versioning,
//! policies or encryption), and it serves only loopback, like the rest of the emulator.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::request::Parts;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Result};
use tempfile::TempDir;

use super::credentials::{Identity, Keyring};
use super::server::header;
use super::sigv4::SigV4;

/// The S3 endpoint and the directory behind it.
pub struct S3 {
    service: S3Service,
    store: S3Store,
    /// The emulator's own backing directory, removed when the emulator is dropped; `None`
    /// when the caller chose the directory (`--s3-dir`), which is then left in place.
    _owned: Option<TempDir>,
}

impl S3 {
    /// Serves `dir`, or a fresh temporary directory when `dir` is `None`.
    pub fn new(dir: Option<&Path>, keyring: Arc<Keyring>, require_issued: bool) -> io::Result<S3> {
        let (root, owned) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.canonicalize()?, None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("emulator-s3-").tempdir()?;
                (t.path().canonicalize()?, Some(t))
            }
        };
        let fs = s3s_fs::FileSystem::new(&root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(KeyringAuth {
            keyring: keyring.clone(),
        });
        b.set_access(TokenAccess {
            keyring,
            require_issued,
        });
        Ok(S3 {
            service: b.build(),
            store: S3Store { root },
            _owned: owned,
        })
    }

    pub fn store(&self) -> &S3Store {
        &self.store
    }

    /// Serves one request; `Err` only for a failure `s3s` could not turn into an S3 error.
    pub async fn call(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<s3s::Body>, s3s::HttpError> {
        self.service.call(req.map(s3s::Body::from)).await
    }
}

/// Whether the request is signed for S3 (header or presigned query).
pub fn is_s3(parts: &Parts) -> bool {
    if let Some(sig) = header(parts, "authorization").and_then(SigV4::parse) {
        return sig.service == "s3";
    }
    parts.uri.query().is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.strip_prefix("X-Amz-Credential=").is_some_and(|c| {
                c.contains("%2Fs3%2Faws4_request") || c.contains("/s3/aws4_request")
            })
        })
    })
}

/// The S3 operation a request most likely is, for the emulator's request records.
pub fn operation(parts: &Parts) -> &'static str {
    let path = parts.uri.path().trim_start_matches('/');
    let query = parts.uri.query().unwrap_or("");
    let has = |k: &str| {
        query
            .split('&')
            .any(|kv| kv == k || kv.starts_with(&format!("{k}=")))
    };
    let object = path.contains('/') && !path.ends_with('/');
    let copy = parts.headers.contains_key("x-amz-copy-source");
    match (&parts.method, path.is_empty(), object) {
        (&Method::GET, true, _) => "ListBuckets",
        (&Method::PUT, false, false) => "CreateBucket",
        (&Method::HEAD, false, false) => "HeadBucket",
        (&Method::DELETE, false, false) => "DeleteBucket",
        (&Method::GET, false, false) if has("uploads") => "ListMultipartUploads",
        (&Method::GET, false, false) if has("list-type") => "ListObjectsV2",
        (&Method::GET, false, false) => "ListObjects",
        (&Method::POST, false, false) if has("delete") => "DeleteObjects",
        (&Method::POST, _, true) if has("uploads") => "CreateMultipartUpload",
        (&Method::POST, _, true) if has("uploadId") => "CompleteMultipartUpload",
        (&Method::PUT, _, true) if has("uploadId") && copy => "UploadPartCopy",
        (&Method::PUT, _, true) if has("uploadId") => "UploadPart",
        (&Method::PUT, _, true) if copy => "CopyObject",
        (&Method::PUT, _, true) => "PutObject",
        (&Method::GET, _, true) if has("uploadId") => "ListParts",
        (&Method::GET, _, true) => "GetObject",
        (&Method::HEAD, _, true) => "HeadObject",
        (&Method::DELETE, _, true) if has("uploadId") => "AbortMultipartUpload",
        (&Method::DELETE, _, true) => "DeleteObject",
        _ => "Unknown",
    }
}

/// Direct access to the emulator's S3 objects, bypassing HTTP: for tests that seed inputs
/// and read uploads, and for emulated jobs that read and write S3 the way AWS services do.
///
/// Objects are files at `ROOT/BUCKET/KEY`, the layout `s3s-fs` serves, so what is put here
/// is what a client's GetObject returns and the other way round.
#[derive(Clone, Debug)]
pub struct S3Store {
    root: PathBuf,
}

impl S3Store {
    /// The backing directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a bucket (a no-op if it exists).
    pub fn create_bucket(&self, bucket: &str) -> io::Result<()> {
        std::fs::create_dir_all(self.bucket_path(bucket)?)
    }

    /// Writes an object, creating its bucket if needed; replaces an existing object.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) -> io::Result<()> {
        let path = self.object_path(bucket, key)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Through a temporary file and rename, so a concurrent GetObject sees the old or the
        // new object, never half of one.
        let tmp = path.with_file_name(format!(
            ".tmp.{}.store",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &path)?;
        // s3s-fs keeps an object's ETag and checksums in a side file written by PutObject;
        // a stale one would describe the previous body, so drop it and let s3s-fs recompute.
        self.forget_side_files(bucket, key)
    }

    /// An object's body, or `None` if it does not exist.
    pub fn get(&self, bucket: &str, key: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.object_path(bucket, key)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes an object; `Ok(false)` if it did not exist.
    pub fn delete(&self, bucket: &str, key: &str) -> io::Result<bool> {
        match std::fs::remove_file(self.object_path(bucket, key)?) {
            Ok(()) => {
                self.forget_side_files(bucket, key)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The keys in `bucket` that start with `prefix`, sorted (as ListObjectsV2 orders them).
    pub fn list(&self, bucket: &str, prefix: &str) -> io::Result<Vec<String>> {
        let base = self.bucket_path(bucket)?;
        let mut keys = Vec::new();
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir == base => {
                    return Ok(keys);
                }
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = entry.file_name();
                // Temporary files of an upload in progress (ours and s3s-fs's).
                if name.to_string_lossy().starts_with(".tmp.") {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&base) else {
                    continue;
                };
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Size and modification time of an object, or `None` if it does not exist.
    pub fn stat(&self, bucket: &str, key: &str) -> io::Result<Option<(u64, SystemTime)>> {
        match std::fs::metadata(self.object_path(bucket, key)?) {
            Ok(m) => Ok(Some((m.len(), m.modified()?))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file that holds an object (it may not exist).
    pub fn object_path(&self, bucket: &str, key: &str) -> io::Result<PathBuf> {
        let mut p = self.bucket_path(bucket)?;
        if key.is_empty() {
            return Err(invalid(format!("s3://{bucket}/: empty object key")));
        }
        for part in Path::new(key).components() {
            match part {
                Component::Normal(c) => p.push(c),
                _ => {
                    return Err(invalid(format!(
                        "s3://{bucket}/{key}: key leaves its bucket"
                    )))
                }
            }
        }
        Ok(p)
    }

    fn bucket_path(&self, bucket: &str) -> io::Result<PathBuf> {
        let ok = (3..=63).contains(&bucket.len())
            && !bucket.starts_with('.')
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok {
            return Err(invalid(format!("s3://{bucket}: not a valid bucket name")));
        }
        Ok(self.root.join(bucket))
    }

    /// Removes s3s-fs's `.bucket-B.object-K.{internal,metadata}.json` for an object.
    fn forget_side_files(&self, bucket: &str, key: &str) -> io::Result<()> {
        let (b, k) = (URL_SAFE_NO_PAD.encode(bucket), URL_SAFE_NO_PAD.encode(key));
        for kind in ["internal", "metadata"] {
            let p = self
                .root
                .join(format!(".bucket-{b}.object-{k}.{kind}.json"));
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Gives `s3s` the secret of every key the emulator knows, so it can verify signatures.
struct KeyringAuth {
    keyring: Arc<Keyring>,
}

#[async_trait::async_trait]
impl S3Auth for KeyringAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.keyring.lookup(access_key) {
            Identity::Issued(c) => Ok(SecretKey::from(c.secret_access_key.as_str())),
            Identity::Static(s) => Ok(SecretKey::from(&*s)),
            Identity::Unknown => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// Checks what a signature does not cover: the session token and lifetime of issued
/// credentials, and (with `require_assumed_role`) that only issued credentials are used.
struct TokenAccess {
    keyring: Arc<Keyring>,
    require_issued: bool,
}

#[async_trait::async_trait]
impl S3Access for TokenAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed"));
        };
        let token = cx
            .headers()
            .get("x-amz-security-token")
            .map(|v| v.as_bytes());
        match self.keyring.lookup(&creds.access_key) {
            Identity::Issued(c) => {
                if token != Some(c.session_token.as_bytes()) {
                    return Err(s3_error!(
                        InvalidToken,
                        "The provided token is malformed or otherwise invalid."
                    ));
                }
                if SystemTime::now() >= c.expiration {
                    return Err(s3_error!(ExpiredToken, "The provided token has expired."));
                }
                Ok(())
            }
            Identity::Static(_) if token.is_some() || self.require_issued => Err(s3_error!(
                InvalidToken,
                "The provided token is malformed or otherwise invalid."
            )),
            Identity::Static(_) => Ok(()),
            Identity::Unknown => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str) -> Parts {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn operations_by_method_and_query() {
        assert_eq!(operation(&parts(Method::GET, "/")), "ListBuckets");
        assert_eq!(operation(&parts(Method::PUT, "/b")), "CreateBucket");
        assert_eq!(
            operation(&parts(Method::GET, "/b?list-type=2&prefix=a")),
            "ListObjectsV2"
        );
        assert_eq!(
            operation(&parts(Method::POST, "/b/k?uploads")),
            "CreateMultipartUpload"
        );
        assert_eq!(
            operation(&parts(Method::PUT, "/b/k?partNumber=1&uploadId=x")),
            "UploadPart"
        );
        assert_eq!(
            operation(&parts(Method::POST, "/b/k?uploadId=x")),
            "CompleteMultipartUpload"
        );
        assert_eq!(operation(&parts(Method::GET, "/b/a/k.csv")), "GetObject");
        assert_eq!(operation(&parts(Method::HEAD, "/b/k")), "HeadObject");
        assert_eq!(operation(&parts(Method::PUT, "/b/k")), "PutObject");
    }

    #[test]
    fn store_put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = S3Store {
            root: dir.path().to_owned(),
        };
        s.put("bkt", "in/a.csv", b"x,y\n").unwrap();
        s.put("bkt", "in/sub/b.jsonl", b"{}\n").unwrap();
        s.put("bkt", "other", b"1").unwrap();
        assert_eq!(s.get("bkt", "in/a.csv").unwrap().unwrap(), b"x,y\n");
        assert_eq!(s.get("bkt", "nope").unwrap(), None);
        assert_eq!(
            s.list("bkt", "in/").unwrap(),
            ["in/a.csv", "in/sub/b.jsonl"]
        );
        assert_eq!(s.list("nobucket", "").unwrap(), Vec::<String>::new());
        assert!(s.delete("bkt", "other").unwrap());
        assert!(!s.delete("bkt", "other").unwrap());
        assert!(s.object_path("bkt", "../escape").is_err());
        assert!(s.object_path("Bad_Bucket", "k").is_err() && s.object_path("b", "k").is_err());
    }
}
