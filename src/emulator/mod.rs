//! The local Bedrock Runtime + STS + IMDSv2 + S3 emulator: one HTTP/1.1 listener on 127.0.0.1
//! that the real AWS SDK reaches through its own endpoint settings
//! (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_STS`,
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_ENDPOINT_URL_S3` with path-style addressing), as
//! `docs/bedrock-wire-protocol.md` describes. S3 is the `s3s` crate serving a directory
//! (`s3.rs`); [`Emulator::s3`] reads and writes its objects directly. The Bedrock control
//! plane for Batch Inference jobs (`AWS_ENDPOINT_URL_BEDROCK`) is `invocation_job.rs`; its
//! jobs run in `batch_run.rs` over the same directory.
//!
//! It answers deterministically ([`answer`], [`count_tokens`]), enforces rpm/tpm quotas the
//! way Bedrock does, injects latency, faults and dropped connections on request, issues and
//! checks credentials, and records what it saw ([`Emulator::stats`], [`Emulator::requests`]).
//! It is a test and demo tool: it never talks to AWS and binds only to loopback.
//!
//! Prompt markers force one behaviour for one row; see [`marker`] for the syntax
//! (`[[emu:tokens=N]]`, `[[emu:sleep=MS]]`, `[[emu:KIND]]`, `[[emu:KIND*N]]`, and
//! `[[emu:stream_KIND]]` for a ConverseStream answer broken mid-way).

mod auth;
mod batch_run;
mod bedrock;
mod cache;
mod config;
mod conversation;
mod credentials;
mod eventstream;
mod family;
mod fault;
mod imds;
mod instance;
mod invocation_job;
pub mod marker;
mod model;
mod quota;
mod s3;
mod server;
mod sigv4;
mod stats;
mod stream_fault;
mod sts;
mod tokenizer;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{EmulatorConfig, STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY};
pub use credentials::{IssuedCredentials, Origin};
pub use invocation_job::InvocationJobConfig;
pub use model::{answer, count_tokens, fnv1a, output_tokens};
pub use s3::S3Store;
pub use stats::{RequestRecord, StatsSnapshot, Throttles};

use server::Server;

/// A running emulator. Dropping it stops serving (open connections are closed).
pub struct Emulator {
    server: Arc<Server>,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds `127.0.0.1:config.port` and serves in the background on the current runtime.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
        Emulator::serve(listener, config)
    }

    /// Serves on a socket bound earlier (`config.port` is ignored): for a
    /// caller that must know the address before the runtime starts.
    pub fn start_on(
        listener: std::net::TcpListener,
        config: EmulatorConfig,
    ) -> io::Result<Emulator> {
        listener.set_nonblocking(true)?;
        Emulator::serve(TcpListener::from_std(listener)?, config)
    }

    fn serve(listener: TcpListener, config: EmulatorConfig) -> io::Result<Emulator> {
        let addr = listener.local_addr()?;
        let server = Arc::new(Server::new(config)?);
        let task = tokio::spawn(server.clone().run(listener));
        Ok(Emulator {
            server,
            addr,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, the value for every endpoint override.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The emulator's S3 objects, read and written directly (no HTTP, no credentials).
    pub fn s3(&self) -> &S3Store {
        self.server.s3.store()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.server.stats.snapshot()
    }

    /// The kept request records, oldest first (see `EmulatorConfig::max_records`).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.server.stats.records()
    }

    /// Every credential set issued so far (AssumeRole and IMDS), so a test can check that no
    /// secret or session token leaked into its outputs.
    pub fn issued_credentials(&self) -> Vec<IssuedCredentials> {
        self.server.keyring.all_issued()
    }

    /// Every secret value the emulator knows: issued secret keys and session tokens, and the
    /// configured static secret keys.
    pub fn issued_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .issued_credentials()
            .into_iter()
            .flat_map(|c| [c.secret_access_key, c.session_token])
            .collect();
        out.extend(self.server.cfg.static_keys.iter().map(|(_, s)| s.clone()));
        out
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.server.cfg
    }

    pub fn set_latency_ms(&self, ms: u64) {
        self.server.latency_ms.store(ms, Relaxed);
    }

    pub fn set_fault_rate(&self, rate: f64) {
        self.server.fault_rate.store(rate.to_bits(), Relaxed);
    }

    pub fn set_drop_rate(&self, rate: f64) {
        self.server.drop_rate.store(rate.to_bits(), Relaxed);
    }

    /// Replaces the request quota with a fresh, full bucket (`None` = unlimited).
    pub fn set_rpm(&self, rpm: Option<u64>) {
        self.server.quota.set_rpm(rpm, self.server.cfg.burst_secs);
    }

    /// Replaces the token quota with a fresh, full bucket (`None` = unlimited).
    pub fn set_tpm(&self, tpm: Option<u64>) {
        self.server.quota.set_tpm(tpm, self.server.cfg.burst_secs);
    }

    /// Gives `model` a request and token quota of its own (fresh, full
    /// buckets), as Bedrock has per model: its calls are admitted against
    /// it instead of the account-wide one. Both `None` removes it.
    pub fn set_model_quota(&self, model: &str, rpm: Option<u64>, tpm: Option<u64>) {
        self.server
            .model_quotas
            .set(model, rpm, tpm, self.server.cfg.burst_secs);
    }

    /// Restarts peak in-flight measurement from the current in-flight count.
    pub fn reset_peak_in_flight(&self) {
        self.server.stats.reset_peak();
    }

    /// Stops accepting, closes open connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.server.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.shutdown.cancel();
    }
}

/// The shell lines that point an AWS SDK (or the CLI) at an emulator at `url`.
pub fn env_lines(url: &str) -> String {
    format!(
        "export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={url}\n\
         export AWS_ENDPOINT_URL_BEDROCK={url}\n\
         export AWS_ENDPOINT_URL_STS={url}\n\
         export AWS_ENDPOINT_URL_S3={url}\n\
         export AWS_EC2_METADATA_SERVICE_ENDPOINT={url}\n\
         export AWS_REGION=ap-northeast-2\n\
         export AWS_DEFAULT_REGION=ap-northeast-2\n\
         export AWS_ACCESS_KEY_ID={STATIC_ACCESS_KEY_ID}\n\
         export AWS_SECRET_ACCESS_KEY={STATIC_SECRET_ACCESS_KEY}\n\
         unset AWS_SESSION_TOKEN AWS_PROFILE AWS_BEARER_TOKEN_BEDROCK\n"
    )
}
