//! What a run leaves behind and shows: the single writer (`sink`), resume
//! state (`checkpoint`, `manifest`, `earlier` for the one read of what the
//! files hold, `changed` for rows edited since they were answered), the one-run-per-directory `lock`, the summary and the
//! progress display, and `upload` (`--upload`: the files copied to S3 at the end).

pub(crate) mod changed;
pub mod checkpoint;
pub(crate) mod earlier;
pub(crate) mod fs;
pub(crate) mod lock;
pub mod manifest;
pub mod progress;
pub(crate) mod sink;
pub mod summary;
pub mod upload;
