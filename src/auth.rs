//! Credentials, region and the Bedrock client, all from the SDK's default chain.
//!
//! We never read `~/.aws` ourselves: the chain (env keys, `AWS_PROFILE` /
//! `--profile` with `role_arn` + `source_profile`, web identity, ECS, IMDS)
//! decides, and the standard `AWS_ENDPOINT_URL_*` variables work because the
//! SDK honours them. On top of the chain, `--role-arn` assumes a role
//! explicitly (auto-refreshed by the SDK's identity cache).
//!
//! The Bedrock client gets `RetryConfig::disabled()` (the runner is the one
//! retry layer) and explicit timeouts (the SDK has no read timeout by default).
//! The STS client inside the credential providers keeps the SDK's standard
//! retries: a credential refresh is not a row attempt.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::future::ProvideCredentials as ProvideCredentialsFuture;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use crate::config::RoleSettings;
use crate::error::SetupError;

/// What decides who we are and where we call.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role: Option<RoleSettings>,
}

/// Loads the SDK configuration the way every command uses it.
pub async fn load(auth: &AuthSettings) -> Result<SdkConfig, SetupError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &auth.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &auth.region {
        loader = loader.region(Region::new(r.clone()));
    }
    let base = loader.load().await;
    if base.region().is_none() {
        return Err(SetupError::Credentials(
            "no region: set `region` in config.toml, pass --region, set AWS_REGION, or add `region` to the profile"
                .into(),
        ));
    }
    let Some(role) = &auth.role else {
        return Ok(base);
    };
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
    let provider = builder.build().await;
    Ok(base
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// Loads the configuration and resolves credentials once, before any row is
/// sent, so "no credentials" is a setup error and not a million failed rows.
///
/// The returned config hands those same credentials to the first client that
/// asks (the SDK's identity cache caches and refreshes them from then on), so
/// checking costs no extra AssumeRole.
pub async fn connect(auth: &AuthSettings) -> Result<(SdkConfig, Credentials), SetupError> {
    let sdk = load(auth).await?;
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| SetupError::Credentials("no credentials provider configured".into()))?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        let mut msg = format!("no usable credentials: {}", error_chain(&e));
        let lower = msg.to_ascii_lowercase();
        if lower.contains("accessdenied") || lower.contains("not authorized") {
            msg.push_str(
                " (likely cause: the role's trust policy does not list this user, or the user may not call sts:AssumeRole)",
            );
        } else if lower.contains("expired") {
            msg.push_str(" (the base credentials have expired: refresh them, e.g. aws sso login or new keys)");
        } else {
            msg.push_str(" (set AWS_PROFILE, pass --profile, configure keys with `aws configure`, or run on EC2 with an instance role)");
        }
        SetupError::Credentials(msg)
    })?;
    let primed = Primed {
        inner: provider,
        first: Mutex::new(Some(creds.clone())),
    };
    let sdk = sdk
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(primed))
        .build();
    Ok((sdk, creds))
}

/// Hands out the credentials fetched by `connect` once, then delegates.
#[derive(Debug)]
struct Primed {
    inner: SharedCredentialsProvider,
    first: Mutex<Option<Credentials>>,
}

impl ProvideCredentials for Primed {
    fn provide_credentials<'a>(&'a self) -> ProvideCredentialsFuture<'a>
    where
        Self: 'a,
    {
        ProvideCredentialsFuture::new(async move {
            let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
            match first {
                // Still good for a minute: no reason to ask again.
                Some(c)
                    if c.expiry()
                        .is_none_or(|t| t > SystemTime::now() + Duration::from_secs(60)) =>
                {
                    Ok(c)
                }
                _ => self.inner.provide_credentials().await,
            }
        })
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
pub fn describe_source(creds: &Credentials, profile: Option<&str>, explicit_role: bool) -> String {
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
    let base = match profile {
        Some(p) if base.starts_with("profile") => format!("{base}, profile `{p}`"),
        _ => base.to_string(),
    };
    if explicit_role {
        format!("--role-arn AssumeRole on top of: {base}")
    } else {
        base
    }
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An error and its sources on one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let part = e.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        src = e.source();
    }
    s.replace('\n', " ")
}
