//! Authentication: who signed a request and whether the emulator accepts it.
//!
//! Applies the wire doc's rules (§9) with the config's strictness; the crypto is `sigv4.rs`
//! and the key store `credentials.rs`. Authorisation of specific actions (denied models,
//! denied AssumeRole) is left to the operation handlers.

use std::time::SystemTime;

use http::request::Parts;

use super::credentials::Identity;
use super::fault::Fault;
use super::server::Server;
use super::sigv4::SigV4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Bedrock,
    Sts,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Bedrock => "bedrock",
            Service::Sts => "sts",
        }
    }

    fn expired(self) -> Fault {
        match self {
            Service::Bedrock => Fault::ExpiredToken,
            Service::Sts => Fault::StsExpiredToken,
        }
    }

    fn invalid_token(self) -> Fault {
        match self {
            Service::Bedrock => Fault::UnrecognizedClient,
            Service::Sts => Fault::StsInvalidClientTokenId,
        }
    }

    fn bad_signature(self) -> Fault {
        match self {
            Service::Bedrock => Fault::InvalidSignature,
            Service::Sts => Fault::StsSignatureDoesNotMatch,
        }
    }
}

/// A refusal: the fault and, where the real service is more specific, its message.
pub type Denial = (Fault, Option<String>);

/// Checks the request's credentials and returns the caller's identity.
pub fn check(
    server: &Server,
    parts: &Parts,
    body: &[u8],
    service: Service,
) -> Result<Identity, Denial> {
    let Some(value) = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(match service {
            Service::Bedrock => (Fault::MissingAuthenticationToken, None),
            Service::Sts => (
                Fault::StsInvalidClientTokenId,
                Some("Request is missing Authentication Token".into()),
            ),
        });
    };
    let require_issued = service == Service::Bedrock && server.cfg.require_assumed_role;
    if value.starts_with("Bearer ") && service == Service::Bedrock {
        // Bedrock API keys: accepted as-is unless only issued credentials may call.
        return if require_issued {
            Err((service.invalid_token(), None))
        } else {
            Ok(Identity::Unknown)
        };
    }
    let Some(sig) = SigV4::parse(value) else {
        return Err((
            service.bad_signature(),
            Some(format!(
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={value}"
            )),
        ));
    };
    if sig.service != service.signing_name() {
        return Err((
            service.bad_signature(),
            Some(format!(
                "Credential should be scoped to correct service: '{}'. ",
                service.signing_name()
            )),
        ));
    }
    let token = parts
        .headers
        .get("x-amz-security-token")
        .map(|v| v.as_bytes());
    let identity = server.keyring.lookup(sig.access_key);
    let secret = match &identity {
        Identity::Issued(c) => {
            if token != Some(c.session_token.as_bytes()) {
                return Err((service.invalid_token(), None));
            }
            if SystemTime::now() >= c.expiration {
                return Err((service.expired(), None));
            }
            Some(c.secret_access_key.as_str())
        }
        Identity::Static(secret) => {
            if require_issued || token.is_some() {
                return Err((service.invalid_token(), None));
            }
            Some(&**secret)
        }
        Identity::Unknown => {
            if require_issued {
                return Err((service.invalid_token(), None));
            }
            None
        }
    };
    if let Some(secret) = secret.filter(|_| server.cfg.verify_signatures) {
        if !sig.verify(secret, parts, body, service == Service::Bedrock) {
            return Err((service.bad_signature(), None));
        }
    }
    Ok(identity)
}
