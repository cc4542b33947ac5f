//! `Server`: the emulator's shared state, its accept loop and the router that hands each
//! request to Bedrock, STS, IMDS, S3 or the `/__stats` / `/__requests` endpoints.
//!
//! Connections are served with hyper's HTTP/1 connection directly (not `axum::serve`) because
//! a handler must be able to close its connection without writing any response: returning
//! `Err(Dropped)` from the service makes hyper close the socket before a status line is sent.
//! What each operation answers lives in `bedrock.rs`, `sts.rs` and `imds.rs`; S3 is `s3.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::cache::PromptCache;
use super::config::EmulatorConfig;
use super::credentials::Keyring;
use super::fault::Fault;
use super::imds::Imds;
use super::invocation_job::{self, InvocationJobs};
use super::quota::{ModelQuotas, Quota};
use super::s3::{self, S3};
use super::sigv4::SigV4;
use super::stats::{RequestRecord, Stats};
use super::{bedrock, imds, sts};

pub type Reply = Response<Full<Bytes>>;
/// What a connection sends: an emulator answer, or S3's (streamed) one.
type Answer = Response<Either<Full<Bytes>, s3s::Body>>;

/// Returned by a handler to close the connection without any response.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the emulator")
    }
}

impl std::error::Error for Dropped {}

/// Largest request body accepted (Bedrock's own limit is far below this).
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Characters of the prompt kept in a record.
const RECORD_PROMPT_CHARS: usize = 500;

/// State shared by every connection task.
pub struct Server {
    pub cfg: EmulatorConfig,
    /// Runtime-adjustable knobs, read on every model call.
    pub latency_ms: AtomicU64,
    /// `f64::to_bits` of the fault and drop rates, so they can change while serving.
    pub fault_rate: AtomicU64,
    pub drop_rate: AtomicU64,
    pub quota: Quota,
    /// Models with a quota of their own, admitted against it instead of `quota`.
    pub model_quotas: ModelQuotas,
    pub stats: Stats,
    /// Shared with S3's signature and token checks.
    pub keyring: Arc<Keyring>,
    pub s3: S3,
    pub imds: Imds,
    pub prompt_cache: PromptCache,
    /// Batch Inference jobs created so far (`invocation_job.rs`).
    pub invocation_jobs: InvocationJobs,
    /// Seeded so a run's fault pattern is reproducible for the same request order.
    rng: Mutex<fastrand::Rng>,
    /// Attempts seen per prompt text, only for prompts carrying a `[[emu:KIND*N]]` marker.
    attempts: Mutex<HashMap<String, u32>>,
    pub started: Instant,
    pub shutdown: CancellationToken,
    request_seq: AtomicU64,
    request_id_base: u64,
}

/// What a handler learned about a request, for its record.
#[derive(Default)]
pub struct Trace {
    pub operation: &'static str,
    pub model: Option<String>,
    pub error_code: Option<&'static str>,
    pub prompt: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// AssumeRole's `RoleArn`, `RoleSessionName` and `ExternalId`, as sent.
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub external_id: Option<String>,
    pub service_tier: Option<String>,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub schema_source: Option<&'static str>,
}

impl Trace {
    pub fn set_prompt(&mut self, prompt: &str) {
        self.prompt = Some(match prompt.char_indices().nth(RECORD_PROMPT_CHARS) {
            Some((i, _)) => prompt[..i].to_owned(),
            None => prompt.to_owned(),
        });
    }
}

impl Server {
    pub fn new(cfg: EmulatorConfig) -> std::io::Result<Server> {
        let keyring = Arc::new(Keyring::new(&cfg.static_keys));
        let s3 = S3::new(
            cfg.s3_dir.as_deref(),
            keyring.clone(),
            cfg.require_assumed_role,
        )?;
        let rng = match cfg.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        Ok(Server {
            latency_ms: AtomicU64::new(cfg.latency_ms),
            fault_rate: AtomicU64::new(cfg.fault_rate.to_bits()),
            drop_rate: AtomicU64::new(cfg.drop_rate.to_bits()),
            quota: Quota::new(cfg.rpm, cfg.tpm, cfg.burst_secs),
            model_quotas: ModelQuotas::default(),
            stats: Stats::new(cfg.max_records),
            keyring,
            s3,
            imds: Imds::default(),
            prompt_cache: PromptCache::new(cfg.cache_ttl),
            invocation_jobs: InvocationJobs::default(),
            rng: Mutex::new(rng),
            attempts: Mutex::new(HashMap::new()),
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            request_seq: AtomicU64::new(0),
            request_id_base: fastrand::u64(..),
            cfg,
        })
    }

    /// Accepts connections until shutdown; each connection is its own task.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        loop {
            let stream = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    // Out of file descriptors or similar: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            // Small responses must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            tokio::spawn(async move {
                let svc = service_fn(|req| server.clone().route(req));
                let conn = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = server.shutdown.cancelled() => {}
                }
            });
        }
    }

    async fn route(self: Arc<Self>, req: Request<Incoming>) -> Result<Answer, Dropped> {
        let (parts, body) = req.into_parts();
        let at_ms = self.started.elapsed().as_millis() as u64;
        let mut trace = Trace::default();
        let (service, result) = if s3::is_s3(&parts) {
            // S3 bodies stream through (multipart parts, large objects): not collected here.
            trace.operation = s3::operation(&parts);
            let mut req = Request::new(body);
            *req.method_mut() = parts.method.clone();
            *req.uri_mut() = parts.uri.clone();
            *req.version_mut() = parts.version;
            *req.headers_mut() = parts.headers.clone();
            let r = self.s3.call(req).await.map_err(|_| Dropped);
            ("s3", r.map(|r| r.map(Either::Right)))
        } else {
            let (service, r) = self.handle(&parts, body, &mut trace).await;
            (service, r.map(|r| r.map(Either::Left)))
        };
        // The `/__` endpoints are the test's own reads: not counted, not recorded.
        if matches!(trace.operation, "Stats" | "Requests") {
            return result;
        }
        let status = result.as_ref().map_or(0, |r| r.status().as_u16());
        if let Some(key) = access_key(&parts) {
            self.stats.access_key(key);
        }
        self.stats.record_with(|| {
            let (attempt, max_attempts) = sdk_attempt(&parts);
            RequestRecord {
                at_ms,
                service,
                operation: trace.operation,
                model: trace.model.take(),
                status,
                error_code: trace.error_code,
                access_key: access_key(&parts).map(str::to_owned),
                session_token: parts.headers.contains_key("x-amz-security-token"),
                attempt,
                max_attempts,
                invocation_id: header(&parts, "amz-sdk-invocation-id").map(str::to_owned),
                prompt: trace.prompt.take(),
                input_tokens: trace.input_tokens,
                output_tokens: trace.output_tokens,
                role_arn: trace.role_arn.take(),
                role_session_name: trace.role_session_name.take(),
                external_id: trace.external_id.take(),
                service_tier: trace.service_tier.take(),
                cache_read_tokens: trace.cache_read_tokens,
                cache_write_tokens: trace.cache_write_tokens,
                schema_source: trace.schema_source,
            }
        });
        result
    }

    /// Everything but S3: the body is collected first (Bedrock and STS bodies are small).
    async fn handle(
        self: &Arc<Self>,
        parts: &Parts,
        body: Incoming,
        trace: &mut Trace,
    ) -> (&'static str, Result<Reply, Dropped>) {
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return ("emulator", Err(Dropped)),
        };
        let path = parts.uri.path();
        if let Some(reply) = invocation_job::handle(self, parts, &body, trace).await {
            ("bedrock", Ok(reply))
        } else if let Some(rest) = path.strip_prefix("/model/") {
            let r = bedrock::handle(self, parts, &body, rest, trace).await;
            ("bedrock", r)
        } else if path.starts_with("/latest/") {
            ("imds", Ok(imds::handle(self, parts, trace)))
        } else if path == "/" && parts.method == Method::POST {
            ("sts", Ok(sts::handle(self, parts, &body, trace)))
        } else if path == "/__stats" && parts.method == Method::GET {
            trace.operation = "Stats";
            let r = self.json(StatusCode::OK, serde_json::to_vec(&self.stats.snapshot()));
            ("emulator", Ok(r))
        } else if path == "/__requests" && parts.method == Method::GET {
            trace.operation = "Requests";
            let r = self.json(StatusCode::OK, serde_json::to_vec(&self.stats.records()));
            ("emulator", Ok(r))
        } else {
            trace.operation = "Unknown";
            let r = self.bedrock_error(Fault::UnknownOperation, None, trace);
            ("emulator", Ok(r))
        }
    }

    /// A UUID-shaped request id, unique per emulator.
    pub fn request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Relaxed);
        let b = self.request_id_base;
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            (b >> 32) as u32,
            (b >> 16) as u16,
            (b as u16) & 0xfff,
            (n >> 48) as u16 & 0xfff,
            n & 0xffff_ffff_ffff
        )
    }

    /// A response with the headers every answer carries.
    pub fn reply(
        &self,
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut r = Response::new(Full::new(body.into()));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        if let Ok(v) = HeaderValue::from_str(&self.request_id()) {
            h.insert("x-amzn-requestid", v);
        }
        r
    }

    fn json(&self, status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Reply {
        self.reply(status, "application/json", body.unwrap_or_default())
    }

    /// A restJson1 error as Bedrock sends it (no `Retry-After`, ever).
    pub fn bedrock_error(&self, f: Fault, message: Option<&str>, trace: &mut Trace) -> Reply {
        self.stats.error(f);
        trace.error_code = Some(f.code());
        let body = serde_json::json!({ "message": message.unwrap_or(f.message()) });
        let mut r = self.reply(
            StatusCode::from_u16(f.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "application/json",
            body.to_string(),
        );
        let kind = format!(
            "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            f.code()
        );
        if let Ok(v) = HeaderValue::from_str(&kind) {
            r.headers_mut().insert("x-amzn-errortype", v);
        }
        r
    }

    /// Rolls a probability with the seeded generator.
    pub fn roll(&self, rate_bits: &AtomicU64) -> bool {
        let rate = f64::from_bits(rate_bits.load(Relaxed));
        rate > 0.0 && self.rng.lock().unwrap_or_else(|e| e.into_inner()).f64() < rate
    }

    pub fn pick_transient(&self) -> Fault {
        let i = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .usize(..Fault::TRANSIENT.len());
        Fault::TRANSIENT[i]
    }

    /// Counts an attempt of `prompt` and returns its number (1 for the first).
    pub fn attempt_of(&self, prompt: &str) -> u32 {
        let mut m = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(prompt) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                m.insert(prompt.to_owned(), 1);
                1
            }
        }
    }
}

pub fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The access key from the SigV4 scope, or `"bearer"` for a Bedrock API key.
pub fn access_key(parts: &Parts) -> Option<&str> {
    let auth = header(parts, "authorization")?;
    if auth.starts_with("Bearer ") {
        return Some("bearer");
    }
    SigV4::parse(auth).map(|s| s.access_key)
}

/// `amz-sdk-request: attempt=N; max=M`.
fn sdk_attempt(parts: &Parts) -> (Option<u32>, Option<u32>) {
    let Some(v) = header(parts, "amz-sdk-request") else {
        return (None, None);
    };
    let (mut attempt, mut max) = (None, None);
    for kv in v.split(';') {
        match kv.trim().split_once('=') {
            Some(("attempt", n)) => attempt = n.parse().ok(),
            Some(("max", n)) => max = n.parse().ok(),
            _ => {}
        }
    }
    (attempt, max)
}
