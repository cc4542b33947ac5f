//! Credentials, region and the Bedrock client, all from the SDK's default chain.
//!
//! We never read `~/.aws` ourselves: the chain (env keys, `AWS_PROFILE` /
//! `--profile` with `role_arn` + `source_profile`, web identity, ECS, IMDS)
//! decides, and the standard `AWS_ENDPOINT_URL_*` variables work because the
//! SDK honours them. On top of the chain, `--role-arn` assumes a role
//! explicitly.
//!
//! Every request signs with a [`CredentialCache`]: renewed ahead of expiry,
//! and dropped when Bedrock answers ExpiredToken, so a long run never fails a
//! row because credentials aged. This module is not a credential provider of
//! its own: whatever the chain returns is what we sign with.
//!
//! The Bedrock client gets `RetryConfig::disabled()` (the runner is the one
//! retry layer) and explicit timeouts (the SDK has no read timeout by default).
//! The STS client inside the credential providers keeps the SDK's standard
//! retries: a credential refresh is not a row attempt.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use std::time::{Duration, Instant, SystemTime};

use aws_config::identity::IdentityCache;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future::ProvideCredentials as ProvideCredentialsFuture;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use crate::config::RoleSettings;
use crate::error::error_chain;
use crate::time::{rfc3339, unix_secs};

/// What decides who we are and where we call.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role: Option<RoleSettings>,
}

/// What `connect` hands a command: an SDK configuration that signs with
/// `credentials`, and words for where those came from.
#[derive(Debug)]
pub struct Session {
    pub sdk: SdkConfig,
    pub credentials: CredentialCache,
    /// The credentials resolved at start-up (for their expiry; `Credentials`
    /// never prints its secrets).
    pub first: Credentials,
    /// Where the chain found them, e.g. `environment variables (AWS_ACCESS_KEY_ID)`.
    pub source: String,
}

/// The SDK configuration from the default chain (plus `--role-arn`), and for
/// `--role-arn` the base provider, which remembers where it found its
/// credentials.
async fn load(auth: &AuthSettings) -> anyhow::Result<(SdkConfig, Option<Arc<Base>>)> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &auth.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &auth.region {
        loader = loader.region(Region::new(r.clone()));
    }
    let base = loader.load().await;
    if base.region().is_none() {
        anyhow::bail!(
            "no region: set `region` in config.toml, pass --region, set AWS_REGION, or add `region` to the profile"
        );
    }
    let Some(role) = &auth.role else {
        return Ok((base, None));
    };
    let chain = base
        .credentials_provider()
        .context("no credentials provider configured")?;
    let observed = Arc::new(Base {
        chain,
        source: Mutex::new(None),
        profile: selected_profile(auth),
    });
    let session = role
        .session_name
        .clone()
        .unwrap_or_else(|| format!("bedrock-batch-{}", unix_secs(SystemTime::now())));
    let mut builder = AssumeRoleProvider::builder(&role.role_arn)
        .configure(&base)
        .session_name(session);
    if let Some(x) = &role.external_id {
        builder = builder.external_id(x);
    }
    let provider = builder.build_from_provider(BaseRef(observed.clone())).await;
    let sdk = base
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build();
    Ok((sdk, Some(observed)))
}

/// Loads the configuration and resolves credentials once, before any row is
/// sent, so "no credentials" is a setup error and not a million failed rows.
///
/// The returned config signs with a [`CredentialCache`] seeded with those
/// same credentials, so checking costs no extra AssumeRole.
pub async fn connect(auth: &AuthSettings) -> anyhow::Result<Session> {
    let (sdk, base) = load(auth).await?;
    let provider = sdk
        .credentials_provider()
        .context("no credentials provider configured")?;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| anyhow::anyhow!(refusal(&e)))?;
    let profile = selected_profile(auth);
    let source = match base.as_ref().and_then(|b| b.described()) {
        Some(b) => format!("--role-arn AssumeRole on top of: {b}"),
        None => describe_source(&creds, profile.as_deref()),
    };
    let credentials = CredentialCache::new(provider, creds.clone());
    // The SDK's identity cache can't be told that Bedrock refused a key; ours
    // can, and caches in its place.
    let sdk = sdk
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
        .identity_cache(IdentityCache::no_cache())
        .build();
    Ok(Session {
        sdk,
        credentials,
        first: creds,
        source,
    })
}

/// How to renew credentials that came from `source` (as [`Session::source`]
/// words it) once they have expired and the chain cannot renew them.
pub(crate) fn renewal_advice(source: &str) -> &'static str {
    if source.contains("environment") {
        "export new AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (e.g. `eval \"$(aws configure export-credentials --format env)\"`), or use a profile that can renew them"
    } else if source.contains("sso") || source.contains("SSO") {
        "run `aws sso login` for the profile"
    } else {
        "renew them where they come from (`aws sso login`, new keys in the profile, or a new AWS_SESSION_TOKEN)"
    }
}

/// "no usable credentials: …" with what STS said, if it refused, and the
/// likely cause.
fn refusal(e: &CredentialsError) -> String {
    let (detail, code) = match sts_error(e) {
        Some((code, message)) => (format!("sts AssumeRole refused ({code}): {message}"), code),
        None => (error_chain(e), String::new()),
    };
    let lower = format!("{code} {detail}").to_ascii_lowercase();
    let hint = if lower.contains("accessdenied") || lower.contains("not authorized") {
        "likely cause: the role's trust policy does not list this user, or the user may not call sts:AssumeRole"
    } else if lower.contains("expired") {
        "the base credentials have expired: refresh them, e.g. aws sso login or new keys"
    } else if lower.contains("invalidclienttokenid") || lower.contains("signaturedoesnotmatch") {
        "the access key is unknown or its secret is wrong: check `aws configure` or AWS_ACCESS_KEY_ID"
    } else {
        "set AWS_PROFILE, pass --profile, configure keys with `aws configure`, or run on EC2 with an instance role"
    };
    format!("no usable credentials: {detail} ({hint})")
}

/// The code and message of an STS AssumeRole error somewhere in `e`'s sources.
fn sts_error(e: &(dyn std::error::Error + 'static)) -> Option<(String, String)> {
    use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(SdkError::ServiceError(s)) = err.downcast_ref::<SdkError<AssumeRoleError>>() {
            let code = s.err().code().unwrap_or("Unknown").to_string();
            return Some((code, s.err().message().unwrap_or("").to_string()));
        }
        cur = err.source();
    }
    None
}

/// The profile the SDK was told to use, for messages only.
fn selected_profile(auth: &AuthSettings) -> Option<String> {
    auth.profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok())
}

/// Where the region came from, for `whoami`. `given` names the setting
/// `auth.region` came from (e.g. `--region`); otherwise the SDK's own region
/// providers are asked in the chain's order, so the answer is the SDK's, not
/// our reading of the files.
pub async fn region_source(auth: &AuthSettings, given: &str) -> String {
    if auth.region.is_some() {
        return given.into();
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            return var.into();
        }
    }
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(p) = &auth.profile {
        profile = profile.profile_name(p);
    }
    if profile.build().region().await.is_some() {
        let name = selected_profile(auth).unwrap_or_else(|| "default".into());
        return format!("profile `{name}`");
    }
    "EC2 instance metadata (IMDS)".into()
}

/// The credentials every request of a command signs with: fetched once by
/// `connect`, renewed ahead of expiry, and dropped when Bedrock says they
/// expired, so the retry signs with new ones.
///
/// It stands in for the SDK's identity cache (set to `no_cache`), which can't
/// be told that a key was refused: it hands the same credentials to every
/// retry until its own clock says they expired, which a clock running behind
/// or an early revocation makes too late. It also renews in proportion to the
/// lifetime (a quarter of it, at most 5 minutes ahead) where the SDK renews a
/// fixed 5–10 s ahead and so reloads on every request when credentials live
/// less than that.
#[derive(Clone)]
pub struct CredentialCache(Arc<CacheState>);

struct CacheState {
    chain: SharedCredentialsProvider,
    /// Read by every request: a plain mutex, held only to clone.
    current: Mutex<Option<Cached>>,
    /// Held while asking the chain, so the requests that find the credentials
    /// stale cause one refresh, not one each.
    refreshing: tokio::sync::Mutex<()>,
    /// The access key id Bedrock last refused as expired.
    refused: Mutex<Option<String>>,
    /// The chain handed back the very keys Bedrock refused as expired (static
    /// session keys in the environment, say): no retry can succeed.
    stuck: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
struct Cached {
    creds: Credentials,
    /// When they were stored: an attempt that started later may have used
    /// newer ones (see `invalidate`).
    stored: Instant,
    /// When to start asking for new ones; `None` for long-term keys.
    renew_at: Option<SystemTime>,
}

/// The most ahead of expiry we renew: plenty for any clock skew, and short
/// against STS's 15-minute minimum lifetime.
const MAX_RENEW_AHEAD: Duration = Duration::from_secs(300);

impl Cached {
    fn new(creds: Credentials) -> Cached {
        let now = SystemTime::now();
        let renew_at = creds.expiry().map(|exp| {
            let life = exp.duration_since(now).unwrap_or_default();
            exp - (life / 4).min(MAX_RENEW_AHEAD)
        });
        Cached {
            creds,
            stored: Instant::now(),
            renew_at,
        }
    }

    fn fresh(&self, now: SystemTime) -> bool {
        self.renew_at.is_none_or(|t| now < t)
    }

    /// Still usable while someone else renews them.
    fn unexpired(&self, now: SystemTime) -> bool {
        self.creds.expiry().is_none_or(|t| now < t)
    }
}

impl CredentialCache {
    fn new(chain: SharedCredentialsProvider, first: Credentials) -> CredentialCache {
        CredentialCache(Arc::new(CacheState {
            chain,
            current: Mutex::new(Some(Cached::new(first))),
            refreshing: tokio::sync::Mutex::new(()),
            refused: Mutex::new(None),
            stuck: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    fn current(&self) -> Option<Cached> {
        self.0
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Bedrock answered an attempt that started at `attempt_started` with
    /// ExpiredToken: drop the credentials unless they were stored after that
    /// (then the attempt may have signed with older ones, and these are kept,
    /// so many rows failing at once cause one refresh). If the attempt did use
    /// newer ones, its retry fails too and drops them: it converges.
    pub fn invalidate(&self, attempt_started: Instant) {
        let mut cur = self.0.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|c| c.stored <= attempt_started) {
            tracing::warn!(
                "Bedrock says the credentials expired{}: loading new ones (if this repeats, check the machine's clock)",
                cur.as_ref()
                    .and_then(|c| c.creds.expiry())
                    .map(|t| format!(" (they claim to be valid until {})", rfc3339(t)))
                    .unwrap_or_default()
            );
            *self.0.refused.lock().unwrap_or_else(|e| e.into_inner()) =
                cur.as_ref().map(|c| c.creds.access_key_id().to_string());
            *cur = None;
        }
    }

    /// False once the chain has handed back credentials Bedrock already
    /// refused as expired: they cannot be renewed from where they come from.
    pub(crate) fn renewable(&self) -> bool {
        !self.0.stuck.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn get(&self) -> aws_credential_types::provider::Result {
        let cur = self.current();
        if let Some(c) = cur.as_ref().filter(|c| c.fresh(SystemTime::now())) {
            return Ok(c.creds.clone());
        }
        let _turn = match self.0.refreshing.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                // Someone is already renewing: keep signing with the old ones
                // while they last, otherwise wait for the new ones.
                if let Some(c) = cur.filter(|c| c.unexpired(SystemTime::now())) {
                    return Ok(c.creds);
                }
                self.0.refreshing.lock().await
            }
        };
        let cur = self.current();
        if let Some(c) = cur.as_ref().filter(|c| c.fresh(SystemTime::now())) {
            return Ok(c.creds.clone());
        }
        match self.0.chain.provide_credentials().await {
            Ok(creds) => {
                let refused = self.0.refused.lock().unwrap_or_else(|e| e.into_inner());
                let same = refused.as_deref() == Some(creds.access_key_id());
                drop(refused);
                self.0
                    .stuck
                    .store(same, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(
                    "credentials renewed{}",
                    creds
                        .expiry()
                        .map(|t| format!(", valid until {}", rfc3339(t)))
                        .unwrap_or_default()
                );
                *self.0.current.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Cached::new(creds.clone()));
                Ok(creds)
            }
            Err(e) => match cur.filter(|c| c.unexpired(SystemTime::now())) {
                Some(c) => {
                    tracing::warn!(
                        "cannot renew the credentials, using the current ones until they expire: {}",
                        refusal(&e)
                    );
                    Ok(c.creds)
                }
                None => Err(e),
            },
        }
    }
}

impl ProvideCredentials for CredentialCache {
    fn provide_credentials<'a>(&'a self) -> ProvideCredentialsFuture<'a>
    where
        Self: 'a,
    {
        ProvideCredentialsFuture::new(self.get())
    }
}

// By hand: the SDK prints its runtime components at trace level, and the
// chain's Debug would print a profile file's keys.
impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").finish_non_exhaustive()
    }
}

/// The chain under `--role-arn`: remembers where it found the base
/// credentials (in words, never the credentials).
struct Base {
    chain: SharedCredentialsProvider,
    source: Mutex<Option<String>>,
    profile: Option<String>,
}

impl Base {
    fn described(&self) -> Option<String> {
        self.source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `Base` as a provider `AssumeRoleProvider` can own while `load` keeps a handle.
struct BaseRef(Arc<Base>);

impl ProvideCredentials for BaseRef {
    fn provide_credentials<'a>(&'a self) -> ProvideCredentialsFuture<'a>
    where
        Self: 'a,
    {
        ProvideCredentialsFuture::new(async move {
            let creds = self.0.chain.provide_credentials().await?;
            *self.0.source.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(describe_source(&creds, self.0.profile.as_deref()));
            Ok(creds)
        })
    }
}

impl std::fmt::Debug for BaseRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseCredentials").finish_non_exhaustive()
    }
}

/// The Bedrock Runtime client for a run: no SDK retries, explicit timeouts.
pub fn bedrock_client(
    sdk: &SdkConfig,
    attempt_timeout: Duration,
) -> aws_sdk_bedrockruntime::Client {
    let conf = aws_sdk_bedrockruntime::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(conf)
}

/// Where the chain found the credentials, in words a person recognises.
fn describe_source(creds: &Credentials, profile: Option<&str>) -> String {
    let features = creds
        .get_property::<Vec<AwsCredentialFeature>>()
        .cloned()
        .unwrap_or_default();
    let has = |f: AwsCredentialFeature| features.contains(&f);
    let base = if has(AwsCredentialFeature::CredentialsProfileSourceProfile) {
        "profile with role_arn + source_profile (AssumeRole)"
    } else if has(AwsCredentialFeature::CredentialsProfileNamedProvider) {
        "profile with role_arn + credential_source (AssumeRole)"
    } else if has(AwsCredentialFeature::CredentialsImds) {
        "EC2 instance metadata (IMDSv2, instance role)"
    } else if has(AwsCredentialFeature::CredentialsEnvVarsStsWebIdToken)
        || has(AwsCredentialFeature::CredentialsStsAssumeRoleWebId)
    {
        "web identity token (AssumeRoleWithWebIdentity)"
    } else if has(AwsCredentialFeature::CredentialsHttp) {
        "container credentials endpoint (ECS/EKS)"
    } else if has(AwsCredentialFeature::CredentialsSso)
        || has(AwsCredentialFeature::CredentialsProfileSso)
    {
        "SSO profile"
    } else if has(AwsCredentialFeature::CredentialsProcess)
        || has(AwsCredentialFeature::CredentialsProfileProcess)
    {
        "profile credential_process"
    } else if has(AwsCredentialFeature::CredentialsEnvVars) {
        "environment variables (AWS_ACCESS_KEY_ID)"
    } else if has(AwsCredentialFeature::CredentialsProfile) {
        // The profile provider tags both kinds alike; temporary credentials
        // from a profile mean it assumed a role (role_arn).
        if creds.expiry().is_some() {
            "profile with role_arn (AssumeRole)"
        } else {
            "profile static keys"
        }
    } else if has(AwsCredentialFeature::CredentialsStsAssumeRole) {
        "AssumeRole"
    } else {
        "default credential chain"
    };
    match profile {
        Some(p) if base.starts_with("profile") => format!("{base}, profile `{p}`"),
        _ => base.to_string(),
    }
}
