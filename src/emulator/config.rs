//! `EmulatorConfig`: every knob of the emulator, with defaults that mimic one AWS account in
//! `ap-northeast-2` with no quotas, faults or latency.
//!
//! Plain data, independent of the command line (`commands/emulator.rs` maps the flags onto
//! it); knobs that can also change while running are set through `Emulator`'s setters.

use std::path::PathBuf;
use std::time::Duration;

/// The static test key pair the emulator knows the secret of (so it verifies signatures made
/// with it) and that `bedrock-batch emulator` prints for shells and test fixtures.
pub const STATIC_ACCESS_KEY_ID: &str = "AKIAEMULATORSTATIC01";
pub const STATIC_SECRET_ACCESS_KEY: &str = "emulatorStaticSecretKey0000000000000000/";

#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Region IMDS reports.
    pub region: String,
    /// Account of the static user and the default for issued credentials.
    pub account_id: String,
    /// Requests per minute; `None` = unlimited.
    pub rpm: Option<u64>,
    /// Tokens per minute (input + reserved output); `None` = unlimited.
    pub tpm: Option<u64>,
    /// Seconds of quota a full bucket holds.
    pub burst_secs: f64,
    /// Output tokens a tpm reservation assumes when the request sets no max tokens.
    pub default_max_tokens: u64,
    /// Latency added to every admitted model call.
    pub latency_ms: u64,
    /// Fraction of model calls answered with a random transient fault.
    pub fault_rate: f64,
    /// Fraction of model calls whose connection is closed without a response.
    pub drop_rate: f64,
    /// Seed for fault and drop rolls; `None` = random.
    pub seed: Option<u64>,
    /// Bedrock accepts only credentials issued here (AssumeRole or IMDS) with their token.
    pub require_assumed_role: bool,
    /// Lifetime of issued credentials (AssumeRole `DurationSeconds` wins if smaller).
    pub credential_ttl: Duration,
    /// How far the client's clock runs behind: issued credentials are advertised (STS and
    /// IMDS `Expiration`) as expiring this much later than the emulator stops accepting them,
    /// so a client trusting the advertised time meets ExpiredToken first.
    pub clock_skew: Duration,
    /// Static keys whose secrets are known: requests signed with them are verified.
    pub static_keys: Vec<(String, String)>,
    /// Recompute SigV4 signatures for keys with a known secret.
    pub verify_signatures: bool,
    /// AssumeRole answers 403 AccessDenied.
    pub deny_assume_role: bool,
    /// Model ids (or prefixes of the id / its base model) that answer 403 AccessDeniedException,
    /// e.g. `apac.` for a policy that doesn't cover the APAC cross-region profile.
    pub denied_models: Vec<String>,
    /// Answer any syntactically valid model id. Off by default: like Bedrock, the emulator
    /// refuses ids it does not know (a typo, a truncated id, `foo.bar`) with "The provided
    /// model identifier is invalid." (known ids: `bedrock::catalog`).
    pub accept_any_model: bool,
    /// The instance role IMDS lists.
    pub imds_role: String,
    /// Request records kept (the first N; later ones are only counted).
    pub max_records: usize,
    /// Service tiers refused with a ValidationException: `TIER` for every model, or
    /// `MODEL-PREFIX=TIER` (e.g. `anthropic.=flex`), as a model or region without the tier.
    pub refused_tiers: Vec<String>,
    /// Flex calls take this many times the configured latency, plus 20 ms.
    pub flex_latency_factor: f64,
    /// How long a prompt-cache entry lives after its last use (Bedrock: 5 minutes).
    pub cache_ttl: Duration,
    /// The directory S3 serves (`ROOT/BUCKET/KEY`); `None` = a temporary directory the
    /// emulator creates and removes when it stops.
    pub s3_dir: Option<PathBuf>,
    /// Batch Inference: queue and processing times, quotas (`invocation_job.rs`).
    pub invocation_jobs: super::invocation_job::InvocationJobConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            port: 0,
            region: "ap-northeast-2".into(),
            account_id: "123456789012".into(),
            rpm: None,
            tpm: None,
            burst_secs: 5.0,
            default_max_tokens: 4096,
            latency_ms: 0,
            fault_rate: 0.0,
            drop_rate: 0.0,
            seed: None,
            require_assumed_role: false,
            credential_ttl: Duration::from_secs(3600),
            clock_skew: Duration::ZERO,
            static_keys: vec![(
                STATIC_ACCESS_KEY_ID.to_owned(),
                STATIC_SECRET_ACCESS_KEY.to_owned(),
            )],
            verify_signatures: true,
            deny_assume_role: false,
            denied_models: Vec::new(),
            accept_any_model: false,
            imds_role: "BedrockExecutionRole".into(),
            max_records: 20_000,
            refused_tiers: Vec::new(),
            flex_latency_factor: 3.0,
            cache_ttl: Duration::from_secs(300),
            s3_dir: None,
            invocation_jobs: Default::default(),
        }
    }
}
