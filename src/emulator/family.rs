//! `Family`: the model-native InvokeModel body formats (Anthropic messages, Amazon Nova,
//! Titan Text, Meta Llama, Mistral), parsed into a `Conversation` and rendered back from a
//! `Generation`, whole or as stream chunks.
//!
//! The family is chosen from the model id, as Bedrock does. Transport (event-stream frames,
//! headers, base64 wrapping) is not here; that is `bedrock.rs` and `eventstream.rs`.

use serde_json::{json, Map, Value};

use super::conversation::{in_unit_range, positive, strings, Conversation, Invalid, TextTally};
use super::model::{self, Generation, StopReason};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Anthropic,
    Nova,
    Titan,
    Llama,
    /// Mistral text completion (`prompt`).
    MistralText,
    /// Mistral chat completion (`messages`, Mistral Large).
    MistralChat,
}

/// The foundation-model part of a model id, inference-profile id or ARN
/// (`arn:...:inference-profile/apac.anthropic.x` → `anthropic.x`).
pub use crate::bedrock::catalog::base_id as base_model;

/// One parsed native request.
pub struct Native {
    pub family: Family,
    pub conversation: Conversation,
}

fn malformed(detail: &str) -> Invalid {
    format!("Malformed input request: {detail}, please reformat your input and try again.")
}

fn required<'a>(v: &'a Value, key: &str) -> Result<&'a Value, Invalid> {
    v.get(key)
        .ok_or_else(|| malformed(&format!("#: required key [{key}] not found")))
}

/// Text of a content value that is either a string or a list of `{"text": ..}` blocks.
fn content_text(content: &Value, tally: &mut TextTally) -> Result<String, Invalid> {
    match content {
        Value::String(s) => {
            tally.add(s);
            Ok(s.clone())
        }
        Value::Array(blocks) => {
            let mut out = String::new();
            for (i, t) in blocks.iter().filter_map(|b| b.get("text")).enumerate() {
                let t = t
                    .as_str()
                    .ok_or_else(|| malformed("#/content: text must be a string"))?;
                tally.add(t);
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(t);
            }
            Ok(out)
        }
        _ => Err(malformed("#/content: expected type: String or JSONArray")),
    }
}

/// Walks a `messages` list: tallies every text and returns the last user message's text.
fn messages_prompt(v: &Value, tally: &mut TextTally) -> Result<String, Invalid> {
    let messages = required(v, "messages")?
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| malformed("#/messages: expected minimum item count: 1"))?;
    let mut prompt = String::new();
    for m in messages {
        let text = content_text(required(m, "content")?, tally)?;
        if m.get("role").and_then(Value::as_str) == Some("user") {
            prompt = text;
        }
    }
    Ok(prompt)
}

impl Family {
    /// The family serving `model_id`, or `None` for vendors whose native format the emulator
    /// does not speak (Converse still works for them).
    pub fn of_model(model_id: &str) -> Option<Family> {
        let base = base_model(model_id);
        if base.starts_with("anthropic.") {
            Some(Family::Anthropic)
        } else if base.starts_with("amazon.nova") {
            Some(Family::Nova)
        } else if base.starts_with("amazon.titan-text") || base.starts_with("amazon.titan-tg") {
            Some(Family::Titan)
        } else if base.starts_with("meta.") {
            Some(Family::Llama)
        } else if base.starts_with("mistral.") {
            Some(Family::MistralText)
        } else {
            None
        }
    }

    /// Parses a native request body for this family.
    pub fn parse(self, body: &[u8]) -> Result<Native, Invalid> {
        let v: Value = serde_json::from_slice(body).map_err(|e| malformed(&e.to_string()))?;
        if !v.is_object() {
            return Err(malformed("#: expected type: JSONObject"));
        }
        let mut tally = TextTally::default();
        let mut family = self;
        let mut conv = Conversation::default();
        match self {
            Family::Anthropic => {
                required(&v, "anthropic_version")?;
                if let Some(system) = v.get("system") {
                    content_text(system, &mut tally)?;
                }
                conv.prompt = messages_prompt(&v, &mut tally)?;
                required(&v, "max_tokens")?;
                conv.max_tokens = positive(&v, "max_tokens", "max_tokens")?;
                in_unit_range(&v, "temperature", "temperature")?;
                conv.stop_sequences = strings(v.get("stop_sequences"));
            }
            Family::Nova => {
                if let Some(system) = v.get("system") {
                    content_text(system, &mut tally)?;
                }
                conv.prompt = messages_prompt(&v, &mut tally)?;
                if let Some(cfg) = v.get("inferenceConfig") {
                    conv.max_tokens = match positive(cfg, "maxTokens", "inferenceConfig.maxTokens")?
                    {
                        Some(n) => Some(n),
                        None => positive(cfg, "max_new_tokens", "inferenceConfig.max_new_tokens")?,
                    };
                    conv.stop_sequences = strings(cfg.get("stopSequences"));
                }
            }
            Family::Titan => {
                let text = required(&v, "inputText")?
                    .as_str()
                    .ok_or_else(|| malformed("#/inputText: expected type: String"))?;
                tally.add(text);
                conv.prompt = text.to_owned();
                if let Some(cfg) = v.get("textGenerationConfig") {
                    conv.max_tokens = positive(cfg, "maxTokenCount", "maxTokenCount")?;
                    conv.stop_sequences = strings(cfg.get("stopSequences"));
                }
            }
            Family::Llama => {
                let text = required(&v, "prompt")?
                    .as_str()
                    .ok_or_else(|| malformed("#/prompt: expected type: String"))?;
                tally.add(text);
                conv.prompt = text.to_owned();
                conv.max_tokens = positive(&v, "max_gen_len", "max_gen_len")?;
            }
            Family::MistralText | Family::MistralChat => {
                if v.get("messages").is_some() {
                    family = Family::MistralChat;
                    conv.prompt = messages_prompt(&v, &mut tally)?;
                } else {
                    let text = required(&v, "prompt")?
                        .as_str()
                        .ok_or_else(|| malformed("#/prompt: expected type: String"))?;
                    tally.add(text);
                    conv.prompt = text.to_owned();
                }
                conv.max_tokens = positive(&v, "max_tokens", "max_tokens")?;
                conv.stop_sequences = strings(v.get("stop"));
            }
        }
        conv.input_tokens = tally.tokens();
        Ok(Native {
            family,
            conversation: conv,
        })
    }

    /// The whole InvokeModel response body.
    pub fn render(self, model_id: &str, input_tokens: u64, gen: &Generation, id: u64) -> Value {
        let out = gen.output_tokens;
        match self {
            Family::Anthropic => json!({
                "id": format!("msg_bdrk_{id:024x}"),
                "type": "message",
                "role": "assistant",
                "model": base_model(model_id),
                "content": [{"type": "text", "text": gen.text}],
                "stop_reason": anthropic_stop(gen.stop),
                "stop_sequence": gen.stop_sequence,
                "usage": {"input_tokens": input_tokens, "output_tokens": out},
            }),
            Family::Nova => json!({
                "output": {"message": {"role": "assistant", "content": [{"text": gen.text}]}},
                "stopReason": converse_stop(gen.stop),
                "usage": {"inputTokens": input_tokens, "outputTokens": out, "totalTokens": input_tokens + out},
            }),
            Family::Titan => json!({
                "inputTextTokenCount": input_tokens,
                "results": [{"tokenCount": out, "outputText": gen.text, "completionReason": titan_stop(gen.stop)}],
            }),
            Family::Llama => json!({
                "generation": gen.text,
                "prompt_token_count": input_tokens,
                "generation_token_count": out,
                "stop_reason": short_stop(gen.stop),
            }),
            Family::MistralText => json!({
                "outputs": [{"text": gen.text, "stop_reason": short_stop(gen.stop)}],
            }),
            Family::MistralChat => json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text}, "stop_reason": short_stop(gen.stop)}],
            }),
        }
    }

    /// The InvokeModelWithResponseStream chunks (each a JSON object; the caller adds
    /// `amazon-bedrock-invocationMetrics` to the last one).
    pub fn chunks(
        self,
        model_id: &str,
        input_tokens: u64,
        gen: &Generation,
        id: u64,
    ) -> Vec<Map<String, Value>> {
        let pieces = model::deltas(&gen.text);
        let out = gen.output_tokens;
        let mut chunks: Vec<Value> = Vec::with_capacity(pieces.len() + 5);
        match self {
            Family::Anthropic => {
                chunks.push(json!({"type": "message_start", "message": {
                    "id": format!("msg_bdrk_{id:024x}"), "type": "message", "role": "assistant",
                    "model": base_model(model_id), "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}));
                chunks.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
                for p in &pieces {
                    chunks.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}));
                }
                chunks.push(json!({"type": "content_block_stop", "index": 0}));
                chunks.push(json!({"type": "message_delta",
                    "delta": {"stop_reason": anthropic_stop(gen.stop), "stop_sequence": gen.stop_sequence},
                    "usage": {"output_tokens": out}}));
                chunks.push(json!({"type": "message_stop"}));
            }
            Family::Nova => {
                chunks.push(json!({"messageStart": {"role": "assistant"}}));
                for p in &pieces {
                    chunks.push(json!({"contentBlockDelta": {"delta": {"text": p}, "contentBlockIndex": 0}}));
                }
                chunks.push(json!({"contentBlockStop": {"contentBlockIndex": 0}}));
                chunks.push(json!({"messageStop": {"stopReason": converse_stop(gen.stop)}}));
                chunks.push(json!({"metadata": {"usage": {"inputTokens": input_tokens, "outputTokens": out}}}));
            }
            Family::Titan | Family::Llama | Family::MistralText | Family::MistralChat => {
                let last = pieces.len() - 1;
                for (i, p) in pieces.iter().enumerate() {
                    let done = i == last;
                    chunks.push(match self {
                        Family::Titan => json!({"outputText": p, "index": 0,
                            "totalOutputTextTokenCount": if done { Some(out) } else { None },
                            "completionReason": if done { Some(titan_stop(gen.stop)) } else { None },
                            "inputTextTokenCount": if i == 0 { Some(input_tokens) } else { None }}),
                        Family::Llama => json!({"generation": p,
                            "prompt_token_count": if i == 0 { Some(input_tokens) } else { None },
                            "generation_token_count": if done { out } else { (i as u64 + 1).min(out) },
                            "stop_reason": if done { Some(short_stop(gen.stop)) } else { None }}),
                        Family::MistralText => json!({"outputs": [{"text": p,
                            "stop_reason": if done { Some(short_stop(gen.stop)) } else { None }}]}),
                        _ => json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": p},
                            "stop_reason": if done { Some(short_stop(gen.stop)) } else { None }}]}),
                    });
                }
            }
        }
        chunks
            .into_iter()
            .filter_map(|c| match c {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

pub fn converse_stop(s: StopReason) -> &'static str {
    match s {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
    }
}

fn anthropic_stop(s: StopReason) -> &'static str {
    converse_stop(s)
}

fn titan_stop(s: StopReason) -> &'static str {
    match s {
        StopReason::MaxTokens => "LENGTH",
        StopReason::StopSequence => "STOP_CRITERIA_MET",
        StopReason::EndTurn => "FINISH",
    }
}

fn short_stop(s: StopReason) -> &'static str {
    match s {
        StopReason::MaxTokens => "length",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_from_ids_and_arns() {
        assert_eq!(
            Family::of_model("anthropic.claude-3-haiku-20240307-v1:0"),
            Some(Family::Anthropic)
        );
        assert_eq!(
            Family::of_model("arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.anthropic.claude-3-5-sonnet-20240620-v1:0"),
            Some(Family::Anthropic)
        );
        assert_eq!(
            Family::of_model("us.amazon.nova-lite-v1:0"),
            Some(Family::Nova)
        );
        assert_eq!(
            Family::of_model("amazon.titan-text-express-v1"),
            Some(Family::Titan)
        );
        assert_eq!(
            Family::of_model("meta.llama3-8b-instruct-v1:0"),
            Some(Family::Llama)
        );
        assert_eq!(
            Family::of_model("mistral.mistral-7b-instruct-v0:2"),
            Some(Family::MistralText)
        );
        assert_eq!(Family::of_model("cohere.command-r-v1:0"), None);
    }

    #[test]
    fn anthropic_body_parses_and_requires_keys() {
        let n = Family::Anthropic
            .parse(
                br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"system":"sys",
                "messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}"#,
            )
            .unwrap();
        assert_eq!(n.conversation.prompt, "hello");
        assert_eq!(n.conversation.max_tokens, Some(10));
        assert!(Family::Anthropic
            .parse(br#"{"max_tokens":10,"messages":[]}"#)
            .is_err());
        assert!(Family::Anthropic.parse(br#"{"inputText":"x"}"#).is_err());
        let m = Family::MistralText
            .parse(br#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#)
            .unwrap();
        assert_eq!(m.family, Family::MistralChat);
    }
}
