//! Bedrock's CountTokens for one row: the input tokens its request would be
//! billed, counted by the model's own tokenizer. Free, and outside the
//! quotas, but a network call; only `--dry-run --count-tokens` uses it.
//!
//! The request is built exactly as `invoker.rs` sends it (Converse messages
//! and system with their cache points, or the InvokeModel body), so the
//! count is of what a run sends.

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ConverseTokensRequest, CountTokensInput, InvokeModelTokensRequest,
};
use aws_sdk_bedrockruntime::Client;

use crate::bedrock::invoker::{classify, converse_parts, Classified, Disposition};
use crate::bedrock::request::Api;
use crate::input::job::Job;
use crate::outcome::ErrorKind;

/// Input tokens of `job`'s request as the model counts them.
pub async fn count_tokens(client: &Client, api: Api, job: &Job) -> Result<u64, Classified> {
    let bad = |e: String| Classified::new(ErrorKind::Input, "InvalidRow", e, Disposition::Fail);
    let input = match (api, &job.body) {
        (Api::Invoke, Some(invoke)) => {
            let bytes = serde_json::to_vec(&invoke.body).map_err(|e| bad(e.to_string()))?;
            CountTokensInput::InvokeModel(
                InvokeModelTokensRequest::builder()
                    .body(Blob::new(bytes))
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            )
        }
        _ => {
            let (messages, system) = converse_parts(&job.request)?;
            CountTokensInput::Converse(
                ConverseTokensRequest::builder()
                    .set_messages(Some(messages))
                    .set_system((!system.is_empty()).then_some(system))
                    .build(),
            )
        }
    };
    let out = client
        .count_tokens()
        .model_id(&job.request.model)
        .input(input)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    Ok(out.input_tokens().max(0) as u64)
}
