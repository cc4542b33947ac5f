//! How the emulated model counts the *input* tokens it bills (usage `inputTokens`,
//! CountTokens, prompt-cache sizes).
//!
//! Not a real BPE tokenizer, but shaped like one so that a client's estimate
//! from text length is off by an amount that depends on the text, as it is
//! against Bedrock: a short word is one token and a long one several, digits
//! go three to a token, each punctuation mark is a token, whitespace is free
//! except line breaks, accented Latin letters cost double, other alphabetic
//! scripts (Greek, Cyrillic, Arabic, Indic…) cost a token per two characters
//! and CJK, Hangul, symbols and emoji a token each. Output tokens keep the
//! simple `ceil(chars / 4)` (`model.rs`) so `[[emu:tokens=N]]` stays exact.
//!
//! The rules, exactly (reimplemented in `tests/conformance/boto3_conformance.py`):
//! - a run of ASCII letters and U+00C0..U+024F letters ("word"), where ASCII
//!   letters weigh 1 and the others 2: `1` if the weight is ≤ 6, else `ceil(weight / 4)`;
//! - a run of ASCII digits: `ceil(len / 3)`;
//! - a run of U+0370..U+1FFF characters: `ceil(len / 2)`;
//! - a run of line breaks (`\n`): 1; other whitespace: 0;
//! - any other character (ASCII punctuation, U+0080..U+00BF, U+2000 and up): 1 each;
//! - a text counts at least 1; texts sent together (system, turns) add one token per
//!   separator between them (`conversation::TextTally`).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Digit,
    Script,
    Newline,
    Space,
    Single,
}

fn class(c: char) -> Class {
    match c {
        'a'..='z' | 'A'..='Z' => Class::Word,
        '\u{C0}'..='\u{24F}' if c.is_alphabetic() => Class::Word,
        '0'..='9' => Class::Digit,
        '\n' => Class::Newline,
        c if c.is_whitespace() => Class::Space,
        '\u{370}'..='\u{1FFF}' => Class::Script,
        _ => Class::Single,
    }
}

/// Input tokens of one text.
pub fn count(text: &str) -> u64 {
    let mut total = 0u64;
    let mut run: Option<Class> = None;
    // Weight of the current run: letters (accented ones double), digits or script chars.
    let mut weight = 0u64;
    let close = |run: Option<Class>, weight: u64| -> u64 {
        match run {
            Some(Class::Word) if weight <= 6 => 1,
            Some(Class::Word) => weight.div_ceil(4),
            Some(Class::Digit) => weight.div_ceil(3),
            Some(Class::Script) => weight.div_ceil(2),
            Some(Class::Newline) => 1,
            _ => 0,
        }
    };
    for c in text.chars() {
        let k = class(c);
        if k == Class::Single {
            total += close(run, weight) + 1;
            run = None;
            weight = 0;
            continue;
        }
        if run != Some(k) {
            total += close(run, weight);
            run = Some(k);
            weight = 0;
        }
        weight += if k == Class::Word && !c.is_ascii() {
            2
        } else {
            1
        };
    }
    total += close(run, weight);
    total.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_digits_punctuation_and_scripts() {
        assert_eq!(count(""), 1);
        assert_eq!(count("hello"), 1);
        assert_eq!(count("hello world"), 2);
        // 13 letters: ceil(13/4)
        assert_eq!(count("international"), 4);
        assert_eq!(count("Hello, world!"), 4);
        assert_eq!(count("1234567"), 3);
        assert_eq!(count("a\n\nb"), 3);
        // 안녕하세요: five Hangul syllables, one token each.
        assert_eq!(count("안녕하세요"), 5);
        // Cyrillic: ceil(6/2)
        assert_eq!(count("привет"), 3);
        // café: c a f = 3, é = 2 → weight 5, one token.
        assert_eq!(count("café"), 1);
    }

    #[test]
    fn not_a_length_formula() {
        // Same length, very different counts: what a chars/4 estimate cannot know.
        let latin = "aaaa ".repeat(20);
        let punct = "a.b, ".repeat(20);
        let hangul = "가나다라 ".repeat(20);
        assert_eq!(latin.chars().count(), punct.chars().count());
        assert_eq!(latin.chars().count(), hangul.chars().count());
        assert_eq!(count(&latin), 20);
        assert_eq!(count(&punct), 80);
        assert_eq!(count(&hangul), 80);
    }
}
