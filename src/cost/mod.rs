//! Money: what tokens cost (`price.rs`), what a run has spent (`spend.rs`),
//! the cap a run may not pass (`budget.rs`) and what a job will cost before
//! it runs (`estimate.rs`, `dry_run.rs`).
//!
//! Nothing here sends a model call; `dry_run.rs` drives the ordinary runner
//! for a pilot and `CountTokens` for exact input counts.

pub(crate) mod budget;
pub(crate) mod dry_run;
pub(crate) mod estimate;
pub(crate) mod meter;
pub mod price;
pub mod settings;
pub mod spend;

use std::sync::Arc;

use crate::config::Settings;
use crate::cost::budget::Budget;
use crate::cost::spend::Spend;
use crate::output::earlier::Paid;

/// What a run starts from: its budget (with `max_cost`; refused before
/// anything is sent when it cannot hold) and what earlier runs into the
/// output directory paid (`paid`, from the checkpoint's read of it).
pub(crate) fn start(
    settings: &Settings,
    paid: &Paid,
) -> anyhow::Result<(Option<Arc<Budget>>, Spend)> {
    let budget = budget::preflight(settings, paid)?.map(Arc::new);
    let earlier = match &budget {
        Some(b) => b.spent(),
        // Without a cap, unpriced earlier rows are simply not in the total.
        None => paid.priced(&settings.cost.prices).0,
    };
    Ok((budget, Spend::starting_at(earlier, settings.cost.max_cost)))
}
