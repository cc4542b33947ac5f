//! One row sent through ConverseStream and read to the end of its event stream.
//!
//! What streaming adds over Converse is timing: the time to the first content
//! delta (`ttft_ms`), which is what a person waiting on the answer feels. The
//! answer itself is only ever the whole answer: deltas are collected in
//! memory and handed back only when the stream ended with `messageStop`. An
//! exception frame, an unreadable frame or a connection cut after some deltas
//! is an error for the whole attempt (classified by `invoker::classify_stream`),
//! so a partial answer is never written as a result; the runner's retry loop
//! sends the row again or fails it, as for any other error.
//!
//! Not here: InvokeModelWithResponseStream (`api = "invoke"` does not stream;
//! `config.rs` refuses the combination).

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::types::{ContentBlockDelta, ConverseStreamOutput};
use aws_sdk_bedrockruntime::Client;

use crate::bedrock::invoker::{classify, classify_stream, Classified, ConverseParts, Disposition};
use crate::bedrock::request::{Answer, Request};
use crate::outcome::ErrorKind;

/// Sends `r` as ConverseStream and collects its answer and time to first token.
///
/// The client's attempt timeout stops at the response headers, before the
/// first event is read; the same limit is applied here to the whole stream so
/// `request_timeout_secs` bounds a streamed attempt as it does a Converse one.
pub(crate) async fn converse_stream(client: &Client, r: &Request) -> Result<Answer, Classified> {
    let limit = client
        .config()
        .timeout_config()
        .and_then(|t| t.operation_attempt_timeout());
    let call = read(client, r);
    match limit {
        Some(limit) => tokio::time::timeout(limit, call)
            .await
            .unwrap_or_else(|_| Err(timed_out(limit))),
        None => call.await,
    }
}

async fn read(client: &Client, r: &Request) -> Result<Answer, Classified> {
    let started = Instant::now();
    let parts = ConverseParts::of(r)?;
    let mut out = client
        .converse_stream()
        .model_id(&r.model)
        .set_messages(Some(parts.messages))
        .set_system(parts.system)
        .set_service_tier(parts.tier)
        .inference_config(parts.config)
        .set_output_config(parts.output)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let mut answer = Answer::default();
    let mut stopped = false;
    while let Some(event) = out.stream.recv().await.map_err(|e| classify_stream(&e))? {
        match event {
            ConverseStreamOutput::ContentBlockDelta(d) => {
                if let Some(ContentBlockDelta::Text(t)) = d.delta() {
                    answer
                        .ttft_ms
                        .get_or_insert_with(|| started.elapsed().as_millis() as u64);
                    answer.text.push_str(t);
                }
            }
            ConverseStreamOutput::MessageStop(m) => {
                answer.stop_reason = m.stop_reason().as_str().to_string();
                stopped = true;
            }
            ConverseStreamOutput::Metadata(m) => {
                let count = |n: i32| n.max(0) as u64;
                if let Some(u) = m.usage() {
                    answer.input_tokens = count(u.input_tokens());
                    answer.output_tokens = count(u.output_tokens());
                    // What the row's cost is computed from, as for Converse.
                    answer.cache_read_input_tokens = u.cache_read_input_tokens().map(count);
                    answer.cache_write_input_tokens = u.cache_write_input_tokens().map(count);
                }
                answer.service_tier = m.service_tier().map(|t| t.r#type().as_str().to_string());
            }
            // messageStart, contentBlockStart/Stop and event types newer
            // than this SDK carry nothing a results line holds.
            _ => {}
        }
    }
    if !stopped {
        // The body ended cleanly but the answer did not: cut short.
        return Err(Classified::new(
            ErrorKind::Network,
            "StreamInterrupted",
            format!(
                "the stream ended after {} characters without messageStop",
                answer.text.len()
            ),
            Disposition::Retry,
        ));
    }
    Ok(answer)
}

fn timed_out(limit: Duration) -> Classified {
    Classified::new(
        ErrorKind::Timeout,
        "AttemptTimeout",
        format!(
            "the streamed answer ran past request_timeout_secs ({}s)",
            limit.as_secs()
        ),
        Disposition::Retry,
    )
}
