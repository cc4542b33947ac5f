use clap::Parser;

use bedrock_batch::cli::{Args, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Emulator(a) => {
            bedrock_batch::emulator::serve_cli(a, async {
                // If the handler can't be installed the emulator just runs until killed.
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
