//! What happened to one row: the records of `results.jsonl` and `failures.jsonl`.
//!
//! These structs *are* the output contract the README documents; field names
//! and shapes change only with the README. A failed row is data, never an
//! error propagated with `?`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a row came from: the input file and the 1-based line its record starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    pub line: u64,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {}", self.file, self.line)
    }
}

/// Why a row failed, coarse enough to choose what to retry (`--retry-failures KIND,…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The row itself is unusable (bad CSV/JSON, no id, no prompt…). Never sent.
    Input,
    /// Bedrock refused the request as malformed (ValidationException).
    Validation,
    /// The credentials may not call this model (AccessDeniedException).
    AccessDenied,
    /// The model or profile does not exist in this region (ResourceNotFoundException).
    NotFound,
    /// Still throttled after every attempt.
    Throttled,
    /// A hard quota such as a daily token limit (ServiceQuotaExceededException).
    Quota,
    /// The attempt or the row's deadline ran out, or the model timed out.
    Timeout,
    /// 5xx from Bedrock.
    Server,
    /// The model itself failed (ModelErrorException, ModelNotReady after every attempt).
    Model,
    /// The connection failed.
    Network,
    /// No usable credentials (expired and not refreshable, invalid, missing).
    Credentials,
    /// The answer did not parse or match `output_schema`, after every
    /// `invalid_output_retries`. Paid for: the line keeps the raw text and usage.
    InvalidOutput,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Input,
        ErrorKind::Validation,
        ErrorKind::AccessDenied,
        ErrorKind::NotFound,
        ErrorKind::Throttled,
        ErrorKind::Quota,
        ErrorKind::Timeout,
        ErrorKind::Server,
        ErrorKind::Model,
        ErrorKind::Network,
        ErrorKind::Credentials,
        ErrorKind::InvalidOutput,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Input => "input",
            ErrorKind::Validation => "validation",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Quota => "quota",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Server => "server",
            ErrorKind::Model => "model",
            ErrorKind::Network => "network",
            ErrorKind::Credentials => "credentials",
            ErrorKind::InvalidOutput => "invalid_output",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the input price (cache reads and writes not included).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from / written to the prompt cache, when Bedrock reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
}

/// One line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Success {
    pub id: String,
    pub model: String,
    pub output: String,
    pub stop_reason: String,
    /// With `output_schema`: the answer parsed, valid against the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_json: Option<Value>,
    /// With `[[score]]`: each scorer's name → `true`/`false`, or the label
    /// (a `one_of` without a column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<Map<String, Value>>,
    /// Of every paid call for the row: more than one answer's when an
    /// answer was refused as invalid output and asked for again.
    pub usage: Usage,
    /// What the call cost in USD, from its usage, tier and the price table;
    /// `null` when the model (or its tier, or cache tokens) has no known price.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The service tier Bedrock says served the call (`null` when it says none).
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Wall time of the attempt that succeeded.
    pub latency_ms: u64,
    /// With `stream`: milliseconds from sending to the first content delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// With `stream`: output tokens over the attempt's whole wall time
    /// (`latency_ms`), in tokens per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_sec: Option<f64>,
    pub attempts: u32,
    pub source: Source,
    /// Every input column that is not the id, the prompt or a request parameter.
    pub meta: Map<String, Value>,
    /// With `include_prompt`: the prompt as sent, a string for one user
    /// turn, the turns (`[{"role", "text"}]`) for a conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Value>,
    #[serde(flatten)]
    pub times: Times,
    /// Of the request sent (`input/fingerprint.rs`), so a resume can tell an
    /// edited row. Absent in lines written before fingerprints existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    /// The AWS error code (`ThrottlingException`, …), or ours for input/network errors.
    pub code: String,
    pub message: String,
}

/// One line of `failures.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub id: String,
    pub model: String,
    pub error: ErrorInfo,
    /// Calls paid or attempted; 0 for input errors, which are never sent.
    pub attempts: u32,
    /// The last answer as it came (`invalid_output`): paid for, and what
    /// the user needs to see why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Tokens of the calls that were answered (and billed) before the row
    /// failed; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What those answers cost; absent without usage, or when unpriced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    pub source: Source,
    pub meta: Map<String, Value>,
    /// Of the request sent; absent for input errors, which send nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(flatten)]
    pub times: Times,
}

/// When a row's work began and ended (RFC 3339, UTC, milliseconds; see
/// `time.rs`), and how many of its attempts were throttled: what the
/// report's charts over time are drawn from. Lines written before these
/// fields existed read with them empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Times {
    /// The first attempt's start; for an input failure, when the row was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the row's outcome was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Attempts Bedrock throttled (429), counted whatever the row's end.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttles: u32,
}

impl Times {
    /// Times for work that started at `started` and ends now.
    pub fn since(started: std::time::SystemTime, throttles: u32) -> Times {
        Times {
            started_at: Some(crate::time::rfc3339_ms(started)),
            finished_at: Some(crate::time::rfc3339_ms_now()),
            throttles,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The end of one row.
// It travels boxed (`Event::Done`), so the variants' sizes differing costs
// nothing on the channel; boxing a variant too would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Success),
    Failed(Failure),
}
