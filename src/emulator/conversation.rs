//! `Conversation`: a model request reduced to what the deterministic model needs, and the
//! parser for the Converse JSON shape.
//!
//! Model-native InvokeModel bodies are parsed into the same struct by `family.rs`. This module
//! does not answer anything (`model.rs`) nor render responses.

use serde_json::Value;

/// The parts of a request that decide the answer and its usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conversation {
    /// Text of the last user message, text blocks joined with `"\n"`: what gets answered.
    pub prompt: String,
    /// `count_tokens` over the system texts and every message text, joined with `"\n"`.
    pub input_tokens: u64,
    pub max_tokens: Option<u64>,
    pub stop_sequences: Vec<String>,
}

/// Accumulates texts in request order to compute `prompt` and `input_tokens` without
/// building the joined string.
#[derive(Default)]
pub struct TextTally {
    chars: u64,
    texts: u64,
}

impl TextTally {
    pub fn add(&mut self, text: &str) {
        self.chars += text.chars().count() as u64;
        self.texts += 1;
    }

    /// Tokens of all added texts joined with one `"\n"` between each pair.
    pub fn tokens(&self) -> u64 {
        super::model::tokens_for_chars(self.chars + self.texts.saturating_sub(1))
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
        if let Some(system) = v.get("system") {
            let blocks = system
                .as_array()
                .ok_or("Malformed input request: system must be a list of content blocks.")?;
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    tally.add(t);
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
            ..Conversation::default()
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
        // "be brief\nfirst\nok\nsecond\npart" = 29 chars
        assert_eq!(c.input_tokens, 8);
        assert_eq!(c.max_tokens, Some(64));
        assert_eq!(c.stop_sequences, vec!["END".to_string()]);
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
