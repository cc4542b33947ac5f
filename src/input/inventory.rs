//! The pass over the inputs before anything is sent: every file opens, every
//! header has the columns the template needs, how many rows there are (the
//! progress bar's total), and whether any id repeats across the files.
//!
//! Ids are compared by 128-bit hash in one sorted vector (16 bytes a row); only
//! when hashes repeat does a second pass collect the ids and lines to report.

use crate::config::Settings;
use crate::input::rows::{id_hash, Repeated, Row, RowSpec, Rows};
use crate::input::template::Template;
use crate::outcome::Source;

#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub(crate) rows: u64,
    /// Hashes of ids that occur more than once (allowed with --allow-duplicate-ids).
    pub(crate) repeated: Repeated,
}

/// Repeated ids named in the error, at most.
const SHOW: usize = 10;

/// How the job's rows are read and identified, on every pass.
pub(crate) fn spec<'a>(settings: &'a Settings, template: Option<&'a Template>) -> RowSpec<'a> {
    RowSpec {
        inputs: &settings.inputs,
        id_column: &settings.id_column,
        max_row_bytes: settings.max_row_bytes,
        template,
    }
}

pub(crate) fn take(settings: &Settings, template: Option<&Template>) -> anyhow::Result<Inventory> {
    let spec = spec(settings, template);
    let mut hashes = Vec::new();
    let mut rows = Rows::new(spec, None);
    for row in rows.by_ref() {
        hashes.push(id_hash(&row?.id));
    }
    for file in rows.empty_files() {
        tracing::warn!("{file}: no rows");
    }
    let count = hashes.len() as u64;
    hashes.sort_unstable();
    let mut repeated = Repeated::new();
    for w in hashes.windows(2) {
        if w[0] == w[1] {
            *repeated.entry(w[0]).or_insert(1) += 1;
        }
    }
    drop(hashes);
    if !repeated.is_empty() && !settings.allow_duplicate_ids {
        return Err(duplicates_error(spec, &repeated)?);
    }
    Ok(Inventory {
        rows: count,
        repeated,
    })
}

/// Second pass: names the repeated ids and their lines.
fn duplicates_error(spec: RowSpec, repeated: &Repeated) -> anyhow::Result<anyhow::Error> {
    let mut found: Vec<(String, Vec<Source>)> = Vec::new();
    for row in Rows::new(spec, None) {
        let row: Row = row?;
        if repeated.contains_key(&id_hash(&row.id)) {
            let source = row.source().clone();
            if let Some((_, lines)) = found.iter_mut().find(|(i, _)| *i == row.id) {
                lines.push(source);
            } else if found.len() < SHOW {
                found.push((row.id, vec![source]));
            }
        }
    }
    let listed: Vec<String> = found
        .iter()
        .map(|(id, at)| {
            let at: Vec<String> = at.iter().map(|s| s.to_string()).collect();
            format!("`{id}` ({})", at.join(", "))
        })
        .collect();
    let more = repeated.len().saturating_sub(found.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Ok(anyhow::anyhow!(
        "duplicate ids: {}{more}; ids must be unique for resume to know what is done (fix the input, or pass --allow-duplicate-ids to give later rows a suffixed id)",
        listed.join("; ")
    ))
}
