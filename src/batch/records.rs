//! One input row → one Batch Inference record (`{"recordId", "modelInput"}`),
//! and the mapping back from record id to row.
//!
//! `modelInput` is exactly the request `run` would send: the Converse body
//! (messages with their cache points, system blocks, inference settings) for
//! `invocation = "converse"`, or the InvokeModel body `input/job.rs` built
//! for `invoke`. What a Converse *call* carries outside its body (the model
//! id, a service tier) is the job's, not the record's.
//!
//! Record ids: AWS documents a record id as an alphanumeric string (its
//! examples have eleven characters). An id of 1 to 10 ASCII letters and
//! digits is used as is; every other id (Unicode, spaces, `#`, long ids,
//! eleven characters) gets a generated eleven-character id, so a generated
//! id can never equal a kept one. The mapping (`Mapped`) is written to the
//! output directory by `submit` and read back by `collect`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::bedrock::request::{Request, Role};
use crate::input::job::Job;
use crate::outcome::Source;

/// Longest id kept as its own record id; generated ids are one longer.
const KEPT_MAX: usize = 10;

/// A row as `collect` needs it back: its id, where it came from, the columns
/// it carries and the fingerprint of its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Mapped {
    /// The record id sent to Bedrock.
    pub(crate) record_id: String,
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) source: Source,
    pub(crate) meta: Map<String, Value>,
    pub(crate) fingerprint: String,
    /// The prompt as `include_prompt` would write it, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prompt: Option<Value>,
}

/// Hands out record ids for one job: kept when they fit, generated otherwise.
#[derive(Default)]
pub(crate) struct RecordIds {
    generated: u64,
}

impl RecordIds {
    pub(crate) fn next(&mut self, id: &str) -> String {
        if fits(id) {
            return id.to_owned();
        }
        self.generated += 1;
        // "X" + ten digits: eleven characters, never a kept id.
        format!("X{:010}", self.generated)
    }
}

/// An id Bedrock takes as a record id and that a generated id cannot equal.
pub(crate) fn fits(id: &str) -> bool {
    (1..=KEPT_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The record line for `job` under `record_id`.
pub(crate) fn record(job: &Job, record_id: &str, converse: bool) -> Value {
    let model_input = match (&job.body, converse) {
        (Some(invoke), false) => invoke.body.clone(),
        _ => converse_body(&job.request),
    };
    json!({ "recordId": record_id, "modelInput": model_input })
}

/// The Converse request body the SDK sends for `r` (`bedrock/invoker.rs`'s
/// `converse_parts` and `inference_config`, as JSON), without the model id.
pub(crate) fn converse_body(r: &Request) -> Value {
    let mut messages = Vec::with_capacity(r.messages.len());
    for m in &r.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let mut content = Vec::new();
        let mut from = 0;
        for &at in &m.cache_after {
            let at = at.min(m.text.len());
            if at > from {
                content.push(json!({ "text": &m.text[from..at] }));
            }
            content.push(json!({ "cachePoint": { "type": "default" } }));
            from = if m.text[at..].starts_with('\n') {
                at + 1
            } else {
                at
            };
        }
        if from < m.text.len() || m.cache_after.is_empty() {
            content.push(json!({ "text": &m.text[from..] }));
        }
        messages.push(json!({ "role": role, "content": content }));
    }
    let mut body = json!({ "messages": messages });
    if let Some(s) = &r.system {
        let mut system = vec![json!({ "text": s })];
        if r.cache_system {
            system.push(json!({ "cachePoint": { "type": "default" } }));
        }
        body["system"] = Value::Array(system);
    }
    let mut config = Map::new();
    if let Some(n) = r.max_tokens {
        config.insert("maxTokens".into(), n.min(i32::MAX as u32).into());
    }
    if let Some(t) = r.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = r.top_p {
        config.insert("topP".into(), json!(p));
    }
    if !r.stop_sequences.is_empty() {
        config.insert("stopSequences".into(), json!(r.stop_sequences));
    }
    if !config.is_empty() {
        body["inferenceConfig"] = Value::Object(config);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::request::Message;

    #[test]
    fn ids_that_fit_are_kept_and_others_are_generated_without_collisions() {
        let mut ids = RecordIds::default();
        assert_eq!(ids.next("row1"), "row1");
        assert_eq!(ids.next("ABCDEFGHIJ"), "ABCDEFGHIJ");
        let odd = [
            "질문-1",
            "has space",
            "a#b",
            &"x".repeat(300),
            "ABCDEFGHIJK",
            "",
        ];
        let got: Vec<String> = odd.iter().map(|id| ids.next(id)).collect();
        for g in &got {
            assert_eq!(g.len(), 11, "{g}");
            assert!(g.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(!fits(g), "a generated id never equals a kept one");
        }
        let unique: std::collections::HashSet<_> = got.iter().collect();
        assert_eq!(unique.len(), got.len());
    }

    #[test]
    fn the_converse_body_matches_what_run_sends() {
        let r = Request {
            model: "m".into(),
            system: Some("be brief".into()),
            messages: vec![Message {
                role: Role::User,
                text: "shared\nquestion".into(),
                cache_after: vec![6],
            }],
            max_tokens: Some(64),
            temperature: Some(0.5),
            top_p: None,
            stop_sequences: vec!["END".into()],
            service_tier: None,
            cache_system: true,
            output_schema: None,
        };
        let b = converse_body(&r);
        assert_eq!(
            b,
            json!({
                "messages": [{"role": "user", "content": [
                    {"text": "shared"}, {"cachePoint": {"type": "default"}}, {"text": "question"}
                ]}],
                "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
                "inferenceConfig": {"maxTokens": 64, "temperature": 0.5, "stopSequences": ["END"]},
            })
        );
    }
}
