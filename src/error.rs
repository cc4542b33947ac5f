//! Setup errors and the exit codes the README documents.
//!
//! A setup error stops the run before any request is paid for (bad config,
//! unreadable input, no credentials, no region, an output directory that holds
//! another job). A row that fails is *not* an error here: it is data, written to
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
/// Stopped by SIGINT (Ctrl-C); finished rows are written, the rest are sent on resume.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM; as for SIGINT.
pub const EXIT_TERMINATED: u8 = 143;

/// An error that ends the run before (or instead of) sending anything.
///
/// Each variant prints on one line, location first.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("{0}")]
    Credentials(String),
    #[error("{0}")]
    OutputDir(String),
}
