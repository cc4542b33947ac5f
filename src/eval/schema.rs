//! `output_schema`: the JSON Schema every answer must satisfy, how it reaches
//! each model, and the local check of each answer.
//!
//! The schema reaches a model one of two ways ([`Route`]): Converse's
//! `outputConfig.textFormat` (`json_schema`) for the model families Bedrock
//! constrains natively, or an instruction appended to the system prompt for
//! every other model and for InvokeModel. Either way the answer is parsed and
//! validated here, with the `jsonschema` crate: a model that ignores the
//! instruction, or an answer cut off by `max_tokens`, is caught, not written.
//! This module does not retry; the runner decides that.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bedrock::request::Api;

/// A compiled `output_schema` file.
pub struct OutputSchema {
    /// As named in the config (resolved against the config file's folder).
    pub path: PathBuf,
    /// The schema as sent: compact JSON text.
    pub text: String,
    /// The schema's name in `outputConfig` (the file's stem, as Bedrock
    /// wants it: letters, digits, `_` and `-`).
    pub name: String,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSchema")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How a job's schema reaches one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Converse `outputConfig.textFormat`: Bedrock constrains the decoding.
    Native,
    /// The schema, as an instruction, at the end of the system prompt.
    Instruction,
}

impl Route {
    pub fn describe(self) -> &'static str {
        match self {
            Route::Native => "sent as outputConfig.textFormat (json_schema)",
            Route::Instruction => "given as an instruction in the system prompt",
        }
    }
}

/// Where the instruction puts the schema; the emulator reads it from there,
/// as a model would.
pub const OPEN_TAG: &str = "<json-schema>";
pub const CLOSE_TAG: &str = "</json-schema>";

/// Model families whose Converse calls accept `outputConfig.textFormat`.
///
/// Source: Amazon Bedrock User Guide, "Get validated JSON results from
/// models" (docs.aws.amazon.com/bedrock/latest/userguide/structured-output.html)
/// and its Claude page (claude-messages-structured-outputs.html): "You can use
/// structured outputs with Claude Sonnet 4.5, Claude Haiku 4.5, Claude Opus
/// 4.5, and Claude Opus 4.6 through the Converse API"; the same guide lists
/// "select" open-weight models (Qwen, DeepSeek, Mistral, Gemma, Nemotron,
/// MiniMax, Moonshot, OpenAI gpt-oss) without naming versions, so of those
/// only the ones whose model pages say so are here: OpenAI's gpt-oss and
/// Qwen3. Anything not matched takes the instruction route, which works for
/// every model; a family is added here once AWS documents it.
const NATIVE: [&str; 7] = [
    "anthropic.claude-sonnet-4-5",
    "anthropic.claude-haiku-4-5",
    "anthropic.claude-opus-4-5",
    "anthropic.claude-opus-4-6",
    "anthropic.claude-sonnet-4-6",
    "openai.gpt-oss",
    "qwen.qwen3",
];

/// The route for `model` (an id, an inference profile id such as
/// `us.anthropic.…`, or an ARN) under `api`. InvokeModel always takes the
/// instruction: the native bodies built in `bedrock/native.rs` carry no
/// schema field.
pub fn route(model: &str, api: Api) -> Route {
    if api == Api::Invoke {
        return Route::Instruction;
    }
    let m = model.to_ascii_lowercase();
    if NATIVE.iter().any(|family| m.contains(family)) {
        Route::Native
    } else {
        Route::Instruction
    }
}

/// Why an answer was not accepted: for the failure line and the retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub message: String,
}

impl OutputSchema {
    /// Reads and compiles `path`. Errors are one line: the file, then what
    /// is wrong (not JSON, or not a valid JSON Schema, with where).
    pub fn load(path: &Path) -> anyhow::Result<OutputSchema> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{shown}: output_schema: {e}"))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{shown}: output_schema: not JSON: {e}"))?;
        OutputSchema::compile(path, value)
    }

    pub(crate) fn compile(path: &Path, value: Value) -> anyhow::Result<OutputSchema> {
        let shown = path.display();
        if !value.is_object() {
            anyhow::bail!(
                "{shown}: output_schema: not a valid JSON Schema: the top level must be an object"
            );
        }
        if let Err(e) = jsonschema::meta::validate(&value) {
            anyhow::bail!(
                "{shown}: output_schema: not a valid JSON Schema: {}",
                located(&e)
            );
        }
        let validator = jsonschema::validator_for(&value).map_err(|e| {
            anyhow::anyhow!(
                "{shown}: output_schema: not a valid JSON Schema: {}",
                located(&e)
            )
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        Ok(OutputSchema {
            path: path.to_path_buf(),
            text: value.to_string(),
            name: if name.is_empty() {
                "output".into()
            } else {
                name
            },
            validator,
        })
    }

    /// What the system prompt gets on the instruction route.
    pub fn instruction(&self) -> String {
        format!(
            "Answer with one JSON value and nothing else (no prose, no code fences). It must validate against this JSON Schema:\n{OPEN_TAG}\n{}\n{CLOSE_TAG}",
            self.text
        )
    }

    /// The answer parsed and validated, or why not. A Markdown code fence
    /// around the JSON is tolerated (models add one despite the instruction);
    /// anything else around it is not.
    pub fn check(&self, answer: &str) -> Result<Value, Invalid> {
        let body = unfenced(answer.trim());
        let value: Value = serde_json::from_str(body).map_err(|e| Invalid {
            message: format!("not JSON: {e}"),
        })?;
        if let Some(e) = self.validator.iter_errors(&value).next() {
            return Err(Invalid {
                message: format!("does not match the schema: {}", located(&e)),
            });
        }
        Ok(value)
    }
}

/// A validation error with where it is (`at /path: …`), on one line.
fn located(e: &jsonschema::ValidationError) -> String {
    let at = e.instance_path().to_string();
    let msg = e.to_string().replace('\n', " ");
    let msg = crate::error::clip(&msg, 300);
    if at.is_empty() {
        msg
    } else {
        format!("at {at}: {msg}")
    }
}

/// `text` without a surrounding ```` ```json … ``` ```` fence.
fn unfenced(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return text;
    };
    // The fence's info string (`json`) runs to the first newline.
    match body.find('\n') {
        Some(nl) => body[nl + 1..].trim(),
        None => body.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> OutputSchema {
        OutputSchema::compile(
            Path::new("dir/label.schema.json"),
            json!({
                "type": "object",
                "properties": {
                    "label": {"enum": ["positive", "negative", "mixed"]},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1}
                },
                "required": ["label"],
                "additionalProperties": false
            }),
        )
        .unwrap()
    }

    #[test]
    fn valid_answers_parse_fenced_or_not() {
        let s = schema();
        assert_eq!(s.name, "label_schema");
        assert_eq!(
            s.check(" {\"label\": \"mixed\"} ").unwrap(),
            json!({"label": "mixed"})
        );
        assert_eq!(
            s.check("```json\n{\"label\": \"positive\", \"confidence\": 0.5}\n```")
                .unwrap()["confidence"],
            json!(0.5)
        );
    }

    #[test]
    fn invalid_answers_say_why_on_one_line() {
        let s = schema();
        let e = s.check("Sure! {\"label\": \"mixed\"}").unwrap_err();
        assert!(e.message.starts_with("not JSON: "), "{}", e.message);
        let e = s.check("{\"label\": \"great\"}").unwrap_err();
        assert!(
            e.message
                .starts_with("does not match the schema: at /label: "),
            "{}",
            e.message
        );
        let e = s.check("{\"confidence\": 2}").unwrap_err();
        assert!(e.message.contains("does not match"), "{}", e.message);
        assert!(!e.message.contains('\n'));
    }

    #[test]
    fn a_bad_schema_is_a_one_line_setup_error() {
        let p = Path::new("s.json");
        let err = OutputSchema::compile(p, json!({"type": "objekt"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("s.json: output_schema: not a valid JSON Schema"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let err = OutputSchema::compile(p, json!([1]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("top level must be an object"), "{err}");
    }

    #[test]
    fn routes_per_model_family() {
        for m in [
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "openai.gpt-oss-120b-1:0",
        ] {
            assert_eq!(route(m, Api::Converse), Route::Native, "{m}");
            assert_eq!(route(m, Api::Invoke), Route::Instruction, "{m}");
        }
        for m in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-lite-v1:0",
            "meta.llama3-8b-instruct-v1:0",
        ] {
            assert_eq!(route(m, Api::Converse), Route::Instruction, "{m}");
        }
    }
}
