//! `bedrock-batch emulator`: the emulator wing served from the command line.
//!
//! The flags are mapped onto [`EmulatorConfig`] here, so the emulator itself
//! does not depend on the command line.

use std::future::Future;
use std::io;
use std::time::Duration;

use crate::cli::EmulatorArgs;
use crate::emulator::{env_lines, Emulator, EmulatorConfig, InvocationJobConfig};

/// `bedrock-batch emulator`: serves until `shutdown` resolves, printing where and how to
/// reach it first and the final counters last.
pub(crate) async fn run(args: &EmulatorArgs, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let emulator = Emulator::start(config(args)).await?;
    for (model, rpm) in &args.model_rpm {
        emulator.set_model_quota(model, Some(*rpm), None);
    }
    let url = emulator.url();
    println!("bedrock-batch emulator listening on {url}");
    println!("# point an AWS SDK at it:");
    print!("{}", env_lines(&url));
    println!(
        "# S3 (path-style) serves {}",
        emulator.s3().root().display()
    );
    println!("# counters: curl {url}/__stats   records: curl {url}/__requests");
    shutdown.await;
    let stats = serde_json::to_string(&emulator.stats()).unwrap_or_default();
    eprintln!("emulator stopped: {stats}");
    emulator.shutdown().await;
    Ok(())
}

fn config(a: &EmulatorArgs) -> EmulatorConfig {
    EmulatorConfig {
        port: a.port,
        rpm: a.rpm,
        tpm: a.tpm,
        burst_secs: a.burst_secs,
        latency_ms: a.latency_ms,
        fault_rate: a.fault_rate,
        drop_rate: a.drop_rate,
        require_assumed_role: a.require_assumed_role,
        credential_ttl: Duration::from_secs(a.credential_ttl),
        seed: a.seed,
        deny_assume_role: a.deny_assume_role,
        denied_models: a.deny_models.clone(),
        accept_any_model: a.any_model,
        max_records: a.max_records,
        refused_tiers: a.refuse_tiers.clone(),
        flex_latency_factor: a.flex_latency_factor,
        cache_ttl: Duration::from_secs(a.cache_ttl_secs),
        invocation_jobs: InvocationJobConfig {
            queue: Duration::from_millis(a.batch_queue_ms),
            record_time: Duration::from_millis(a.batch_record_ms),
            min_records: a.batch_min_records,
            max_concurrent: a.batch_max_jobs,
            hour: Duration::from_secs(a.batch_hour_secs),
            ..InvocationJobConfig::default()
        },
        s3_dir: a.s3_dir.clone(),
        ..EmulatorConfig::default()
    }
}
