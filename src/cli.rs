//! Raw command-line flags, exactly as the user typed them.
//!
//! Nothing here does I/O or validation beyond what clap does: `config.rs` turns
//! these into validated `Settings`, and nothing downstream reads `Args`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bedrock-batch",
    version,
    about = "Run large batches of prompts through Amazon Bedrock: bounded, rate-limited, resumable"
)]
pub struct Args {
    /// Log filter (e.g. `info`, `bedrock_batch=debug`); overrides RUST_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job: prompts in, results.jsonl + failures.jsonl + summary.json out.
    Run(RunArgs),
    /// Run the sample job end to end against an in-process emulator, through
    /// the real assume-role flow (no AWS account needed).
    Demo(DemoArgs),
    /// Show who the credentials a run would use belong to (STS GetCallerIdentity).
    Whoami(WhoamiArgs),
    /// Print the least-privilege IAM policy for a job's models (or the role's trust policy).
    Policy(PolicyArgs),
    /// Serve a local Bedrock Runtime + STS + IMDSv2 + S3 + batch-job emulator on 127.0.0.1.
    Emulator(EmulatorArgs),
    /// Print the prices a run would use (USD per million tokens) and where they come from.
    Prices(PricesArgs),
    /// Write an output directory's HTML report (or compare two runs with --compare).
    Report(ReportArgs),
    /// Write an output directory as one table in input order: each input row's
    /// columns with its status, answer, tokens and error.
    Export(ExportArgs),
    /// Send a job through Bedrock Batch Inference (half the on-demand price,
    /// outside the on-demand quota, answers within the job timeout): the
    /// same config and flags as `run`, plus `[batch]`.
    Submit(SubmitArgs),
    /// Wait for a submitted job's Bedrock jobs and write their rows into the
    /// output directory (the morning half of `submit --no-wait`).
    Collect(CollectArgs),
}

/// Flags of `bedrock-batch submit`: `run`'s, plus the batch engine's own.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// S3 prefix for the records and outputs (overrides `[batch] s3_uri`).
    #[arg(long, value_name = "S3_URI")]
    pub s3_uri: Option<String>,
    /// Service role Bedrock assumes to read and write S3 (overrides `[batch] role_arn`).
    #[arg(long, value_name = "ARN")]
    pub service_role_arn: Option<String>,
    /// Return once the jobs are created; `bedrock-batch collect OUTPUT_DIR` picks up later.
    #[arg(long)]
    pub no_wait: bool,
    /// Stop the job's Bedrock jobs (records they never ran stay unfinished).
    #[arg(long, conflicts_with = "no_wait")]
    pub stop: bool,
    /// `on-demand`: send the rows of a model below Bedrock's minimum records per job through `run`.
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub fallback: Option<OnDemand>,
    /// `on-demand`: once the jobs have ended, send the records they never ran through `run`.
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub replay: Option<OnDemand>,
}

/// Flags of `bedrock-batch collect`.
#[derive(Debug, Clone, clap::Args)]
pub struct CollectArgs {
    /// The output directory `submit` wrote (holding batch/state.json).
    #[arg(value_name = "OUTPUT_DIR")]
    pub dir: PathBuf,
    /// Collect what has ended and return, instead of waiting for every job.
    #[arg(long)]
    pub no_wait: bool,
    /// `on-demand`: once the jobs have ended, send the records they never ran through `run`.
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub replay: Option<OnDemand>,
}

/// The other engine, for rows batch inference did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnDemand {
    OnDemand,
}

/// Flags of `bedrock-batch prices`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PricesArgs {
    /// Job file whose `[prices."MODEL-ID"]` entries to include (default: ./config.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show the price for this model id, profile id or ARN only; repeat for several.
    #[arg(long, value_name = "ID")]
    pub model: Vec<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `bedrock-batch report`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReportArgs {
    /// The run's output directory (its `output_dir`).
    #[arg(
        value_name = "OUTPUT_DIR",
        required_unless_present = "compare",
        conflicts_with = "compare"
    )]
    pub dir: Option<PathBuf>,
    /// Where to write the HTML report [default: OUTPUT_DIR/report.html, or
    /// AFTER_DIR/compare.html with --compare].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Compare two runs of the same inputs and print what changed.
    #[arg(long, num_args = 2, value_names = ["BEFORE_DIR", "AFTER_DIR"])]
    pub compare: Option<Vec<PathBuf>>,
    /// With --compare: exit 4 when a success or scorer pass rate dropped by more than --threshold.
    #[arg(long, requires = "compare")]
    pub fail_on_regression: bool,
    /// Percentage points a rate may drop before it counts as a regression.
    #[arg(
        long,
        value_name = "POINTS",
        default_value_t = 1.0,
        requires = "compare"
    )]
    pub threshold: f64,
}

/// Flags of `bedrock-batch export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The job's output directory (holding manifest.json, results.jsonl, failures.jsonl).
    #[arg(value_name = "OUTPUT_DIR")]
    pub dir: PathBuf,
    /// `csv` or `jsonl` (default: from the -o file's extension, else csv).
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Row order. `input`: the order of the input files (the output files
    /// themselves are in completion order).
    #[arg(long, value_enum, default_value = "input")]
    pub order: ExportOrder,
    /// Write here instead of stdout (replaced whole at the end, owner-only permissions).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportOrder {
    Input,
}

/// Flags of `bedrock-batch emulator`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Port to listen on (127.0.0.1 only); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Request quota per minute (like a Bedrock "requests per minute" quota); unset = unlimited.
    #[arg(long)]
    pub rpm: Option<u64>,
    /// Token quota per minute (input + maxTokens reserved at start, unused part given back).
    #[arg(long)]
    pub tpm: Option<u64>,
    /// Seconds of quota that may be spent at once (bucket size = rate × burst).
    #[arg(long, default_value_t = 5.0)]
    pub burst_secs: f64,
    /// Added latency for every model call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of model calls answered with a transient fault (429/500/503/408 mixed).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Fraction of model calls whose connection is dropped without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Accept only credentials issued by this emulator (AssumeRole or IMDS), with their session token.
    #[arg(long)]
    pub require_assumed_role: bool,
    /// Lifetime of issued credentials, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub credential_ttl: u64,
    /// Seed for the fault injector (same seed, same faults for the same request order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Answer AssumeRole with 403 AccessDenied (a trust policy that excludes the caller).
    #[arg(long)]
    pub deny_assume_role: bool,
    /// Model id or id prefix (e.g. `apac.`) answered with 403 AccessDeniedException; repeatable.
    #[arg(long = "deny-model", value_name = "PREFIX")]
    pub deny_models: Vec<String>,
    /// Answer any model id; by default unknown ids are refused as Bedrock refuses them
    /// (ValidationException: The provided model identifier is invalid.).
    #[arg(long)]
    pub any_model: bool,
    /// Request records kept for `/__requests`; later requests are only counted.
    #[arg(long, default_value_t = 20_000)]
    pub max_records: usize,
    /// A model's own request quota, `MODEL-ID=RPM` (Bedrock's quotas are per
    /// model): its calls are admitted against it instead of --rpm; repeatable.
    #[arg(long = "model-rpm", value_name = "MODEL=RPM", value_parser = model_rpm)]
    pub model_rpm: Vec<(String, u64)>,
    /// Refuse a service tier with ValidationException: `TIER`, or `MODEL-PREFIX=TIER`; repeatable.
    #[arg(long = "refuse-tier", value_name = "SPEC")]
    pub refuse_tiers: Vec<String>,
    /// Flex-tier calls take this many times --latency-ms (plus 20 ms).
    #[arg(long, default_value_t = 3.0)]
    pub flex_latency_factor: f64,
    /// Lifetime of a prompt-cache entry after its last use, in seconds.
    #[arg(long, default_value_t = 300)]
    pub cache_ttl_secs: u64,
    /// Batch Inference: time a job spends queued (Submitted → InProgress), in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub batch_queue_ms: u64,
    /// Batch Inference: processing time of one record, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub batch_record_ms: u64,
    /// Batch Inference: fewest records a job may have (AWS: 100).
    #[arg(long, default_value_t = 100)]
    pub batch_min_records: usize,
    /// Batch Inference: jobs per model submitted or in progress at once (AWS: 20).
    #[arg(long, default_value_t = 20)]
    pub batch_max_jobs: usize,
    /// Batch Inference: how long one hour of a job's timeout lasts, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub batch_hour_secs: u64,
    /// Directory S3 serves, one subdirectory per bucket (created if missing; kept after the
    /// emulator stops). Default: a temporary directory removed on exit.
    #[arg(long, value_name = "DIR")]
    pub s3_dir: Option<std::path::PathBuf>,
}

/// Flags of `bedrock-batch run`. Each overrides the same key in the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Job file (default: ./config.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Input file (.csv, .jsonl or .ndjson) or S3 object (s3://BUCKET/KEY.csv); repeat for several.
    #[arg(long, value_name = "FILE")]
    pub input: Vec<PathBuf>,
    /// Directory for results.jsonl, failures.jsonl, summary.json and the manifest.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Copy results.jsonl, failures.jsonl, summary.json and report.html to this
    /// S3 prefix (s3://BUCKET/PREFIX/) at the end of the run.
    #[arg(long, value_name = "S3_URI")]
    pub upload: Option<String>,
    /// Model id, inference-profile id (apac.…, us.…, global.…) or ARN;
    /// repeat for a matrix (every row to every model; replaces `models`).
    #[arg(long, value_name = "ID")]
    pub model: Vec<String>,
    /// Answers asked of each model per row (default 1).
    #[arg(long, value_name = "N")]
    pub samples: Option<u32>,
    /// `converse` (any model) or `invoke` (the model's native body).
    #[arg(long, value_enum)]
    pub api: Option<crate::bedrock::request::Api>,
    /// Most requests in flight at once.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Request quota per minute to stay under.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u32>,
    /// Token quota per minute to stay under (input + max_tokens reserved per request).
    #[arg(long, value_name = "N")]
    pub tpm: Option<u32>,
    /// Most output tokens per answer.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 1.
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Nucleus sampling, 0 to 1.
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Column holding each row's id (default `id`).
    #[arg(long, value_name = "NAME")]
    pub id_column: Option<String>,
    /// Column holding each row's prompt (default `prompt`).
    #[arg(long, value_name = "NAME")]
    pub prompt_column: Option<String>,
    /// A minijinja template rendered with each row's columns (`@FILE` reads it from a file).
    #[arg(long, value_name = "TEXT|@FILE")]
    pub template: Option<String>,
    /// System prompt for every row (`@FILE` reads it from a file).
    #[arg(long, value_name = "TEXT|@FILE")]
    pub system: Option<String>,
    /// Attempts per row before it is written to failures.jsonl.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Time limit for one attempt, in seconds.
    #[arg(long, value_name = "SECS")]
    pub request_timeout_secs: Option<u64>,
    /// After Ctrl-C/SIGTERM, how long in-flight calls may finish, in seconds.
    #[arg(long, value_name = "SECS")]
    pub grace_period_secs: Option<u64>,
    /// AWS profile (otherwise AWS_PROFILE or the default chain).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region (otherwise AWS_REGION or the profile's region).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Assume this role on top of the credentials the chain finds.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// External id for --role-arn.
    #[arg(long, value_name = "ID", requires = "role_arn")]
    pub external_id: Option<String>,
    /// Session name for --role-arn.
    #[arg(long, value_name = "NAME", requires = "role_arn")]
    pub session_name: Option<String>,
    /// Start over: move the output directory's files aside (never deleted).
    #[arg(long)]
    pub fresh: bool,
    /// Send the rows in failures.jsonl again; optionally only these kinds (comma-separated).
    #[arg(long, value_name = "KINDS", num_args = 0..=1, default_missing_value = "all")]
    pub retry_failures: Option<String>,
    /// A done row whose request changed since (an edited prompt): refuse
    /// (default: exit 2 naming them), resend (old line to superseded.jsonl) or keep.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub on_changed: Option<crate::config::OnChanged>,
    /// Run even if ids repeat: a later duplicate gets a suffixed id (`ID#2`).
    #[arg(long)]
    pub allow_duplicate_ids: bool,
    /// Write each row's rendered prompt (or messages) into its results line.
    #[arg(long)]
    pub include_prompt: bool,
    /// Send through ConverseStream; results gain `ttft_ms` and `output_tokens_per_sec`.
    #[arg(long)]
    pub stream: bool,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Bedrock service tier for every row (a row's `service_tier` column overrides it).
    #[arg(long, value_enum, value_name = "TIER")]
    pub service_tier: Option<crate::bedrock::request::ServiceTier>,
    /// Put a prompt-cache point after the system prompt (Converse).
    #[arg(long)]
    pub cache_system: bool,
    /// Most the whole job may spend, in US dollars, across resumes; the run stops before passing it.
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// Estimate rows, tokens, cost and time without sending a model call; writes dry-run.json.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: send N rows for real first and learn from their usage.
    #[arg(long, value_name = "N")]
    pub pilot: Option<u64>,
    /// With --dry-run: count input tokens with Bedrock's CountTokens API (free, one call per row).
    #[arg(long)]
    pub count_tokens: bool,
}

/// Flags of `bedrock-batch demo`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DemoArgs {
    /// Where the demo writes its files (replaced on every demo run).
    #[arg(long, value_name = "DIR", default_value = "out/demo")]
    pub output_dir: PathBuf,
    /// Latency of the emulated model, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 150)]
    pub latency_ms: u64,
}

/// Flags of `bedrock-batch whoami`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WhoamiArgs {
    /// AWS profile (otherwise AWS_PROFILE or the default chain).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Assume this role on top of the chain's credentials, as `run --role-arn` would.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// External id for --role-arn.
    #[arg(long, value_name = "ID", requires = "role_arn")]
    pub external_id: Option<String>,
    /// Session name for --role-arn.
    #[arg(long, value_name = "NAME", requires = "role_arn")]
    pub session_name: Option<String>,
    /// AWS region (otherwise AWS_REGION or the profile's region).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `bedrock-batch policy`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// Job file whose model and region to cover (default: ./config.toml when no --model).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model id, inference-profile id or ARN to allow; repeat for several.
    #[arg(long, value_name = "ID")]
    pub model: Vec<String>,
    /// Region the job calls Bedrock in.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Account id for inference-profile ARNs (default `*`).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Print the role's trust policy (EC2 + the developer user) instead.
    #[arg(long)]
    pub trust: bool,
    /// IAM user ARN allowed to assume the role, with --trust; repeat for several.
    #[arg(long, value_name = "ARN", requires = "trust")]
    pub user_arn: Vec<String>,
    /// Print what `submit` needs too: the caller's extra permissions, the
    /// service role's trust policy and its permissions (from `[batch]`).
    #[arg(long, conflicts_with = "trust")]
    pub batch: bool,
}

/// `MODEL-ID=RPM` for `emulator --model-rpm`.
fn model_rpm(spec: &str) -> Result<(String, u64), String> {
    let (model, rpm) = spec
        .rsplit_once('=')
        .ok_or_else(|| format!("`{spec}` is not MODEL-ID=RPM"))?;
    match rpm.parse::<u64>() {
        Ok(n) if n > 0 && !model.is_empty() => Ok((model.to_string(), n)),
        _ => Err(format!(
            "`{spec}` is not MODEL-ID=RPM (RPM a whole number above 0)"
        )),
    }
}
