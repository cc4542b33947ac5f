//! The Bedrock Runtime operations: Converse, ConverseStream, InvokeModel and
//! InvokeModelWithResponseStream, from decoded path to rendered response.
//!
//! This is where a model call's pipeline is ordered: auth → model access → request parsing →
//! markers → random drops/faults → quota admission → latency → answer → token refund →
//! (ConverseStream with a `stream_KIND` marker) the answer broken mid-stream. The
//! pieces themselves (quota buckets, the deterministic model, native formats, framing) live
//! in their own modules.

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

use super::auth::{self, Service};
use super::cache::{self, CacheUse};
use super::conversation::Conversation;
use super::credentials::Identity;
use super::eventstream::EventStream;
use super::family::{base_model, converse_stop, Family};
use super::fault::Fault;
use super::instance;
use super::marker::{Forced, Markers};
use super::model::{self, Generation};
use super::server::{Dropped, Reply, Server, Trace};
use super::stream_fault::StreamFault;
use crate::bedrock::catalog::{self, Lookup, Output};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
    CountTokens,
}

impl Operation {
    fn from_suffix(s: &str) -> Option<Operation> {
        Some(match s {
            "converse" => Operation::Converse,
            "converse-stream" => Operation::ConverseStream,
            "invoke" => Operation::Invoke,
            "invoke-with-response-stream" => Operation::InvokeStream,
            "count-tokens" => Operation::CountTokens,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
            Operation::Invoke => "InvokeModel",
            Operation::InvokeStream => "InvokeModelWithResponseStream",
            Operation::CountTokens => "CountTokens",
        }
    }
}

/// Handles `POST /model/{rest}`; `rest` is still percent-encoded.
pub async fn handle(
    server: &Server,
    parts: &Parts,
    body: &Bytes,
    rest: &str,
    trace: &mut Trace,
) -> Result<Reply, Dropped> {
    let started = Instant::now();
    // The label is one segment; ARNs carry their `/` as `%2F`, so split before decoding.
    let Some((raw_model, op)) = rest
        .rsplit_once('/')
        .and_then(|(m, s)| Operation::from_suffix(s).map(|op| (m, op)))
    else {
        trace.operation = "Unknown";
        return Ok(server.bedrock_error(Fault::UnknownOperation, None, trace));
    };
    trace.operation = op.name();
    server.stats.requests.fetch_add(1, Relaxed);
    let model_id: Cow<str> = match percent_decode_str(raw_model).decode_utf8() {
        Ok(m) => m,
        Err(_) => {
            return Ok(server.bedrock_error(
                Fault::Validation,
                Some("The provided model identifier is invalid."),
                trace,
            ))
        }
    };
    trace.model = Some(model_id.to_string());
    if parts.method != http::Method::POST {
        return Ok(server.bedrock_error(Fault::UnknownOperation, None, trace));
    }
    let caller = match auth::check(server, parts, body, Service::Bedrock) {
        Ok(identity) => identity,
        Err((f, msg)) => {
            // Recorded (not acted on) so a test can tell which row a refused key hit.
            if let Ok(c) = Conversation::from_converse(body) {
                trace.set_prompt(&c.prompt);
            }
            return Ok(server.bedrock_error(f, msg.as_deref(), trace));
        }
    };
    if !valid_model_id(&model_id) {
        return Ok(server.bedrock_error(
            Fault::Validation,
            Some("The provided model identifier is invalid."),
            trace,
        ));
    }
    if is_denied(&server.cfg.denied_models, &model_id) {
        // Bedrock names the caller as IAM sees it: the assumed role's session, or the user.
        let user = match &caller {
            Identity::Issued(c) => c.arn.clone(),
            Identity::Static(_) | Identity::Unknown => {
                format!("arn:aws:iam::{}:user/DeveloperUser", server.cfg.account_id)
            }
        };
        let msg = format!(
            "User: {user} is not authorized to perform: bedrock:InvokeModel on resource: {res} because no identity-based policy allows the bedrock:InvokeModel action",
            res = resource_arn(&model_id, &server.cfg.region, &server.cfg.account_id),
        );
        return Ok(server.bedrock_error(Fault::AccessDenied, Some(&msg), trace));
    }
    if let Err(msg) = served(&model_id, op, server.cfg.accept_any_model) {
        return Ok(server.bedrock_error(Fault::Validation, Some(msg), trace));
    }

    if op == Operation::CountTokens {
        return Ok(count_tokens(server, &model_id, body, trace));
    }

    let (mut conv, family) = match op {
        Operation::CountTokens => unreachable!("answered above"),
        Operation::Converse | Operation::ConverseStream => {
            match Conversation::from_converse(body) {
                Ok(c) => (c, None),
                Err(msg) => return Ok(server.bedrock_error(Fault::Validation, Some(&msg), trace)),
            }
        }
        Operation::Invoke | Operation::InvokeStream => {
            let Some(family) = Family::of_model(&model_id) else {
                let msg = format!(
                    "The emulator does not implement the native request format of {model_id}; use Converse."
                );
                return Ok(server.bedrock_error(Fault::Validation, Some(&msg), trace));
            };
            match family.parse(body) {
                Ok(n) => (n.conversation, Some(n.family)),
                Err(msg) => return Ok(server.bedrock_error(Fault::Validation, Some(&msg), trace)),
            }
        }
    };
    if matches!(op, Operation::Invoke | Operation::InvokeStream) {
        conv.output_schema = instance::schema_in_body(body);
        conv.schema_source = conv.output_schema.as_ref().map(|_| "instruction");
        conv.service_tier = parts
            .headers
            .get("x-amzn-bedrock-service-tier")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    trace.set_prompt(&conv.prompt);
    trace.schema_source = conv.schema_source;
    if let Some(tier) = &conv.service_tier {
        trace.service_tier = Some(tier.clone());
        if let Err(msg) = check_tier(&server.cfg.refused_tiers, &model_id, tier) {
            return Ok(server.bedrock_error(Fault::Validation, Some(&msg), trace));
        }
    }
    if conv.cache_prefix.is_some() && cache::minimum_tokens(&model_id).is_none() {
        return Ok(server.bedrock_error(Fault::Validation, Some(cache::UNSUPPORTED), trace));
    }

    let markers = match Markers::parse(&conv.prompt) {
        Ok(m) => m,
        Err(bad) => {
            let msg = format!("Unknown emulator marker {bad}");
            return Ok(server.bedrock_error(Fault::Validation, Some(&msg), trace));
        }
    };
    // One count per request, shared by both kinds of `*N` marker.
    let counted = |e: Option<Option<u32>>| e.is_some_and(|n| n.is_some());
    let attempt = if counted(markers.error.map(|e| e.1))
        || counted(markers.stream_error.map(|e| e.1))
        || counted(markers.bad_output.map(|e| e.1))
    {
        server.attempt_of(&conv.prompt)
    } else {
        1
    };
    if let Some((forced, times)) = markers.error {
        if times.is_none_or(|n| attempt <= n) {
            server.stats.forced.fetch_add(1, Relaxed);
            match forced {
                Forced::Fault(f) => return Ok(server.bedrock_error(f, None, trace)),
                Forced::Drop => {
                    server.stats.dropped.fetch_add(1, Relaxed);
                    return Err(Dropped);
                }
                Forced::Hang => {
                    server.shutdown.cancelled().await;
                    return Err(Dropped);
                }
            }
        }
    }
    if server.roll(&server.drop_rate) {
        server.stats.dropped.fetch_add(1, Relaxed);
        return Err(Dropped);
    }
    if server.roll(&server.fault_rate) {
        let f = server.pick_transient();
        server.stats.fault(f);
        return Ok(server.bedrock_error(f, None, trace));
    }

    let reserved_out = conv.max_tokens.unwrap_or(server.cfg.default_max_tokens);
    if let Err(f) = server
        .quota
        .admit(conv.input_tokens.saturating_add(reserved_out))
    {
        let counter = match f {
            Fault::ThrottleTokens => &server.stats.throttle_tokens,
            _ => &server.stats.throttle_requests,
        };
        counter.fetch_add(1, Relaxed);
        return Ok(server.bedrock_error(f, None, trace));
    }
    let cached = match conv.cache_prefix {
        Some(p) => server.prompt_cache.touch(&model_id, p).unwrap_or_default(),
        None => CacheUse::default(),
    };
    trace.cache_read_tokens = cached.read;
    trace.cache_write_tokens = cached.write;
    let gen = {
        let _slot = server.stats.enter();
        let mut delay = server.latency_ms.load(Relaxed) + markers.sleep_ms;
        if conv.service_tier.as_deref() == Some("flex") {
            delay = (delay as f64 * server.cfg.flex_latency_factor) as u64 + FLEX_EXTRA_MS;
        }
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let bad_output = markers
            .bad_output
            .filter(|(_, times)| times.is_none_or(|n| attempt <= n))
            .map(|(b, _)| b);
        if conv.output_schema.is_some() || bad_output.is_some() {
            // A structured answer is whole or it is useless: no truncation.
            let text = instance::answer_for(conv.output_schema.as_ref(), &conv.prompt, bad_output);
            Generation {
                output_tokens: model::output_tokens(&text),
                text,
                stop: model::StopReason::EndTurn,
                stop_sequence: None,
            }
        } else {
            model::generate(
                &conv.prompt,
                markers.tokens,
                conv.max_tokens,
                &conv.stop_sequences,
            )
        }
    };
    server
        .quota
        .refund_tokens(reserved_out.saturating_sub(gen.output_tokens));
    let broken = match markers.stream_error {
        Some((f, times))
            if op == Operation::ConverseStream && times.is_none_or(|n| attempt <= n) =>
        {
            Some(f)
        }
        _ => None,
    };
    if let Some(f) = broken {
        server.stats.forced.fetch_add(1, Relaxed);
        return Ok(broken_stream(server, &gen, f));
    }
    server.stats.successes.fetch_add(1, Relaxed);
    server
        .stats
        .input_tokens
        .fetch_add(conv.input_tokens, Relaxed);
    server
        .stats
        .output_tokens
        .fetch_add(gen.output_tokens, Relaxed);
    trace.input_tokens = conv.input_tokens;
    trace.output_tokens = gen.output_tokens;

    let latency_ms = started.elapsed().as_millis() as u64;
    let mut reply = match (op, family) {
        (Operation::Converse, _) => converse(server, &conv, &gen, cached, latency_ms),
        (Operation::ConverseStream, _) => converse_stream(server, &conv, &gen, cached, latency_ms),
        (Operation::Invoke, Some(f)) => invoke(server, f, &model_id, &conv, &gen, latency_ms),
        (Operation::InvokeStream, Some(f)) => {
            invoke_stream(server, f, &model_id, &conv, &gen, latency_ms)
        }
        // Invoke operations always have a family (checked above); CountTokens returned.
        (Operation::Invoke | Operation::InvokeStream | Operation::CountTokens, None)
        | (Operation::CountTokens, Some(_)) => {
            server.bedrock_error(Fault::InternalServer, None, trace)
        }
    };
    if let Some(tier) = &conv.service_tier {
        if let Ok(v) = HeaderValue::from_str(tier) {
            reply.headers_mut().insert("x-amzn-bedrock-service-tier", v);
        }
    }
    Ok(reply)
}

/// Extra delay of a flex call, so it is slower even with no configured latency.
const FLEX_EXTRA_MS: u64 = 20;

/// A tier Bedrock knows, not refused for this model by `refused` (`TIER` or `PREFIX=TIER`).
fn check_tier(refused: &[String], model_id: &str, tier: &str) -> Result<(), String> {
    if !["default", "flex", "priority", "reserved"].contains(&tier) {
        return Err(format!(
            "1 validation error detected: Value '{tier}' at 'serviceTier.type' failed to satisfy constraint: Member must satisfy enum value set: [default, flex, priority, reserved]"
        ));
    }
    let base = base_model(model_id);
    let hit = refused.iter().any(|spec| match spec.split_once('=') {
        Some((prefix, t)) => {
            t == tier && (model_id.starts_with(prefix) || base.starts_with(prefix))
        }
        None => spec == tier,
    });
    if hit {
        return Err(format!(
            "The service tier {tier} is not supported for model {model_id} in this Region."
        ));
    }
    Ok(())
}

/// `POST /model/{id}/count-tokens`: the input tokens a Converse or InvokeModel request would
/// be billed, free and outside the quotas. Only Anthropic models count, as on Bedrock.
fn count_tokens(server: &Server, model_id: &str, body: &[u8], trace: &mut Trace) -> Reply {
    if Family::of_model(model_id) != Some(Family::Anthropic) {
        return server.bedrock_error(
            Fault::Validation,
            Some("The provided model doesn't support counting tokens."),
            trace,
        );
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("Malformed input request: {e}");
            return server.bedrock_error(Fault::Validation, Some(&msg), trace);
        }
    };
    let counted = if let Some(c) = v.pointer("/input/converse") {
        let bytes = serde_json::to_vec(c).unwrap_or_default();
        Conversation::from_converse(&bytes).map(|c| c.input_tokens)
    } else if let Some(b) = v.pointer("/input/invokeModel/body").and_then(Value::as_str) {
        match base64::engine::general_purpose::STANDARD.decode(b) {
            Ok(raw) => Family::Anthropic
                .parse(&raw)
                .map(|n| n.conversation.input_tokens),
            Err(_) => Err("Malformed input request: body is not base64".to_string()),
        }
    } else {
        Err("Malformed input request: input must be converse or invokeModel".to_string())
    };
    match counted {
        Ok(n) => {
            trace.input_tokens = n;
            server.reply(
                StatusCode::OK,
                "application/json",
                json!({ "inputTokens": n }).to_string(),
            )
        }
        Err(msg) => server.bedrock_error(Fault::Validation, Some(&msg), trace),
    }
}

/// Foundation-model ids (`vendor.name`), inference-profile ids (`apac.vendor.name`) and ARNs.
fn valid_model_id(id: &str) -> bool {
    if id.starts_with("arn:") {
        return id.split(':').count() >= 6 && id.contains('/');
    }
    !id.is_empty()
        && id.len() <= 2048
        && id.contains('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Whether Bedrock serves `model_id` for `op`, or the message it refuses with: an id it does
/// not know, or Converse to a model that does not produce text (an embedding model). With
/// `any_model`, unknown ids are served; a known embedding model still refuses Converse.
fn served(model_id: &str, op: Operation, any_model: bool) -> Result<(), &'static str> {
    match catalog::lookup(model_id) {
        Lookup::Unknown if !any_model => Err("The provided model identifier is invalid."),
        Lookup::Known(m)
            if m.output != Output::Text
                && matches!(op, Operation::Converse | Operation::ConverseStream) =>
        {
            Err("This action doesn't support the model that you provided. Try again with a supported text or chat model.")
        }
        _ => Ok(()),
    }
}

fn is_denied(denied: &[String], model_id: &str) -> bool {
    let last = model_id.rsplit('/').next().unwrap_or(model_id);
    denied.iter().any(|d| {
        model_id.starts_with(d.as_str())
            || last.starts_with(d.as_str())
            || base_model(model_id) == d
    })
}

/// The ARN an access-denied message names for `model_id`.
fn resource_arn(model_id: &str, region: &str, account: &str) -> String {
    if model_id.starts_with("arn:") {
        model_id.to_owned()
    } else if base_model(model_id) != model_id {
        format!("arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}")
    } else {
        format!("arn:aws:bedrock:{region}::foundation-model/{model_id}")
    }
}

fn with_usage_headers(mut r: Reply, input: u64, output: u64, latency_ms: u64) -> Reply {
    let h = r.headers_mut();
    h.insert("x-amzn-bedrock-input-token-count", HeaderValue::from(input));
    h.insert(
        "x-amzn-bedrock-output-token-count",
        HeaderValue::from(output),
    );
    h.insert(
        "x-amzn-bedrock-invocation-latency",
        HeaderValue::from(latency_ms),
    );
    r
}

/// Converse usage: cached tokens are reported apart from `inputTokens`, and only
/// when the request had a cache point.
fn usage(conv: &Conversation, gen: &Generation, cached: CacheUse) -> Value {
    let uncached = conv.input_tokens.saturating_sub(cached.read + cached.write);
    let mut u = json!({
        "inputTokens": uncached,
        "outputTokens": gen.output_tokens,
        "totalTokens": conv.input_tokens + gen.output_tokens,
    });
    if conv.cache_prefix.is_some() {
        u["cacheReadInputTokens"] = cached.read.into();
        u["cacheWriteInputTokens"] = cached.write.into();
    }
    u
}

fn converse(
    server: &Server,
    conv: &Conversation,
    gen: &Generation,
    cached: CacheUse,
    latency_ms: u64,
) -> Reply {
    let mut body = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": gen.text}]}},
        "stopReason": converse_stop(gen.stop),
        "usage": usage(conv, gen, cached),
        "metrics": {"latencyMs": latency_ms},
    });
    if let Some(t) = &conv.service_tier {
        body["serviceTier"] = json!({ "type": t });
    }
    server.reply(StatusCode::OK, "application/json", body.to_string())
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn converse_stream(
    server: &Server,
    conv: &Conversation,
    gen: &Generation,
    cached: CacheUse,
    latency_ms: u64,
) -> Reply {
    let mut s = EventStream::default();
    s.padded_event("messageStart", object(json!({"role": "assistant"})));
    for piece in model::deltas(&gen.text) {
        s.padded_event(
            "contentBlockDelta",
            object(json!({"contentBlockIndex": 0, "delta": {"text": piece}})),
        );
    }
    s.padded_event("contentBlockStop", object(json!({"contentBlockIndex": 0})));
    s.padded_event(
        "messageStop",
        object(json!({"stopReason": converse_stop(gen.stop)})),
    );
    s.padded_event(
        "metadata",
        object(json!({"usage": usage(conv, gen, cached), "metrics": {"latencyMs": latency_ms}})),
    );
    server.reply(
        StatusCode::OK,
        "application/vnd.amazon.eventstream",
        s.into_bytes(),
    )
}

/// A ConverseStream answer that breaks after about half its content deltas (at least one, so
/// the client has started an answer): an exception frame, or for `Cut` just the end of the body.
fn broken_stream(server: &Server, gen: &Generation, fault: StreamFault) -> Reply {
    let mut s = EventStream::default();
    s.padded_event("messageStart", object(json!({"role": "assistant"})));
    let pieces = model::deltas(&gen.text);
    for piece in pieces.iter().take(pieces.len().div_ceil(2).max(1)) {
        s.padded_event(
            "contentBlockDelta",
            object(json!({"contentBlockIndex": 0, "delta": {"text": piece}})),
        );
    }
    if let Some((kind, payload)) = fault.frame() {
        s.exception(kind, payload.to_string().as_bytes());
    }
    server.reply(
        StatusCode::OK,
        "application/vnd.amazon.eventstream",
        s.into_bytes(),
    )
}

fn invoke(
    server: &Server,
    family: Family,
    model_id: &str,
    conv: &Conversation,
    gen: &Generation,
    latency_ms: u64,
) -> Reply {
    let id = server.stats.successes.load(Relaxed);
    let body = family.render(model_id, conv.input_tokens, gen, id);
    let r = server.reply(StatusCode::OK, "application/json", body.to_string());
    with_usage_headers(r, conv.input_tokens, gen.output_tokens, latency_ms)
}

fn invoke_stream(
    server: &Server,
    family: Family,
    model_id: &str,
    conv: &Conversation,
    gen: &Generation,
    latency_ms: u64,
) -> Reply {
    let id = server.stats.successes.load(Relaxed);
    let mut chunks = family.chunks(model_id, conv.input_tokens, gen, id);
    if let Some(last) = chunks.last_mut() {
        last.insert(
            "amazon-bedrock-invocationMetrics".into(),
            json!({
                "inputTokenCount": conv.input_tokens,
                "outputTokenCount": gen.output_tokens,
                "invocationLatency": latency_ms,
                "firstByteLatency": latency_ms,
            }),
        );
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = EventStream::default();
    for chunk in chunks {
        let native = serde_json::to_vec(&chunk).unwrap_or_default();
        s.padded_event("chunk", object(json!({"bytes": b64.encode(native)})));
    }
    let mut r = server.reply(
        StatusCode::OK,
        "application/vnd.amazon.eventstream",
        s.into_bytes(),
    );
    r.headers_mut().insert(
        "x-amzn-bedrock-content-type",
        HeaderValue::from_static("application/json"),
    );
    with_usage_headers(r, conv.input_tokens, gen.output_tokens, latency_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        assert!(valid_model_id("anthropic.claude-3-haiku-20240307-v1:0"));
        assert!(valid_model_id(
            "apac.anthropic.claude-3-5-sonnet-20240620-v1:0"
        ));
        assert!(valid_model_id(
            "arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.anthropic.claude-3-5-sonnet-20240620-v1:0"
        ));
        assert!(!valid_model_id("claude"));
        assert!(!valid_model_id("a b.c"));
    }

    #[test]
    fn unknown_ids_and_converse_to_embeddings_are_refused() {
        let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
        assert!(served(haiku, Operation::Converse, false).is_ok());
        assert!(served(&format!("apac.{haiku}"), Operation::ConverseStream, false).is_ok());
        let invalid = Err("The provided model identifier is invalid.");
        assert_eq!(
            served("anthropic.claude-3-haiku", Operation::Converse, false),
            invalid
        );
        assert_eq!(served("foo.bar", Operation::Invoke, false), invalid);
        assert!(served("foo.bar", Operation::Converse, true).is_ok());
        let embed = "amazon.titan-embed-text-v2:0";
        for any in [false, true] {
            let e = served(embed, Operation::Converse, any).unwrap_err();
            assert!(e.contains("doesn't support the model"), "{e}");
        }
        assert!(served(embed, Operation::Invoke, false).is_ok());
    }

    #[test]
    fn denied_prefixes() {
        let d = vec!["apac.".to_string()];
        assert!(is_denied(&d, "apac.anthropic.claude-3-haiku-20240307-v1:0"));
        assert!(is_denied(
            &d,
            "arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.anthropic.x"
        ));
        assert!(!is_denied(&d, "anthropic.claude-3-haiku-20240307-v1:0"));
    }
}
