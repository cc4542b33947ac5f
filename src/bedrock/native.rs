//! Model-native InvokeModel bodies: build the request body a model family
//! expects and read its response back into an [`Answer`].
//!
//! Pure functions, no I/O: `invoker.rs` sends the bytes and hands the response
//! body (and, for families whose body carries no usage, the
//! `X-Amzn-Bedrock-Input-Token-Count` / `-Output-Token-Count` headers) back
//! here. Only text is handled; tools, images and streaming are out of scope.
//!
//! Formats follow the Bedrock model-parameter pages (Anthropic Claude
//! messages, Amazon Nova, Amazon Titan Text, Meta Llama 3, Mistral text and
//! chat completion); see `bedrock-wire-protocol.md` §6. A model this module
//! does not know returns `None` from [`family`]: the caller should say so and
//! point the user at `api = "converse"` or a verbatim `body` column, rather
//! than guess a format.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::bedrock::request::{Answer, Request, Role};

/// The value Bedrock requires in `anthropic_version`.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// A family of models that share one InvokeModel body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Anthropic Claude, messages API (`anthropic.claude-*`).
    Anthropic,
    /// Amazon Nova understanding models (`amazon.nova-micro|lite|pro|premier…`).
    Nova,
    /// Amazon Titan Text (`amazon.titan-text-*`, `amazon.titan-tg1-large`).
    Titan,
    /// Meta Llama 3.x instruct models (`meta.llama3-*`), Llama 3 chat template.
    Llama,
    /// Mistral text completion (`mistral.mistral-7b-*`, `mistral.mixtral-*`,
    /// `mistral.mistral-small-*`): an `[INST]` prompt string.
    Mistral,
    /// Mistral chat completion (`mistral.mistral-large-*`, `mistral.pixtral-*`):
    /// a `messages` array.
    MistralChat,
}

impl Family {
    /// Whether the response body carries token counts. When it does not, the
    /// invoker takes them from the response headers (see [`usage_from_headers`]).
    pub fn reports_usage(self) -> bool {
        !matches!(self, Family::Mistral)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Anthropic => "anthropic claude",
            Family::Nova => "amazon nova",
            Family::Titan => "amazon titan text",
            Family::Llama => "meta llama",
            Family::Mistral => "mistral text",
            Family::MistralChat => "mistral chat",
        })
    }
}

/// What was wrong with a request we were asked to build, or a response body.
///
/// Messages are one lowercase line; the caller adds the row's location.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("max_tokens is required for anthropic models with api = invoke")]
    MaxTokensRequired,
    #[error("{what} are not supported by {family} models with api = invoke")]
    Unsupported { family: Family, what: &'static str },
    #[error("request has no messages")]
    NoMessages,
    #[error("response is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("response is not a JSON object")]
    NotObject,
    /// `{0}` names the missing part, e.g. `"content" array`.
    #[error("response has no {0}")]
    Missing(&'static str),
    #[error("response shape is not recognized (top-level keys: {0})")]
    UnknownShape(String),
}

/// The body family of a foundation-model id, an inference-profile id (with a
/// geo prefix) or an ARN of either; `None` for models this module does not
/// know.
///
/// Llama 2 and Llama 4 use other chat templates and return `None`, as do
/// non-text models (Titan embeddings, Nova Canvas/Reel/Sonic).
pub fn family(model: &str) -> Option<Family> {
    let (provider, name) = crate::bedrock::catalog::base_id(model).split_once('.')?;
    match provider {
        "anthropic" if name.starts_with("claude") => Some(Family::Anthropic),
        "amazon" => {
            if name.starts_with("titan-text") || name.starts_with("titan-tg1") {
                Some(Family::Titan)
            } else if name.starts_with("nova-")
                && !["nova-canvas", "nova-reel", "nova-sonic"]
                    .iter()
                    .any(|p| name.starts_with(p))
            {
                Some(Family::Nova)
            } else {
                None
            }
        }
        "meta" if name.starts_with("llama3") => Some(Family::Llama),
        "mistral" => {
            if name.starts_with("mistral-large") || name.starts_with("pixtral") {
                Some(Family::MistralChat)
            } else if ["mistral-7b", "mixtral-8x7b", "mistral-small"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                Some(Family::Mistral)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The InvokeModel body for `family`, carrying the system prompt, every turn,
/// and the inference parameters the family supports.
///
/// Rules:
/// - Anthropic needs `max_tokens`: the API rejects a body without it, and the
///   right value depends on the model and the user's budget, so we do not
///   invent one ([`NativeError::MaxTokensRequired`]).
/// - Stop sequences sent to a family whose Bedrock body has no such field
///   (Llama, Mistral chat) are an error rather than silently dropped.
/// - Families without a system field get the system prompt in the prompt
///   text (Titan: first paragraph; Mistral text: prepended to the first user
///   turn, as Mistral's own chat template does).
/// - For prompt-template families (Titan, Llama, Mistral text), a trailing
///   assistant turn is a prefill: the prompt leaves that turn open so the
///   model continues it.
pub fn request_body(family: Family, req: &Request) -> Result<Value, NativeError> {
    if req.messages.is_empty() {
        return Err(NativeError::NoMessages);
    }
    let unsupported_stop = || -> Result<(), NativeError> {
        if req.stop_sequences.is_empty() {
            Ok(())
        } else {
            Err(NativeError::Unsupported {
                family,
                what: "stop sequences",
            })
        }
    };
    let mut body = Map::new();
    match family {
        Family::Anthropic => {
            let max_tokens = req.max_tokens.ok_or(NativeError::MaxTokensRequired)?;
            body.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
            body.insert("max_tokens".into(), max_tokens.into());
            if let Some(system) = &req.system {
                body.insert("system".into(), system.as_str().into());
            }
            let messages = req
                .messages
                .iter()
                .map(|m| json!({"role": role(m.role), "content": [{"type": "text", "text": m.text}]}))
                .collect();
            body.insert("messages".into(), Value::Array(messages));
            insert_sampling(&mut body, req, "temperature", "top_p");
            insert_stop(&mut body, req, "stop_sequences");
        }
        Family::Nova => {
            body.insert("schemaVersion".into(), "messages-v1".into());
            if let Some(system) = &req.system {
                body.insert("system".into(), json!([{ "text": system }]));
            }
            let messages = req
                .messages
                .iter()
                .map(|m| json!({"role": role(m.role), "content": [{"text": m.text}]}))
                .collect();
            body.insert("messages".into(), Value::Array(messages));
            let mut config = Map::new();
            if let Some(n) = req.max_tokens {
                config.insert("maxTokens".into(), n.into());
            }
            insert_sampling(&mut config, req, "temperature", "topP");
            insert_stop(&mut config, req, "stopSequences");
            if !config.is_empty() {
                body.insert("inferenceConfig".into(), Value::Object(config));
            }
        }
        Family::Titan => {
            body.insert("inputText".into(), titan_prompt(req).into());
            let mut config = Map::new();
            if let Some(n) = req.max_tokens {
                config.insert("maxTokenCount".into(), n.into());
            }
            insert_sampling(&mut config, req, "temperature", "topP");
            insert_stop(&mut config, req, "stopSequences");
            if !config.is_empty() {
                body.insert("textGenerationConfig".into(), Value::Object(config));
            }
        }
        Family::Llama => {
            unsupported_stop()?;
            body.insert("prompt".into(), llama3_prompt(req).into());
            if let Some(n) = req.max_tokens {
                body.insert("max_gen_len".into(), n.into());
            }
            insert_sampling(&mut body, req, "temperature", "top_p");
        }
        Family::Mistral => {
            body.insert("prompt".into(), mistral_prompt(req).into());
            if let Some(n) = req.max_tokens {
                body.insert("max_tokens".into(), n.into());
            }
            insert_stop(&mut body, req, "stop");
            insert_sampling(&mut body, req, "temperature", "top_p");
        }
        Family::MistralChat => {
            unsupported_stop()?;
            let system = req
                .system
                .iter()
                .map(|s| json!({"role": "system", "content": s}));
            let turns = req
                .messages
                .iter()
                .map(|m| json!({"role": role(m.role), "content": m.text}));
            body.insert("messages".into(), system.chain(turns).collect());
            if let Some(n) = req.max_tokens {
                body.insert("max_tokens".into(), n.into());
            }
            insert_sampling(&mut body, req, "temperature", "top_p");
        }
    }
    Ok(Value::Object(body))
}

fn role(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn insert_sampling(map: &mut Map<String, Value>, req: &Request, temperature: &str, top_p: &str) {
    if let Some(t) = req.temperature {
        map.insert(temperature.into(), float(t));
    }
    if let Some(p) = req.top_p {
        map.insert(top_p.into(), float(p));
    }
}

fn insert_stop(map: &mut Map<String, Value>, req: &Request, key: &str) {
    if !req.stop_sequences.is_empty() {
        map.insert(key.into(), req.stop_sequences.clone().into());
    }
}

/// An `f32` as the JSON number the user wrote: `0.7`, not `0.699999988079071`
/// (which is what widening the `f32` to `f64` gives).
fn float(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// `User: …\nBot: …\nUser: …\nBot:`, the conversational format of the Titan
/// Text page, with the system prompt as a leading paragraph.
fn titan_prompt(req: &Request) -> String {
    let mut prompt = String::new();
    if let Some(system) = &req.system {
        prompt.push_str(system);
        prompt.push_str("\n\n");
    }
    for (i, m) in req.messages.iter().enumerate() {
        if i > 0 {
            prompt.push('\n');
        }
        match m.role {
            Role::User => prompt.push_str("User: "),
            Role::Assistant => prompt.push_str("Bot: "),
        }
        prompt.push_str(&m.text);
    }
    if ends_with_user(req) {
        prompt.push_str("\nBot:");
    }
    prompt
}

/// The Llama 3 instruct template: each turn is
/// `<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>`, and the
/// prompt ends with an open assistant header.
fn llama3_prompt(req: &Request) -> String {
    let mut prompt = String::from("<|begin_of_text|>");
    let mut turn = |role: &str, text: &str, open: bool| {
        prompt.push_str("<|start_header_id|>");
        prompt.push_str(role);
        prompt.push_str("<|end_header_id|>\n\n");
        prompt.push_str(text);
        if !open {
            prompt.push_str("<|eot_id|>");
        }
    };
    if let Some(system) = &req.system {
        turn("system", system, false);
    }
    let last = req.messages.len() - 1;
    for (i, m) in req.messages.iter().enumerate() {
        // A trailing assistant turn is a prefill: leave it open.
        turn(
            role(m.role),
            &m.text,
            i == last && m.role == Role::Assistant,
        );
    }
    if ends_with_user(req) {
        turn("assistant", "", true);
    }
    prompt
}

/// `<s>[INST] {user} [/INST] {assistant}</s> [INST] {user} [/INST]`, as on the
/// Mistral text-completion page; the system prompt opens the first user turn.
fn mistral_prompt(req: &Request) -> String {
    let mut prompt = String::from("<s>");
    let mut system = req.system.as_deref();
    let last = req.messages.len() - 1;
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::User => {
                if i > 0 {
                    prompt.push(' ');
                }
                prompt.push_str("[INST] ");
                if let Some(s) = system.take() {
                    prompt.push_str(s);
                    prompt.push_str("\n\n");
                }
                prompt.push_str(&m.text);
                prompt.push_str(" [/INST]");
            }
            Role::Assistant => {
                prompt.push(' ');
                prompt.push_str(&m.text);
                if i != last {
                    prompt.push_str("</s>");
                }
            }
        }
    }
    prompt
}

fn ends_with_user(req: &Request) -> bool {
    req.messages.last().is_some_and(|m| m.role == Role::User)
}

/// Read a family's InvokeModel response body.
///
/// `stop_reason` uses the Converse names where the mapping is obvious
/// (`end_turn`, `max_tokens`, `stop_sequence`, `content_filtered`,
/// `tool_use`, `model_context_window_exceeded`); other values are kept
/// verbatim, and a missing one is `""`. Text is kept verbatim (no trimming).
///
/// Token counts come from the body where the family reports them. Mistral
/// text bodies carry none: both counts are 0 and the invoker should use
/// [`usage_from_headers`] (see [`Family::reports_usage`]).
pub fn parse_response(family: Family, body: &[u8]) -> Result<Answer, NativeError> {
    parse_value(family, &parse_object(body)?)
}

/// Read a response whose family is unknown (a row that sent its own `body`),
/// recognising the family from the shape of the body.
pub fn parse_any(body: &[u8]) -> Result<Answer, NativeError> {
    let value = parse_object(body)?;
    let family = shape_family(&value).ok_or_else(|| {
        let keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        NativeError::UnknownShape(if keys.is_empty() {
            "none".into()
        } else {
            keys.join(", ")
        })
    })?;
    parse_value(family, &value)
}

/// The token counts Bedrock puts in the `X-Amzn-Bedrock-Input-Token-Count`
/// and `X-Amzn-Bedrock-Output-Token-Count` response headers; `None` unless
/// both are present and are whole numbers.
pub fn usage_from_headers(input: Option<&str>, output: Option<&str>) -> Option<(u64, u64)> {
    let input = input?.trim().parse().ok()?;
    let output = output?.trim().parse().ok()?;
    Some((input, output))
}

fn parse_object(body: &[u8]) -> Result<Value, NativeError> {
    let value: Value = serde_json::from_slice(body).map_err(NativeError::NotJson)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(NativeError::NotObject)
    }
}

fn shape_family(v: &Value) -> Option<Family> {
    if v.get("content").is_some_and(Value::is_array) {
        Some(Family::Anthropic)
    } else if v.pointer("/output/message").is_some() {
        Some(Family::Nova)
    } else if v.get("results").is_some_and(Value::is_array) {
        Some(Family::Titan)
    } else if v.get("generation").is_some() {
        Some(Family::Llama)
    } else if v.get("outputs").is_some_and(Value::is_array) {
        Some(Family::Mistral)
    } else if v.get("choices").is_some_and(Value::is_array) {
        Some(Family::MistralChat)
    } else {
        None
    }
}

fn parse_value(family: Family, v: &Value) -> Result<Answer, NativeError> {
    let answer = match family {
        Family::Anthropic => {
            let content = array(v, "/content", r#""content" array"#)?;
            Answer {
                text: join_text(content, "/text", |b| {
                    b.get("type").and_then(Value::as_str) == Some("text")
                }),
                stop_reason: stop_reason(v, "/stop_reason"),
                input_tokens: count(v, "/usage/input_tokens"),
                output_tokens: count(v, "/usage/output_tokens"),
                cache_read_input_tokens: opt_count(v, "/usage/cache_read_input_tokens"),
                cache_write_input_tokens: opt_count(v, "/usage/cache_creation_input_tokens"),
                ..Answer::default()
            }
        }
        Family::Nova => {
            let content = array(
                v,
                "/output/message/content",
                r#""output.message.content" array"#,
            )?;
            Answer {
                text: join_text(content, "/text", |_| true),
                stop_reason: stop_reason(v, "/stopReason"),
                input_tokens: count(v, "/usage/inputTokens"),
                output_tokens: count(v, "/usage/outputTokens"),
                cache_read_input_tokens: opt_count(v, "/usage/cacheReadInputTokenCount"),
                cache_write_input_tokens: opt_count(v, "/usage/cacheWriteInputTokenCount"),
                ..Answer::default()
            }
        }
        Family::Titan => {
            let results = nonempty(v, "/results", r#""results" array"#)?;
            Answer {
                text: join_text(results, "/outputText", |_| true),
                stop_reason: stop_reason(&results[0], "/completionReason"),
                input_tokens: count(v, "/inputTextTokenCount"),
                output_tokens: results.iter().map(|r| count(r, "/tokenCount")).sum(),
                ..Answer::default()
            }
        }
        Family::Llama => Answer {
            text: v
                .get("generation")
                .and_then(Value::as_str)
                .ok_or(NativeError::Missing(r#""generation" string"#))?
                .to_owned(),
            stop_reason: stop_reason(v, "/stop_reason"),
            input_tokens: count(v, "/prompt_token_count"),
            output_tokens: count(v, "/generation_token_count"),
            ..Answer::default()
        },
        Family::Mistral => {
            let outputs = nonempty(v, "/outputs", r#""outputs" array"#)?;
            Answer {
                text: join_text(outputs, "/text", |_| true),
                stop_reason: stop_reason(&outputs[0], "/stop_reason"),
                input_tokens: 0,
                output_tokens: 0,
                ..Answer::default()
            }
        }
        Family::MistralChat => {
            let choices = nonempty(v, "/choices", r#""choices" array"#)?;
            let choice = &choices[0];
            // Bedrock's page says `stop_reason`; Mistral's own API says
            // `finish_reason`. Accept either.
            let reason = if choice.get("stop_reason").is_some() {
                "/stop_reason"
            } else {
                "/finish_reason"
            };
            Answer {
                text: choice
                    .pointer("/message/content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                stop_reason: stop_reason(choice, reason),
                // Not on the Bedrock page; read it if a model sends it.
                input_tokens: count(v, "/usage/prompt_tokens"),
                output_tokens: count(v, "/usage/completion_tokens"),
                ..Answer::default()
            }
        }
    };
    Ok(answer)
}

fn array<'a>(v: &'a Value, pointer: &str, what: &'static str) -> Result<&'a [Value], NativeError> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or(NativeError::Missing(what))
}

fn nonempty<'a>(
    v: &'a Value,
    pointer: &str,
    what: &'static str,
) -> Result<&'a [Value], NativeError> {
    match array(v, pointer, what)? {
        [] => Err(NativeError::Missing(what)),
        items => Ok(items),
    }
}

/// The string at `pointer` of each item that `keep` accepts, concatenated.
fn join_text(items: &[Value], pointer: &str, keep: impl Fn(&Value) -> bool) -> String {
    items
        .iter()
        .filter(|item| keep(item))
        .filter_map(|item| item.pointer(pointer).and_then(Value::as_str))
        .collect()
}

fn count(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// A count the model reports only sometimes (cache tokens).
fn opt_count(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

fn stop_reason(v: &Value, pointer: &str) -> String {
    let raw = v.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    normalize_stop_reason(raw).to_owned()
}

/// Family stop reasons under their Converse names; unknown values verbatim.
fn normalize_stop_reason(raw: &str) -> &str {
    match raw {
        // Titan
        "FINISH" => "end_turn",
        "LENGTH" => "max_tokens",
        "STOP_CRITERIA_MET" => "stop_sequence",
        "CONTENT_FILTERED" => "content_filtered",
        // Llama, Mistral
        "stop" => "end_turn",
        "length" => "max_tokens",
        "model_length" => "model_context_window_exceeded",
        "tool_calls" => "tool_use",
        // Anthropic and Nova already use the Converse names.
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::request::Message;

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            text: text.into(),
            ..Message::default()
        }
    }

    fn assistant(text: &str) -> Message {
        Message {
            role: Role::Assistant,
            text: text.into(),
            ..Message::default()
        }
    }

    /// One user turn with a system prompt, max tokens and temperature.
    fn single(model: &str) -> Request {
        Request {
            model: model.into(),
            system: Some("be brief".into()),
            messages: vec![user("hi")],
            max_tokens: Some(64),
            temperature: Some(0.7),
            ..Request::default()
        }
    }

    /// Three turns, top_p and a stop sequence, no system prompt.
    fn multi(model: &str) -> Request {
        Request {
            model: model.into(),
            system: None,
            messages: vec![user("q1"), assistant("a1"), user("q2")],
            max_tokens: Some(10),
            temperature: None,
            top_p: Some(0.9),
            stop_sequences: vec!["END".into()],
            ..Request::default()
        }
    }

    fn body(family: Family, req: &Request) -> Value {
        request_body(family, req).unwrap()
    }

    // ---- family() ----

    #[test]
    fn family_of_foundation_model_ids() {
        let cases = [
            ("anthropic.claude-3-haiku-20240307-v1:0", Family::Anthropic),
            (
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                Family::Anthropic,
            ),
            ("amazon.nova-lite-v1:0", Family::Nova),
            ("amazon.nova-micro-v1:0", Family::Nova),
            ("amazon.nova-premier-v1:0", Family::Nova),
            ("amazon.titan-text-express-v1", Family::Titan),
            ("amazon.titan-text-lite-v1", Family::Titan),
            ("amazon.titan-text-premier-v1:0", Family::Titan),
            ("meta.llama3-8b-instruct-v1:0", Family::Llama),
            ("meta.llama3-1-70b-instruct-v1:0", Family::Llama),
            ("meta.llama3-3-70b-instruct-v1:0", Family::Llama),
            ("mistral.mistral-7b-instruct-v0:2", Family::Mistral),
            ("mistral.mixtral-8x7b-instruct-v0:1", Family::Mistral),
            ("mistral.mistral-small-2402-v1:0", Family::Mistral),
            ("mistral.mistral-large-2402-v1:0", Family::MistralChat),
            ("mistral.mistral-large-2407-v1:0", Family::MistralChat),
            ("mistral.pixtral-large-2502-v1:0", Family::MistralChat),
        ];
        for (id, want) in cases {
            assert_eq!(family(id), Some(want), "{id}");
        }
    }

    #[test]
    fn family_of_inference_profile_ids() {
        let cases = [
            (
                "us.anthropic.claude-3-haiku-20240307-v1:0",
                Family::Anthropic,
            ),
            (
                "apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
                Family::Anthropic,
            ),
            ("eu.amazon.nova-lite-v1:0", Family::Nova),
            ("jp.amazon.nova-lite-v1:0", Family::Nova),
            (
                "au.anthropic.claude-sonnet-4-5-20250929-v1:0",
                Family::Anthropic,
            ),
            ("ca.amazon.nova-lite-v1:0", Family::Nova),
            (
                "global.anthropic.claude-sonnet-4-20250514-v1:0",
                Family::Anthropic,
            ),
            ("us.meta.llama3-2-3b-instruct-v1:0", Family::Llama),
            (
                "us-gov.anthropic.claude-3-haiku-20240307-v1:0",
                Family::Anthropic,
            ),
            ("eu.mistral.pixtral-large-2502-v1:0", Family::MistralChat),
        ];
        for (id, want) in cases {
            assert_eq!(family(id), Some(want), "{id}");
        }
    }

    #[test]
    fn family_of_arns() {
        let cases = [
            (
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
                Family::Anthropic,
            ),
            (
                "arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.anthropic.claude-3-5-sonnet-20240620-v1:0",
                Family::Anthropic,
            ),
            (
                "arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-8b-instruct-v1:0",
                Family::Llama,
            ),
            (
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-pro-v1:0",
                Family::Nova,
            ),
        ];
        for (id, want) in cases {
            assert_eq!(family(id), Some(want), "{id}");
        }
    }

    #[test]
    fn family_of_unknown_models_is_none() {
        for id in [
            "cohere.command-r-v1:0",
            "ai21.jamba-1-5-large-v1:0",
            "amazon.titan-embed-text-v2:0",
            "amazon.nova-canvas-v1:0",
            "amazon.nova-sonic-v1:0",
            "meta.llama2-13b-chat-v1",
            "meta.llama4-scout-17b-instruct-v1:0",
            "us.deepseek.r1-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
            "claude",
            "",
        ] {
            assert_eq!(family(id), None, "{id}");
        }
    }

    // ---- request bodies ----

    #[test]
    fn anthropic_single_turn() {
        let req = single("anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(
            body(Family::Anthropic, &req),
            json!({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 64,
                "system": "be brief",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "temperature": 0.7
            })
        );
    }

    #[test]
    fn anthropic_multi_turn() {
        let req = multi("anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(
            body(Family::Anthropic, &req),
            json!({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 10,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "q1"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
                    {"role": "user", "content": [{"type": "text", "text": "q2"}]}
                ],
                "top_p": 0.9,
                "stop_sequences": ["END"]
            })
        );
    }

    #[test]
    fn anthropic_without_max_tokens_is_an_error() {
        let req = Request {
            max_tokens: None,
            ..single("anthropic.claude-3-haiku-20240307-v1:0")
        };
        let err = request_body(Family::Anthropic, &req).unwrap_err();
        assert!(matches!(err, NativeError::MaxTokensRequired));
        assert_eq!(
            err.to_string(),
            "max_tokens is required for anthropic models with api = invoke"
        );
    }

    #[test]
    fn nova_single_turn() {
        let req = single("amazon.nova-lite-v1:0");
        assert_eq!(
            body(Family::Nova, &req),
            json!({
                "schemaVersion": "messages-v1",
                "system": [{"text": "be brief"}],
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "inferenceConfig": {"maxTokens": 64, "temperature": 0.7}
            })
        );
    }

    #[test]
    fn nova_multi_turn() {
        let req = multi("amazon.nova-lite-v1:0");
        assert_eq!(
            body(Family::Nova, &req),
            json!({
                "schemaVersion": "messages-v1",
                "messages": [
                    {"role": "user", "content": [{"text": "q1"}]},
                    {"role": "assistant", "content": [{"text": "a1"}]},
                    {"role": "user", "content": [{"text": "q2"}]}
                ],
                "inferenceConfig": {"maxTokens": 10, "topP": 0.9, "stopSequences": ["END"]}
            })
        );
    }

    #[test]
    fn nova_without_parameters_has_no_inference_config() {
        let req = Request {
            messages: vec![user("hi")],
            ..Request::default()
        };
        assert_eq!(
            body(Family::Nova, &req),
            json!({
                "schemaVersion": "messages-v1",
                "messages": [{"role": "user", "content": [{"text": "hi"}]}]
            })
        );
    }

    #[test]
    fn titan_single_turn() {
        let req = single("amazon.titan-text-express-v1");
        assert_eq!(
            body(Family::Titan, &req),
            json!({
                "inputText": "be brief\n\nUser: hi\nBot:",
                "textGenerationConfig": {"maxTokenCount": 64, "temperature": 0.7}
            })
        );
    }

    #[test]
    fn titan_multi_turn() {
        let req = multi("amazon.titan-text-express-v1");
        assert_eq!(
            body(Family::Titan, &req),
            json!({
                "inputText": "User: q1\nBot: a1\nUser: q2\nBot:",
                "textGenerationConfig": {"maxTokenCount": 10, "topP": 0.9, "stopSequences": ["END"]}
            })
        );
    }

    #[test]
    fn llama_single_turn() {
        let req = single("meta.llama3-8b-instruct-v1:0");
        assert_eq!(
            body(Family::Llama, &req),
            json!({
                "prompt": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nbe brief<|eot_id|>\
                           <|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>\
                           <|start_header_id|>assistant<|end_header_id|>\n\n",
                "max_gen_len": 64,
                "temperature": 0.7
            })
        );
    }

    #[test]
    fn llama_multi_turn() {
        let req = Request {
            stop_sequences: vec![],
            ..multi("meta.llama3-8b-instruct-v1:0")
        };
        assert_eq!(
            body(Family::Llama, &req),
            json!({
                "prompt": "<|begin_of_text|>\
                           <|start_header_id|>user<|end_header_id|>\n\nq1<|eot_id|>\
                           <|start_header_id|>assistant<|end_header_id|>\n\na1<|eot_id|>\
                           <|start_header_id|>user<|end_header_id|>\n\nq2<|eot_id|>\
                           <|start_header_id|>assistant<|end_header_id|>\n\n",
                "max_gen_len": 10,
                "top_p": 0.9
            })
        );
    }

    #[test]
    fn llama_trailing_assistant_turn_is_a_prefill() {
        let req = Request {
            messages: vec![user("q"), assistant("The answer is")],
            ..Request::default()
        };
        assert_eq!(
            body(Family::Llama, &req)["prompt"],
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\nThe answer is"
        );
    }

    #[test]
    fn stop_sequences_are_an_error_where_the_body_has_no_field() {
        for f in [Family::Llama, Family::MistralChat] {
            let err = request_body(f, &multi("x")).unwrap_err();
            assert!(matches!(err, NativeError::Unsupported { .. }), "{f}");
        }
        assert_eq!(
            request_body(Family::Llama, &multi("x"))
                .unwrap_err()
                .to_string(),
            "stop sequences are not supported by meta llama models with api = invoke"
        );
    }

    #[test]
    fn mistral_single_turn() {
        let req = single("mistral.mistral-7b-instruct-v0:2");
        assert_eq!(
            body(Family::Mistral, &req),
            json!({
                "prompt": "<s>[INST] be brief\n\nhi [/INST]",
                "max_tokens": 64,
                "temperature": 0.7
            })
        );
    }

    #[test]
    fn mistral_multi_turn() {
        let req = multi("mistral.mistral-7b-instruct-v0:2");
        assert_eq!(
            body(Family::Mistral, &req),
            json!({
                "prompt": "<s>[INST] q1 [/INST] a1</s> [INST] q2 [/INST]",
                "max_tokens": 10,
                "stop": ["END"],
                "top_p": 0.9
            })
        );
    }

    #[test]
    fn mistral_chat_single_turn() {
        let req = single("mistral.mistral-large-2402-v1:0");
        assert_eq!(
            body(Family::MistralChat, &req),
            json!({
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"}
                ],
                "max_tokens": 64,
                "temperature": 0.7
            })
        );
    }

    #[test]
    fn mistral_chat_multi_turn() {
        let req = Request {
            stop_sequences: vec![],
            ..multi("mistral.mistral-large-2402-v1:0")
        };
        assert_eq!(
            body(Family::MistralChat, &req),
            json!({
                "messages": [
                    {"role": "user", "content": "q1"},
                    {"role": "assistant", "content": "a1"},
                    {"role": "user", "content": "q2"}
                ],
                "max_tokens": 10,
                "top_p": 0.9
            })
        );
    }

    #[test]
    fn no_messages_is_an_error() {
        let req = Request {
            max_tokens: Some(1),
            ..Request::default()
        };
        for f in [
            Family::Anthropic,
            Family::Nova,
            Family::Titan,
            Family::Llama,
            Family::Mistral,
            Family::MistralChat,
        ] {
            assert!(
                matches!(request_body(f, &req), Err(NativeError::NoMessages)),
                "{f}"
            );
        }
    }

    #[test]
    fn floats_keep_their_written_value() {
        let req = Request {
            temperature: Some(0.1),
            top_p: Some(0.95),
            ..single("amazon.nova-lite-v1:0")
        };
        let text = serde_json::to_string(&body(Family::Nova, &req)).unwrap();
        assert!(text.contains(r#""temperature":0.1,"topP":0.95"#), "{text}");
    }

    // ---- responses ----

    #[test]
    fn anthropic_response() {
        let body = br#"{"id":"msg_bdrk_01","type":"message","role":"assistant",
            "model":"claude-3-haiku-20240307",
            "content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}],
            "stop_reason":"max_tokens","stop_sequence":null,
            "usage":{"input_tokens":12,"output_tokens":4}}"#;
        let want = Answer {
            text: "Hello there".into(),
            stop_reason: "max_tokens".into(),
            input_tokens: 12,
            output_tokens: 4,
            ..Answer::default()
        };
        assert_eq!(parse_response(Family::Anthropic, body).unwrap(), want);
        assert_eq!(parse_any(body).unwrap(), want);
    }

    #[test]
    fn nova_response() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Paris."}]}},
            "stopReason":"end_turn",
            "usage":{"inputTokens":9,"outputTokens":3,"totalTokens":12}}"#;
        let want = Answer {
            text: "Paris.".into(),
            stop_reason: "end_turn".into(),
            input_tokens: 9,
            output_tokens: 3,
            ..Answer::default()
        };
        assert_eq!(parse_response(Family::Nova, body).unwrap(), want);
        assert_eq!(parse_any(body).unwrap(), want);
    }

    #[test]
    fn titan_response() {
        let body = br#"{"inputTextTokenCount":7,
            "results":[{"tokenCount":5,"outputText":"\nParis is the capital.","completionReason":"FINISH"}]}"#;
        let want = Answer {
            text: "\nParis is the capital.".into(),
            stop_reason: "end_turn".into(),
            input_tokens: 7,
            output_tokens: 5,
            ..Answer::default()
        };
        assert_eq!(parse_response(Family::Titan, body).unwrap(), want);
        assert_eq!(parse_any(body).unwrap(), want);

        let length = br#"{"inputTextTokenCount":7,
            "results":[{"tokenCount":64,"outputText":"Paris is","completionReason":"LENGTH"}]}"#;
        assert_eq!(
            parse_response(Family::Titan, length).unwrap().stop_reason,
            "max_tokens"
        );
    }

    #[test]
    fn llama_response() {
        let body = br#"{"generation":"Paris.","prompt_token_count":20,
            "generation_token_count":3,"stop_reason":"stop"}"#;
        let want = Answer {
            text: "Paris.".into(),
            stop_reason: "end_turn".into(),
            input_tokens: 20,
            output_tokens: 3,
            ..Answer::default()
        };
        assert_eq!(parse_response(Family::Llama, body).unwrap(), want);
        assert_eq!(parse_any(body).unwrap(), want);

        let length = br#"{"generation":"Pa","prompt_token_count":20,
            "generation_token_count":1,"stop_reason":"length"}"#;
        assert_eq!(
            parse_response(Family::Llama, length).unwrap().stop_reason,
            "max_tokens"
        );
    }

    #[test]
    fn mistral_response_has_no_usage() {
        let body = br#"{"outputs":[{"text":" Paris.","stop_reason":"length"}]}"#;
        let want = Answer {
            text: " Paris.".into(),
            stop_reason: "max_tokens".into(),
            input_tokens: 0,
            output_tokens: 0,
            ..Answer::default()
        };
        assert_eq!(parse_response(Family::Mistral, body).unwrap(), want);
        assert_eq!(parse_any(body).unwrap(), want);
        assert!(!Family::Mistral.reports_usage());
    }

    #[test]
    fn mistral_chat_response() {
        let body = br#"{"choices":[{"index":0,
            "message":{"role":"assistant","content":"Paris."},"stop_reason":"stop"}]}"#;
        let want = Answer {
            text: "Paris.".into(),
            stop_reason: "end_turn".into(),
            input_tokens: 0,
            output_tokens: 0,
            ..Answer::default()
        };
        assert_eq!(parse_response(Family::MistralChat, body).unwrap(), want);
        assert_eq!(parse_any(body).unwrap(), want);

        let finish = br#"{"choices":[{"index":0,
            "message":{"role":"assistant","content":"Pa"},"finish_reason":"length"}],
            "usage":{"prompt_tokens":8,"completion_tokens":1}}"#;
        let answer = parse_response(Family::MistralChat, finish).unwrap();
        assert_eq!(answer.stop_reason, "max_tokens");
        assert_eq!((answer.input_tokens, answer.output_tokens), (8, 1));
    }

    #[test]
    fn unknown_stop_reasons_are_kept_verbatim() {
        let body = br#"{"generation":"x","stop_reason":"weird_reason"}"#;
        let answer = parse_response(Family::Llama, body).unwrap();
        assert_eq!(answer.stop_reason, "weird_reason");
        assert_eq!((answer.input_tokens, answer.output_tokens), (0, 0));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let err = |f, b: &[u8]| parse_response(f, b).unwrap_err().to_string();
        assert!(err(Family::Anthropic, b"not json").starts_with("response is not JSON: "));
        assert_eq!(
            err(Family::Anthropic, b"[1]"),
            "response is not a JSON object"
        );
        assert_eq!(
            err(Family::Anthropic, br#"{"content":"hi"}"#),
            r#"response has no "content" array"#
        );
        assert_eq!(
            err(Family::Nova, br#"{"output":{}}"#),
            r#"response has no "output.message.content" array"#
        );
        assert_eq!(
            err(Family::Titan, br#"{"results":[]}"#),
            r#"response has no "results" array"#
        );
        assert_eq!(
            err(Family::Llama, br#"{"generation":null}"#),
            r#"response has no "generation" string"#
        );
        assert_eq!(
            err(Family::Mistral, br#"{"choices":[]}"#),
            r#"response has no "outputs" array"#
        );
        assert_eq!(
            err(Family::MistralChat, br#"{}"#),
            r#"response has no "choices" array"#
        );
    }

    #[test]
    fn parse_any_rejects_unknown_shapes() {
        let err = parse_any(br#"{"completion":"x","stop":"y"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "response shape is not recognized (top-level keys: completion, stop)"
        );
        assert_eq!(
            parse_any(b"{}").unwrap_err().to_string(),
            "response shape is not recognized (top-level keys: none)"
        );
    }

    #[test]
    fn usage_from_headers_needs_both_numbers() {
        assert_eq!(usage_from_headers(Some("12"), Some(" 4 ")), Some((12, 4)));
        assert_eq!(usage_from_headers(Some("12"), None), None);
        assert_eq!(usage_from_headers(None, Some("4")), None);
        assert_eq!(usage_from_headers(Some("x"), Some("4")), None);
    }
}
