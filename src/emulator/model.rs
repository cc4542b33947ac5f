//! The deterministic "model": what text the emulator answers and how many tokens it charges.
//!
//! Everything here is a pure function of its inputs, so a test can recompute the exact answer
//! and usage a prompt must get. It knows nothing about HTTP, request shapes or markers; those
//! are `conversation.rs`, `family.rs` and `marker.rs`.

/// Why generation stopped, in the model-agnostic form every wire shape is rendered from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
}

/// One finished answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub text: String,
    pub output_tokens: u64,
    pub stop: StopReason,
    /// The stop sequence that ended the text, when `stop` is `StopSequence`.
    pub stop_sequence: Option<String>,
}

/// How many words of the prompt the answer quotes.
const QUOTED_WORDS: usize = 6;

/// The emulator's answer to `prompt`.
///
/// Exactly: `format!("Answer {h:016x}: {w}.")` where `h` is the 64-bit FNV-1a hash
/// (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) of the prompt's UTF-8 bytes,
/// and `w` is the prompt's first six whitespace-separated words joined with one space
/// (fewer if the prompt has fewer). The prompt is the text of the last user message, its
/// text blocks joined with `"\n"`, markers included.
pub fn answer(prompt: &str) -> String {
    let mut out = format!("Answer {:016x}:", fnv1a(prompt.as_bytes()));
    for word in prompt.split_whitespace().take(QUOTED_WORDS) {
        out.push(' ');
        out.push_str(word);
    }
    out.push('.');
    out
}

/// Input tokens charged for `text` (`tokenizer.rs`: words, digits, punctuation, scripts).
pub fn count_tokens(text: &str) -> u64 {
    super::tokenizer::count(text)
}

/// Output tokens charged for generated `text`: `max(1, ceil(chars / 4))`, counting Unicode
/// scalar values, so an answer cut to `4 × n` characters is exactly `n` tokens.
pub fn output_tokens(text: &str) -> u64 {
    tokens_for_chars(text.chars().count() as u64)
}

/// `count_tokens` for a text of `chars` characters.
pub fn tokens_for_chars(chars: u64) -> u64 {
    chars.div_ceil(4).max(1)
}

/// 64-bit FNV-1a; chosen because it is trivial to reproduce in a test or in Python.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Generates the answer to `prompt` with the request's limits applied, in this order:
/// 1. the text is `answer(prompt)`, or with `exact_tokens = Some(n)` (the `[[emu:tokens=N]]`
///    marker) that answer repeated (joined by a space) and cut to exactly `4 × max(n, 1)`
///    characters, so it counts as exactly `max(n, 1)` tokens;
/// 2. at the first occurrence of any of `stop_sequences` the text is cut (the sequence is not
///    included) and the stop reason is `StopSequence`;
/// 3. if the text still counts more than `max_tokens`, it is cut to `4 × max_tokens`
///    characters and the stop reason is `MaxTokens`.
///
/// `output_tokens` is [`output_tokens`] of the final text.
pub fn generate(
    prompt: &str,
    exact_tokens: Option<u64>,
    max_tokens: Option<u64>,
    stop_sequences: &[String],
) -> Generation {
    let base = answer(prompt);
    let mut text = match exact_tokens {
        None => base,
        Some(n) => {
            let want = (n.max(1) * 4) as usize;
            let mut t = String::with_capacity(want);
            t.extend(base.chars().chain(std::iter::once(' ')).cycle().take(want));
            t
        }
    };
    let mut stop = StopReason::EndTurn;
    let mut stop_sequence = None;
    let first_stop = stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, s)) = first_stop {
        text.truncate(at);
        stop = StopReason::StopSequence;
        stop_sequence = Some(s.clone());
    }
    if let Some(max) = max_tokens {
        if output_tokens(&text) > max {
            let keep = text
                .char_indices()
                .nth((max * 4) as usize)
                .map_or(text.len(), |(i, _)| i);
            text.truncate(keep);
            stop = StopReason::MaxTokens;
            stop_sequence = None;
        }
    }
    let output_tokens = output_tokens(&text);
    Generation {
        text,
        output_tokens,
        stop,
        stop_sequence,
    }
}

/// Largest delta, in bytes: keeps every event frame far below the event-stream size limit
/// even when a prompt quotes one enormous "word".
pub const MAX_DELTA_BYTES: usize = 4096;

/// Splits `text` into a few pieces (about three words each, at most `MAX_DELTA_BYTES`) whose
/// concatenation is `text`, for the content deltas of a streamed answer.
pub fn deltas(text: &str) -> Vec<&str> {
    const WORDS_PER_DELTA: usize = 3;
    let mut out = Vec::new();
    let mut start = 0;
    let mut words = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if (in_space && !space && words + 1 == WORDS_PER_DELTA)
            || i - start + c.len_utf8() > MAX_DELTA_BYTES
        {
            out.push(&text[start..i]);
            start = i;
            words = 0;
        } else if in_space && !space {
            words += 1;
        }
        in_space = space;
    }
    if start < text.len() || out.is_empty() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_quotes_hash_and_first_words() {
        let a = answer("What is the capital of France and why?");
        assert!(a.starts_with("Answer "), "{a}");
        assert!(a.ends_with(": What is the capital of France."), "{a}");
        assert_eq!(a, answer("What is the capital of France and why?"));
        assert_ne!(a, answer("What is the capital of France and why!"));
    }

    #[test]
    fn fnv_matches_reference_vector() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn token_counting() {
        assert_eq!(output_tokens(""), 1);
        assert_eq!(output_tokens("abcd"), 1);
        assert_eq!(output_tokens("abcde"), 2);
        assert_eq!(output_tokens("ééééé"), 2);
    }

    #[test]
    fn exact_tokens_and_truncation() {
        let g = generate("hi", Some(50), None, &[]);
        assert_eq!(g.output_tokens, 50);
        assert_eq!(g.stop, StopReason::EndTurn);
        let g = generate("hi", Some(50), Some(10), &[]);
        assert_eq!(g.output_tokens, 10);
        assert_eq!(g.stop, StopReason::MaxTokens);
        let g = generate("hello there", None, None, &["there".to_string()]);
        assert_eq!(g.stop, StopReason::StopSequence);
        assert!(g.text.ends_with(": hello "), "{}", g.text);
    }

    #[test]
    fn deltas_rebuild_the_text() {
        for t in ["", "one", "a b c d e f g h", "  lead and trail  "] {
            let d = deltas(t);
            assert_eq!(d.concat(), t);
        }
        assert_eq!(deltas("a b c d e f g h"), vec!["a b c ", "d e f ", "g h"]);
        let huge = "x".repeat(3 * MAX_DELTA_BYTES);
        assert!(deltas(&huge).iter().all(|d| d.len() <= MAX_DELTA_BYTES));
        assert_eq!(deltas(&huge).concat(), huge);
    }
}
