//! The emulator's structured answers: a small JSON value that satisfies a
//! request's JSON Schema, and the two wrong answers a marker can ask for.
//!
//! The schema comes from Converse's `outputConfig.textFormat` (`jsonSchema.
//! schema`, JSON text) or, on the instruction route, from between the
//! `<json-schema>` tags of the system prompt (`eval/schema.rs` writes them),
//! read as a model would read the instruction. The answer is a pure function
//! of the schema and the prompt, like every emulator answer.
//!
//! Generation covers what a batch's schemas use: `type` (one or a list),
//! `const`, `enum`, `properties` + `required` (only required properties are
//! filled), `items` + `minItems`, `minLength`/`maxLength`,
//! `minimum`/`maximum`, and the first branch of `anyOf`/`oneOf`/`allOf`.
//! Not `pattern`, `format` or `$ref`: a schema relying on them may get an
//! answer it rejects, which the client then reports as invalid output.

use serde_json::{json, Map, Value};

use super::model::{answer, fnv1a};

/// What a `[[emu:invalid_json]]` / `[[emu:schema_violation]]` marker asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadOutput {
    /// Text that does not parse as JSON.
    InvalidJson,
    /// JSON of a type the schema does not allow.
    SchemaViolation,
}

impl BadOutput {
    pub fn from_marker(kind: &str) -> Option<BadOutput> {
        match kind {
            "invalid_json" => Some(BadOutput::InvalidJson),
            "schema_violation" => Some(BadOutput::SchemaViolation),
            _ => None,
        }
    }
}

/// The schema in a system prompt's instruction, if it has one.
pub fn schema_in_text(text: &str) -> Option<Value> {
    let open = "<json-schema>";
    let start = text.find(open)? + open.len();
    let len = text[start..].find("</json-schema>")?;
    serde_json::from_str(text[start..start + len].trim()).ok()
}

/// The schema in any string of a native InvokeModel body (its system
/// prompt's place differs by family).
pub fn schema_in_body(body: &[u8]) -> Option<Value> {
    fn walk(v: &Value) -> Option<Value> {
        match v {
            Value::String(s) => schema_in_text(s),
            Value::Array(a) => a.iter().find_map(walk),
            Value::Object(m) => m.values().find_map(walk),
            _ => None,
        }
    }
    walk(&serde_json::from_slice(body).ok()?)
}

/// The answer text for `schema` and `prompt`, or the wrong one `bad` asks for.
pub fn answer_for(schema: Option<&Value>, prompt: &str, bad: Option<BadOutput>) -> String {
    match bad {
        Some(BadOutput::InvalidJson) => {
            format!(
                "Sure! Here is the JSON you asked for: {{\"answer\": \"{}",
                answer(prompt)
            )
        }
        Some(BadOutput::SchemaViolation) => {
            let wrong = match schema.and_then(|s| s.get("type")).and_then(Value::as_str) {
                Some("string") => json!(0),
                _ => json!("not what the schema asks for"),
            };
            wrong.to_string()
        }
        None => match schema {
            Some(s) => instance(s, prompt, fnv1a(prompt.as_bytes())).to_string(),
            None => answer(prompt),
        },
    }
}

/// A value valid against `schema`; `seed` picks among enum values and ranges.
fn instance(schema: &Value, prompt: &str, seed: u64) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.is_empty() {
            return values[(seed % values.len() as u64) as usize].clone();
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return instance(first, prompt, seed);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts.first().and_then(Value::as_str).unwrap_or("null"),
        // No type: an object when it has properties, else anything goes.
        _ if schema.get("properties").is_some() => "object",
        _ => "null",
    };
    match ty {
        "object" => {
            let props = schema.get("properties").and_then(Value::as_object);
            let mut out = Map::new();
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let sub = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                let seed = seed ^ fnv1a(name.as_bytes());
                out.insert(name.to_string(), instance(sub, prompt, seed));
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let items = schema.get("items").unwrap_or(&Value::Null);
            (0..n)
                .map(|i| instance(items, prompt, seed.rotate_left(i as u32 + 1)))
                .collect()
        }
        "string" => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .map(|m| m as usize);
            let mut s = answer(prompt);
            if let Some(max) = max {
                s = s.chars().take(max).collect();
            }
            while s.chars().count() < min {
                s.push('.');
            }
            Value::String(s)
        }
        "integer" | "number" => {
            let lo = schema.get("minimum").and_then(Value::as_f64).or_else(|| {
                schema
                    .get("exclusiveMinimum")
                    .and_then(Value::as_f64)
                    .map(|x| x.floor() + 1.0)
            });
            let hi = schema.get("maximum").and_then(Value::as_f64).or_else(|| {
                schema
                    .get("exclusiveMaximum")
                    .and_then(Value::as_f64)
                    .map(|x| x.ceil() - 1.0)
            });
            let n = match (lo, hi) {
                (Some(lo), Some(hi)) if hi >= lo => {
                    let (lo, hi) = (lo.ceil() as i64, hi.floor() as i64);
                    lo + (seed % (hi - lo + 1).max(1) as u64) as i64
                }
                (Some(lo), _) => lo.ceil() as i64,
                (None, Some(hi)) => (hi.floor() as i64).min(0),
                (None, None) => 0,
            };
            json!(n)
        }
        "boolean" => Value::Bool(seed.is_multiple_of(2)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_satisfy_their_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "label": {"enum": ["positive", "negative", "mixed"]},
                "stars": {"type": "integer", "minimum": 1, "maximum": 5},
                "reason": {"type": "string", "maxLength": 40},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "ok": {"type": "boolean"},
                "optional": {"type": "string"}
            },
            "required": ["label", "stars", "reason", "tags", "ok"],
            "additionalProperties": false
        });
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut labels = std::collections::BTreeSet::new();
        for prompt in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            let text = answer_for(Some(&schema), prompt, None);
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(validator.is_valid(&v), "{text}");
            assert!(v.get("optional").is_none());
            labels.insert(v["label"].as_str().unwrap().to_string());
            assert_eq!(
                text,
                answer_for(Some(&schema), prompt, None),
                "deterministic"
            );
        }
        assert!(labels.len() > 1, "the enum value varies with the prompt");
    }

    #[test]
    fn wrong_answers_and_the_instruction() {
        let schema =
            json!({"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}});
        let bad = answer_for(Some(&schema), "p", Some(BadOutput::InvalidJson));
        assert!(serde_json::from_str::<Value>(&bad).is_err(), "{bad}");
        let wrong = answer_for(Some(&schema), "p", Some(BadOutput::SchemaViolation));
        let v: Value = serde_json::from_str(&wrong).unwrap();
        assert!(!jsonschema::is_valid(&schema, &v));
        let sys = format!("Label it.\n\nAnswer…:\n<json-schema>\n{schema}\n</json-schema>");
        assert_eq!(schema_in_text(&sys), Some(schema));
        assert_eq!(schema_in_text("no schema here"), None);
    }
}
