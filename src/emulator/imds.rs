//! IMDSv2, the part an EC2 instance role needs: session tokens, the region and the role's
//! rotating credentials (wire doc §8).
//!
//! `Imds` holds the live session tokens and the current instance-role credentials; the
//! credentials themselves are minted by `credentials.rs` and count as issued keys.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};

use super::credentials::{rfc3339, IssuedCredentials, Origin};
use super::fault::Fault;
use super::server::{header, Reply, Server, Trace};

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
/// The instance the role credentials claim to belong to (it shows in the assumed-role ARN).
const INSTANCE_ID: &str = "i-0e1a2b3c4d5e6f708";
/// Live tokens kept before expired ones are swept.
const TOKEN_SWEEP_AT: usize = 1024;

#[derive(Debug, Default)]
pub struct Imds {
    /// Session token → expiry.
    tokens: Mutex<HashMap<String, Instant>>,
    /// The instance role's current credentials; replaced when they near expiry, as EC2 does.
    current: Mutex<Option<Arc<IssuedCredentials>>>,
}

fn plain(server: &Server, status: StatusCode, body: String) -> Reply {
    server.reply(status, "text/plain", body)
}

fn fail(server: &Server, f: Fault, trace: &mut Trace) -> Reply {
    server.stats.error(f);
    trace.error_code = Some(f.code());
    plain(
        server,
        StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST),
        String::new(),
    )
}

/// Handles every `/latest/...` request.
pub fn handle(server: &Server, parts: &Parts, trace: &mut Trace) -> Reply {
    let path = parts.uri.path();
    if path == "/latest/api/token" {
        trace.operation = "GetToken";
        if parts.method != Method::PUT {
            return fail(server, Fault::ImdsNotFound, trace);
        }
        let ttl = header(parts, TTL_HEADER).and_then(|v| v.parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
            return fail(server, Fault::ImdsBadRequest, trace);
        };
        server.stats.imds_tokens.fetch_add(1, Relaxed);
        let token = format!("AQAEA{}", fastrand_token());
        {
            let mut tokens = server.imds.tokens.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if tokens.len() >= TOKEN_SWEEP_AT {
                tokens.retain(|_, exp| *exp > now);
            }
            tokens.insert(token.clone(), now + Duration::from_secs(ttl));
        }
        let mut r = plain(server, StatusCode::OK, token);
        r.headers_mut().insert(TTL_HEADER, HeaderValue::from(ttl));
        return r;
    }
    trace.operation = match path {
        "/latest/meta-data/placement/region" => "GetRegion",
        p if p == CREDENTIALS_PATH || p == CREDENTIALS_PATH.trim_end_matches('/') => "ListRoles",
        p if p.starts_with(CREDENTIALS_PATH) => "GetCredentials",
        _ => "Unknown",
    };
    if parts.method != Method::GET {
        return fail(server, Fault::ImdsNotFound, trace);
    }
    let valid = header(parts, "x-aws-ec2-metadata-token").is_some_and(|t| {
        let tokens = server.imds.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.get(t).is_some_and(|exp| *exp > Instant::now())
    });
    if !valid {
        return fail(server, Fault::ImdsUnauthorized, trace);
    }
    match trace.operation {
        "GetRegion" => plain(server, StatusCode::OK, server.cfg.region.clone()),
        "ListRoles" => plain(server, StatusCode::OK, server.cfg.imds_role.clone()),
        "GetCredentials" if path[CREDENTIALS_PATH.len()..] == *server.cfg.imds_role => {
            server.stats.imds_credentials.fetch_add(1, Relaxed);
            let c = current_credentials(server);
            let doc = serde_json::json!({
                "Code": "Success",
                "LastUpdated": rfc3339(c.expiration - server.cfg.credential_ttl),
                "Type": "AWS-HMAC",
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "Token": c.session_token,
                "Expiration": rfc3339(c.expiration + server.cfg.clock_skew),
            });
            plain(server, StatusCode::OK, doc.to_string())
        }
        _ => fail(server, Fault::ImdsNotFound, trace),
    }
}

/// The role's credentials, reissued once less than a quarter of their lifetime remains.
fn current_credentials(server: &Server) -> Arc<IssuedCredentials> {
    let mut cur = server
        .imds
        .current
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let ttl = server.cfg.credential_ttl;
    let fresh = cur.as_ref().is_some_and(|c| {
        c.expiration
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > ttl / 4)
    });
    if !fresh {
        *cur = Some(server.keyring.issue(
            &server.cfg.account_id,
            &server.cfg.imds_role,
            INSTANCE_ID,
            ttl,
            Origin::Imds,
        ));
    }
    // Set just above when absent or stale.
    cur.clone().expect("credentials present after refresh")
}

fn fastrand_token() -> String {
    let mut rng = fastrand::Rng::new();
    (0..51).map(|_| rng.alphanumeric()).collect()
}
