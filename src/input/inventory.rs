//! The pass over the inputs before anything is sent: every file opens, every
//! header has the columns the template needs, how many rows there are (the
//! progress bar's total), and whether any id repeats across the files.
//!
//! Ids are compared by 128-bit hash in one sorted vector (16 bytes a row); only
//! when hashes repeat does a second pass collect the ids and lines to report.

use std::collections::HashMap;

use crate::config::Settings;
use crate::error::SetupError;
use crate::input::job::{stand_in_id, Builder};
use crate::input::reader::{Item, RowReader};
use crate::input::template::Template;
use crate::outcome::Source;
use crate::output::checkpoint::id_hash;

#[derive(Debug, Default)]
pub struct Inventory {
    pub rows: u64,
    /// Hashes of ids that occur more than once (allowed with --allow-duplicate-ids).
    pub repeated: HashMap<u128, u32>,
}

const SHOW: usize = 10;

pub fn take(settings: &Settings, template: Option<&Template>) -> Result<Inventory, SetupError> {
    let builder = Builder::new(settings, template);
    let mut hashes = Vec::new();
    let mut rows = 0u64;
    for path in &settings.inputs {
        let mut reader = RowReader::open(path, settings.max_row_bytes)?;
        let rows_before = rows;
        let mut checked_columns = false;
        if let (Some(t), Some(headers)) = (template, reader.headers()) {
            if let Some(col) = t.missing_column(headers) {
                return Err(missing_template_column(reader.name(), 1, col));
            }
            checked_columns = true;
        }
        while let Some(item) = reader.next_item()? {
            rows += 1;
            let (fields, source) = match &item {
                Item::Record(r) => (&r.fields, &r.source),
                Item::Bad(b) => (&b.fields, &b.source),
            };
            // JSONL has no header: the first good row stands for the file's columns.
            if let (Some(t), false, Item::Record(r)) = (template, checked_columns, &item) {
                let cols: Vec<String> = r.fields.keys().cloned().collect();
                if let Some(col) = t.missing_column(&cols) {
                    return Err(missing_template_column(reader.name(), r.source.line, col));
                }
                checked_columns = true;
            }
            let id = builder
                .id_of(fields, source)
                .unwrap_or_else(|_| stand_in_id(source));
            hashes.push(id_hash(&id));
        }
        if rows == rows_before {
            tracing::warn!("{}: no rows", reader.name());
        }
    }
    hashes.sort_unstable();
    let mut repeated = HashMap::new();
    for w in hashes.windows(2) {
        if w[0] == w[1] {
            *repeated.entry(w[0]).or_insert(1) += 1;
        }
    }
    drop(hashes);
    if !repeated.is_empty() && !settings.allow_duplicate_ids {
        return Err(duplicates_error(settings, &builder, &repeated)?);
    }
    Ok(Inventory { rows, repeated })
}

fn missing_template_column(file: &str, line: u64, col: &str) -> SetupError {
    SetupError::Input {
        path: file.to_string(),
        message: format!(
            "line {line}: the template uses column `{col}`, which the file does not have"
        ),
    }
}

/// Second pass: names the repeated ids and their lines.
fn duplicates_error(
    settings: &Settings,
    builder: &Builder,
    repeated: &HashMap<u128, u32>,
) -> Result<SetupError, SetupError> {
    let mut found: Vec<(String, Vec<Source>)> = Vec::new();
    for path in &settings.inputs {
        let mut reader = RowReader::open(path, settings.max_row_bytes)?;
        while let Some(item) = reader.next_item()? {
            let (fields, source) = match item {
                Item::Record(r) => (r.fields, r.source),
                Item::Bad(b) => (b.fields, b.source),
            };
            let id = builder
                .id_of(&fields, &source)
                .unwrap_or_else(|_| stand_in_id(&source));
            if repeated.contains_key(&id_hash(&id)) {
                if let Some((_, lines)) = found.iter_mut().find(|(i, _)| *i == id) {
                    lines.push(source);
                } else if found.len() < SHOW {
                    found.push((id, vec![source]));
                }
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
    Ok(SetupError::Config(format!(
        "duplicate ids: {}{more}; ids must be unique for resume to know what is done (fix the input, or pass --allow-duplicate-ids to give later rows a suffixed id)",
        listed.join("; ")
    )))
}
