use std::process::ExitCode;

use clap::Parser;

use bedrock_batch::cli::Args;
use bedrock_batch::error::EXIT_SETUP;

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = args.log.clone().or_else(|| std::env::var("RUST_LOG").ok());
    bedrock_batch::output::progress::init_logging(filter.as_deref());
    let prelude = match bedrock_batch::commands::prelude(&args.command) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    match runtime.block_on(bedrock_batch::commands::execute(args.command, prelude)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Every error that reaches here stopped the run as a whole (rows
            // that fail are data, not errors): setup, input or output trouble.
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}
