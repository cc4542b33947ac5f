//! What a run leaves behind and shows: the single writer (`sink`), resume
//! state (`checkpoint`, `manifest`), the one-run-per-directory `lock`, the summary and the progress display.

pub mod checkpoint;
pub mod lock;
pub mod manifest;
pub mod progress;
pub mod sink;
pub mod summary;
