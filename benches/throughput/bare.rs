//! The yardsticks: the same Converse calls as a pipeline run, made by a bare
//! loop of SDK calls at the same concurrency, with the same client
//! `bedrock-batch` builds (`auth::connect` + `auth::bedrock_client`).
//!
//! - For client CPU: no reading, no limiter, no retries, no output files,
//!   only what any caller of the SDK must pay.
//! - For throughput under faults (`retry`): a non-adaptive pool. Every
//!   failed call is retried with the pipeline's own backoff schedule
//!   (`pipeline::backoff`, same attempts and base delay) and nothing ever
//!   slows the other workers: what the run would take if no 429 were about
//!   our rate.
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
use bedrock_batch::pipeline::backoff::Backoff;

use crate::{prompt, MODEL};

/// The pipeline's defaults (`config.rs`): 8 attempts, 30 min per row.
const ATTEMPTS: u32 = 8;
const ROW_DEADLINE: Duration = Duration::from_secs(1800);

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
    let backoff = match args.get(3).map(String::as_str) {
        Some("retry") => Backoff::new(ATTEMPTS, ROW_DEADLINE),
        None => Backoff::new(1, ROW_DEADLINE),
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
                    let started = std::time::Instant::now();
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
                        match backoff.next(attempt, started.elapsed(), fastrand::f64()) {
                            Some(wait) => tokio::time::sleep(wait).await,
                            None => {
                                failed.fetch_add(1, Relaxed);
                                break;
                            }
                        }
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
