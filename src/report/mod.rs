//! What a person looks at after a run: the self-contained HTML report
//! (`report OUTPUT_DIR`), the comparison of two runs (`report --compare`),
//! and the per-model table that ends `run`'s closing lines.
//!
//! Everything here reads an output directory after the fact (`rows.rs`);
//! the only thing a run does for it is leave `run.json` (`context.rs`) and
//! call [`after_run`] at its end. A report is a view: failing to write one
//! never changes a run's outcome or exit code.

pub mod compare;
pub mod compare_page;
pub mod context;
pub mod page;
pub mod rows;
pub mod stats;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::output::summary::Summary;
use crate::report::rows::RunData;

/// The report's file name in the output directory.
pub const FILE: &str = "report.html";
/// The comparison page's file name in the after run's directory.
pub const COMPARE_FILE: &str = "compare.html";
/// Jobs up to this many rows get their report at the end of every run.
pub const AUTO_MAX_ROWS: u64 = 100_000;

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

/// After a run that ended with an error: when it got as far as writing
/// `summary.json` (the breaker stopped it, or a read error mid-file), the
/// report is written too and its path goes to stderr beside the error; a
/// run that stopped in setup (before `since`'s summary) leaves none.
pub fn after_error(dir: &Path, since: std::time::SystemTime) {
    let summary = dir.join(crate::output::checkpoint::SUMMARY);
    let fresh = std::fs::metadata(&summary)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    if fresh {
        match write(dir, None) {
            Ok((path, _)) => eprintln!("report:   {}", path.display()),
            Err(e) => eprintln!("report: not written: {e:#}"),
        }
    }
}

/// The lines that end `run`: the per-model table and the report's path.
/// Called after every run, a stopped one included; a report that cannot be
/// written becomes a warning line, not an error.
///
/// A run that wrote no row (a finished job run again, say from cron) leaves
/// the directory's rows as they were, so it does not read them all back: a
/// no-op resume of a million rows stays a matter of seconds.
pub fn after_run(summary: &Summary) -> String {
    let dir = &summary.output_dir;
    // The report holds every row of the job while it is built (about 1.3 KB
    // a row): past this many the run's own memory would no longer be bounded
    // by its concurrency, so a big job's report is written on request only.
    if summary.total > AUTO_MAX_ROWS {
        return format!(
            "report:   not written automatically for a job of {} rows (over {AUTO_MAX_ROWS}); `bedrock-batch report {}` writes it\n",
            summary.total,
            dir.display()
        );
    }
    if summary.this_run.succeeded + summary.this_run.failed == 0 {
        let path = dir.join(FILE);
        return if path.exists() {
            format!(
                "report:   {} (unchanged: this run wrote no row)\n",
                path.display()
            )
        } else {
            format!(
                "report:   not written (this run wrote no row); `bedrock-batch report {}` writes it\n",
                dir.display()
            )
        };
    }
    match write(dir, None) {
        Ok((path, data)) => closing_lines(&path, &data),
        Err(e) => format!("report: not written: {e:#}\n"),
    }
}

/// The per-model table of `data` and the line naming the report at `path`.
pub fn closing_lines(path: &Path, data: &RunData) -> String {
    format!(
        "{}report:   {}\n",
        table::render(&stats::per_model(&data.rows), table::terminal()),
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_over_the_limit_gets_no_automatic_report() {
        let dir = tempfile::tempdir().unwrap();
        let summary = Summary {
            total: AUTO_MAX_ROWS + 1,
            output_dir: dir.path().to_path_buf(),
            this_run: crate::output::summary::Run {
                succeeded: 10,
                ..Default::default()
            },
            ..Summary::default()
        };
        let line = after_run(&summary);
        assert!(
            line.starts_with("report:   not written automatically for a job of 100001 rows"),
            "{line}"
        );
        assert!(!dir.path().join(FILE).exists());
    }
}
