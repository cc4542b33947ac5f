//! `EventStream`: a response body being built as AWS event-stream frames.
//!
//! Framing and CRCs come from `aws-smithy-eventstream` (the SDK's own codec), so what the
//! emulator writes is by construction what the SDK reads. What goes into each event is the
//! caller's business.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

/// Letters the random `"p"` padding is cut from (the real service pads event payloads).
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Frames accumulated into one buffer; the emulator sends a stream as one body because the
/// answer is known up front, and the SDK reassembles frames from any chunking anyway.
#[derive(Default)]
pub struct EventStream {
    buf: BytesMut,
}

impl EventStream {
    /// Appends an `event` frame of type `event_type` with a JSON payload.
    pub fn event(&mut self, event_type: &'static str, payload: &[u8]) {
        self.frame(("event", ":event-type", event_type), payload);
    }

    /// Appends an `exception` frame (`:exception-type` = `exception_type`), which the SDK
    /// hands back as an error from `recv()` once the frames before it are read.
    pub fn exception(&mut self, exception_type: &'static str, payload: &[u8]) {
        self.frame(("exception", ":exception-type", exception_type), payload);
    }

    /// One frame: `:message-type` = `kind`, and `name_header` = `name` naming the event or
    /// the exception.
    fn frame(
        &mut self,
        (kind, name_header, name): (&'static str, &'static str, &'static str),
        payload: &[u8],
    ) {
        let msg = Message::new(Bytes::copy_from_slice(payload))
            .add_header(Header::new(name_header, HeaderValue::String(name.into())))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String(kind.into()),
            ));
        // Only fails for names > 255 bytes or payloads > 16 MiB; event and exception names
        // are fixed and deltas are capped at `model::MAX_DELTA_BYTES`, so neither limit is
        // reachable.
        write_message_to(&msg, &mut self.buf).expect("frame within size limits");
    }

    /// Appends an event whose payload is `obj` plus the random `"p"` padding key.
    pub fn padded_event(&mut self, event_type: &'static str, mut obj: Map<String, Value>) {
        let len = fastrand::usize(1..PADDING.len());
        obj.insert("p".into(), Value::String(PADDING[..len].into()));
        let payload = serde_json::to_vec(&obj).unwrap_or_default();
        self.event(event_type, &payload);
    }

    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    #[test]
    fn frames_read_back() {
        let mut s = EventStream::default();
        s.event("messageStop", br#"{"stopReason":"end_turn"}"#);
        let mut m = Map::new();
        m.insert("role".into(), "assistant".into());
        s.padded_event("messageStart", m);
        let mut bytes = s.into_bytes();
        let first = read_message_from(&mut bytes).unwrap();
        assert_eq!(first.payload().as_ref(), br#"{"stopReason":"end_turn"}"#);
        let second = read_message_from(&mut bytes).unwrap();
        let v: Value = serde_json::from_slice(second.payload()).unwrap();
        assert_eq!(v["role"], "assistant");
        assert!(v["p"].as_str().is_some());
        assert!(bytes.is_empty());
    }
}
