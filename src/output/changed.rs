//! Rows edited since they were answered: a resume goes by id, so without
//! this a prompt fixed in the input after a run would be skipped and its old
//! answer kept without a word.
//!
//! Before anything is sent, a resume reads the inputs once more and, for
//! each id already done, compares the fingerprint of the request it would
//! send now (`input/fingerprint.rs`) with the one its line recorded. An
//! input error recorded no request: a row that was unusable and now builds
//! counts as changed too. Lines written before fingerprints existed are
//! never reported (nothing to compare). Then `on_changed` decides:
//! `refuse` stops the run (exit 2) naming the first rows, `resend` moves
//! their old lines to superseded.jsonl so they are sent again, `keep` warns
//! and keeps the old answers.
//!
//! Not here: how the done set is collected (`checkpoint.rs`), how ids are
//! given (`input/job.rs`); this pass gives them the same way the runner does.

use std::collections::HashMap;

use crate::config::{OnChanged, Settings};
use crate::error::SetupError;
use crate::input::inventory::Inventory;
use crate::input::job::{stand_in_id, Builder};
use crate::input::reader::{Item, RowReader};
use crate::input::template::Template;
use crate::outcome::Source;
use crate::output::checkpoint::{self, id_hash, IdSet, Recorded};

/// Changed rows named in the refusal.
const SHOW: usize = 5;

/// The done rows whose request changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// How many.
    pub count: u64,
    /// The first few, with where they are now.
    pub first: Vec<(String, Source)>,
    /// Every one, by id hash, sorted.
    pub hashes: Vec<u128>,
}

/// Applies `settings.on_changed` to the rows of `done` whose request
/// changed. Returns the done set the run should skip, and a note for the
/// person running it when there is one.
pub fn settle(
    settings: &Settings,
    template: Option<&Template>,
    inventory: &Inventory,
    done: IdSet,
) -> Result<(IdSet, Option<String>), SetupError> {
    if done.is_empty() {
        return Ok((done, None));
    }
    let changes = find(settings, template, inventory, &done)?;
    if changes.count == 0 {
        return Ok((done, None));
    }
    let n = changes.count;
    match settings.on_changed {
        OnChanged::Refuse => Err(SetupError::Config(format!(
            "{}: {n} row(s) changed since they were answered: {}; pass --on-changed resend to send them again (their old lines move to {}) or --on-changed keep to keep the old answers",
            settings.output_dir.display(),
            listed(&changes),
            checkpoint::SUPERSEDED,
        ))),
        OnChanged::Keep => Ok((
            done,
            Some(format!(
                "{n} row(s) changed since they were answered ({}); kept their old answers (on_changed = keep)",
                listed(&changes)
            )),
        )),
        OnChanged::Resend => {
            let moved = checkpoint::supersede(&settings.output_dir, &changes.hashes)
                .map_err(|e| SetupError::OutputDir(format!("{e:#}")))?;
            Ok((
                done.without(&changes.hashes),
                Some(format!(
                    "{n} row(s) changed since they were answered ({}); sending them again, {moved} old line(s) moved to {}",
                    listed(&changes),
                    checkpoint::SUPERSEDED
                )),
            ))
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

/// Reads the inputs and compares every done row's request with its record.
pub fn find(
    settings: &Settings,
    template: Option<&Template>,
    inventory: &Inventory,
    done: &IdSet,
) -> Result<Changes, SetupError> {
    let builder = Builder::new(settings, template);
    let mut changes = Changes::default();
    let mut seen: HashMap<u128, u32> = HashMap::new();
    for path in &settings.inputs {
        let mut reader = RowReader::open(path, settings.max_row_bytes)?;
        while let Some(item) = reader.next_item()? {
            let (fields, source) = match &item {
                Item::Record(r) => (&r.fields, &r.source),
                Item::Bad(b) => (&b.fields, &b.source),
            };
            // As the runner gives ids: a stand-in for a row without one, a
            // suffix for a repeated one.
            let named = builder.id_of(fields, source);
            let mut id = match &named {
                Ok(id) => id.clone(),
                Err(_) => stand_in_id(source),
            };
            let h = id_hash(&id);
            if inventory.repeated.contains_key(&h) {
                let n = seen.entry(h).or_insert(0);
                *n += 1;
                if *n > 1 {
                    id = format!("{id}#{n}");
                }
            }
            let Some(was) = done.recorded(&id) else {
                continue;
            };
            if was == Recorded::Unknown {
                continue;
            }
            let source = source.clone();
            let now = match (item, named) {
                (Item::Record(r), Ok(_)) => match builder.build(r, id.clone()) {
                    Ok(job) => Recorded::of_line(Some(&job.fingerprint), false),
                    Err(_) => Recorded::NotSent,
                },
                _ => Recorded::NotSent,
            };
            if !was.same_as(now) {
                changes.count += 1;
                changes.hashes.push(id_hash(&id));
                if changes.first.len() < SHOW {
                    changes.first.push((id, source));
                }
            }
        }
    }
    changes.hashes.sort_unstable();
    Ok(changes)
}
