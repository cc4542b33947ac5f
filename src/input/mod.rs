//! Input: files of rows → one stream of rows with their final ids → requests.
//!
//! `reader` knows file formats (`scanner` reads CSV records in bounded
//! memory), `template` renders prompts, `job` knows what each column means
//! (`fingerprint` hashes the request it builds), `inventory` is the pass
//! before anything is sent, `matrix` says which (model, sample) units a
//! row stands for. `s3` streams inputs given as `s3://` URIs.

pub(crate) mod fingerprint;
pub mod inventory;
pub mod job;
pub(crate) mod matrix;
pub mod reader;
pub mod rows;
pub(crate) mod s3;
mod scanner;
pub mod template;

#[cfg(test)]
mod properties;
