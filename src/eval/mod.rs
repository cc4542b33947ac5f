//! Judging answers: the JSON shape a job asks for (`output_schema`, in
//! [`schema`]) and the `[[score]]` comparisons of an answer with its row's
//! columns (in [`score`]).
//!
//! Both are set up once, before anything is sent (a bad schema, a bad regex
//! or a scorer naming a column the inputs lack is a setup error), and then
//! applied to each answer by the runner's call task. Nothing here sends a
//! request or writes a file.

pub(crate) mod paid;
pub mod rescore;
pub mod schema;
pub mod score;
pub mod tally;

use std::sync::Arc;

/// What a job does with its answers: validate them against a schema, score them.
#[derive(Debug, Clone, Default)]
pub struct EvalSettings {
    /// `output_schema`, loaded and compiled.
    pub schema: Option<Arc<schema::OutputSchema>>,
    /// Extra calls for an answer that does not parse or validate (`invalid_output_retries`).
    pub invalid_output_retries: u32,
    /// The `[[score]]` entries, compiled.
    pub scorers: Arc<Vec<score::Scorer>>,
}
