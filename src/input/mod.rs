//! Input: files of rows → one stream of rows with their final ids → requests.
//!
//! `reader` knows file formats, `template` renders prompts, `job` knows what
//! each column means, `inventory` is the pass before anything is sent.

pub mod inventory;
pub mod job;
pub mod reader;
pub mod rows;
pub mod template;
