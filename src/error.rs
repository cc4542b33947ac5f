//! The exit codes the README documents, and how errors are told.
//!
//! One error style throughout: `anyhow`, each message written where the
//! problem is found as "where: what" (`prompts.csv: line 18: …`,
//! ``job.toml: `concurrency`: …``, `--rpm: …`), with `.context()` adding the
//! place when a lower layer's error (an I/O error, an SDK error, a
//! `thiserror` enum such as `native::NativeError` or `policy::PolicyError`)
//! is passed up, so its source is kept. `main` prints the chain on one line
//! (`{:#}`) and exits [`EXIT_SETUP`]: every error that reaches it stopped the
//! run as a whole. A row that fails is *not* an error: it is data, written to
//! `failures.jsonl` by the sink, and only changes the exit code.

/// Every row succeeded (or was already done).
pub const EXIT_OK: u8 = 0;
/// The run finished, and some rows are in `failures.jsonl`.
pub const EXIT_FAILED_ROWS: u8 = 1;
/// Nothing was sent: the configuration, the input, the credentials or the
/// output directory is wrong. The message says what and where.
pub const EXIT_SETUP: u8 = 2;
/// Stopped before passing `max_cost`: rows not sent are neither results nor
/// failures; a resume with a higher cap sends them.
pub const EXIT_BUDGET: u8 = 3;
/// `report --compare --fail-on-regression`: a success or pass rate dropped
/// by more than the threshold.
pub const EXIT_REGRESSION: u8 = 4;
/// Stopped by SIGINT (Ctrl-C); finished rows are written, the rest are sent on resume.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM; as for SIGINT.
pub const EXIT_TERMINATED: u8 = 143;

/// An error and its sources on one line.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let part = e.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        src = e.source();
    }
    s.replace('\n', " ")
}

/// `text` cut to at most `max` bytes (on a character boundary) with `…`
/// after the cut: a value quoted in a message (a cell, a setting, an SDK
/// error chain) stays readable on one line however long it was.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() > max {
        format!("{}…", &text[..text.floor_char_boundary(max)])
    } else {
        text.to_string()
    }
}
