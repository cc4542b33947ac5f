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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub text: String,
    /// Byte offsets in `text` after which a Converse `cachePoint` block goes
    /// (a JSONL row's own cache points, passed through). Text blocks were
    /// joined with `"\n"`; the joiner after an offset is dropped again when
    /// the blocks are rebuilt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_after: Vec<usize>,
}

/// Bedrock's service tier for a call: `default` is the standard on-demand
/// tier; `flex` is cheaper and slower; `priority` costs more and answers first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTier {
    #[default]
    Default,
    Flex,
    Priority,
}

impl ServiceTier {
    pub const ALL: [ServiceTier; 3] = [
        ServiceTier::Default,
        ServiceTier::Flex,
        ServiceTier::Priority,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Default => "default",
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
        }
    }

    pub fn parse(s: &str) -> Option<ServiceTier> {
        ServiceTier::ALL
            .into_iter()
            .find(|t| t.as_str() == s.trim())
    }
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
    /// Sent as Converse `serviceTier` / InvokeModel's service-tier header;
    /// `None` sends nothing (Bedrock's default tier).
    pub service_tier: Option<ServiceTier>,
    /// Put a cache point after the system prompt (Converse only).
    pub cache_system: bool,
    /// `output_schema` on the native route: sent as Converse's
    /// `outputConfig.textFormat` (`eval/schema.rs` decides the route).
    pub output_schema: Option<SchemaFormat>,
}

/// A JSON Schema as Converse's `outputConfig.textFormat` carries it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SchemaFormat {
    pub name: String,
    /// The schema, as JSON text.
    pub schema: String,
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
    /// Milliseconds from sending to the first content delta; streamed calls only.
    pub ttft_ms: Option<u64>,
    /// Input tokens read from / written to the prompt cache, when Bedrock
    /// reports them (not included in `input_tokens`).
    pub cache_read_input_tokens: Option<u64>,
    pub cache_write_input_tokens: Option<u64>,
    /// The tier Bedrock says served the call.
    pub service_tier: Option<String>,
}
