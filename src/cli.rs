//! Raw command-line flags, exactly as the user typed them.
//!
//! Nothing here does I/O or validation beyond what clap does: `config.rs` turns
//! these into validated `Settings`, and nothing downstream reads `Args`.

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a local Bedrock Runtime + STS + IMDSv2 emulator on 127.0.0.1.
    Emulator(EmulatorArgs),
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
    /// Request records kept for `/__requests`; later requests are only counted.
    #[arg(long, default_value_t = 20_000)]
    pub max_records: usize,
}
