//! The yardsticks: the same Converse calls as a pipeline run, made by a bare
//! loop of SDK calls at the same concurrency, with the same client
//! `bedrock-batch` builds (`auth::connect` + `auth::bedrock_client`).
//!
//! - For client CPU: no reading, no limiter, no retries, no output files,
//!   only what any caller of the SDK must pay.
//! - For throughput under faults (`retry`): a non-adaptive pool. Every
//!   failed call is retried on the pipeline's own backoff schedule (the
//!   numbers of `src/pipeline/backoff.rs`, which the library keeps private)
//!   and nothing ever slows the other workers: what the run would take if
//!   no 429 were about our rate.
//!
//! It runs in a child process (this bench binary re-executed with `bare`) so
//! it is measured exactly as the pipeline is.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};
use bedrock_batch::bedrock::auth::{self, AuthSettings};

use crate::{prompt, MODEL};

/// The pipeline's schedule (`pipeline/backoff.rs`, defaults from
/// `config.rs`): 8 attempts, waits with full jitter under a ceiling that
/// starts at 250 ms and doubles up to 20 s.
const ATTEMPTS: u32 = 8;

fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(250)
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)))
        .min(Duration::from_secs(20));
    ceiling.mul_f64(fastrand::f64())
}

/// `bare ROWS CONCURRENCY MAX_TOKENS [retry]`: sends rows 0..ROWS (once
/// each, or with `retry` until they succeed or the backoff gives up) and
/// prints `ok N failed M attempts A`.
pub fn main(args: &[String]) {
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bare ROWS CONCURRENCY MAX_TOKENS, got {args:?}"))
    };
    let (rows, concurrency, max_tokens) = (num(0), num(1), num(2) as i32);
    let attempts_per_row = match args.get(3).map(String::as_str) {
        Some("retry") => ATTEMPTS,
        None => 1,
        Some(other) => panic!("bare: unknown mode `{other}`"),
    };
    // The same runtime the binary's main builds.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (ok, failed, attempts) = rt.block_on(async move {
        let session = auth::connect(&AuthSettings::default())
            .await
            .expect("credentials from the environment");
        let client = auth::bedrock_client(&session.sdk, Duration::from_secs(300));
        let next = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let attempts = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (client, next, ok, failed, attempts) = (
                client.clone(),
                next.clone(),
                ok.clone(),
                failed.clone(),
                attempts.clone(),
            );
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= rows {
                        break;
                    }
                    let mut attempt = 1;
                    loop {
                        attempts.fetch_add(1, Relaxed);
                        let msg = Message::builder()
                            .role(ConversationRole::User)
                            .content(ContentBlock::Text(prompt("", i)))
                            .build()
                            .expect("role and content are set");
                        let r = client
                            .converse()
                            .model_id(MODEL)
                            .messages(msg)
                            .inference_config(
                                InferenceConfiguration::builder()
                                    .max_tokens(max_tokens)
                                    .build(),
                            )
                            .send()
                            .await;
                        if r.is_ok() {
                            ok.fetch_add(1, Relaxed);
                            break;
                        }
                        if attempt >= attempts_per_row {
                            failed.fetch_add(1, Relaxed);
                            break;
                        }
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        (
            ok.load(Relaxed),
            failed.load(Relaxed),
            attempts.load(Relaxed),
        )
    });
    println!("ok {ok} failed {failed} attempts {attempts}");
}
