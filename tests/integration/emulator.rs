//! The emulator seen through the real Rust SDK (and boto3): answers, streaming, native
//! bodies, routing, error classification and retries, quotas, faults, drops and counters.
//!
//! Clients here are built with explicit configuration (no environment), so these tests run
//! in parallel; credential-chain tests are in `iam_flow.rs`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseStreamOutput, InferenceConfiguration, Message,
    ResponseStream, StopReason, SystemContentBlock,
};
use bedrock_batch::emulator::{
    answer, count_tokens, output_tokens, Emulator, EmulatorConfig, RequestRecord,
    STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY,
};
use serde_json::Value;

use crate::util::{
    bedrock_client, converse, quick_retries, raw_http, static_credentials, EnvGuard, HAIKU,
};

async fn start(cfg: EmulatorConfig) -> (Emulator, aws_sdk_bedrockruntime::Client) {
    let emu = Emulator::start(cfg).await.expect("emulator starts");
    let client = bedrock_client(&emu.url(), static_credentials(), RetryConfig::disabled());
    (emu, client)
}

fn records_for<'a>(records: &'a [RequestRecord], prompt: &str) -> Vec<&'a RequestRecord> {
    records
        .iter()
        .filter(|r| r.prompt.as_deref() == Some(prompt))
        .collect()
}

fn variant(e: &ConverseError) -> &'static str {
    match e {
        ConverseError::ThrottlingException(_) => "ThrottlingException",
        ConverseError::ServiceUnavailableException(_) => "ServiceUnavailableException",
        ConverseError::InternalServerException(_) => "InternalServerException",
        ConverseError::ModelNotReadyException(_) => "ModelNotReadyException",
        ConverseError::ModelTimeoutException(_) => "ModelTimeoutException",
        ConverseError::ModelErrorException(_) => "ModelErrorException",
        ConverseError::ValidationException(_) => "ValidationException",
        ConverseError::AccessDeniedException(_) => "AccessDeniedException",
        ConverseError::ResourceNotFoundException(_) => "ResourceNotFoundException",
        _ => "Unhandled",
    }
}

/// GETs `path` from the emulator with a bare HTTP/1.1 request; returns status and body.
async fn http_get(emu: &Emulator, path: &str) -> (u16, String) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        emu.addr()
    );
    let raw = raw_http(emu.addr(), &req).await;
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn converse_answers_deterministically_with_usage() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let prompt = "Summarise the plot of Hamlet in one line";
    let out = converse(&client, HAIKU, prompt)
        .system(SystemContentBlock::Text("be brief".into()))
        .inference_config(
            InferenceConfiguration::builder()
                .max_tokens(200)
                .temperature(0.0)
                .build(),
        )
        .send()
        .await
        .expect("converse succeeds");
    let text = out.output().unwrap().as_message().unwrap().content()[0]
        .as_text()
        .unwrap()
        .clone();
    assert_eq!(text, answer(prompt));
    assert!(
        text.ends_with(": Summarise the plot of Hamlet in."),
        "{text}"
    );
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    let usage = out.usage().unwrap();
    let input = count_tokens(&format!("be brief\n{prompt}"));
    assert_eq!(usage.input_tokens() as u64, input);
    assert_eq!(usage.output_tokens() as u64, output_tokens(&text));
    assert_eq!(
        usage.total_tokens(),
        usage.input_tokens() + usage.output_tokens()
    );
    use aws_sdk_bedrockruntime::operation::RequestId;
    assert!(out.request_id().is_some_and(|id| id.len() == 36));

    let recs = emu.requests();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(
        (r.service, r.operation, r.status),
        ("bedrock", "Converse", 200)
    );
    assert_eq!(r.model.as_deref(), Some(HAIKU));
    assert_eq!(r.access_key.as_deref(), Some(STATIC_ACCESS_KEY_ID));
    assert!(!r.session_token);
    assert_eq!((r.attempt, r.max_attempts), (Some(1), Some(1)));
    assert!(r.invocation_id.is_some());
    assert_eq!(
        (r.input_tokens, r.output_tokens),
        (input, output_tokens(&text))
    );
    let s = emu.stats();
    assert_eq!((s.requests, s.successes, s.input_tokens), (1, 1, input));
}

#[tokio::test]
async fn max_tokens_truncates_and_tokens_marker_sets_length() {
    let (_emu, client) = start(EmulatorConfig::default()).await;
    let out = converse(&client, HAIKU, "long one [[emu:tokens=40]]")
        .inference_config(InferenceConfiguration::builder().max_tokens(25).build())
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::MaxTokens);
    assert_eq!(out.usage().unwrap().output_tokens(), 25);
    let out = converse(&client, HAIKU, "long one [[emu:tokens=40]]")
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    assert_eq!(out.usage().unwrap().output_tokens(), 40);
}

/// Every error kind of the wire doc's matrix, through the SDK with 3 attempts allowed: the
/// typed variant (or `code()` where the SDK doesn't model it) and the attempts it made.
#[tokio::test]
async fn error_markers_surface_as_typed_sdk_errors_with_sdk_retries() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = bedrock_client(&emu.url(), static_credentials(), quick_retries(3));
    let cases = [
        ("throttle", "ThrottlingException", "ThrottlingException", 3),
        (
            "throttle_tokens",
            "ThrottlingException",
            "ThrottlingException",
            3,
        ),
        (
            "unavailable",
            "ServiceUnavailableException",
            "ServiceUnavailableException",
            3,
        ),
        (
            "server",
            "InternalServerException",
            "InternalServerException",
            3,
        ),
        (
            "not_ready",
            "ModelNotReadyException",
            "ModelNotReadyException",
            3,
        ),
        (
            "timeout",
            "ModelTimeoutException",
            "ModelTimeoutException",
            1,
        ),
        (
            "model_error",
            "ModelErrorException",
            "ModelErrorException",
            1,
        ),
        (
            "validation",
            "ValidationException",
            "ValidationException",
            1,
        ),
        (
            "access_denied",
            "AccessDeniedException",
            "AccessDeniedException",
            1,
        ),
        (
            "not_found",
            "ResourceNotFoundException",
            "ResourceNotFoundException",
            1,
        ),
        ("quota", "Unhandled", "ServiceQuotaExceededException", 1),
        ("expired", "Unhandled", "ExpiredTokenException", 1),
    ];
    for (kind, want_variant, want_code, attempts) in cases {
        let prompt = format!("case {kind} [[emu:{kind}]]");
        let err = converse(&client, HAIKU, &prompt)
            .send()
            .await
            .expect_err(kind)
            .into_service_error();
        assert_eq!(variant(&err), want_variant, "{kind}: {err:?}");
        assert_eq!(err.code(), Some(want_code), "{kind}");
        assert!(err.message().is_some_and(|m| !m.is_empty()), "{kind}");
        let recs = emu.requests();
        let seen = records_for(&recs, &prompt);
        assert_eq!(seen.len(), attempts, "{kind}: attempts");
        let nums: Vec<_> = seen.iter().map(|r| (r.attempt, r.max_attempts)).collect();
        let want: Vec<_> = (1..=attempts as u32).map(|a| (Some(a), Some(3))).collect();
        assert_eq!(nums, want, "{kind}");
        assert!(seen
            .iter()
            .all(|r| r.invocation_id == seen[0].invocation_id));
    }
    let throttle = converse(&client, HAIKU, "msg [[emu:throttle_tokens]]")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        throttle.into_service_error().message(),
        Some("Too many tokens, please wait before trying again.")
    );
}

#[tokio::test]
async fn counted_marker_fails_only_the_first_attempts_per_prompt() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let retrying = bedrock_client(&emu.url(), static_credentials(), quick_retries(3));
    let prompt = "flaky row [[emu:throttle*2]]";
    let out = converse(&retrying, HAIKU, prompt)
        .send()
        .await
        .expect("third attempt succeeds");
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    let recs = emu.requests();
    let statuses: Vec<_> = records_for(&recs, prompt)
        .iter()
        .map(|r| (r.attempt, r.status))
        .collect();
    assert_eq!(
        statuses,
        vec![(Some(1), 429), (Some(2), 429), (Some(3), 200)]
    );

    // A client retrying by itself (new invocation ids) is counted by prompt text too.
    let single = bedrock_client(&emu.url(), static_credentials(), RetryConfig::disabled());
    let prompt = "own retries [[emu:server*1]]";
    assert!(converse(&single, HAIKU, prompt).send().await.is_err());
    assert!(converse(&single, HAIKU, prompt).send().await.is_ok());
}

#[tokio::test]
async fn converse_stream_decodes_in_the_sdk() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let prompt = "Stream me a reasonably long answer about event streams please";
    let msg = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(prompt.into()))
        .build()
        .unwrap();
    let mut out = client
        .converse_stream()
        .model_id("apac.anthropic.claude-3-5-sonnet-20240620-v1:0")
        .messages(msg)
        .send()
        .await
        .expect("stream starts");
    let (mut text, mut deltas, mut started, mut stop, mut usage) =
        (String::new(), 0, false, None, None);
    while let Some(ev) = out.stream.recv().await.expect("frames decode") {
        match ev {
            ConverseStreamOutput::MessageStart(_) => started = true,
            ConverseStreamOutput::ContentBlockDelta(d) => {
                text.push_str(d.delta().unwrap().as_text().unwrap());
                deltas += 1;
            }
            ConverseStreamOutput::MessageStop(s) => stop = Some(s.stop_reason().clone()),
            ConverseStreamOutput::Metadata(m) => usage = m.usage().cloned(),
            _ => {}
        }
    }
    assert!(started);
    assert!(
        deltas >= 3,
        "answer split into several deltas, got {deltas}"
    );
    assert_eq!(text, answer(prompt));
    assert_eq!(stop, Some(StopReason::EndTurn));
    let usage = usage.expect("metadata event");
    assert_eq!(usage.output_tokens() as u64, output_tokens(&text));
    assert_eq!(usage.input_tokens() as u64, count_tokens(prompt));
    assert_eq!(emu.requests()[0].operation, "ConverseStream");
}

fn anthropic_body(prompt: &str, max_tokens: u64) -> Blob {
    Blob::new(
        serde_json::json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        })
        .to_string(),
    )
}

#[tokio::test]
async fn invoke_model_anthropic_round_trip() {
    let (_emu, client) = start(EmulatorConfig::default()).await;
    let prompt = "Native Claude body please";
    let out = client
        .invoke_model()
        .model_id(HAIKU)
        .content_type("application/json")
        .accept("application/json")
        .body(anthropic_body(prompt, 300))
        .send()
        .await
        .expect("invoke succeeds");
    assert_eq!(out.content_type(), "application/json");
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["content"][0]["text"], answer(prompt));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(
        v["usage"]["input_tokens"],
        count_tokens(&format!("be brief\n{prompt}"))
    );
    assert_eq!(v["usage"]["output_tokens"], output_tokens(&answer(prompt)));

    // A body the family can't parse is a ValidationException.
    let err = client
        .invoke_model()
        .model_id(HAIKU)
        .body(Blob::new(r#"{"inputText":"titan shape"}"#))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert!(
        err.message().unwrap().contains("anthropic_version"),
        "{err:?}"
    );

    // Other families answer in their own shape.
    let out = client
        .invoke_model()
        .model_id("amazon.titan-text-express-v1")
        .body(Blob::new(
            r#"{"inputText":"titan shape","textGenerationConfig":{"maxTokenCount":50}}"#,
        ))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["results"][0]["outputText"], answer("titan shape"));
    assert_eq!(v["results"][0]["completionReason"], "FINISH");
}

#[tokio::test]
async fn invoke_model_with_response_stream_anthropic_chunks() {
    let (_emu, client) = start(EmulatorConfig::default()).await;
    let prompt = "Stream the native Claude chunks to me one by one";
    let mut out = client
        .invoke_model_with_response_stream()
        .model_id("us.anthropic.claude-3-5-haiku-20241022-v1:0")
        .content_type("application/json")
        .body(anthropic_body(prompt, 300))
        .send()
        .await
        .expect("stream starts");
    assert_eq!(out.content_type(), "application/json");
    let mut types = Vec::new();
    let mut text = String::new();
    let mut last = Value::Null;
    while let Some(ev) = out.body.recv().await.expect("chunks decode") {
        let ResponseStream::Chunk(part) = ev else {
            continue;
        };
        let v: Value = serde_json::from_slice(part.bytes().unwrap().as_ref()).unwrap();
        let t = v["type"].as_str().unwrap().to_owned();
        if t == "content_block_delta" {
            assert_eq!(v["delta"]["type"], "text_delta");
            text.push_str(v["delta"]["text"].as_str().unwrap());
        }
        if t == "message_delta" {
            assert_eq!(v["delta"]["stop_reason"], "end_turn");
            assert_eq!(v["usage"]["output_tokens"], output_tokens(&answer(prompt)));
        }
        types.push(t);
        last = v;
    }
    assert_eq!(text, answer(prompt));
    assert_eq!(types.first().map(String::as_str), Some("message_start"));
    for t in ["content_block_delta", "message_delta", "message_stop"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    assert_eq!(types.last().map(String::as_str), Some("message_stop"));
    let metrics = &last["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["outputTokenCount"], output_tokens(&answer(prompt)));
    assert_eq!(
        metrics["inputTokenCount"],
        count_tokens(&format!("be brief\n{prompt}"))
    );
}

#[tokio::test]
async fn model_arn_with_encoded_slash_routes_and_denied_models_are_refused() {
    let cfg = EmulatorConfig {
        denied_models: vec!["global.".into()],
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(cfg).await;
    let arn = "arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.anthropic.claude-3-5-sonnet-20240620-v1:0";
    converse(&client, arn, "via arn")
        .send()
        .await
        .expect("ARN routes");
    assert_eq!(emu.requests()[0].model.as_deref(), Some(arn));

    let err = converse(
        &client,
        "global.anthropic.claude-sonnet-4-20250514-v1:0",
        "denied",
    )
    .send()
    .await
    .unwrap_err()
    .into_service_error();
    assert!(err.is_access_denied_exception(), "{err:?}");
    assert!(
        err.message().unwrap().contains("inference-profile/global."),
        "{err:?}"
    );

    let err = converse(&client, "not-a-model", "x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
}

/// As strict as Bedrock on model ids: a truncated id, an invented one and Converse to an
/// embedding model are refused with Bedrock's own messages, and `accept_any_model` serves
/// ids the emulator does not know.
#[tokio::test]
async fn unknown_model_ids_and_converse_to_embedding_models_are_refused_like_bedrock() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    for model in [
        "anthropic.claude-3-haiku",                  // truncated
        "anthropic.claude-3-haiku-20240307-v1",      // the `:0` lost
        "foo.bar",                                   // invented
        "ap.anthropic.claude-3-haiku-20240307-v1:0", // a geography that is not one
    ] {
        let err = converse(&client, model, "hello")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_validation_exception(), "{model}: {err:?}");
        assert_eq!(
            err.message(),
            Some("The provided model identifier is invalid."),
            "{model}"
        );
    }
    for model in [
        "amazon.titan-embed-text-v2:0",
        "cohere.embed-multilingual-v3",
    ] {
        let err = converse(&client, model, "hello")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_validation_exception(), "{model}: {err:?}");
        assert_eq!(
            err.message(),
            Some("This action doesn't support the model that you provided. Try again with a supported text or chat model."),
            "{model}"
        );
    }
    // Known text models, directly and through a profile, are served.
    for model in [
        HAIKU,
        "apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "cohere.command-r-v1:0",
    ] {
        converse(&client, model, "hello").send().await.expect(model);
    }
    assert_eq!(emu.stats().successes, 3);

    let (_emu, client) = start(EmulatorConfig {
        accept_any_model: true,
        ..EmulatorConfig::default()
    })
    .await;
    let out = converse(&client, "acme.brand-new-model-v1:0", "hello")
        .send()
        .await
        .expect("any id is served with accept_any_model");
    let text = match out.output().unwrap() {
        aws_sdk_bedrockruntime::types::ConverseOutput::Message(m) => {
            m.content()[0].as_text().unwrap().clone()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(text, answer("hello"));
    // Still not Converse to an embedding model: that is the model, not the id.
    let err = converse(&client, "amazon.titan-embed-text-v2:0", "hello")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
}

/// rpm 600 with a 1 s burst: 10 requests at once, then 10 per second. Hammered with no SDK
/// retries, the accepted count must track burst + rate × elapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_quota_throttles_at_the_configured_rate() {
    let cfg = EmulatorConfig {
        rpm: Some(600),
        burst_secs: 1.0,
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(cfg).await;
    let ok = Arc::new(AtomicU64::new(0));
    let throttled = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let run_for = Duration::from_millis(2000);
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (client, ok, throttled) = (client.clone(), ok.clone(), throttled.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while t0.elapsed() < run_for {
                i += 1;
                match converse(&client, HAIKU, &format!("w{w} r{i}")).send().await {
                    Ok(_) => ok.fetch_add(1, Relaxed),
                    Err(e) => {
                        let e = e.into_service_error();
                        assert!(e.is_throttling_exception(), "{e:?}");
                        assert_eq!(
                            e.message(),
                            Some("Too many requests, please wait before trying again.")
                        );
                        throttled.fetch_add(1, Relaxed)
                    }
                };
                // Keep the client from starving the runtime on 2 cores.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let accepted = ok.load(Relaxed) as f64;
    let expected = 10.0 + 10.0 * elapsed;
    assert!(
        (accepted - expected).abs() <= 3.0,
        "accepted {accepted}, expected {expected:.1} over {elapsed:.2}s"
    );
    assert!(throttled.load(Relaxed) > 0);
    let s = emu.stats();
    assert_eq!(s.throttles.requests, throttled.load(Relaxed));
    assert_eq!(s.successes, ok.load(Relaxed));
    assert_eq!(
        s.errors_by_code.get("ThrottlingException"),
        Some(&throttled.load(Relaxed))
    );
}

/// tpm 600 with a 60 s burst: 600 tokens, refilling 10/s. Each request reserves input +
/// maxTokens and gets back maxTokens − output when it ends.
#[tokio::test]
async fn token_quota_reserves_max_tokens_and_refunds_the_unused_part() {
    let cfg = EmulatorConfig {
        tpm: Some(600),
        burst_secs: 60.0,
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(cfg).await;
    let call = |prompt: &'static str, max: i32| {
        converse(&client, HAIKU, prompt)
            .inference_config(InferenceConfiguration::builder().max_tokens(max).build())
            .send()
    };
    // 5 input + 300 reserved, 300 used: ~295 left.
    call("a [[emu:tokens=300]]", 300).await.expect("fits");
    // Needs 401: too many tokens.
    let e = call("b", 400).await.unwrap_err().into_service_error();
    assert!(e.is_throttling_exception());
    assert_eq!(
        e.message(),
        Some("Too many tokens, please wait before trying again.")
    );
    // Reserves 205, uses 10, gives back 190: ~280 left.
    call("c [[emu:tokens=10]]", 200).await.expect("fits");
    // Needs 251: passes only because of the refund (without it ~90 would be left).
    call("d", 250).await.expect("refund made room");
    // A reservation beyond the whole bucket waits for a full bucket.
    let e = call("e", 100_000).await.unwrap_err().into_service_error();
    assert!(e.is_throttling_exception());
    let s = emu.stats();
    assert_eq!((s.throttles.tokens, s.throttles.requests), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rate_is_roughly_honoured_and_seeded() {
    let cfg = EmulatorConfig {
        fault_rate: 0.25,
        seed: Some(42),
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(cfg).await;
    let n = 240;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for i in 0..n / 4 {
                if let Err(e) = converse(&client, HAIKU, &format!("f{w} {i}")).send().await {
                    codes.push(e.into_service_error().code().unwrap_or("none").to_owned());
                }
            }
            codes
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.extend(t.await.unwrap());
    }
    let expected = 0.25 * n as f64;
    assert!(
        (codes.len() as f64 - expected).abs() <= 25.0,
        "{} faults of {n}",
        codes.len()
    );
    let allowed = [
        "ThrottlingException",
        "InternalServerException",
        "ServiceUnavailableException",
        "ModelTimeoutException",
    ];
    assert!(
        codes.iter().all(|c| allowed.contains(&c.as_str())),
        "{codes:?}"
    );
    let s = emu.stats();
    assert_eq!(s.faults.values().sum::<u64>(), codes.len() as u64);
    assert_eq!(s.successes + codes.len() as u64, n as u64);

    // Runtime knob: off means off.
    emu.set_fault_rate(0.0);
    for i in 0..20 {
        converse(&client, HAIKU, &format!("calm {i}"))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn drops_close_the_connection_without_a_response() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let err = converse(&client, HAIKU, "bye [[emu:drop]]")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");

    emu.set_drop_rate(1.0);
    let err = converse(&client, HAIKU, "random drop")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    emu.set_drop_rate(0.0);
    converse(&client, HAIKU, "fine again").send().await.unwrap();
    let s = emu.stats();
    assert_eq!(s.dropped, 2);
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![0, 0, 200]);
}

#[tokio::test]
async fn hang_never_answers_so_client_timeouts_fire() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("ap-northeast-2"))
        .endpoint_url(emu.url())
        .credentials_provider(static_credentials())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_millis(300))
                .build(),
        )
        .build();
    let client = aws_sdk_bedrockruntime::Client::from_conf(conf);
    let t0 = Instant::now();
    let err = converse(&client, HAIKU, "wait [[emu:hang]]")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_applied_and_peak_in_flight_measured() {
    let cfg = EmulatorConfig {
        latency_ms: 500,
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(cfg).await;
    let t0 = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { converse(&client, HAIKU, &format!("p{i}")).send().await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert!(t0.elapsed() >= Duration::from_millis(500));
    let s = emu.stats();
    assert_eq!(s.peak_in_flight, 6);
    assert_eq!(s.in_flight, 0);

    emu.set_latency_ms(0);
    let t0 = Instant::now();
    converse(&client, HAIKU, "slow row [[emu:sleep=250]]")
        .send()
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn stats_and_requests_endpoints_serve_json_and_records_are_bounded() {
    let cfg = EmulatorConfig {
        max_records: 3,
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(cfg).await;
    for i in 0..5 {
        converse(&client, HAIKU, &format!("row {i}"))
            .send()
            .await
            .unwrap();
    }
    let _ = converse(&client, HAIKU, "bad [[emu:validation]]")
        .send()
        .await;
    let (status, body) = http_get(&emu, "/__stats").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["requests"], 6);
    assert_eq!(v["successes"], 5);
    assert_eq!(v["errors_by_code"]["ValidationException"], 1);
    assert_eq!(v["per_access_key"][STATIC_ACCESS_KEY_ID], 6);
    assert_eq!(v["records_kept"], 3);
    assert_eq!(v["records_omitted"], 3);
    let (status, body) = http_get(&emu, "/__requests").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["prompt"], "row 0");
    assert_eq!(v[0]["attempt"], 1);
    assert_eq!(emu.requests().len(), 3);
}

/// boto3 (an independent client) against the emulator; `.ci/run` installs boto3, and a
/// missing python3 or boto3 fails this test rather than skipping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_conformance() {
    // Held so no other test is mid-way through rewriting HOME / PATH when python starts.
    let env = EnvGuard::new().await;
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/boto3_conformance.py"
    );
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script).env_clear();
    for key in [
        "PATH",
        "HOME",
        "PYENV_ROOT",
        "PYENV_VERSION",
        "VIRTUAL_ENV",
        "PYTHONPATH",
    ] {
        if let Some(v) = env.original(key) {
            cmd.env(key, v);
        }
    }
    let fixtures = env.home().join("no-such-aws-config");
    let out = cmd
        .env("AWS_CONFIG_FILE", &fixtures)
        .env("AWS_SHARED_CREDENTIALS_FILE", &fixtures)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("EMULATOR_URL", emu.url())
        .env("EMULATOR_ACCESS_KEY_ID", STATIC_ACCESS_KEY_ID)
        .env("EMULATOR_SECRET_ACCESS_KEY", STATIC_SECRET_ACCESS_KEY)
        .output()
        .await
        .expect("python3 must be installed (.ci/run installs boto3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boto3 conformance failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("boto3 conformance: ok"), "{stdout}");
    let s = emu.stats();
    assert_eq!(s.assume_role, 1);
    assert!(s.get_caller_identity >= 1);
    assert_eq!(s.errors_by_code.get("InvalidSignatureException"), None);
}
