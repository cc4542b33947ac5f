//! Each subcommand, from parsed flags to an exit code.

mod batch_policy;
pub(crate) mod collect;
pub(crate) mod demo;
mod emulator;
pub(crate) mod export;
pub mod policy;
pub(crate) mod prices;
pub(crate) mod report;
mod s3_policy;
pub(crate) mod submit;
pub(crate) mod whoami;

use std::collections::BTreeSet;
use std::io::IsTerminal;

use anyhow::Context;

use crate::cli::{Command, PolicyArgs, RunArgs};
use crate::config::{FileConfig, Settings};
use crate::error::{
    EXIT_BUDGET, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK, EXIT_SETUP, EXIT_TERMINATED,
};
use crate::input::inventory;
use crate::input::reader::Item;
use crate::input::rows::{RowSpec, Rows};
use crate::output::summary::Summary;
use crate::shutdown::{Shutdown, StopReason};

/// What a command needs done before the async runtime (and its threads)
/// exists. Only `demo` needs anything: it sets the process environment.
pub enum Prelude {
    None,
    Demo(demo::Stage),
}

pub fn prelude(command: &Command) -> anyhow::Result<Prelude> {
    Ok(match command {
        Command::Demo(_) => Prelude::Demo(demo::stage()?),
        _ => Prelude::None,
    })
}

pub async fn execute(command: Command, prelude: Prelude) -> anyhow::Result<u8> {
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
            let (dir, since) = (settings.output_dir.clone(), std::time::SystemTime::now());
            let upload = settings.upload.clone().map(|to| (to, settings.auth()));
            let summary = crate::run(settings, shutdown.clone())
                .await
                .inspect_err(|_| crate::report::after_error(&dir, since))?;
            out(&summary.render())?;
            out(&crate::report::after_run(&summary))?;
            if let Some((to, auth)) = upload {
                // After the report, so it goes up too; a failure here exits 2.
                let session = crate::bedrock::auth::connect(&auth).await?;
                let client = crate::input::s3::client(&session.sdk);
                for uri in crate::output::upload::run(&client, &dir, &to).await? {
                    out(&format!("uploaded: {uri}\n"))?;
                }
            }
            Ok(exit_code(&summary, shutdown.reason()))
        }
        Command::Demo(args) => {
            let Prelude::Demo(stage) = prelude else {
                anyhow::bail!("demo: commands::prelude was not called before the runtime started");
            };
            let shutdown = Shutdown::new();
            shutdown.listen_for_signals()?;
            // As for `run`: a run the breaker stopped still gets its report.
            let (dir, since) = (args.output_dir.clone(), std::time::SystemTime::now());
            let summary = demo::run(
                &args,
                stage,
                shutdown.clone(),
                std::io::stderr().is_terminal(),
            )
            .await
            .inspect_err(|_| crate::report::after_error(&dir, since))?;
            out(&summary.render())?;
            out(&crate::report::after_run(&summary))?;
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
                serde_json::to_string_pretty(&policy(&args).await?)?
            ))?;
            Ok(EXIT_OK)
        }
        Command::Prices(args) => {
            let listing = prices::run(&args)?;
            if args.json {
                out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&listing.json)?
                ))?;
            } else {
                out(&listing.text)?;
            }
            // A model asked for by name without a price: say so to scripts too.
            Ok(if listing.all_known {
                EXIT_OK
            } else {
                EXIT_FAILED_ROWS
            })
        }
        Command::Report(args) => {
            let (text, code) = crate::commands::report::run(&args)?;
            out(&text)?;
            Ok(code)
        }
        Command::Export(args) => {
            let n = crate::commands::export::run(&args)?;
            eprintln!(
                "export: {} rows: {} succeeded, {} failed, {} unsent{}",
                n.rows,
                n.succeeded,
                n.failed,
                n.unsent,
                args.output
                    .as_ref()
                    .map(|p| format!(" → {}", p.display()))
                    .unwrap_or_default()
            );
            Ok(EXIT_OK)
        }
        Command::Submit(args) => submit::run(args).await,
        Command::Collect(args) => collect::run(args).await,
        Command::Emulator(args) => {
            emulator::run(&args, async {
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
async fn policy(args: &PolicyArgs) -> anyhow::Result<serde_json::Value> {
    if args.trust {
        if args.user_arn.is_empty() {
            anyhow::bail!(
                "policy --trust: no --user-arn given: pass --user-arn arn:aws:iam::ACCOUNT:user/NAME (repeatable) for each IAM user that may assume the role"
            );
        }
        return policy::trust_policy(&args.user_arn).context("policy");
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
            // Every model of the matrix, then those rows name.
            let mut models: Vec<String> = file.model.clone().into_iter().collect();
            let matrix = match &file.models {
                Some(crate::config::Models::List(ids)) => ids.clone(),
                Some(crate::config::Models::Tables(t)) => t.keys().cloned().collect(),
                None => Vec::new(),
            };
            for m in matrix {
                if !models.contains(&m) {
                    models.push(m);
                }
            }
            let from_rows: Vec<String> = row_models(p)?
                .into_iter()
                .filter(|m| !models.contains(m))
                .collect();
            if !from_rows.is_empty() {
                // Said on stderr, so the policy on stdout stays a clean document.
                eprintln!(
                    "policy: also covering {} model(s) named in the inputs' `model` column: {}",
                    from_rows.len(),
                    from_rows.join(", ")
                );
            }
            models.extend(from_rows);
            models
        }
        _ => args.model.clone(),
    };
    // A mistyped AWS_PROFILE is named here as in `run` and `whoami`.
    crate::bedrock::auth::check_profile(file.profile.as_deref()).await?;
    let region = args
        .region
        .clone()
        .or(file.region)
        .context("policy: no region: pass --region or --config with a `region`")?;
    if args.batch {
        let batch = crate::batch::settings::BatchSettings::resolve(
            file.batch.as_ref(),
            file.api.unwrap_or(crate::bedrock::request::Api::Converse),
            None,
            None,
        )?;
        return batch_policy::batch_policies(&models, &region, args.account.as_deref(), &batch);
    }
    let mut doc =
        policy::invoke_policy(&models, &region, args.account.as_deref()).context("policy")?;
    // A job reading or writing S3 needs that too (only with --config: flags name no inputs).
    if let (Some(p), Some(list)) = (&path, doc["Statement"].as_array_mut()) {
        let inputs = file.inputs.clone().unwrap_or_default();
        let extra = s3_policy::statements(&inputs, file.upload.as_deref())
            .with_context(|| format!("policy: {}", p.display()))?;
        list.extend(extra);
    }
    Ok(doc)
}

/// Writes to stdout; a closed pipe (`bedrock-batch policy | head`) is not an
/// error: the reader has what it wanted.
pub(crate) fn out(text: &str) -> std::io::Result<()> {
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

/// 130/143 when stopped by a signal, 3 by the budget, 2 when the run could
/// not go on (a write error, the breaker, a refused service tier), 1 when
/// rows failed, 0 otherwise.
pub fn exit_code(summary: &Summary, stopped: Option<StopReason>) -> u8 {
    match stopped {
        Some(StopReason::Interrupt) => EXIT_INTERRUPTED,
        Some(StopReason::Terminate) => EXIT_TERMINATED,
        // The run returns the write error itself; this is for completeness.
        Some(StopReason::WriteFailed | StopReason::Breaker | StopReason::ServiceTier) => EXIT_SETUP,
        Some(StopReason::Budget) => EXIT_BUDGET,
        Some(StopReason::Pilot) | None if summary.failed > 0 => EXIT_FAILED_ROWS,
        Some(StopReason::Pilot) => EXIT_OK,
        None if summary.failed > 0 => EXIT_FAILED_ROWS,
        None => EXIT_OK,
    }
}

/// The distinct per-row `model` values in a job's inputs: a row may name its
/// own model (e.g. an `apac.` profile), and the policy must cover it or those
/// rows fail with AccessDenied. A config the run would refuse is an error
/// here too: a policy printed from half a job would miss models.
fn row_models(config: &std::path::Path) -> anyhow::Result<BTreeSet<String>> {
    let run = RunArgs {
        config: Some(config.to_path_buf()),
        ..RunArgs::default()
    };
    // `resolve` finds the inputs exactly as `run` would (relative to the file).
    let mut settings = Settings::resolve(&run, false)?;
    // S3 inputs are not read here: `policy` may run where the job's credentials are not.
    let (remote, local): (Vec<_>, Vec<_>) = settings
        .inputs
        .drain(..)
        .partition(|p| crate::input::s3::is_s3(p));
    settings.inputs = local;
    for p in &remote {
        eprintln!(
            "policy: {} not scanned for a `model` column (S3 inputs are read by `run` only); a model named there must be covered separately",
            p.display()
        );
    }
    let mut models = BTreeSet::new();
    // Only the `model` column matters here, not whether rows have prompts.
    let spec = RowSpec {
        prompt_column: None,
        scorers: &[],
        ..inventory::spec(&settings, None)
    };
    for row in Rows::new(spec, None) {
        if let Item::Record(r) = row?.item {
            if let Some(Ok(m)) = crate::input::matrix::pinned_model(&r.fields, &settings.id_columns)
            {
                models.insert(m.to_string());
            }
        }
    }
    Ok(models)
}
