//! The Bedrock model ids we know: foundation models, what each one produces,
//! the providers, and the geographic prefixes of cross-Region inference
//! profiles, in the one place `native` (body formats), `policy` (IAM
//! resources) and the emulator (which ids it answers) read them from.
//!
//! This is knowledge, not a gate: `run` sends whatever id the user gives and
//! lets Bedrock decide, because AWS adds models faster than any list is
//! updated. Only the emulator refuses ids missing here, the way Bedrock
//! refuses a typo (and `bedrock-batch emulator --any-model` turns that off).
//!
//! Source: the "Supported foundation models in Amazon Bedrock" table,
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/models-supported.html>
//! (read November 2026). Add a model here when a user meets it.

/// What a model answers with. Converse and ConverseStream serve only
/// [`Output::Text`] models; Bedrock refuses the rest with a ValidationException.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Text or chat: Converse, or InvokeModel with the model's native body.
    Text,
    /// A vector (Titan, Cohere, Nova embeddings): InvokeModel only.
    Embedding,
    /// Images, video or speech (Nova Canvas/Reel/Sonic, Titan Image,
    /// Stability, Luma): InvokeModel or their own APIs only.
    Media,
    /// Reranking scores: the Rerank API only.
    Rerank,
}

/// A foundation model Bedrock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    pub id: &'static str,
    pub output: Output,
}

const fn text(id: &'static str) -> Model {
    Model {
        id,
        output: Output::Text,
    }
}

const fn embedding(id: &'static str) -> Model {
    Model {
        id,
        output: Output::Embedding,
    }
}

const fn media(id: &'static str) -> Model {
    Model {
        id,
        output: Output::Media,
    }
}

/// Every foundation-model id (without geographic prefix) we know, by provider.
pub const MODELS: &[Model] = &[
    text("ai21.jamba-1-5-large-v1:0"),
    text("ai21.jamba-1-5-mini-v1:0"),
    text("amazon.nova-micro-v1:0"),
    text("amazon.nova-lite-v1:0"),
    text("amazon.nova-pro-v1:0"),
    text("amazon.nova-premier-v1:0"),
    text("amazon.nova-2-lite-v1:0"),
    text("amazon.titan-text-express-v1"),
    text("amazon.titan-text-lite-v1"),
    text("amazon.titan-text-premier-v1:0"),
    text("amazon.titan-tg1-large"),
    embedding("amazon.titan-embed-text-v1"),
    embedding("amazon.titan-embed-text-v2:0"),
    embedding("amazon.titan-embed-g1-text-02"),
    embedding("amazon.titan-embed-image-v1"),
    embedding("amazon.nova-2-multimodal-embeddings-v1:0"),
    media("amazon.nova-canvas-v1:0"),
    media("amazon.nova-reel-v1:0"),
    media("amazon.nova-reel-v1:1"),
    media("amazon.nova-sonic-v1:0"),
    media("amazon.titan-image-generator-v1"),
    media("amazon.titan-image-generator-v2:0"),
    Model {
        id: "amazon.rerank-v1:0",
        output: Output::Rerank,
    },
    text("anthropic.claude-instant-v1"),
    text("anthropic.claude-v2"),
    text("anthropic.claude-v2:1"),
    text("anthropic.claude-3-haiku-20240307-v1:0"),
    text("anthropic.claude-3-sonnet-20240229-v1:0"),
    text("anthropic.claude-3-opus-20240229-v1:0"),
    text("anthropic.claude-3-5-sonnet-20240620-v1:0"),
    text("anthropic.claude-3-5-sonnet-20241022-v2:0"),
    text("anthropic.claude-3-5-haiku-20241022-v1:0"),
    text("anthropic.claude-3-7-sonnet-20250219-v1:0"),
    text("anthropic.claude-sonnet-4-20250514-v1:0"),
    text("anthropic.claude-opus-4-20250514-v1:0"),
    text("anthropic.claude-opus-4-1-20250805-v1:0"),
    text("anthropic.claude-sonnet-4-5-20250929-v1:0"),
    text("anthropic.claude-haiku-4-5-20251001-v1:0"),
    text("anthropic.claude-opus-4-5-20251101-v1:0"),
    text("cohere.command-text-v14"),
    text("cohere.command-light-text-v14"),
    text("cohere.command-r-v1:0"),
    text("cohere.command-r-plus-v1:0"),
    embedding("cohere.embed-english-v3"),
    embedding("cohere.embed-multilingual-v3"),
    embedding("cohere.embed-v4:0"),
    Model {
        id: "cohere.rerank-v3-5:0",
        output: Output::Rerank,
    },
    text("deepseek.r1-v1:0"),
    text("deepseek.v3-v1:0"),
    media("luma.ray-v2:0"),
    text("meta.llama2-13b-chat-v1"),
    text("meta.llama2-70b-chat-v1"),
    text("meta.llama3-8b-instruct-v1:0"),
    text("meta.llama3-70b-instruct-v1:0"),
    text("meta.llama3-1-8b-instruct-v1:0"),
    text("meta.llama3-1-70b-instruct-v1:0"),
    text("meta.llama3-1-405b-instruct-v1:0"),
    text("meta.llama3-2-1b-instruct-v1:0"),
    text("meta.llama3-2-3b-instruct-v1:0"),
    text("meta.llama3-2-11b-instruct-v1:0"),
    text("meta.llama3-2-90b-instruct-v1:0"),
    text("meta.llama3-3-70b-instruct-v1:0"),
    text("meta.llama4-scout-17b-instruct-v1:0"),
    text("meta.llama4-maverick-17b-instruct-v1:0"),
    text("mistral.mistral-7b-instruct-v0:2"),
    text("mistral.mixtral-8x7b-instruct-v0:1"),
    text("mistral.mistral-small-2402-v1:0"),
    text("mistral.mistral-large-2402-v1:0"),
    text("mistral.mistral-large-2407-v1:0"),
    text("mistral.pixtral-large-2502-v1:0"),
    text("openai.gpt-oss-20b-1:0"),
    text("openai.gpt-oss-120b-1:0"),
    text("qwen.qwen3-32b-v1:0"),
    text("qwen.qwen3-235b-a22b-2507-v1:0"),
    text("qwen.qwen3-coder-30b-a3b-v1:0"),
    text("qwen.qwen3-coder-480b-a35b-v1:0"),
    media("stability.sd3-5-large-v1:0"),
    media("stability.stable-image-core-v1:1"),
    media("stability.stable-image-ultra-v1:1"),
    embedding("twelvelabs.marengo-embed-2-7-v1:0"),
    text("twelvelabs.pegasus-1-2-v1:0"),
    text("writer.palmyra-x4-v1:0"),
    text("writer.palmyra-x5-v1:0"),
];

/// Geographic prefixes of cross-Region inference-profile ids (`apac.anthropic.…`).
pub const GEO_PREFIXES: &[&str] = &["us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"];

/// Model providers on Bedrock: the first segment of a foundation-model id.
/// `policy` uses it to tell a mistyped geography (`ap.anthropic.…`) from a
/// foundation model of a provider missing from [`MODELS`].
pub const PROVIDERS: &[&str] = &[
    "ai21",
    "amazon",
    "anthropic",
    "cohere",
    "deepseek",
    "google",
    "luma",
    "meta",
    "minimax",
    "mistral",
    "moonshot",
    "moonshotai",
    "nvidia",
    "openai",
    "qwen",
    "stability",
    "twelvelabs",
    "writer",
];

/// The foundation-model id inside a model id, an inference-profile id
/// (`apac.anthropic.x` → `anthropic.x`) or an ARN of either
/// (`arn:…:inference-profile/apac.anthropic.x` → `anthropic.x`).
pub fn base_id(model: &str) -> &str {
    // Plain ids contain no `/`, so the last segment is right for ids and ARNs.
    let id = model.rsplit('/').next().unwrap_or(model);
    match id.split_once('.') {
        Some((geo, rest)) if GEO_PREFIXES.contains(&geo) => rest,
        _ => id,
    }
}

/// What Bedrock would make of a `modelId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A foundation model we know, named directly, through a geographic
    /// profile, or by ARN.
    Known(Model),
    /// An ARN of something only the account knows (an application inference
    /// profile, a provisioned or imported model, a prompt router).
    AccountResource,
    /// Neither: a typo, a truncated id, an invented one, or a model newer
    /// than this list.
    Unknown,
}

/// Looks `model` up: a foundation-model id, a geographic profile id of one,
/// or a Bedrock ARN.
pub fn lookup(model: &str) -> Lookup {
    if let Some(rest) = model.strip_prefix("arn:") {
        // arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID
        let resource = rest.splitn(5, ':').nth(4).unwrap_or("");
        let kind = resource.split('/').next().unwrap_or("");
        if kind != "foundation-model" && kind != "inference-profile" {
            return if resource.contains('/') {
                Lookup::AccountResource
            } else {
                Lookup::Unknown
            };
        }
    }
    let base = base_id(model);
    let last = model.rsplit('/').next().unwrap_or(model);
    // A profile needs a geographic prefix; a foundation model must not have one twice.
    if last != base && !GEO_PREFIXES.iter().any(|g| last == format!("{g}.{base}")) {
        return Lookup::Unknown;
    }
    match MODELS.iter().find(|m| m.id == base) {
        Some(m) => Lookup::Known(*m),
        None => Lookup::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_profiles_and_arns() {
        let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
        assert_eq!(lookup(haiku), Lookup::Known(text(haiku)));
        assert_eq!(lookup(&format!("apac.{haiku}")), Lookup::Known(text(haiku)));
        assert_eq!(
            lookup(&format!(
                "arn:aws:bedrock:ap-northeast-2::foundation-model/{haiku}"
            )),
            Lookup::Known(text(haiku))
        );
        assert_eq!(
            lookup(&format!(
                "arn:aws:bedrock:ap-northeast-2:123456789012:inference-profile/apac.{haiku}"
            )),
            Lookup::Known(text(haiku))
        );
        assert_eq!(
            lookup("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"),
            Lookup::AccountResource
        );
        assert_eq!(
            lookup("amazon.titan-embed-text-v2:0"),
            Lookup::Known(embedding("amazon.titan-embed-text-v2:0"))
        );
    }

    #[test]
    fn typos_truncations_and_inventions_are_unknown() {
        for id in [
            "anthropic.claude-3-haiku",
            "anthropic.claude-3-haiku-20240307-v1",
            "foo.bar",
            "gpt-4o",
            "ap.anthropic.claude-3-haiku-20240307-v1:0",
            "apac.apac.anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/foo.bar",
            "arn:aws:bedrock:us-east-1:1",
        ] {
            assert_eq!(lookup(id), Lookup::Unknown, "{id}");
        }
    }

    #[test]
    fn every_model_has_a_known_provider_and_appears_once() {
        for (i, m) in MODELS.iter().enumerate() {
            let provider = m.id.split('.').next().unwrap();
            assert!(PROVIDERS.contains(&provider), "{}", m.id);
            assert!(
                MODELS[..i].iter().all(|o| o.id != m.id),
                "{} is listed twice",
                m.id
            );
        }
    }
}
