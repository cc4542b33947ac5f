//! `Markers`: the `[[emu:...]]` directives a prompt can carry to force one behaviour for one row.
//!
//! Parsing only. Whether a `*N` error applies to this attempt is decided by the server, which
//! counts attempts per prompt text; what a forced fault looks like is `fault.rs`.
//!
//! Syntax (anywhere in the prompt, any number of them):
//! - `[[emu:tokens=N]]`: answer with exactly N output tokens (before `maxTokens` truncation;
//!   N ≤ 1 000 000, and N = 0 counts as 1);
//! - `[[emu:sleep=MS]]`: add MS milliseconds of latency;
//! - `[[emu:KIND]]`: always fail with KIND; `[[emu:KIND*N]]`: fail only the first N attempts
//!   of this exact prompt text. KIND is one of `throttle`, `throttle_tokens`, `server`,
//!   `unavailable`, `timeout`, `not_ready`, `model_error`, `validation`, `access_denied`,
//!   `not_found`, `quota`, `expired`, `drop` (close the connection without a response) or
//!   `hang` (never answer);
//! - `[[emu:stream_KIND]]` / `[[emu:stream_KIND*N]]`: a ConverseStream answer breaks after
//!   about half its content deltas (always, or for the first N attempts of this exact prompt
//!   text) with an exception frame: KIND is `throttle`, `throttle_tokens`, `server`,
//!   `unavailable`, `validation` or `model_stream_error`; or `cut`, the body ending without
//!   `messageStop`. Other operations ignore it.
//! - `[[emu:invalid_json]]` / `[[emu:schema_violation]]` (`*N` for the first N attempts of
//!   this exact prompt text): the answer is text that is not JSON, or JSON of a type the
//!   request's schema does not allow (`instance.rs`), instead of the answer that fits.

use super::fault::Fault;
use super::instance::BadOutput;
use super::stream_fault::StreamFault;

/// What a forced error does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forced {
    Fault(Fault),
    Drop,
    Hang,
}

/// The markers found in one prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Markers {
    pub tokens: Option<u64>,
    pub sleep_ms: u64,
    /// The forced error and, for `KIND*N`, N.
    pub error: Option<(Forced, Option<u32>)>,
    /// The in-stream failure and, for `stream_KIND*N`, N.
    pub stream_error: Option<(StreamFault, Option<u32>)>,
    /// The wrong structured answer and, for `KIND*N`, N.
    pub bad_output: Option<(BadOutput, Option<u32>)>,
}

const OPEN: &str = "[[emu:";
/// Largest `[[emu:tokens=N]]`: the answer is built in memory (4 bytes per token).
pub const MAX_MARKER_TOKENS: u64 = 1_000_000;

impl Markers {
    /// Parses every marker in `prompt`. An unknown or malformed marker is an error (returned as
    /// the marker text) so a typo in a test fails loudly instead of silently succeeding.
    pub fn parse(prompt: &str) -> Result<Markers, String> {
        let mut m = Markers::default();
        let mut rest = prompt;
        while let Some(at) = rest.find(OPEN) {
            let body_start = at + OPEN.len();
            let Some(len) = rest[body_start..].find("]]") else {
                return Err(rest[at..].chars().take(40).collect());
            };
            let body = &rest[body_start..body_start + len];
            let bad = || format!("[[emu:{body}]]");
            if let Some(n) = body.strip_prefix("tokens=") {
                let n: u64 = n.parse().map_err(|_| bad())?;
                if n > MAX_MARKER_TOKENS {
                    return Err(bad());
                }
                m.tokens = Some(n);
            } else if let Some(n) = body.strip_prefix("sleep=") {
                m.sleep_ms = m.sleep_ms.saturating_add(n.parse().map_err(|_| bad())?);
            } else {
                let (kind, times) = match body.split_once('*') {
                    Some((k, n)) => (k, Some(n.parse::<u32>().map_err(|_| bad())?)),
                    None => (body, None),
                };
                if let Some(bad_output) = BadOutput::from_marker(kind) {
                    m.bad_output = Some((bad_output, times));
                    rest = &rest[body_start + len + 2..];
                    continue;
                }
                if let Some(kind) = kind.strip_prefix("stream_") {
                    let f = StreamFault::from_marker(kind).ok_or_else(bad)?;
                    m.stream_error = Some((f, times));
                    rest = &rest[body_start + len + 2..];
                    continue;
                }
                let forced = match kind {
                    "drop" => Forced::Drop,
                    "hang" => Forced::Hang,
                    k => Forced::Fault(Fault::from_marker(k).ok_or_else(bad)?),
                };
                m.error = Some((forced, times));
            }
            rest = &rest[body_start + len + 2..];
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(Markers::parse("plain").unwrap(), Markers::default());
        let m = Markers::parse("a [[emu:tokens=7]] b [[emu:sleep=20]] [[emu:throttle*2]]").unwrap();
        assert_eq!(m.tokens, Some(7));
        assert_eq!(m.sleep_ms, 20);
        assert_eq!(
            m.error,
            Some((Forced::Fault(Fault::ThrottleRequests), Some(2)))
        );
        assert_eq!(
            Markers::parse("[[emu:drop]]").unwrap().error,
            Some((Forced::Drop, None))
        );
        assert_eq!(
            Markers::parse("[[emu:stream_throttle*2]] [[emu:stream_cut]]")
                .unwrap()
                .stream_error,
            Some((StreamFault::Cut, None))
        );
        assert_eq!(
            Markers::parse("[[emu:stream_model_stream_error*1]]")
                .unwrap()
                .stream_error,
            Some((StreamFault::ModelStreamError, Some(1)))
        );
        assert_eq!(
            Markers::parse("[[emu:schema_violation*1]]")
                .unwrap()
                .bad_output,
            Some((BadOutput::SchemaViolation, Some(1)))
        );
        assert_eq!(
            Markers::parse("[[emu:invalid_json]]").unwrap().bad_output,
            Some((BadOutput::InvalidJson, None))
        );
        assert!(Markers::parse("[[emu:stream_drop]]").is_err());
        assert!(Markers::parse("[[emu:nonsense]]").is_err());
        assert!(Markers::parse("[[emu:tokens=x]]").is_err());
        assert!(Markers::parse("[[emu:tokens=1000001]]").is_err());
        assert!(Markers::parse("[[emu:server").is_err());
    }
}
