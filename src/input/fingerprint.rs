//! A request's fingerprint: a short, stable hash of what is sent for a row,
//! so a resume can tell a row whose prompt was edited since it was answered.
//!
//! It covers everything that decides the answer: the API, the model, the
//! system prompt, the messages, the inference parameters and, for
//! InvokeModel, the native body. It is SHA-256 over a canonical JSON form,
//! cut to 64 bits: only ever compared for one id against its own earlier
//! value, and unlike std's `DefaultHasher` the same on every build and
//! platform, which matters because it is compared with values in files
//! written by earlier runs.
//!
//! Not here: what a resume does with a changed fingerprint (`output/changed.rs`).

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bedrock::request::{Api, Message, Request};

/// The canonical form hashed. Field order is fixed by the struct; adding a
/// field changes every fingerprint, so do it only with a field that changes
/// the answer.
#[derive(Serialize)]
struct Canonical<'a> {
    api: Api,
    model: &'a str,
    system: Option<&'a str>,
    messages: &'a [Message],
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop_sequences: &'a [String],
    body: Option<&'a Value>,
    /// Left out when unset, so rows without a schema keep their fingerprints.
    #[serde(skip_serializing_if = "Option::is_none")]
    output_schema: Option<&'a str>,
}

/// 16 hex digits.
pub(crate) fn of(api: Api, request: &Request, body: Option<&Value>) -> String {
    let canonical = Canonical {
        api,
        model: &request.model,
        system: request.system.as_deref(),
        messages: &request.messages,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: &request.stop_sequences,
        body,
        output_schema: request.output_schema.as_ref().map(|s| s.schema.as_str()),
    };
    // Serializing plain structs, strings and numbers cannot fail.
    let bytes = serde_json::to_vec(&canonical).expect("canonical request serializes");
    hex::encode(&Sha256::digest(&bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::request::Role;

    fn request(text: &str) -> Request {
        Request {
            model: "m".into(),
            messages: vec![Message {
                role: Role::User,
                text: text.into(),
                ..Message::default()
            }],
            max_tokens: Some(10),
            ..Request::default()
        }
    }

    #[test]
    fn same_request_same_fingerprint_and_every_part_counts() {
        let a = of(Api::Converse, &request("hi"), None);
        // A fixed value: a change here means every resume sees every row as edited.
        assert_eq!(a, "202af07f8702cf7c");
        assert_eq!(a, of(Api::Converse, &request("hi"), None));
        let mut changed = vec![
            of(Api::Converse, &request("hi!"), None),
            of(Api::Invoke, &request("hi"), None),
            of(
                Api::Invoke,
                &request("hi"),
                Some(&serde_json::json!({"x": 1})),
            ),
        ];
        let mut r = request("hi");
        r.system = Some("s".into());
        changed.push(of(Api::Converse, &r, None));
        let mut r = request("hi");
        r.temperature = Some(0.5);
        changed.push(of(Api::Converse, &r, None));
        let mut r = request("hi");
        r.model = "m2".into();
        changed.push(of(Api::Converse, &r, None));
        for c in &changed {
            assert_ne!(c, &a);
            assert_eq!(c.len(), 16);
        }
    }
}
