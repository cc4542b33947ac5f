//! What a run leaves behind and shows: the single writer (`sink`), resume
//! state (`checkpoint`, `manifest`), the summary and the progress display.

pub mod checkpoint;
pub(crate) mod fs;
pub mod manifest;
pub mod progress;
pub(crate) mod sink;
pub mod summary;
