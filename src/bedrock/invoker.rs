//! One Bedrock call for one row, and the one function that reads SDK errors.
//!
//! `call` sends a [`Request`] as Converse, or as InvokeModel with the model's
//! native body, and returns an [`Answer`] or a [`Classified`] error. `classify`
//! is the only code in the project that looks at an `SdkError`: it decides the
//! row's [`ErrorKind`] and whether another attempt can help. Retrying itself
//! (backoff, attempts, deadline) is `runner.rs`'s job; the SDK's own retries
//! are disabled in `auth.rs`, so there is exactly one retry layer.

use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, ConverseOutput,
    InferenceConfiguration, Message, ServiceTier, ServiceTierType, SystemContentBlock,
};
use aws_sdk_bedrockruntime::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::event_stream::RawMessage;
use std::sync::{Arc, Mutex};

use crate::bedrock::native;
use crate::bedrock::request::Api;
use crate::bedrock::request::{Answer, Request, Role};
use crate::input::job::Job;
use crate::outcome::ErrorKind;

/// Which of Bedrock's two throttling messages came back; they mean different
/// quotas (requests per minute vs tokens per minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Requests,
    Tokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Another attempt, after a backoff, may succeed.
    Retry,
    /// It will fail the same way every time.
    Fail,
}

/// An SDK error reduced to what the run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub disposition: Disposition,
    pub throttle: Option<Throttle>,
    /// A ValidationException for the requested service tier: the runner stops
    /// the job when the first rows all fail this way.
    pub tier_refused: bool,
}

impl Classified {
    /// Bedrock refused the credentials as expired: the retry needs new ones,
    /// not the cached ones (`auth::CredentialCache::invalidate`).
    pub fn expired_credentials(&self) -> bool {
        matches!(self.code.as_str(), "ExpiredTokenException" | "ExpiredToken")
    }

    pub(crate) fn new(
        kind: ErrorKind,
        code: &str,
        message: String,
        disposition: Disposition,
    ) -> Classified {
        Classified {
            kind,
            code: code.to_string(),
            message,
            disposition,
            throttle: None,
            tier_refused: false,
        }
    }
}

/// Sorts an SDK error into retry-after-backoff or fail.
///
/// Retryable: throttling (both kinds), 500/502/503/504, ModelNotReady,
/// ModelTimeout, attempt timeouts, dispatch and connection failures, and
/// expired credentials (the runner drops them from `auth::CredentialCache`,
/// so the next attempt signs with fresh ones). Not retryable: validation,
/// access denied, not found, service quota exceeded (e.g. a daily token
/// limit), model errors, bad credentials.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use Disposition::{Fail, Retry};
    match err {
        SdkError::TimeoutError(_) => Classified::new(
            ErrorKind::Timeout,
            "AttemptTimeout",
            "the attempt ran past request_timeout_secs".into(),
            Retry,
        ),
        SdkError::DispatchFailure(d) => {
            let detail = chain(err);
            if d.is_timeout() {
                Classified::new(ErrorKind::Timeout, "ConnectTimeout", detail, Retry)
            } else if d.is_io() {
                Classified::new(ErrorKind::Network, "ConnectionError", detail, Retry)
            } else if is_credentials_failure(&detail) {
                // The chain could not produce credentials (e.g. STS refused
                // AssumeRole). Retried: a refresh can fail transiently; a
                // persistent refusal runs out of attempts with this kind.
                Classified::new(ErrorKind::Credentials, "CredentialsError", detail, Retry)
            } else {
                Classified::new(ErrorKind::Network, "DispatchFailure", detail, Retry)
            }
        }
        // The answer was cut off or unreadable: the connection, not the request.
        SdkError::ResponseError(_) => {
            Classified::new(ErrorKind::Network, "ResponseError", chain(err), Retry)
        }
        SdkError::ConstructionFailure(_) => Classified::new(
            ErrorKind::Validation,
            "ConstructionFailure",
            chain(err),
            Fail,
        ),
        SdkError::ServiceError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            service_error(
                err.code().unwrap_or("Unknown"),
                err.message().unwrap_or(""),
                status,
            )
        }
        // `SdkError` is non-exhaustive.
        _ => Classified::new(ErrorKind::Network, "Unknown", chain(err), Retry),
    }
}

/// Sorts an error read from inside a ConverseStream's event stream, after
/// the HTTP response said 200: an exception frame, an unreadable frame, or
/// the connection cut mid-answer.
///
/// An exception frame is judged by the same table as its HTTP twin
/// (`throttlingException` as `ThrottlingException`, …). The SDK fills in no
/// error code for these frames (the payload is only `{"message": …}`), so
/// the code comes from the typed variant and the status is unknown. Anything
/// else cut the answer short and is retried: the whole row is sent again.
pub fn classify_stream(err: &SdkError<ConverseStreamOutputError, RawMessage>) -> Classified {
    match err {
        SdkError::ServiceError(e) => {
            let code = err.code().unwrap_or_else(|| stream_exception_code(e.err()));
            service_error(code, err.message().unwrap_or(""), 0)
        }
        _ => Classified::new(
            ErrorKind::Network,
            "StreamInterrupted",
            chain(err),
            Disposition::Retry,
        ),
    }
}

/// The HTTP error code of an in-stream exception's typed variant.
fn stream_exception_code(e: &ConverseStreamOutputError) -> &'static str {
    match e {
        ConverseStreamOutputError::ThrottlingException(_) => "ThrottlingException",
        ConverseStreamOutputError::InternalServerException(_) => "InternalServerException",
        ConverseStreamOutputError::ServiceUnavailableException(_) => "ServiceUnavailableException",
        ConverseStreamOutputError::ValidationException(_) => "ValidationException",
        ConverseStreamOutputError::ModelStreamErrorException(_) => "ModelStreamErrorException",
        // An exception type this SDK does not model: the table's fallback
        // for an unknown code without a status (fail, do not pay again).
        _ => "Unknown",
    }
}

/// The one table from a service error's code (and HTTP status, 0 when there
/// is none, as inside an event stream) to kind and disposition.
fn service_error(code: &str, message: &str, status: u16) -> Classified {
    use Disposition::{Fail, Retry};
    let (kind, disposition) = match code {
        "ThrottlingException" | "TooManyRequestsException" => (ErrorKind::Throttled, Retry),
        "ServiceUnavailableException" | "InternalServerException" => (ErrorKind::Server, Retry),
        "ModelNotReadyException" => (ErrorKind::Model, Retry),
        "ModelTimeoutException" => (ErrorKind::Timeout, Retry),
        "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" => {
            (ErrorKind::Credentials, Retry)
        }
        "ValidationException" => (ErrorKind::Validation, Fail),
        "AccessDeniedException" => (ErrorKind::AccessDenied, Fail),
        "ResourceNotFoundException" => (ErrorKind::NotFound, Fail),
        "ServiceQuotaExceededException" => (ErrorKind::Quota, Fail),
        "ModelErrorException" | "ModelStreamErrorException" => (ErrorKind::Model, Fail),
        "UnrecognizedClientException" | "InvalidSignatureException" | "IncompleteSignature" => {
            (ErrorKind::Credentials, Fail)
        }
        _ => match status {
            429 => (ErrorKind::Throttled, Retry),
            408 => (ErrorKind::Timeout, Retry),
            500 | 502 | 503 | 504 => (ErrorKind::Server, Retry),
            s if s >= 500 => (ErrorKind::Server, Fail),
            _ => (ErrorKind::Validation, Fail),
        },
    };
    let mut c = Classified::new(kind, code, message.to_string(), disposition);
    if kind == ErrorKind::Throttled {
        c.throttle = Some(if c.message.to_ascii_lowercase().contains("token") {
            Throttle::Tokens
        } else {
            Throttle::Requests
        });
    }
    if kind == ErrorKind::AccessDenied {
        c.message.push_str(
            " (hint: `bedrock-batch policy` prints the policy this job needs; a cross-region \
             profile needs the model in every destination region)",
        );
    }
    c
}

fn is_credentials_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("credential") || d.contains("identity") || d.contains("assumerole")
}

/// The error and its sources on one line, capped: SDK errors never carry
/// secrets in their messages, but they can be long.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    crate::error::clip(&crate::error::error_chain(err), 500)
}

/// Sends one row once; with `stream`, through ConverseStream (`stream.rs`).
pub async fn call(
    client: &Client,
    api: Api,
    stream: bool,
    job: &Job,
) -> Result<Answer, Classified> {
    match api {
        Api::Converse if stream => super::stream::converse_stream(client, &job.request).await,
        Api::Converse => converse(client, &job.request).await,
        Api::Invoke => invoke(client, job).await,
    }
}

/// A Converse request's messages and system blocks, cache points included:
/// the same for `converse` and for CountTokens, so the count is of what is sent.
pub(crate) fn converse_parts(
    r: &Request,
) -> Result<(Vec<Message>, Vec<SystemContentBlock>), Classified> {
    let cache_point = || {
        CachePointBlock::builder()
            .r#type(CachePointType::Default)
            .build()
            .map_err(invalid_row)
    };
    let mut messages = Vec::with_capacity(r.messages.len());
    for m in &r.messages {
        let role = match m.role {
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
        };
        let mut msg = Message::builder().role(role);
        let mut from = 0;
        for &at in &m.cache_after {
            let at = at.min(m.text.len());
            if at > from {
                msg = msg.content(ContentBlock::Text(m.text[from..at].to_string()));
            }
            msg = msg.content(ContentBlock::CachePoint(cache_point()?));
            // The "\n" that joined the next block to this one.
            from = if m.text[at..].starts_with('\n') {
                at + 1
            } else {
                at
            };
        }
        if from < m.text.len() || m.cache_after.is_empty() {
            msg = msg.content(ContentBlock::Text(m.text[from..].to_string()));
        }
        messages.push(msg.build().map_err(invalid_row)?);
    }
    let mut system = Vec::new();
    if let Some(s) = &r.system {
        system.push(SystemContentBlock::Text(s.clone()));
        if r.cache_system {
            system.push(SystemContentBlock::CachePoint(cache_point()?));
        }
    }
    Ok((messages, system))
}

/// A request the SDK's builders refuse: the row's fault, failed without a call.
fn invalid_row(e: impl std::fmt::Display) -> Classified {
    Classified::new(
        ErrorKind::Input,
        "InvalidRow",
        e.to_string(),
        Disposition::Fail,
    )
}

/// What Converse and ConverseStream both send: the turns and system blocks
/// (cache points included), the service tier and the inference settings.
pub(crate) struct ConverseParts {
    pub messages: Vec<Message>,
    pub system: Option<Vec<SystemContentBlock>>,
    pub tier: Option<ServiceTier>,
    pub config: InferenceConfiguration,
}

impl ConverseParts {
    pub(crate) fn of(r: &Request) -> Result<ConverseParts, Classified> {
        let (messages, system) = converse_parts(r)?;
        Ok(ConverseParts {
            messages,
            system: (!system.is_empty()).then_some(system),
            tier: service_tier(r)?,
            config: inference_config(r),
        })
    }
}

fn service_tier(r: &Request) -> Result<Option<ServiceTier>, Classified> {
    Ok(match r.service_tier {
        Some(t) => Some(
            ServiceTier::builder()
                .r#type(ServiceTierType::from(t.as_str()))
                .build()
                .map_err(invalid_row)?,
        ),
        None => None,
    })
}

fn inference_config(r: &Request) -> InferenceConfiguration {
    InferenceConfiguration::builder()
        .set_max_tokens(r.max_tokens.map(|n| n.min(i32::MAX as u32) as i32))
        .set_temperature(r.temperature)
        .set_top_p(r.top_p)
        .set_stop_sequences((!r.stop_sequences.is_empty()).then(|| r.stop_sequences.clone()))
        .build()
}

async fn converse(client: &Client, r: &Request) -> Result<Answer, Classified> {
    let parts = ConverseParts::of(r)?;
    let out = client
        .converse()
        .model_id(&r.model)
        .set_messages(Some(parts.messages))
        .set_system(parts.system)
        .set_service_tier(parts.tier)
        .inference_config(parts.config)
        .send()
        .await
        .map_err(|e| tier_refused(classify(&e), r))?;
    let text = match out.output() {
        Some(ConverseOutput::Message(m)) => m
            .content()
            .iter()
            .filter_map(|b| b.as_text().ok().map(String::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    let usage = out.usage();
    let count = |n: i32| n.max(0) as u64;
    Ok(Answer {
        text,
        stop_reason: out.stop_reason().as_str().to_string(),
        input_tokens: usage.map_or(0, |u| count(u.input_tokens())),
        output_tokens: usage.map_or(0, |u| count(u.output_tokens())),
        cache_read_input_tokens: usage.and_then(|u| u.cache_read_input_tokens()).map(count),
        cache_write_input_tokens: usage.and_then(|u| u.cache_write_input_tokens()).map(count),
        service_tier: out.service_tier().map(|t| t.r#type().as_str().to_string()),
        ttft_ms: None,
    })
}

/// A ValidationException on a call that asked for a tier other than the
/// default (Bedrock: "a model or region that does not support the tier
/// returns a ValidationException"). AWS documents no fixed wording, so a
/// message that names a tier at all ("tier", "serviceTier", or the tier's
/// own name) is taken as the tier being refused: the message says so and
/// `tier_refused` lets the run stop early. Any other ValidationException on
/// such a call still says which tier it was sent on, since the tier is the
/// likeliest reason a request that works on the default tier fails.
fn tier_refused(mut c: Classified, r: &Request) -> Classified {
    let Some(tier) = r
        .service_tier
        .filter(|t| *t != crate::bedrock::request::ServiceTier::Default)
    else {
        return c;
    };
    if c.code != "ValidationException" {
        return c;
    }
    let lower = c.message.to_ascii_lowercase();
    if lower.contains("tier") || lower.contains(tier.as_str()) {
        c.message = format!(
            "service tier `{}` refused for {}: {}",
            tier.as_str(),
            r.model,
            c.message
        );
        c.tier_refused = true;
    } else {
        c.message = format!(
            "{} (sent on the `{}` service tier)",
            c.message,
            tier.as_str()
        );
    }
    c
}

async fn invoke(client: &Client, job: &Job) -> Result<Answer, Classified> {
    let fail = |kind, code: &str, msg: String| Classified::new(kind, code, msg, Disposition::Fail);
    // job.rs builds the body for every row of an invoke job; a job without
    // one is a bug, reported as the row's failure rather than a panic.
    let Some(invoke) = &job.body else {
        return Err(fail(
            ErrorKind::Input,
            "InvalidRow",
            "no InvokeModel body was built for this row".into(),
        ));
    };
    let bytes = serde_json::to_vec(&invoke.body)
        .map_err(|e| fail(ErrorKind::Input, "InvalidRow", e.to_string()))?;
    let counts = TokenCountHeaders::default();
    let out = client
        .invoke_model()
        .model_id(&job.request.model)
        .content_type("application/json")
        .accept("application/json")
        .set_service_tier(
            job.request
                .service_tier
                .map(|t| ServiceTierType::from(t.as_str())),
        )
        .body(Blob::new(bytes))
        .customize()
        .interceptor(counts.clone())
        .send()
        .await
        .map_err(|e| tier_refused(classify(&e), &job.request))?;
    let raw = out.body().as_ref();
    let mut answer = match invoke.family {
        Some(f) => native::parse_response(f, raw),
        None => native::parse_any(raw),
    }
    .map_err(|e| fail(ErrorKind::Model, "UnreadableResponse", e.to_string()))?;
    // Some families' bodies carry no usage (Mistral's text completion), nor
    // may a verbatim body's answer; the headers always do, and the limiter
    // and the results need real counts.
    if !invoke.family.is_some_and(native::Family::reports_usage) {
        if let Some((input, output)) = counts.get() {
            answer.input_tokens = input;
            answer.output_tokens = output;
        }
    }
    answer.service_tier = out.service_tier().map(|t| t.as_str().to_string());
    Ok(answer)
}

/// Reads Bedrock's `X-Amzn-Bedrock-Input-Token-Count` and
/// `-Output-Token-Count` headers off one InvokeModel response. The SDK's
/// output type does not expose response headers, so an interceptor on the
/// call keeps them.
#[derive(Debug, Default, Clone)]
struct TokenCountHeaders(Arc<Mutex<Option<(u64, u64)>>>);

impl TokenCountHeaders {
    fn get(&self) -> Option<(u64, u64)> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Intercept for TokenCountHeaders {
    fn name(&self) -> &'static str {
        "TokenCountHeaders"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.response().headers();
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = native::usage_from_headers(
            headers.get("x-amzn-bedrock-input-token-count"),
            headers.get("x-amzn-bedrock-output-token-count"),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::operation::converse::ConverseError;
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service(code: &str, status: u16, message: &str) -> SdkError<ConverseError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(ConverseError::generic(meta), raw)
    }

    fn verdict(e: &SdkError<ConverseError, HttpResponse>) -> (ErrorKind, Disposition) {
        let c = classify(e);
        (c.kind, c.disposition)
    }

    #[test]
    fn a_validation_error_on_another_tier_names_the_tier() {
        use crate::bedrock::request::ServiceTier;
        let request = |tier| Request {
            model: "m.x-v1:0".into(),
            service_tier: tier,
            ..Request::default()
        };
        let validation = |m: &str| classify(&service("ValidationException", 400, m));
        let flex = request(Some(ServiceTier::Flex));
        // Whatever wording names a tier is a refusal of it.
        for m in [
            "The service tier flex is not supported for model m.x-v1:0 in this Region.",
            "serviceTier is not supported",
            "This model does not support Flex.",
        ] {
            let c = tier_refused(validation(m), &flex);
            assert!(c.tier_refused, "{m}");
            assert!(
                c.message
                    .starts_with("service tier `flex` refused for m.x-v1:0: "),
                "{}",
                c.message
            );
        }
        // Another validation error says which tier it was sent on, and does not stop the job.
        let c = tier_refused(validation("Malformed input request"), &flex);
        assert!(!c.tier_refused);
        assert_eq!(
            c.message,
            "Malformed input request (sent on the `flex` service tier)"
        );
        // On the default tier nothing changes, and nor do errors of other kinds.
        for r in [request(None), request(Some(ServiceTier::Default))] {
            let c = tier_refused(validation("flex tier"), &r);
            assert!(!c.tier_refused);
            assert_eq!(c.message, "flex tier");
        }
        let c = tier_refused(
            classify(&service("ThrottlingException", 429, "tier busy")),
            &flex,
        );
        assert!(!c.tier_refused);
    }

    #[test]
    fn retryable_service_errors() {
        use Disposition::Retry;
        for (code, status, kind) in [
            ("ThrottlingException", 429, ErrorKind::Throttled),
            ("ServiceUnavailableException", 503, ErrorKind::Server),
            ("InternalServerException", 500, ErrorKind::Server),
            ("ModelNotReadyException", 429, ErrorKind::Model),
            ("ModelTimeoutException", 408, ErrorKind::Timeout),
            ("ExpiredTokenException", 403, ErrorKind::Credentials),
            // No code at all: the status decides.
            ("", 502, ErrorKind::Server),
            ("", 429, ErrorKind::Throttled),
        ] {
            assert_eq!(
                verdict(&service(code, status, "m")),
                (kind, Retry),
                "{code} {status}"
            );
        }
    }

    #[test]
    fn permanent_service_errors() {
        use Disposition::Fail;
        for (code, status, kind) in [
            ("ValidationException", 400, ErrorKind::Validation),
            ("AccessDeniedException", 403, ErrorKind::AccessDenied),
            ("ResourceNotFoundException", 404, ErrorKind::NotFound),
            ("ServiceQuotaExceededException", 400, ErrorKind::Quota),
            ("ModelErrorException", 424, ErrorKind::Model),
            ("UnrecognizedClientException", 403, ErrorKind::Credentials),
        ] {
            assert_eq!(verdict(&service(code, status, "m")), (kind, Fail), "{code}");
        }
    }

    #[test]
    fn throttles_say_which_quota() {
        let c = classify(&service(
            "ThrottlingException",
            429,
            "Too many tokens, please wait before trying again.",
        ));
        assert_eq!(c.throttle, Some(Throttle::Tokens));
        let c = classify(&service(
            "ThrottlingException",
            429,
            "Too many requests, please wait before trying again.",
        ));
        assert_eq!(c.throttle, Some(Throttle::Requests));
        assert_eq!(c.code, "ThrottlingException");
        assert!(classify(&service("ValidationException", 400, "x"))
            .throttle
            .is_none());
    }

    #[test]
    fn only_expired_tokens_ask_for_new_credentials() {
        assert!(classify(&service("ExpiredTokenException", 403, "expired")).expired_credentials());
        for (code, status) in [
            ("UnrecognizedClientException", 403),
            ("AccessDeniedException", 403),
            ("ThrottlingException", 429),
        ] {
            assert!(
                !classify(&service(code, status, "m")).expired_credentials(),
                "{code}"
            );
        }
    }

    #[test]
    fn access_denied_points_at_the_policy_command() {
        let c = classify(&service("AccessDeniedException", 403, "not authorized"));
        assert!(
            c.message
                .starts_with("not authorized (hint: `bedrock-batch policy`"),
            "{}",
            c.message
        );
    }

    #[test]
    fn transport_failures_are_retryable() {
        let io: SdkError<ConverseError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(
                std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into(),
            ));
        assert_eq!(verdict(&io), (ErrorKind::Network, Disposition::Retry));
        let timeout: SdkError<ConverseError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::timeout(std::io::Error::new(std::io::ErrorKind::TimedOut, "t").into()),
        );
        assert_eq!(verdict(&timeout), (ErrorKind::Timeout, Disposition::Retry));
        let attempt: SdkError<ConverseError, HttpResponse> =
            SdkError::timeout_error(std::io::Error::new(std::io::ErrorKind::TimedOut, "t"));
        assert_eq!(verdict(&attempt), (ErrorKind::Timeout, Disposition::Retry));
        let construction: SdkError<ConverseError, HttpResponse> =
            SdkError::construction_failure(std::io::Error::other("bad input"));
        assert_eq!(
            verdict(&construction),
            (ErrorKind::Validation, Disposition::Fail)
        );
    }

    /// An exception frame as the SDK hands it back from `recv()`: the typed
    /// variant, its message in the metadata, and no code (wire doc §5).
    fn in_stream(kind: &str, message: &str) -> SdkError<ConverseStreamOutputError, RawMessage> {
        use aws_sdk_bedrockruntime::types::error as e;
        let meta = ErrorMetadata::builder().message(message).build();
        let err = match kind {
            "throttlingException" => ConverseStreamOutputError::ThrottlingException(
                e::ThrottlingException::builder()
                    .message(message)
                    .meta(meta)
                    .build(),
            ),
            "internalServerException" => ConverseStreamOutputError::InternalServerException(
                e::InternalServerException::builder()
                    .message(message)
                    .meta(meta)
                    .build(),
            ),
            "serviceUnavailableException" => {
                ConverseStreamOutputError::ServiceUnavailableException(
                    e::ServiceUnavailableException::builder()
                        .message(message)
                        .meta(meta)
                        .build(),
                )
            }
            "validationException" => ConverseStreamOutputError::ValidationException(
                e::ValidationException::builder()
                    .message(message)
                    .meta(meta)
                    .build(),
            ),
            "modelStreamErrorException" => ConverseStreamOutputError::ModelStreamErrorException(
                e::ModelStreamErrorException::builder()
                    .message(message)
                    .original_status_code(500)
                    .meta(meta)
                    .build(),
            ),
            _ => ConverseStreamOutputError::generic(meta),
        };
        SdkError::service_error(err, RawMessage::invalid(None))
    }

    #[test]
    fn in_stream_exceptions_are_judged_like_their_http_twins() {
        for (frame, code, status) in [
            ("throttlingException", "ThrottlingException", 429),
            ("internalServerException", "InternalServerException", 500),
            (
                "serviceUnavailableException",
                "ServiceUnavailableException",
                503,
            ),
            ("validationException", "ValidationException", 400),
            (
                "modelStreamErrorException",
                "ModelStreamErrorException",
                424,
            ),
        ] {
            let streamed = classify_stream(&in_stream(frame, "Too many requests"));
            let http = classify(&service(code, status, "Too many requests"));
            assert_eq!(streamed, http, "{frame}");
            assert_eq!(streamed.code, code);
        }
        let c = classify_stream(&in_stream("throttlingException", "Too many tokens"));
        assert_eq!(
            (c.kind, c.disposition, c.throttle),
            (
                ErrorKind::Throttled,
                Disposition::Retry,
                Some(Throttle::Tokens)
            )
        );
        // An exception this SDK does not model, without a code: not paid again.
        let c = classify_stream(&in_stream("somethingNew", "m"));
        assert_eq!(
            (c.kind, c.disposition),
            (ErrorKind::Validation, Disposition::Fail)
        );
    }

    #[test]
    fn a_stream_cut_or_garbled_mid_answer_is_retried() {
        let garbled: SdkError<ConverseStreamOutputError, RawMessage> = SdkError::response_error(
            std::io::Error::other("invalid frame"),
            RawMessage::invalid(None),
        );
        let c = classify_stream(&garbled);
        assert_eq!(
            (c.kind, c.disposition, c.code.as_str()),
            (ErrorKind::Network, Disposition::Retry, "StreamInterrupted")
        );
        let cut: SdkError<ConverseStreamOutputError, RawMessage> =
            SdkError::dispatch_failure(ConnectorError::io(
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed").into(),
            ));
        assert_eq!(classify_stream(&cut).disposition, Disposition::Retry);
    }
}
