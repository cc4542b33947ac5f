//! The emulator's prompt cache, as Bedrock documents prompt caching: a
//! `cachePoint` block caches the prefix before it, if that prefix is at least
//! the model's minimum; the first call writes it (`cacheWriteInputTokens`),
//! calls within the TTL read it (`cacheReadInputTokens`) and extend it; the
//! cached tokens are not in `inputTokens`. A model without prompt caching
//! refuses a cache point with Bedrock's ValidationException.
//!
//! It keys on the model and a hash of the prefix's text; it does not parse
//! requests (`conversation.rs`) nor render usage (`bedrock.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::family::base_model;

/// Bedrock's message for a cache point sent to a model without prompt caching.
pub const UNSUPPORTED: &str = "You invoked an unsupported model or your request did not allow prompt caching. See the documentation for more information.";

/// The prefix a request asks to cache: its tokens and a hash of its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub tokens: u64,
    pub hash: u64,
}

/// What the cache did for one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub read: u64,
    pub write: u64,
}

/// Least tokens a cached prefix must have, per model (Bedrock's "minimum
/// tokens per cache checkpoint"); `None`: the model has no prompt caching.
pub fn minimum_tokens(model_id: &str) -> Option<u64> {
    let base = base_model(model_id);
    let claude_1024 = [
        "anthropic.claude-3-7-sonnet",
        "anthropic.claude-sonnet-4",
        "anthropic.claude-opus-4",
        "anthropic.claude-3-5-sonnet-20241022-v2",
    ];
    if claude_1024.iter().any(|p| base.starts_with(p)) {
        Some(1024)
    } else if base.starts_with("anthropic.claude-3-5-haiku") {
        Some(2048)
    } else if [
        "amazon.nova-micro",
        "amazon.nova-lite",
        "amazon.nova-pro",
        "amazon.nova-premier",
    ]
    .iter()
    .any(|p| base.starts_with(p))
    {
        Some(1000)
    } else {
        None
    }
}

pub struct PromptCache {
    ttl: Duration,
    /// (base model, prefix hash) → when the entry expires.
    entries: Mutex<HashMap<(String, u64), Instant>>,
}

impl PromptCache {
    pub fn new(ttl: Duration) -> PromptCache {
        PromptCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Looks `prefix` up for `model_id` and records the call: a hit reads and
    /// extends the entry, a miss writes it. A prefix under the model's
    /// minimum is not cached at all. `Err` for a model without caching.
    pub fn touch(&self, model_id: &str, prefix: Prefix) -> Result<CacheUse, &'static str> {
        let min = minimum_tokens(model_id).ok_or(UNSUPPORTED)?;
        if prefix.tokens < min {
            return Ok(CacheUse::default());
        }
        let now = Instant::now();
        let key = (base_model(model_id).to_string(), prefix.hash);
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let hit = m.get(&key).is_some_and(|until| *until > now);
        m.insert(key, now + self.ttl);
        Ok(if hit {
            CacheUse {
                read: prefix.tokens,
                write: 0,
            }
        } else {
            CacheUse {
                read: 0,
                write: prefix.tokens,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_then_reads_within_the_ttl() {
        let c = PromptCache::new(Duration::from_secs(60));
        let p = Prefix {
            tokens: 1500,
            hash: 7,
        };
        let m = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";
        assert_eq!(
            c.touch(m, p),
            Ok(CacheUse {
                read: 0,
                write: 1500
            })
        );
        assert_eq!(
            c.touch(m, p),
            Ok(CacheUse {
                read: 1500,
                write: 0
            })
        );
        let other = Prefix { hash: 8, ..p };
        assert_eq!(
            c.touch(m, other),
            Ok(CacheUse {
                read: 0,
                write: 1500
            })
        );
    }

    #[test]
    fn expires_after_the_ttl() {
        let c = PromptCache::new(Duration::from_millis(1));
        let p = Prefix {
            tokens: 3000,
            hash: 1,
        };
        let m = "anthropic.claude-3-5-haiku-20241022-v1:0";
        c.touch(m, p).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            c.touch(m, p),
            Ok(CacheUse {
                read: 0,
                write: 3000
            })
        );
    }

    #[test]
    fn short_prefixes_and_unsupported_models() {
        let c = PromptCache::new(Duration::from_secs(60));
        let short = Prefix {
            tokens: 2000,
            hash: 1,
        };
        // Claude 3.5 Haiku needs 2,048.
        assert_eq!(
            c.touch("anthropic.claude-3-5-haiku-20241022-v1:0", short),
            Ok(CacheUse::default())
        );
        assert_eq!(
            c.touch("anthropic.claude-3-haiku-20240307-v1:0", short),
            Err(UNSUPPORTED)
        );
    }
}
