//! bedrock-batch: run large batches of prompts through Amazon Bedrock, bounded,
//! rate-limited and resumable, under whatever credentials the AWS SDK's default
//! chain finds (an assumed role locally, the instance role on EC2).
//!
//! # Data flow
//!
//! The folders follow a row through the run; `pipeline/runner.rs` is the one
//! place that joins the stages.
//!
//! ```text
//! config.rs (flags + config.toml → Settings)
//!     │
//! input/      inventory.rs (every input once: counts, duplicate ids)     ── setup errors stop here,
//! output/     lock.rs (one run per output dir: flock, held to the end)      before any spend
//!             checkpoint.rs + manifest.rs (same job? done ids, torn tails)
//!             earlier.rs (one read of the files: done units, counts, what was paid)
//!             changed.rs (done rows whose request fingerprint changed: refuse/resend/keep)
//! bedrock/    auth.rs (SDK chain → credentials, region, client without SDK retries)
//! cost/       budget.rs (max_cost: every model priced? what earlier runs paid, priced)
//!     │
//! input/      reader.rs (+ scanner.rs: CSV in bounded memory; s3.rs: s3:// objects streamed)
//!             → rows.rs (one row stream: every row with its final id)
//!             → matrix.rs (which (model, sample) units a row stands for)
//!             → job.rs (+ template.rs, fingerprint.rs): units → requests, bad rows → input failures
//!     │  bounded channel (one reader thread per model)
//! pipeline/   runner.rs + lane.rs: one intake per model [cost/meter.rs: budget]
//!             [the model's permit] [the model's limiter.rs: rpm, tpm, adaptive]
//!     │  one task per row: bedrock/invoker.rs (Converse / InvokeModel + native.rs),
//!     │  classify, backoff.rs retries, cost/meter.rs prices each answer,
//!     │  eval/ (schema.rs: parse + validate, asked again if invalid; score.rs)
//!     ▼  mpsc<Event>
//! output/     sink.rs (the single writer: results.jsonl, failures.jsonl, progress.rs,
//!             the counts, cost/spend.rs) → summary.rs (summary.json + the lines a person reads)
//!     │
//! report/     the output directory read back: report.html and the per-model
//!             table after every run; `report OUTPUT_DIR` and `--compare` too
//! output/     upload.rs (`--upload`: the output files copied to S3 at the end)
//! ```
//!
//! `batch/` is the second engine (`submit`, `collect`): the same row stream
//! and output files, with Bedrock Batch Inference jobs instead of calls.
//!
//! Around it: `shutdown.rs` is passed in (the first signal stops intake, the
//! second aborts); `commands/` turns each subcommand into an exit code (`run`,
//! `demo`, `whoami`, `policy`, `prices`, `emulator`, `report`); `cost/` holds
//! prices, the budget and `--dry-run` (which reuses the runner's reader and,
//! for a pilot, the runner itself); `emulator/` is a wing of its own, a
//! local Bedrock Runtime + STS + IMDSv2 + S3 that the tests, the benchmarks and
//! `demo` talk to through the real SDK. `error.rs` says how errors are told.

pub mod batch;
pub mod bedrock;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cost;
pub mod emulator;
pub mod error;
pub mod eval;
pub(crate) mod input;
pub(crate) mod outcome;
pub mod output;
pub(crate) mod path;
pub(crate) mod pipeline;
pub(crate) mod report;
pub mod shutdown;
pub mod time;

pub use config::Settings;
pub use output::summary::Summary;
pub use pipeline::runner::run;
pub use shutdown::Shutdown;
