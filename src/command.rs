//! Each subcommand, from parsed flags to an exit code.

use std::io::IsTerminal;

use crate::cli::Command;
use crate::config::Settings;
use crate::error::{EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED};
use crate::report::Summary;
use crate::shutdown::{Shutdown, StopReason};

pub async fn execute(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => {
            let settings = Settings::resolve(&args, std::io::stderr().is_terminal())?;
            let shutdown = Shutdown::new();
            shutdown.listen_for_signals()?;
            let summary = crate::run(settings, shutdown.clone()).await?;
            print!("{}", summary.render());
            Ok(exit_code(&summary, shutdown.reason()))
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

/// 130/143 when stopped by a signal, 1 when rows failed, 0 otherwise.
pub fn exit_code(summary: &Summary, stopped: Option<StopReason>) -> u8 {
    match stopped {
        Some(StopReason::Interrupt) => EXIT_INTERRUPTED,
        Some(StopReason::Terminate) => EXIT_TERMINATED,
        None if summary.failed > 0 => EXIT_FAILED_ROWS,
        None => EXIT_OK,
    }
}
