//! `Conversation`: a model request reduced to what the deterministic model needs, and the
//! parser for the Converse JSON shape.
//!
//! Model-native InvokeModel bodies are parsed into the same struct by `family.rs`. This module
//! does not answer anything (`model.rs`) nor render responses.

use serde_json::Value;

use super::cache::Prefix;

/// The parts of a request that decide the answer and its usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conversation {
    /// Text of the last user message, text blocks joined with `"\n"`: what gets answered.
    pub prompt: String,
    /// `count_tokens` over the system texts and every message text, joined with `"\n"`.
    pub input_tokens: u64,
    pub max_tokens: Option<u64>,
    pub stop_sequences: Vec<String>,
    /// The prefix before the last `cachePoint` block, if the request has one.
    pub cache_prefix: Option<Prefix>,
    /// Converse `serviceTier.type` (InvokeModel's comes in a header).
    pub service_tier: Option<String>,
    /// The JSON Schema the answer must satisfy: `outputConfig.textFormat`'s,
    /// or the one a system prompt's instruction gives (`instance.rs`).
    pub output_schema: Option<Value>,
    /// Where `output_schema` came from: `output_config` or `instruction`.
    pub schema_source: Option<&'static str>,
}

/// Accumulates texts in request order to compute `prompt` and `input_tokens` without
/// building the joined string.
#[derive(Default)]
pub struct TextTally {
    tokens: u64,
    texts: u64,
    /// FNV-1a over the texts so far, each followed by 0xff: the prompt cache's key.
    hash: u64,
}

impl TextTally {
    pub fn add(&mut self, text: &str) {
        if !text.is_empty() {
            self.tokens += super::tokenizer::count(text);
        }
        self.texts += 1;
        let mut h = if self.texts == 1 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.hash
        };
        for b in text.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.hash = h;
    }

    /// The prefix read so far, for a cache point here.
    pub fn prefix(&self) -> Prefix {
        Prefix {
            tokens: self.tokens(),
            hash: self.hash,
        }
    }

    /// Tokens of all added texts read one after another (`tokenizer::count_all`).
    pub fn tokens(&self) -> u64 {
        (self.tokens + self.texts.saturating_sub(1)).max(1)
    }
}

/// A request the model can't accept; the text becomes a ValidationException message.
pub type Invalid = String;

impl Conversation {
    /// Parses a Converse / ConverseStream request body.
    pub fn from_converse(body: &[u8]) -> Result<Conversation, Invalid> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            format!("Malformed input request: {e}, please reformat your input and try again.")
        })?;
        let mut tally = TextTally::default();
        let mut cache_prefix = None;
        let mut schema_in_system = None;
        if let Some(system) = v.get("system") {
            let blocks = system
                .as_array()
                .ok_or("Malformed input request: system must be a list of content blocks.")?;
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    tally.add(t);
                    schema_in_system =
                        schema_in_system.or_else(|| super::instance::schema_in_text(t));
                } else if b.get("cachePoint").is_some() {
                    cache_prefix = Some(tally.prefix());
                }
            }
        }
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
            .ok_or("The messages field is required and must contain at least one message.")?;
        let mut prompt = None;
        for (i, m) in messages.iter().enumerate() {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("");
            if i == 0 && role != "user" {
                return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.".into());
            }
            if role != "user" && role != "assistant" {
                return Err(format!(
                    "1 validation error detected: Value '{role}' at 'messages.{}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]",
                    i + 1
                ));
            }
            let content = m.get("content").and_then(Value::as_array).ok_or_else(|| {
                format!("Malformed input request: messages.{i}.content must be a list of content blocks.")
            })?;
            if content.iter().any(|b| b.get("cachePoint").is_some()) {
                // The prefix ends at the last cache point: this message's texts before it.
                let last = content
                    .iter()
                    .rposition(|b| b.get("cachePoint").is_some())
                    .unwrap_or(0);
                let mut t = TextTally {
                    tokens: tally.tokens,
                    texts: tally.texts,
                    hash: tally.hash,
                };
                for b in &content[..last] {
                    if let Some(text) = b.get("text").and_then(Value::as_str) {
                        t.add(text);
                    }
                }
                cache_prefix = Some(t.prefix());
            }
            let mut joined = String::new();
            for (j, b) in content.iter().filter_map(|b| b.get("text")).enumerate() {
                let t = b
                    .as_str()
                    .ok_or("Malformed input request: text must be a string.")?;
                tally.add(t);
                if role == "user" {
                    if j > 0 {
                        joined.push('\n');
                    }
                    joined.push_str(t);
                }
            }
            if role == "user" {
                prompt = Some(joined);
            }
        }
        let mut conv = Conversation {
            prompt: prompt.unwrap_or_default(),
            input_tokens: tally.tokens(),
            cache_prefix,
            service_tier: v
                .pointer("/serviceTier/type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ..Conversation::default()
        };
        conv.output_schema = match v.pointer("/outputConfig/textFormat") {
            Some(format) => {
                let text = format
                    .pointer("/structure/jsonSchema/schema")
                    .and_then(Value::as_str)
                    .ok_or("1 validation error detected: outputConfig.textFormat.structure.jsonSchema.schema is required")?;
                conv.schema_source = Some("output_config");
                Some(
                    serde_json::from_str(text)
                        .map_err(|e| format!("The provided JSON schema is not valid JSON: {e}"))?,
                )
            }
            None => {
                if schema_in_system.is_some() {
                    conv.schema_source = Some("instruction");
                }
                schema_in_system
            }
        };
        if let Some(cfg) = v.get("inferenceConfig") {
            conv.max_tokens = positive(cfg, "maxTokens", "inferenceConfig.maxTokens")?;
            in_unit_range(cfg, "temperature", "inferenceConfig.temperature")?;
            in_unit_range(cfg, "topP", "inferenceConfig.topP")?;
            conv.stop_sequences = strings(cfg.get("stopSequences"));
        }
        Ok(conv)
    }
}

/// Reads an optional integer ≥ 1, with the service's constraint message when it isn't.
pub fn positive(obj: &Value, key: &str, path: &str) -> Result<Option<u64>, Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!(
                "1 validation error detected: Value '{v}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )),
        },
    }
}

/// Checks an optional number lies in [0, 1].
pub fn in_unit_range(obj: &Value, key: &str, path: &str) -> Result<(), Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(()),
            _ => Err(format!(
                "1 validation error detected: Value '{v}' at '{path}' failed to satisfy constraint: Member must have value between 0 and 1"
            )),
        },
    }
}

/// A JSON string or list of strings (stop sequences come in both forms).
pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converse_prompt_is_last_user_message() {
        let body = br#"{"system":[{"text":"be brief"}],"inferenceConfig":{"maxTokens":64,"temperature":0.0,"stopSequences":["END"]},
            "messages":[{"role":"user","content":[{"text":"first"}]},{"role":"assistant","content":[{"text":"ok"}]},
                        {"role":"user","content":[{"text":"second"},{"text":"part"}]}]}"#;
        let c = Conversation::from_converse(body).unwrap();
        assert_eq!(c.prompt, "second\npart");
        // be, brief, first, ok, second, part + four separators
        assert_eq!(c.input_tokens, 10);
        assert_eq!(c.max_tokens, Some(64));
        assert_eq!(c.stop_sequences, vec!["END".to_string()]);
    }

    #[test]
    fn cache_points_mark_the_prefix() {
        let body = br#"{"system":[{"text":"a long instruction"},{"cachePoint":{"type":"default"}}],
            "messages":[{"role":"user","content":[{"text":"q"}]}],"serviceTier":{"type":"flex"}}"#;
        let c = Conversation::from_converse(body).unwrap();
        // a, long, instruction (11 letters: 3)
        assert_eq!(c.cache_prefix.map(|p| p.tokens), Some(5));
        assert_eq!(c.input_tokens, 5 + 1 + 1);
        assert_eq!(c.service_tier.as_deref(), Some("flex"));
        let body = br#"{"messages":[{"role":"user","content":[{"text":"doc text"},{"cachePoint":{"type":"default"}},{"text":"q"}]}]}"#;
        let c = Conversation::from_converse(body).unwrap();
        assert_eq!(c.cache_prefix.map(|p| p.tokens), Some(2));
        assert_eq!(c.prompt, "doc text\nq");
        let plain = Conversation::from_converse(
            br#"{"messages":[{"role":"user","content":[{"text":"q"}]}]}"#,
        )
        .unwrap();
        assert_eq!(plain.cache_prefix, None);
    }

    #[test]
    fn converse_rejects_bad_input() {
        assert!(Conversation::from_converse(b"{").is_err());
        assert!(Conversation::from_converse(br#"{"messages":[]}"#).is_err());
        assert!(Conversation::from_converse(
            br#"{"messages":[{"role":"assistant","content":[{"text":"x"}]}]}"#
        )
        .is_err());
        assert!(Conversation::from_converse(
            br#"{"messages":[{"role":"user","content":[{"text":"x"}]}],"inferenceConfig":{"maxTokens":0}}"#
        )
        .is_err());
    }
}
