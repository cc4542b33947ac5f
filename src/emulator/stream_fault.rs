//! `StreamFault`: how a ConverseStream answer can break after it has begun.
//!
//! The catalogue of in-stream failures (exception frame type and payload, or a plain cut),
//! not the decision of when to break: a `[[emu:stream_KIND]]` marker decides that
//! (`marker.rs`), and `bedrock.rs` writes the broken stream: `messageStart`, about half the
//! content deltas, then the exception frame (or nothing). Frame types and payloads follow the
//! wire doc (§5, exception frames), so the SDK reads them as the real service's.

use serde_json::{json, Value};

use super::fault::Fault;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFault {
    /// `throttlingException`, the request-quota message.
    Throttle,
    /// `throttlingException`, the token-quota message.
    ThrottleTokens,
    /// `internalServerException`.
    Server,
    /// `serviceUnavailableException`.
    Unavailable,
    /// `validationException`.
    Validation,
    /// `modelStreamErrorException`, with `originalStatusCode` and `originalMessage`.
    ModelStreamError,
    /// No exception: the body just ends mid-answer, without `messageStop`.
    Cut,
}

impl StreamFault {
    /// Every variant, for tests that go through them all.
    pub const ALL: [StreamFault; 7] = [
        StreamFault::Throttle,
        StreamFault::ThrottleTokens,
        StreamFault::Server,
        StreamFault::Unavailable,
        StreamFault::Validation,
        StreamFault::ModelStreamError,
        StreamFault::Cut,
    ];

    /// Parses the KIND of a `[[emu:stream_KIND]]` marker.
    pub fn from_marker(kind: &str) -> Option<StreamFault> {
        Some(match kind {
            "throttle" => StreamFault::Throttle,
            "throttle_tokens" => StreamFault::ThrottleTokens,
            "server" => StreamFault::Server,
            "unavailable" => StreamFault::Unavailable,
            "validation" => StreamFault::Validation,
            "model_stream_error" => StreamFault::ModelStreamError,
            "cut" => StreamFault::Cut,
            _ => return None,
        })
    }

    /// The marker KIND that selects this fault (inverse of [`StreamFault::from_marker`]).
    pub fn marker(self) -> &'static str {
        match self {
            StreamFault::Throttle => "throttle",
            StreamFault::ThrottleTokens => "throttle_tokens",
            StreamFault::Server => "server",
            StreamFault::Unavailable => "unavailable",
            StreamFault::Validation => "validation",
            StreamFault::ModelStreamError => "model_stream_error",
            StreamFault::Cut => "cut",
        }
    }

    /// The `:exception-type` header and the JSON payload of the exception frame; `None` for a
    /// plain cut.
    pub fn frame(self) -> Option<(&'static str, Value)> {
        let twin = |f: Fault| json!({"message": f.message()});
        Some(match self {
            StreamFault::Throttle => ("throttlingException", twin(Fault::ThrottleRequests)),
            StreamFault::ThrottleTokens => ("throttlingException", twin(Fault::ThrottleTokens)),
            StreamFault::Server => ("internalServerException", twin(Fault::InternalServer)),
            StreamFault::Unavailable => (
                "serviceUnavailableException",
                twin(Fault::ServiceUnavailable),
            ),
            StreamFault::Validation => ("validationException", twin(Fault::Validation)),
            StreamFault::ModelStreamError => (
                "modelStreamErrorException",
                json!({
                    "message": "An error occurred while streaming the response. Retry your request.",
                    "originalStatusCode": 500,
                    "originalMessage": "model stream interrupted",
                }),
            ),
            StreamFault::Cut => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        for f in StreamFault::ALL {
            assert_eq!(StreamFault::from_marker(f.marker()), Some(f));
        }
        assert_eq!(StreamFault::from_marker("drop"), None);
        assert!(StreamFault::Cut.frame().is_none());
        let (kind, payload) = StreamFault::ModelStreamError.frame().unwrap();
        assert_eq!(kind, "modelStreamErrorException");
        assert_eq!(payload["originalStatusCode"], 500);
    }
}
