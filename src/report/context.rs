//! `run.json`: what defined the last run and who it ran as, written beside
//! the outputs when the run starts so `report` can show it later.
//!
//! Holds the settings a person compares runs by (model, API, quotas, limits,
//! inference parameters) and the caller identity from STS
//! `GetCallerIdentity` (account, ARN). Never a key, token, secret or
//! external id: only whether an external id was given. Not the resume
//! manifest (`manifest.json` decides which job a directory holds).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bedrock::auth::Session;
use crate::bedrock::request::Api;
use crate::config::Settings;
use crate::report::rows::CONTEXT;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    pub started_at: String,
    pub settings: SettingsView,
    /// `None` when STS did not answer in time; the run goes on without it.
    pub identity: Option<Identity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsView {
    pub model: String,
    pub api: Api,
    pub region: String,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id_given: bool,
    pub inputs: Vec<String>,
    pub concurrency: usize,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub max_attempts: u32,
    pub request_timeout_secs: u64,
    pub row_deadline_secs: u64,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    /// Where the SDK's chain found the credentials (never the credentials).
    pub credential_source: String,
}

/// How long the identity look-up may hold up the start of a run.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(3);

/// Looks up who the run signs as and writes `run.json`. Best effort: the
/// report is a view, so a failure here is logged at debug level and the run
/// goes on exactly as without it.
pub async fn record(settings: &Settings, session: &Session) {
    let identity = tokio::time::timeout(IDENTITY_TIMEOUT, async {
        aws_sdk_sts::Client::new(&session.sdk)
            .get_caller_identity()
            .send()
            .await
    })
    .await;
    let identity = match identity {
        Ok(Ok(out)) => Some(Identity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
            credential_source: session.source.clone(),
        }),
        Ok(Err(e)) => {
            tracing::debug!("report: sts GetCallerIdentity failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("report: sts GetCallerIdentity did not answer in time");
            None
        }
    };
    let context = RunContext {
        started_at: crate::time::rfc3339_ms_now(),
        settings: SettingsView::of(
            settings,
            session
                .sdk
                .region()
                .map(|r| r.to_string())
                .unwrap_or_default(),
        ),
        identity,
    };
    let path = settings.output_dir.join(CONTEXT);
    let written = serde_json::to_vec_pretty(&context)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| crate::output::fs::write_atomic(&path, &bytes));
    if let Err(e) = written {
        tracing::warn!("{}: cannot write: {e:#}", path.display());
    }
}

impl SettingsView {
    pub fn of(s: &Settings, region: String) -> SettingsView {
        SettingsView {
            model: s.model.clone(),
            api: s.api,
            region,
            profile: s.profile.clone(),
            role_arn: s.role.as_ref().map(|r| r.role_arn.clone()),
            external_id_given: s.role.as_ref().is_some_and(|r| r.external_id.is_some()),
            inputs: s.inputs.iter().map(|p| p.display().to_string()).collect(),
            concurrency: s.concurrency,
            rpm: s.rpm,
            tpm: s.tpm,
            max_attempts: s.max_attempts,
            request_timeout_secs: s.request_timeout.as_secs(),
            row_deadline_secs: s.row_deadline.as_secs(),
            max_tokens: s.max_tokens,
            temperature: s.temperature,
            top_p: s.top_p,
        }
    }
}
