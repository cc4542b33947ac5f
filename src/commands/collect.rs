//! `bedrock-batch collect OUTPUT_DIR`: the morning half of `submit --no-wait`.
//! Resolves the job exactly as its `submit` did (the command line and
//! working directory kept in `batch/state.json`), waits for its Bedrock jobs
//! (or not, with `--no-wait`), writes their rows, and ends like `submit`.

use anyhow::Context;
use clap::Parser;

use crate::batch::jobs::Engine;
use crate::batch::state::State;
use crate::cli::{Args, CollectArgs, Command};
use crate::shutdown::Shutdown;

pub(crate) async fn run(args: CollectArgs) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("collect: {}: no such directory", args.dir.display()))?;
    let state = State::load(&dir)?;
    let Some(inv) = state.invocation else {
        anyhow::bail!(
            "collect: {}: no batch job was submitted here (batch/state.json is missing); run `bedrock-batch submit` first",
            dir.display()
        );
    };
    // The job's relative paths are the submit's.
    std::env::set_current_dir(&inv.cwd).with_context(|| {
        format!(
            "collect: {}: cannot enter submit's working directory",
            inv.cwd.display()
        )
    })?;
    let parsed = Args::try_parse_from(&inv.argv).map_err(|e| {
        anyhow::anyhow!(
            "collect: batch/state.json: submit's command line no longer parses: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    let Command::Submit(submit) = parsed.command else {
        anyhow::bail!("collect: batch/state.json: the recorded command is not a submit");
    };
    let (mut settings, batch) = super::submit::resolve(&submit, std::io::stderr().is_terminal())?;
    settings.output_dir = dir;
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals()?;
    let sdk = super::submit::connect(&settings).await?;
    let mut engine = Engine::open(settings, batch, &sdk).await?;
    engine.follow(!args.no_wait, &shutdown).await?;
    // The recorded submit's `--fallback on-demand` holds here too: with
    // `--no-wait`, collect is where its jobs end.
    let on_demand =
        args.replay.is_some() || submit.fallback == Some(crate::cli::OnDemand::OnDemand);
    super::submit::finish(engine, on_demand, shutdown).await
}
