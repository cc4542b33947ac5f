//! What a person looks at after a run: the self-contained HTML report
//! (`report OUTPUT_DIR`), the comparison of two runs (`report --compare`),
//! and the per-model table that ends `run`'s closing lines.
//!
//! Everything here reads an output directory after the fact (`rows.rs`);
//! the only thing a run does for it is leave `run.json` (`context.rs`) and
//! call [`after_run`] at its end. A report is a view: failing to write one
//! never changes a run's outcome or exit code.

pub mod compare;
pub mod context;
pub mod page;
pub mod rows;
pub mod stats;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::report::rows::RunData;

/// The report's file name in the output directory.
pub const FILE: &str = "report.html";

/// Writes the report of `dir` to `out` (default `dir/report.html`) and
/// returns where it went, with the data it was made from.
pub fn write(dir: &Path, out: Option<&Path>) -> anyhow::Result<(PathBuf, RunData)> {
    let data = RunData::load(dir)?;
    let html = page::render(&data)?;
    let path = out.map_or_else(|| dir.join(FILE), Path::to_path_buf);
    crate::output::fs::write_atomic(&path, html.as_bytes())
        .with_context(|| format!("{}: cannot write the report", path.display()))?;
    Ok((path, data))
}

/// The lines that end `run`: the per-model table and the report's path.
/// Called after every run, a stopped one included; a report that cannot be
/// written becomes a warning line, not an error.
pub fn after_run(dir: &Path) -> String {
    match write(dir, None) {
        Ok((path, data)) => format!(
            "{}report:   {}\n",
            table::render(&stats::per_model(&data.rows), table::terminal()),
            path.display()
        ),
        Err(e) => format!("report: not written: {e:#}\n"),
    }
}
