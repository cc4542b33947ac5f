//! The yardstick for client CPU: the same Converse calls as a pipeline run,
//! made by a bare loop of SDK calls at the same concurrency, with the same
//! client `bedrock-batch` builds (`auth::connect` + `auth::bedrock_client`).
//!
//! It runs in a child process (this bench binary re-executed with `bare`) so
//! its CPU is measured exactly as the pipeline's is. No reading, no limiter,
//! no retries, no output files: only what any caller of the SDK must pay.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};
use bedrock_batch::bedrock::auth::{self, AuthSettings};

use crate::{prompt, MODEL};

/// `bare ROWS CONCURRENCY MAX_TOKENS`: sends rows 0..ROWS once each and
/// prints `ok N failed M`.
pub fn main(args: &[String]) {
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bare ROWS CONCURRENCY MAX_TOKENS, got {args:?}"))
    };
    let (rows, concurrency, max_tokens) = (num(0), num(1), num(2) as i32);
    // The same runtime the binary's main builds.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (ok, failed) = rt.block_on(async move {
        let session = auth::connect(&AuthSettings::default())
            .await
            .expect("credentials from the environment");
        let client = auth::bedrock_client(&session.sdk, Duration::from_secs(300));
        let next = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (client, next, ok, failed) =
                (client.clone(), next.clone(), ok.clone(), failed.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= rows {
                        break;
                    }
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
                    match r {
                        Ok(_) => ok.fetch_add(1, Relaxed),
                        Err(_) => failed.fetch_add(1, Relaxed),
                    };
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        (ok.load(Relaxed), failed.load(Relaxed))
    });
    println!("ok {ok} failed {failed}");
}
