//! bedrock-batch: run large batches of prompts through Amazon Bedrock, bounded,
//! rate-limited and resumable, under whatever credentials the AWS SDK's default
//! chain finds (an assumed role locally, the instance role on EC2).
//!
//! # Data flow
//!
//! ```text
//! config.rs (flags + config.toml → Settings)
//!     │
//! inventory.rs (open every input, count rows, find duplicate ids)   ── setup errors stop here,
//! checkpoint.rs + manifest.rs (output dir: same job? done ids, torn tails)   before any spend
//! auth.rs (SDK chain → credentials, region, Bedrock client without SDK retries)
//!     │
//! reader.rs → job.rs (+ template.rs)      rows → requests, bad rows → input failures
//!     │  bounded channel
//! runner.rs  [Semaphore permit] [limiter.rs: rpm, tpm, adaptive cut]
//!     │  one task per row: invoker.rs (Converse / InvokeModel + native.rs),
//!     │  classify, backoff.rs retries
//!     ▼  mpsc<Event>
//! sink.rs (the single writer: results.jsonl, failures.jsonl, progress.rs)
//!     │
//! report.rs (Summary → summary.json + the lines a person reads)
//! ```
//!
//! `shutdown.rs` is passed in: the first signal stops intake, the second aborts.
//! `emulator/` is a local Bedrock Runtime + STS + IMDSv2 that the tests, the
//! benchmarks and `demo` talk to through the real SDK.

pub mod bedrock;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cost;
pub mod emulator;
pub mod error;
pub mod input;
pub mod outcome;
pub mod output;
pub mod pipeline;
pub mod shutdown;

pub use config::Settings;
pub use output::summary::Summary;
pub use pipeline::runner::run;
pub use shutdown::Shutdown;
