//! The second engine: Bedrock Batch Inference (`submit` and `collect`).
//!
//! Same inputs, outputs and guarantees as `run`, with jobs instead of calls:
//!
//! ```text
//! input/ (the row stream, as run reads it) ──► plan.rs: answered ids skipped, bad rows → failures.jsonl
//!     records.rs (row → {recordId, modelInput}; odd ids → generated ids, mapping kept)
//!     split.rs (parts and files within Bedrock's limits, shared evenly)
//!     state.rs (batch/state.json: planned → uploaded → created → ended → collected)
//! jobs.rs: store.rs uploads (S3), control.rs creates with a clientRequestToken,
//!          polls with backoff, stops
//! collect.rs: .jsonl.out → results.jsonl / failures.jsonl lines in run's schema ("engine": "batch")
//! ```
//!
//! Records a job never ran stay unfinished; `run` into the same directory
//! (or `--replay on-demand`) sends exactly those, because the checkpoint
//! reads batch rows as it reads run's. It is not a scheduler: `--no-wait`
//! returns after creating the jobs and `collect` picks up later.

pub(crate) mod collect;
pub(crate) mod control;
pub(crate) mod jobs;
pub(crate) mod plan;
pub(crate) mod records;
pub mod settings;
pub(crate) mod split;
pub(crate) mod state;
pub(crate) mod store;
