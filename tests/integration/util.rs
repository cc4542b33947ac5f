//! Shared helpers for the integration tests: process-environment isolation, AWS profile
//! fixtures, and SDK clients pointed at a local emulator.
//!
//! Not a place for assertions or test logic specific to one file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use bedrock_batch::emulator::{STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY};
use tempfile::TempDir;

/// The process environment is global and tests run on parallel threads, so every test that
/// reads or writes it (anything using `aws_config::defaults`) holds this for its whole run.
/// A tokio mutex because the guard lives across `.await`s.
static ENV_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Holds the environment lock, isolates the AWS configuration of the process and restores
/// every variable it touched on drop.
///
/// On creation: every `AWS_*` variable is removed (credentials, profile, endpoints, bearer
/// token, region), `HOME` and `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE` point into an
/// empty temporary directory, and `AWS_EC2_METADATA_DISABLED=true` so nothing probes
/// 169.254.169.254 (an IMDS test removes it and points the endpoint at the emulator).
pub struct EnvGuard {
    saved: Vec<(String, Option<OsString>)>,
    home: TempDir,
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl EnvGuard {
    pub async fn new() -> EnvGuard {
        let lock = ENV_LOCK.lock().await;
        let mut g = EnvGuard {
            saved: Vec::new(),
            home: tempfile::tempdir().expect("temp dir"),
            _lock: lock,
        };
        let aws: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("AWS_"))
            .collect();
        for k in aws {
            g.remove(&k);
        }
        let home = g.home.path().to_path_buf();
        g.set("HOME", &home);
        g.set("AWS_CONFIG_FILE", home.join(".aws/config"));
        g.set("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"));
        g.set("AWS_EC2_METADATA_DISABLED", "true");
        g
    }

    fn save(&mut self, key: &str) {
        if !self.saved.iter().any(|(k, _)| k == key) {
            self.saved.push((key.to_owned(), std::env::var_os(key)));
        }
    }

    pub fn set(&mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) {
        self.save(key);
        std::env::set_var(key, value);
    }

    pub fn remove(&mut self, key: &str) {
        self.save(key);
        std::env::remove_var(key);
    }

    /// The value `key` had before this guard changed it (or its current value if untouched).
    pub fn original(&self, key: &str) -> Option<OsString> {
        match self.saved.iter().find(|(k, _)| k == key) {
            Some((_, v)) => v.clone(),
            None => std::env::var_os(key),
        }
    }

    /// The temporary HOME.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Writes `~/.aws/credentials` with `[default]` static keys and `~/.aws/config` with
    /// `[profile bedrock-app-dev]` assuming `BedrockExecutionRole` from `default`.
    pub fn write_profiles(&self, access_key: &str, secret: &str) -> PathBuf {
        let dir = self.home.path().join(".aws");
        std::fs::create_dir_all(&dir).expect("create ~/.aws");
        std::fs::write(
            dir.join("credentials"),
            format!(
                "[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret}\n"
            ),
        )
        .expect("write credentials");
        std::fs::write(
            dir.join("config"),
            "[default]\nregion = ap-northeast-2\n\n\
             [profile bedrock-app-dev]\n\
             role_arn = arn:aws:iam::123456789012:role/BedrockExecutionRole\n\
             source_profile = default\n\
             region = ap-northeast-2\n",
        )
        .expect("write config");
        dir
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (k, v) in self.saved.drain(..).rev() {
            match v {
                Some(v) => std::env::set_var(&k, v),
                None => std::env::remove_var(&k),
            }
        }
    }
}

/// The SDK configuration the real default chain resolves from the current environment.
pub async fn env_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The emulator's static test credentials.
pub fn static_credentials() -> Credentials {
    Credentials::new(
        STATIC_ACCESS_KEY_ID,
        STATIC_SECRET_ACCESS_KEY,
        None,
        None,
        "emulator-static",
    )
}

/// Standard retries with `attempts` in total and millisecond backoff, so retry tests are fast.
pub fn quick_retries(attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

/// A Bedrock Runtime client for `url` built without reading the environment (safe to use
/// from tests that don't hold the `EnvGuard`).
pub fn bedrock_client(
    url: &str,
    credentials: Credentials,
    retry: RetryConfig,
) -> aws_sdk_bedrockruntime::Client {
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("ap-northeast-2"))
        .endpoint_url(url)
        .credentials_provider(credentials)
        .retry_config(retry)
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(conf)
}

/// An STS client for `url` built without reading the environment.
pub fn sts_client(url: &str, credentials: Credentials) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("ap-northeast-2"))
        .endpoint_url(url)
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

/// An S3 client for `url` built without reading the environment: path-style
/// addressing (the emulator serves one host), no retries (a refused request
/// must surface as itself, not as the last of several attempts).
pub fn s3_client(url: &str, credentials: Credentials) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("ap-northeast-2"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A Bedrock control-plane client (Batch Inference jobs) for `url` with the
/// static keys, built without reading the environment. Retries are off: a
/// test that counts created jobs must see each create once.
pub fn control_client(url: &str) -> aws_sdk_bedrock::Client {
    let conf = aws_sdk_bedrock::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("ap-northeast-2"))
        .endpoint_url(url)
        .credentials_provider(static_credentials())
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_bedrock::Client::from_conf(conf)
}

/// A one-user-message Converse request builder for `model` and `prompt`.
pub fn converse(
    client: &aws_sdk_bedrockruntime::Client,
    model: &str,
    prompt: &str,
) -> aws_sdk_bedrockruntime::operation::converse::builders::ConverseFluentBuilder {
    use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message};
    let msg = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(prompt.to_owned()))
        .build()
        .expect("role and content are set");
    client.converse().model_id(model).messages(msg)
}

/// The model id most tests use.
pub const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// Sends one raw HTTP/1.1 request (which should say `Connection: close`) to `addr` and
/// returns the whole raw response, for checks below the SDK's level.
pub async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    String::from_utf8_lossy(&raw).into_owned()
}
