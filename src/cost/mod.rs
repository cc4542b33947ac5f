//! Money: what tokens cost (`price.rs`), what a run has spent (`spend.rs`),
//! the cap a run may not pass (`budget.rs`) and what a job will cost before
//! it runs (`estimate.rs`, `dry_run.rs`).
//!
//! Nothing here sends a model call; `dry_run.rs` drives the ordinary runner
//! for a pilot and `CountTokens` for exact input counts.

pub mod price;
pub mod settings;
