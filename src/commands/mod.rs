//! Each subcommand, from parsed flags to an exit code.

pub mod demo;
pub mod policy;
pub mod prices;
pub mod whoami;

use std::collections::BTreeSet;
use std::io::IsTerminal;

use crate::cli::{Command, PolicyArgs, RunArgs};
use crate::config::{FileConfig, Settings};
use crate::error::{
    SetupError, EXIT_BUDGET, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK, EXIT_SETUP,
    EXIT_TERMINATED,
};
use crate::input::reader::{Item, RowReader};
use crate::output::summary::Summary;
use crate::shutdown::{Shutdown, StopReason};

pub async fn execute(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => {
            let settings = Settings::resolve(&args, std::io::stderr().is_terminal())?;
            let shutdown = Shutdown::new();
            shutdown.listen_for_signals()?;
            if settings.cost.dry_run.is_some() {
                let (_, text) = crate::cost::dry_run::run(settings, shutdown).await?;
                out(&text)?;
                return Ok(EXIT_OK);
            }
            let summary = crate::run(settings, shutdown.clone()).await?;
            out(&summary.render())?;
            Ok(exit_code(&summary, shutdown.reason()))
        }
        Command::Demo(args) => {
            let shutdown = Shutdown::new();
            shutdown.listen_for_signals()?;
            let summary = crate::commands::demo::run(
                &args,
                shutdown.clone(),
                std::io::stderr().is_terminal(),
            )
            .await?;
            out(&summary.render())?;
            Ok(exit_code(&summary, shutdown.reason()))
        }
        Command::Whoami(args) => {
            let id = crate::commands::whoami::run(&args).await?;
            if args.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&id)?))?;
            } else {
                out(&id.render())?;
            }
            Ok(EXIT_OK)
        }
        Command::Policy(args) => {
            out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&policy(&args)?)?
            ))?;
            Ok(EXIT_OK)
        }
        Command::Prices(args) => {
            let listing = crate::commands::prices::run(&args)?;
            if args.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&listing.json)?))?;
            } else {
                out(&listing.text)?;
            }
            // A model asked for by name without a price: say so to scripts too.
            Ok(if listing.all_known { EXIT_OK } else { EXIT_FAILED_ROWS })
        }
        Command::Emulator(args) => {
            crate::emulator::serve_cli(args, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(EXIT_OK)
        }
    }
}

/// The policy document `policy` prints: the trust policy with --trust,
/// otherwise the invoke policy for --model (or the config's model and every
/// per-row `model` in its inputs) in the config's (or --region's) region.
fn policy(args: &PolicyArgs) -> Result<serde_json::Value, SetupError> {
    if args.trust {
        return crate::commands::policy::trust_policy(&args.user_arn)
            .map_err(|e| SetupError::Config(format!("policy: {e}")));
    }
    let path = args.config.clone().or_else(|| {
        let p = std::path::PathBuf::from(crate::config::DEFAULT_CONFIG);
        (args.model.is_empty() && p.exists()).then_some(p)
    });
    let file = match &path {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let models = match &path {
        Some(p) if args.model.is_empty() => {
            let mut models: Vec<String> = file.model.clone().into_iter().collect();
            models.extend(row_models(p)?);
            models
        }
        _ => args.model.clone(),
    };
    let region = args.region.clone().or(file.region).ok_or_else(|| {
        SetupError::Config("policy: no region: pass --region or --config with a `region`".into())
    })?;
    crate::commands::policy::invoke_policy(&models, &region, args.account.as_deref())
        .map_err(|e| SetupError::Config(format!("policy: {e}")))
}

/// Writes to stdout; a closed pipe (`bedrock-batch policy | head`) is not an
/// error: the reader has what it wanted.
fn out(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// 130/143 when stopped by a signal, 3 by the budget, 2 when Bedrock refused
/// the service tier on the first rows, 1 when rows failed, 0 otherwise.
pub fn exit_code(summary: &Summary, stopped: Option<StopReason>) -> u8 {
    match stopped {
        Some(StopReason::Interrupt) => EXIT_INTERRUPTED,
        Some(StopReason::Terminate) => EXIT_TERMINATED,
        None if summary.stopped_by.as_deref() == Some("budget") => EXIT_BUDGET,
        None if summary.stopped_by.as_deref() == Some("service_tier") => EXIT_SETUP,
        None if summary.failed > 0 => EXIT_FAILED_ROWS,
        None => EXIT_OK,
    }
}

/// The distinct per-row `model` values in a job's inputs: a row may name its
/// own model (e.g. an `apac.` profile), and the policy must cover it or those
/// rows fail with AccessDenied. A config without inputs has none.
fn row_models(config: &std::path::Path) -> Result<BTreeSet<String>, SetupError> {
    let run = RunArgs {
        config: Some(config.to_path_buf()),
        ..RunArgs::default()
    };
    // `resolve` finds the inputs exactly as `run` would (relative to the file).
    let Ok(settings) = Settings::resolve(&run, false) else {
        return Ok(BTreeSet::new());
    };
    let mut models = BTreeSet::new();
    for input in &settings.inputs {
        let mut reader = RowReader::open(input, settings.max_row_bytes)?;
        while let Some(item) = reader.next_item()? {
            if let Item::Record(r) = item {
                if let Some(m) = r.fields.get("model").and_then(|v| v.as_str()) {
                    if !m.trim().is_empty() {
                        models.insert(m.trim().to_string());
                    }
                }
            }
        }
    }
    Ok(models)
}
