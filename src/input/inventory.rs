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
    /// Units of work the rows stand for: each row × its models × samples
    /// (`matrix.rs`); equal to `rows` for a one-model, one-sample job.
    pub(crate) units: u64,
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
        id_columns: &settings.id_columns,
        scorers: &settings.eval.scorers,
        max_row_bytes: settings.max_row_bytes,
        template,
        prompt_column: template
            .is_none()
            .then_some(settings.prompt_column.as_str()),
        s3: settings.s3_inputs.as_deref(),
    }
}

pub(crate) fn take(settings: &Settings, template: Option<&Template>) -> anyhow::Result<Inventory> {
    let spec = spec(settings, template);
    let mut hashes = Vec::new();
    let matrix = crate::input::matrix::Matrix::of(settings);
    let mut units = 0;
    let mut rows = Rows::new(spec, None);
    for row in rows.by_ref() {
        let row = row?;
        units += matrix.units(&row.item);
        hashes.push(id_hash(&row.id));
    }
    for file in rows.empty_files() {
        tracing::warn!("{file}: no rows");
    }
    hashes.sort_unstable();
    let mut repeated = Repeated::new();
    for w in hashes.windows(2) {
        if w[0] == w[1] {
            *repeated.entry(w[0]).or_insert(1) += 1;
        }
    }
    if !repeated.is_empty() && !settings.allow_duplicate_ids {
        return Err(duplicates_error(spec, &repeated)?);
    }
    if !repeated.is_empty() {
        refuse_suffix_collisions(spec, &repeated, &hashes)?;
    }
    drop(hashes);
    Ok(Inventory { units, repeated })
}

/// With --allow-duplicate-ids, the second `a` becomes `a#2`: a literal id
/// `a#2` elsewhere in the inputs would then be two rows under one id, and
/// resume could not tell them apart. Refused, naming both. `sorted` holds
/// the hash of every id of the inputs.
fn refuse_suffix_collisions(
    spec: RowSpec,
    repeated: &Repeated,
    sorted: &[u128],
) -> anyhow::Result<()> {
    // The suffixed ids the run would make, each with the id and ordinal it stands for.
    let mut made: std::collections::HashMap<u128, (String, u32)> = Default::default();
    let mut named = std::collections::HashSet::new();
    for row in Rows::new(spec, None) {
        let row = row?;
        let h = id_hash(&row.id);
        if let Some(&count) = repeated.get(&h) {
            if named.insert(h) {
                for n in 2..=count {
                    made.insert(id_hash(&format!("{}#{n}", row.id)), (row.id.clone(), n));
                }
            }
        }
    }
    let clash = made
        .iter()
        .find(|(h, _)| sorted.binary_search(h).is_ok())
        .map(|(h, v)| (*h, v.clone()));
    let Some((h, (id, n))) = clash else {
        return Ok(());
    };
    let at = Rows::new(spec, None)
        .filter_map(Result::ok)
        .find(|r| id_hash(&r.id) == h)
        .map(|r| r.source().to_string())
        .unwrap_or_default();
    anyhow::bail!(
        "{at}: the id `{id}#{n}` is also what --allow-duplicate-ids names row {n} of the repeated id `{id}`; rename one of them so every row keeps its own id"
    )
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
