//! `Fault`: every error the emulator can answer with, and how it looks on the wire.
//!
//! This is the catalogue (code, HTTP status, default message), not the decision of when to
//! fail: markers, quotas, auth and the random fault injector decide that and pick a `Fault`.
//! Codes and statuses follow the wire doc's error matrix, so the SDK classifies (and retries)
//! each one exactly as it would against the real service.

/// One kind of error response. Bedrock variants render as restJson1, `Sts*` as awsQuery XML,
/// `ImdsUnauthorized` as the plain 401 IMDS gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Request quota (rpm) exceeded.
    ThrottleRequests,
    /// Token quota (tpm) exceeded; same code as `ThrottleRequests`, different message.
    ThrottleTokens,
    InternalServer,
    ServiceUnavailable,
    ModelTimeout,
    ModelNotReady,
    ModelError,
    Validation,
    AccessDenied,
    ResourceNotFound,
    ServiceQuotaExceeded,
    ExpiredToken,
    UnrecognizedClient,
    InvalidSignature,
    MissingAuthenticationToken,
    UnknownOperation,
    StsAccessDenied,
    StsExpiredToken,
    StsInvalidClientTokenId,
    StsSignatureDoesNotMatch,
    StsValidationError,
    StsInvalidAction,
    ImdsUnauthorized,
    ImdsBadRequest,
    ImdsNotFound,
}

impl Fault {
    /// Every variant, in declaration order (`index()` is the position here).
    pub const ALL: [Fault; 25] = [
        Fault::ThrottleRequests,
        Fault::ThrottleTokens,
        Fault::InternalServer,
        Fault::ServiceUnavailable,
        Fault::ModelTimeout,
        Fault::ModelNotReady,
        Fault::ModelError,
        Fault::Validation,
        Fault::AccessDenied,
        Fault::ResourceNotFound,
        Fault::ServiceQuotaExceeded,
        Fault::ExpiredToken,
        Fault::UnrecognizedClient,
        Fault::InvalidSignature,
        Fault::MissingAuthenticationToken,
        Fault::UnknownOperation,
        Fault::StsAccessDenied,
        Fault::StsExpiredToken,
        Fault::StsInvalidClientTokenId,
        Fault::StsSignatureDoesNotMatch,
        Fault::StsValidationError,
        Fault::StsInvalidAction,
        Fault::ImdsUnauthorized,
        Fault::ImdsBadRequest,
        Fault::ImdsNotFound,
    ];

    /// The transient faults `fault_rate` picks from, uniformly.
    pub const TRANSIENT: [Fault; 4] = [
        Fault::ThrottleRequests,
        Fault::InternalServer,
        Fault::ServiceUnavailable,
        Fault::ModelTimeout,
    ];

    /// Position in [`Fault::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The error code as the client sees it (`x-amzn-ErrorType` prefix or STS `<Code>`).
    pub fn code(self) -> &'static str {
        match self {
            Fault::ThrottleRequests | Fault::ThrottleTokens => "ThrottlingException",
            Fault::InternalServer => "InternalServerException",
            Fault::ServiceUnavailable => "ServiceUnavailableException",
            Fault::ModelTimeout => "ModelTimeoutException",
            Fault::ModelNotReady => "ModelNotReadyException",
            Fault::ModelError => "ModelErrorException",
            Fault::Validation => "ValidationException",
            Fault::AccessDenied => "AccessDeniedException",
            Fault::ResourceNotFound => "ResourceNotFoundException",
            Fault::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            Fault::ExpiredToken => "ExpiredTokenException",
            Fault::UnrecognizedClient => "UnrecognizedClientException",
            Fault::InvalidSignature => "InvalidSignatureException",
            Fault::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Fault::UnknownOperation => "UnknownOperationException",
            Fault::StsAccessDenied => "AccessDenied",
            Fault::StsExpiredToken => "ExpiredToken",
            Fault::StsInvalidClientTokenId => "InvalidClientTokenId",
            Fault::StsSignatureDoesNotMatch => "SignatureDoesNotMatch",
            Fault::StsValidationError => "ValidationError",
            Fault::StsInvalidAction => "InvalidAction",
            Fault::ImdsUnauthorized => "ImdsUnauthorized",
            Fault::ImdsBadRequest => "ImdsBadRequest",
            Fault::ImdsNotFound => "ImdsNotFound",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Fault::ThrottleRequests | Fault::ThrottleTokens | Fault::ModelNotReady => 429,
            Fault::InternalServer => 500,
            Fault::ServiceUnavailable => 503,
            Fault::ModelTimeout => 408,
            Fault::ModelError => 424,
            Fault::Validation
            | Fault::ServiceQuotaExceeded
            | Fault::StsValidationError
            | Fault::StsInvalidAction
            | Fault::ImdsBadRequest => 400,
            Fault::AccessDenied
            | Fault::ExpiredToken
            | Fault::UnrecognizedClient
            | Fault::InvalidSignature
            | Fault::MissingAuthenticationToken
            | Fault::StsAccessDenied
            | Fault::StsExpiredToken
            | Fault::StsInvalidClientTokenId
            | Fault::StsSignatureDoesNotMatch => 403,
            Fault::ResourceNotFound | Fault::UnknownOperation | Fault::ImdsNotFound => 404,
            Fault::ImdsUnauthorized => 401,
        }
    }

    /// The message the real service sends for this error where it is fixed; callers with a
    /// more specific message (validation details, ARNs) pass their own.
    pub fn message(self) -> &'static str {
        match self {
            Fault::ThrottleRequests => "Too many requests, please wait before trying again.",
            Fault::ThrottleTokens => "Too many tokens, please wait before trying again.",
            Fault::InternalServer => "The system encountered an unexpected error during processing. Try your request again.",
            Fault::ServiceUnavailable => "Bedrock is unable to process your request.",
            Fault::ModelTimeout => "Model has timed out in processing the request. Try your request again.",
            Fault::ModelNotReady => "Model is not ready for inference. Wait and try your request again.",
            Fault::ModelError => "The model returned an error. Try your request again.",
            Fault::Validation => "Malformed input request, please reformat your input and try again.",
            Fault::AccessDenied => "You don't have access to the model with the specified model ID.",
            Fault::ResourceNotFound => "Model not found. Check the model ID and try again.",
            Fault::ServiceQuotaExceeded => "Your request exceeds the service quota for your account. You can view your quotas at https://docs.aws.amazon.com/servicequotas/latest/userguide/gs-request-quota.html. You can resubmit your request later.",
            Fault::ExpiredToken | Fault::StsExpiredToken => "The security token included in the request is expired",
            Fault::UnrecognizedClient | Fault::StsInvalidClientTokenId => "The security token included in the request is invalid.",
            Fault::InvalidSignature | Fault::StsSignatureDoesNotMatch => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            Fault::MissingAuthenticationToken => "Missing Authentication Token",
            Fault::UnknownOperation => "UnknownOperationException",
            Fault::StsAccessDenied => "Access denied",
            Fault::StsValidationError => "Request is invalid",
            Fault::StsInvalidAction => "Could not find operation for this request",
            Fault::ImdsUnauthorized => "Unauthorized",
            Fault::ImdsBadRequest => "Bad Request",
            Fault::ImdsNotFound => "Not Found",
        }
    }

    /// Parses the KIND of an `[[emu:KIND]]` marker (see `marker.rs`).
    pub fn from_marker(kind: &str) -> Option<Fault> {
        Some(match kind {
            "throttle" => Fault::ThrottleRequests,
            "throttle_tokens" => Fault::ThrottleTokens,
            "server" => Fault::InternalServer,
            "unavailable" => Fault::ServiceUnavailable,
            "timeout" => Fault::ModelTimeout,
            "not_ready" => Fault::ModelNotReady,
            "model_error" => Fault::ModelError,
            "validation" => Fault::Validation,
            "access_denied" => Fault::AccessDenied,
            "not_found" => Fault::ResourceNotFound,
            "quota" => Fault::ServiceQuotaExceeded,
            "expired" => Fault::ExpiredToken,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, f) in Fault::ALL.iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?}");
        }
    }
}
