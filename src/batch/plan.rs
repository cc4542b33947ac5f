//! `submit`'s pass over the inputs: the same one `run` makes (the row stream
//! with final ids, duplicate ids refused by the inventory, answered ids
//! skipped, bad rows written as input failures), ending in record files
//! split into parts instead of calls.
//!
//! Two reads of the inputs: the first counts the records each model will
//! get, so the splitter can share them evenly (`split.rs`) and a model below
//! Bedrock's minimum is known before anything is written; the second writes.
//! Rows of a model below the minimum are left out of every part and counted.

use crate::input::matrix::{unit_key, FIRST_SAMPLE};
use std::collections::BTreeMap;
use std::path::Path;

use super::records::{self, Mapped, RecordIds};
use super::settings::BatchSettings;
use super::split::{Splitter, Written};
use crate::config::Settings;
use crate::input::inventory;
use crate::input::job::Columns;
use crate::input::reader::Item;
use crate::input::rows::{Repeated, Rows};
use crate::input::template::Template;
use crate::output::checkpoint::IdSet;
use crate::output::fs::{open_append, write_line};
use crate::output::sink::FAILURES;

/// What the pass found and wrote.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    pub(crate) parts: Vec<Written>,
    /// Rows of models with fewer records than the minimum, per model.
    pub(crate) below_minimum: BTreeMap<String, u64>,
    /// Bad rows written to failures.jsonl now.
    pub(crate) input_failures: u64,
    /// Rows already answered (skipped).
    pub(crate) skipped: u64,
}

pub(crate) fn plan(
    settings: &Settings,
    batch: &BatchSettings,
    template: Option<&Template>,
    done: &IdSet,
    repeated: &Repeated,
    first_index: u32,
) -> anyhow::Result<Planned> {
    let columns = Columns::new(settings, template);
    // `submit` refuses a matrix (batch/jobs.rs): one model, one sample.
    let first_model = settings.models[0].as_str();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for row in Rows::new(inventory::spec(settings, template), Some(repeated)) {
        let row = row?;
        if let Item::Record(r) = row.item {
            if let Ok(job) = columns.job(r, row.id, first_model) {
                if !done.contains(&unit_key(&job.id, &job.request.model, FIRST_SAMPLE)) {
                    *counts.entry(job.request.model).or_default() += 1;
                }
            }
        }
    }
    let mut planned = Planned::default();
    for (model, &n) in &counts {
        if n < batch.limits.min_records {
            planned.below_minimum.insert(model.clone(), n);
        }
    }
    counts.retain(|m, _| !planned.below_minimum.contains_key(m));

    let mut failures = open_append(&settings.output_dir.join(FAILURES))?;
    let mut splitter = Splitter::new(&settings.output_dir, batch.limits, &counts, first_index);
    let mut ids: BTreeMap<String, RecordIds> = BTreeMap::new();
    for row in Rows::new(inventory::spec(settings, template), Some(repeated)) {
        let row = row?;
        let job = match row.item {
            Item::Bad(bad) => Err(Box::new(columns.failure(bad, row.id, first_model))),
            Item::Record(r) => columns.job(r, row.id, first_model),
        };
        // The done set holds units (id, model, sample); batch sends sample 1.
        let (id, model) = match &job {
            Ok(j) => (&j.id, &j.request.model),
            Err(f) => (&f.id, &f.model),
        };
        if done.contains(&unit_key(id, model, FIRST_SAMPLE)) {
            planned.skipped += 1;
            continue;
        }
        let job = match job {
            Ok(job) => job,
            Err(f) => {
                write_line(&mut failures, &f)?;
                planned.input_failures += 1;
                continue;
            }
        };
        if !counts.contains_key(&job.request.model) {
            continue;
        }
        let record_id = ids
            .entry(job.request.model.clone())
            .or_default()
            .next(&job.id);
        let line = serde_json::to_vec(&records::record(&job, &record_id, batch.converse))?;
        let prompt = settings.include_prompt.then(|| prompt_of(&job));
        let mapped = Mapped {
            record_id,
            id: job.id,
            model: job.request.model,
            source: job.source,
            meta: job.meta,
            fingerprint: job.fingerprint,
            prompt,
        };
        splitter.push(&mapped, &line)?;
    }
    failures.sync_all()?;
    planned.parts = splitter.finish()?;
    Ok(planned)
}

/// The prompt as `run` writes it with `include_prompt`.
fn prompt_of(job: &crate::input::job::Job) -> serde_json::Value {
    match (job.request.messages.as_slice(), &job.body) {
        ([one], _) => serde_json::Value::String(one.text.clone()),
        ([], Some(invoke)) => invoke.body.clone(),
        (turns, _) => serde_json::to_value(turns).unwrap_or_default(),
    }
}

/// The part's local record file.
pub(crate) fn local_file(output_dir: &Path, index: u32, name: &str) -> std::path::PathBuf {
    super::state::part_dir(output_dir, index).join(name)
}
