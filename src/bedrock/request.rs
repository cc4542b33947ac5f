//! One prompt, ready to send: the model-independent form of a Bedrock request.
//!
//! Built by `job.rs` from an input row; turned into a Converse call or a
//! model-native InvokeModel body by `invoker.rs` / `native.rs`. It holds text
//! only: images, documents and tools are out of scope for a batch of prompts.

use serde::{Deserialize, Serialize};

/// Which Bedrock operation carries each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `Converse`: one request shape for every model.
    Converse,
    /// `InvokeModel` with the model's native JSON body (built from the row, or
    /// taken verbatim from a JSONL row's `body`).
    Invoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub text: String,
}

/// What is sent for one row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Model id, inference-profile id or ARN.
    pub model: String,
    pub system: Option<String>,
    /// Alternating turns ending with a user turn.
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop_sequences: Vec<String>,
}

impl Request {
    /// Characters of everything the model reads, for the token estimate.
    pub fn input_chars(&self) -> usize {
        self.system.as_deref().map_or(0, str::len)
            + self.messages.iter().map(|m| m.text.len()).sum::<usize>()
    }
}

/// What came back for one row, whichever API carried it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub text: String,
    /// As Bedrock names it (`end_turn`, `max_tokens`, …).
    pub stop_reason: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}
