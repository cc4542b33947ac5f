//! Rows edited since they were answered: a resume goes by id, so without
//! this a prompt fixed in the input after a run would be skipped and its old
//! answer kept without a word.
//!
//! Before anything is sent, a resume reads the inputs once more and, for
//! each unit (id, model, sample) already done, compares the fingerprint of the request it would
//! send now (`input/fingerprint.rs`) with the one its line recorded. An
//! input error recorded no request: a row that was unusable and now builds
//! counts as changed too. Lines written before fingerprints existed are
//! never reported (nothing to compare). Then `on_changed` decides:
//! `refuse` stops the run (exit 2) naming the first rows, `resend` moves
//! their old lines to superseded.jsonl so they are sent again, `keep` warns
//! and keeps the old answers.
//!
//! Not here: how the done set is collected (`checkpoint.rs`), how ids are
//! given (`input/rows.rs`, the one row stream every pass reads).

use anyhow::Context;

use crate::config::{OnChanged, Settings};
use crate::input::inventory::{self, Inventory};
use crate::input::job::Columns;
use crate::input::matrix::{unit_key, Matrix};
use crate::input::reader::Item;
use crate::input::rows::{id_hash, Rows};
use crate::input::template::Template;
use crate::outcome::Source;
use crate::output::checkpoint::{self, Checkpoint, IdSet, Recorded};

/// Changed rows named in the refusal.
const SHOW: usize = 5;

/// The done rows whose request changed.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// How many.
    pub(crate) count: u64,
    /// The first few, with where they are now.
    pub(crate) first: Vec<(String, Source)>,
    /// Every changed unit, by the hash of its key (`input/matrix.rs`), sorted.
    pub(crate) hashes: Vec<u128>,
}

/// Applies `settings.on_changed` to the units of `cp.done` whose request
/// changed, leaving in `cp` the done set the run should skip and the counts
/// of the lines it keeps. Returns a note for the person running it when
/// there is one. It reads the inputs, never the output files but to rewrite
/// them (`resend`): what they hold came from the checkpoint's one read.
pub(crate) fn settle(
    settings: &Settings,
    template: Option<&Template>,
    inventory: &Inventory,
    cp: &mut Checkpoint,
) -> anyhow::Result<Option<String>> {
    // Nothing to compare: no second pass over the inputs.
    if !cp.done.any_recorded() {
        return Ok(None);
    }
    let changes = find(settings, template, inventory, &cp.done)?;
    if changes.count == 0 {
        return Ok(None);
    }
    let n = changes.count;
    match settings.on_changed {
        OnChanged::Refuse => Err(anyhow::anyhow!(
            "{}: {n} row(s) changed since they were answered: {}; pass --on-changed resend to send them again (their old lines move to {}) or --on-changed keep to keep the old answers",
            settings.output_dir.display(),
            listed(&changes),
            checkpoint::SUPERSEDED,
        )),
        OnChanged::Keep => Ok(Some(format!(
            "{n} row(s) changed since they were answered ({}); kept their old answers (on_changed = keep)",
            listed(&changes)
        ))),
        OnChanged::Resend => {
            let moved = checkpoint::supersede(
                &settings.output_dir,
                &changes.hashes,
                &settings.model,
                &mut cp.earlier,
            )
            .with_context(|| format!("{}: --on-changed resend", settings.output_dir.display()))?;
            cp.done = std::mem::take(&mut cp.done).without(&changes.hashes);
            Ok(Some(format!(
                "{n} row(s) changed since they were answered ({}); sending them again, {moved} old line(s) moved to {}",
                listed(&changes),
                checkpoint::SUPERSEDED
            )))
        }
    }
}

fn listed(changes: &Changes) -> String {
    let mut shown: Vec<String> = changes
        .first
        .iter()
        .map(|(id, at)| format!("`{id}` ({at})"))
        .collect();
    let more = changes.count.saturating_sub(changes.first.len() as u64);
    if more > 0 {
        shown.push(format!("and {more} more"));
    }
    shown.join(", ")
}

/// Reads the inputs and compares every done unit's request with its
/// record: a row counts once, however many of its (model, sample) units
/// changed; every changed unit's line is listed in `hashes`.
pub(crate) fn find(
    settings: &Settings,
    template: Option<&Template>,
    inventory: &Inventory,
    done: &IdSet,
) -> anyhow::Result<Changes> {
    let columns = Columns::new(settings, template);
    let matrix = Matrix::of(settings);
    let mut changes = Changes::default();
    let spec = inventory::spec(settings, template);
    for row in Rows::new(spec, Some(&inventory.repeated)) {
        let row = row?;
        let mut row_changed = false;
        for model in matrix.models_of(&row.item) {
            // The request this model would be sent now, built once for its samples.
            let mut now = None;
            for sample in matrix.samples() {
                let key = unit_key(&row.id, model, sample);
                let Some(was) = done.recorded(&key) else {
                    continue;
                };
                if was == Recorded::Unknown {
                    continue;
                }
                let now = *now.get_or_insert_with(|| match &row.item {
                    Item::Record(r) => match columns.job(r.clone(), row.id.clone(), model) {
                        Ok(job) => Recorded::of_line(Some(&job.fingerprint), false),
                        Err(_) => Recorded::NotSent,
                    },
                    Item::Bad(_) => Recorded::NotSent,
                });
                if !was.same_as(now) {
                    row_changed = true;
                    changes.hashes.push(id_hash(&key));
                }
            }
        }
        if row_changed {
            changes.count += 1;
            if changes.first.len() < SHOW {
                changes.first.push((row.id.clone(), row.source().clone()));
            }
        }
    }
    changes.hashes.sort_unstable();
    Ok(changes)
}
