//! Input: files of rows → one stream of rows with their final ids → requests.
//!
//! `reader` knows file formats (`scanner` reads CSV records in bounded memory), `template` renders prompts, `job` knows what
//! each column means, `inventory` is the pass before anything is sent.

pub mod fingerprint;
pub mod inventory;
pub mod job;
pub mod reader;
mod scanner;
pub mod template;
