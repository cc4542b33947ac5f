//! The STS operations (awsQuery): AssumeRole and GetCallerIdentity, with the XML shapes the
//! SDK's parsers require (wire doc §7).
//!
//! Credentials are minted by `credentials.rs`; who is calling is `auth.rs`'s answer.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::StatusCode;
use percent_encoding::percent_decode;

use super::auth::{self, Service};
use super::credentials::{rfc3339, Identity, Origin};
use super::fault::Fault;
use super::server::{Reply, Server, Trace};

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The identity static (non-issued) keys belong to.
const STATIC_USER: &str = "DeveloperUser";

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &[u8]) -> String {
    let plus: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus).decode_utf8_lossy().into_owned()
}

fn param(form: &[(String, String)], key: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn error(server: &Server, f: Fault, message: Option<&str>, trace: &mut Trace) -> Reply {
    server.stats.error(f);
    trace.error_code = Some(f.code());
    let kind = if f.status() >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let body = format!(
        "<ErrorResponse xmlns=\"{NS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        f.code(),
        xml_escape(message.unwrap_or(f.message())),
        server.request_id()
    );
    server.reply(
        StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST),
        "text/xml",
        body,
    )
}

fn validation(server: &Server, msg: String, trace: &mut Trace) -> Reply {
    error(server, Fault::StsValidationError, Some(&msg), trace)
}

/// Handles `POST /` with a form body.
pub fn handle(server: &Server, parts: &Parts, body: &Bytes, trace: &mut Trace) -> Reply {
    let form: Vec<(String, String)> = body
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (form_decode(&p[..i]), form_decode(&p[i + 1..])),
            None => (form_decode(p), String::new()),
        })
        .collect();
    let action = param(&form, "Action").unwrap_or_default();
    trace.operation = match action.as_str() {
        "AssumeRole" => "AssumeRole",
        "GetCallerIdentity" => "GetCallerIdentity",
        _ => "Unknown",
    };
    let identity = match auth::check(server, parts, body, Service::Sts) {
        Ok(i) => i,
        Err((f, msg)) => return error(server, f, msg.as_deref(), trace),
    };
    let account = &server.cfg.account_id;
    let (caller_arn, caller_id) = match &identity {
        Identity::Issued(c) => (c.arn.clone(), c.user_id.clone()),
        Identity::Static(_) | Identity::Unknown => (
            format!("arn:aws:iam::{account}:user/{STATIC_USER}"),
            "AIDAEMULATORDEVUSER01".to_owned(),
        ),
    };
    match trace.operation {
        "GetCallerIdentity" => {
            server.stats.get_caller_identity.fetch_add(1, Relaxed);
            let caller_account = match &identity {
                Identity::Issued(c) => c.account.clone(),
                _ => account.clone(),
            };
            let body = format!(
                "<GetCallerIdentityResponse xmlns=\"{NS}\">\n  <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
                xml_escape(&caller_arn),
                xml_escape(&caller_id),
                xml_escape(&caller_account),
                server.request_id()
            );
            server.reply(StatusCode::OK, "text/xml", body)
        }
        "AssumeRole" => {
            server.stats.assume_role.fetch_add(1, Relaxed);
            assume_role(server, &form, &caller_arn, trace)
        }
        _ => error(
            server,
            Fault::StsInvalidAction,
            Some(&format!(
                "Could not find operation {action} for version 2011-06-15"
            )),
            trace,
        ),
    }
}

fn assume_role(
    server: &Server,
    form: &[(String, String)],
    caller_arn: &str,
    trace: &mut Trace,
) -> Reply {
    trace.role_arn = param(form, "RoleArn");
    trace.role_session_name = param(form, "RoleSessionName");
    trace.external_id = param(form, "ExternalId");
    let Some(role_arn) = param(form, "RoleArn") else {
        return validation(server, "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null".into(), trace);
    };
    let Some(session) = param(form, "RoleSessionName") else {
        return validation(server, "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null".into(), trace);
    };
    let session_ok = (2..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !session_ok {
        return validation(server, format!("1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"), trace);
    }
    // arn:aws:iam::ACCOUNT:role/[path/]NAME
    let fields: Vec<&str> = role_arn.splitn(6, ':').collect();
    let role_name = fields
        .get(5)
        .and_then(|r| r.strip_prefix("role/"))
        .and_then(|r| r.rsplit('/').next())
        .filter(|n| !n.is_empty());
    let (Some(role_name), true) = (
        role_name,
        fields.len() == 6 && fields[0] == "arn" && fields[2] == "iam",
    ) else {
        return validation(server, format!("{role_arn} is invalid"), trace);
    };
    let account = if fields[4].is_empty() {
        server.cfg.account_id.as_str()
    } else {
        fields[4]
    };
    let mut ttl = server.cfg.credential_ttl;
    if let Some(d) = param(form, "DurationSeconds") {
        match d.parse::<u64>() {
            Ok(secs) if (900..=43_200).contains(&secs) => ttl = ttl.min(Duration::from_secs(secs)),
            _ => {
                return validation(server, format!("1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"), trace);
            }
        }
    }
    if server.cfg.deny_assume_role {
        let msg = format!("User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}");
        return error(server, Fault::StsAccessDenied, Some(&msg), trace);
    }
    // ExternalId is accepted whatever its value (the emulator has no trust policies); it is
    // only recorded, above.
    let c = server
        .keyring
        .issue(account, role_name, &session, ttl, Origin::AssumeRole);
    let body = format!(
        "<AssumeRoleResponse xmlns=\"{NS}\">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n",
        xml_escape(&c.user_id),
        xml_escape(&c.arn),
        c.access_key_id,
        xml_escape(&c.secret_access_key),
        xml_escape(&c.session_token),
        rfc3339(c.expiration + server.cfg.clock_skew),
        server.request_id()
    );
    server.reply(StatusCode::OK, "text/xml", body)
}
