//! `bedrock-batch demo`: the sample job end to end with no AWS account.
//!
//! Starts the emulator in-process in assumed-role-only mode, writes a
//! temporary AWS config exactly like the IAM guide's (`[default]` keys, a
//! `bedrock-app-dev` profile with `role_arn` + `source_profile`), points the
//! SDK at the emulator with the standard `AWS_ENDPOINT_URL_*` variables, and
//! runs `config.toml`'s job through the real credential chain: AssumeRole
//! first, then every Bedrock call signed with the issued session credentials.

use std::path::Path;

use anyhow::Context;

use crate::cli::{DemoArgs, RunArgs, WhoamiArgs};
use crate::config::{ResumeMode, Settings};
use crate::emulator::{Emulator, EmulatorConfig, STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY};
use crate::output::summary::Summary;
use crate::shutdown::Shutdown;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/BedrockExecutionRole";

/// What the demo sets up before the async runtime starts: the emulator's
/// socket and a temporary AWS configuration, with the environment pointing the
/// SDK at both. The environment is process-global and unsafe to change while
/// other threads may read it, so `main` calls this before any thread exists;
/// the SDK then finds everything the way it would in a user's shell.
pub struct Stage {
    listener: std::net::TcpListener,
    /// Holds the AWS config files for as long as the demo runs.
    _home: tempfile::TempDir,
}

pub fn stage() -> anyhow::Result<Stage> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .context("cannot listen on 127.0.0.1 for the emulator")?;
    let url = format!("http://{}", listener.local_addr()?);
    let home = tempfile::tempdir().context("cannot create a temporary AWS config directory")?;
    write_aws_files(home.path())?;
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        std::env::remove_var(key);
    }
    std::env::set_var("AWS_CONFIG_FILE", home.path().join("config"));
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        home.path().join("credentials"),
    );
    std::env::set_var("AWS_PROFILE", "bedrock-app-dev");
    std::env::set_var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &url);
    std::env::set_var("AWS_ENDPOINT_URL_STS", &url);
    std::env::set_var("AWS_ENDPOINT_URL_S3", &url);
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    Ok(Stage {
        listener,
        _home: home,
    })
}

pub(crate) async fn run(
    args: &DemoArgs,
    stage: Stage,
    shutdown: Shutdown,
    progress_bar: bool,
) -> anyhow::Result<Summary> {
    let Stage { listener, _home } = stage;
    let emulator = Emulator::start_on(
        listener,
        EmulatorConfig {
            require_assumed_role: true,
            latency_ms: args.latency_ms,
            static_keys: vec![(STATIC_ACCESS_KEY_ID.into(), STATIC_SECRET_ACCESS_KEY.into())],
            verify_signatures: true,
            ..EmulatorConfig::default()
        },
    )
    .context("cannot start the emulator on 127.0.0.1")?;
    let url = emulator.url();

    eprintln!("demo: emulated Bedrock + STS at {url} (accepts only assumed-role credentials)");
    eprintln!("demo: AWS_PROFILE=bedrock-app-dev → role_arn {ROLE_ARN}, source_profile default");

    let who = crate::commands::whoami::run(&WhoamiArgs::default()).await?;
    eprintln!("demo: whoami → {} ({})", who.arn, who.credential_source);

    let config = Path::new(crate::config::DEFAULT_CONFIG);
    let run_args = RunArgs {
        config: config.exists().then(|| config.to_path_buf()),
        output_dir: Some(args.output_dir.clone()),
        ..RunArgs::default()
    };
    let mut settings = Settings::resolve(&run_args, progress_bar).with_context(|| {
        "the demo runs ./config.toml's job: run it from the project's top directory"
    })?;
    // The demo's own directory: start over every time.
    settings.resume = ResumeMode::Fresh;
    if args.output_dir.exists() {
        std::fs::remove_dir_all(&args.output_dir)
            .with_context(|| format!("{}: cannot clear", args.output_dir.display()))?;
    }
    let summary = crate::run(settings, shutdown).await?;

    let stats = emulator.stats();
    let role_keys: Vec<&String> = stats
        .per_access_key
        .keys()
        .filter(|k| k.starts_with("ASIA"))
        .collect();
    eprintln!(
        "demo: the emulator saw {} AssumeRole call(s) signed by the source profile's static key (one for whoami, one for the run), and {} Bedrock call(s), all signed by the {} distinct session key(s) AssumeRole issued",
        stats.assume_role,
        stats.requests,
        role_keys.len()
    );
    if let Some(first) = first_result(&args.output_dir) {
        eprintln!("demo: first result: {first}");
    }
    emulator.shutdown().await;
    Ok(summary)
}

fn write_aws_files(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("credentials"),
        format!(
            "[default]\naws_access_key_id = {STATIC_ACCESS_KEY_ID}\naws_secret_access_key = {STATIC_SECRET_ACCESS_KEY}\n"
        ),
    )?;
    std::fs::write(
        dir.join("config"),
        format!(
            "[default]\nregion = ap-northeast-2\n\n[profile bedrock-app-dev]\nrole_arn = {ROLE_ARN}\nsource_profile = default\nregion = ap-northeast-2\n"
        ),
    )?;
    Ok(())
}

fn first_result(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(crate::output::sink::RESULTS)).ok()?;
    Some(crate::error::clip(text.lines().next()?, 300))
}
