//! `bedrock-batch whoami`: who the credentials a run would use belong to.
//!
//! Resolves credentials exactly as `run` does (`auth::connect`), then asks STS
//! `GetCallerIdentity`. Prints the account, the ARN, the role if it is an
//! assumed role, where the chain found the credentials, the region and where
//! it came from, and when the credentials expire. Never prints a key, secret
//! or token.

use aws_sdk_sts::error::ProvideErrorMetadata;
use serde::Serialize;

use crate::bedrock::auth::{self, AuthSettings};
use crate::cli::WhoamiArgs;
use crate::config::RoleSettings;

#[derive(Debug, Serialize)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
    /// Role name when the ARN is `…:assumed-role/ROLE/SESSION`.
    pub assumed_role: Option<String>,
    pub session: Option<String>,
    pub credential_source: String,
    pub region: String,
    pub region_source: String,
    /// RFC 3339, or `None` for long-term keys.
    pub expires: Option<String>,
}

pub async fn run(args: &WhoamiArgs) -> anyhow::Result<Identity> {
    let auth = AuthSettings {
        region: args.region.clone(),
        profile: args.profile.clone(),
        role: args.role_arn.clone().map(|role_arn| RoleSettings {
            role_arn,
            external_id: args.external_id.clone(),
            session_name: args.session_name.clone(),
        }),
    };
    let session = auth::connect(&auth).await?;
    let out = aws_sdk_sts::Client::new(&session.sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            let code = e.code().unwrap_or("").to_string();
            let why = match code.as_str() {
                "ExpiredToken" | "ExpiredTokenException" => " (the credentials have expired)",
                "InvalidClientTokenId" | "SignatureDoesNotMatch" => {
                    " (the access key is unknown or the secret is wrong)"
                }
                "AccessDenied" => {
                    " (likely cause: the role's trust policy does not list this user)"
                }
                _ => "",
            };
            let detail = match e.message() {
                Some(m) if !code.is_empty() => format!("{code}: {m}"),
                _ => crate::error::error_chain(&e),
            };
            anyhow::anyhow!("sts GetCallerIdentity failed: {detail}{why}")
        })?;
    let arn = out.arn().unwrap_or_default().to_string();
    let (assumed_role, session_name) = parse_assumed_role(&arn);
    Ok(Identity {
        account: out.account().unwrap_or_default().to_string(),
        user_id: out.user_id().unwrap_or_default().to_string(),
        arn,
        assumed_role,
        session: session_name,
        credential_source: session.source,
        region: session
            .sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        region_source: auth::region_source(&auth, "--region").await,
        expires: session.first.expiry().map(crate::time::rfc3339),
    })
}

impl Identity {
    pub fn render(&self) -> String {
        let role = match (&self.assumed_role, &self.session) {
            (Some(r), Some(s)) => format!("yes: role {r}, session {s}"),
            _ => "no (long-term credentials of a user or root)".into(),
        };
        let expires = match &self.expires {
            Some(t) => format!("{t} (refreshed automatically during a run)"),
            None => "never (long-term keys)".into(),
        };
        format!(
            "account:      {}\narn:          {}\nassumed role: {role}\ncredentials:  {}\nregion:       {} (from {})\nexpires:      {expires}\n",
            self.account, self.arn, self.credential_source, self.region, self.region_source
        )
    }
}

/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` → (ROLE, SESSION).
pub fn parse_assumed_role(arn: &str) -> (Option<String>, Option<String>) {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or("");
    let mut parts = resource.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("assumed-role"), Some(role), Some(session)) => {
            (Some(role.to_string()), Some(session.to_string()))
        }
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_arns_are_split() {
        assert_eq!(
            parse_assumed_role("arn:aws:sts::123456789012:assumed-role/BedrockExecutionRole/s-1"),
            (Some("BedrockExecutionRole".into()), Some("s-1".into()))
        );
        assert_eq!(
            parse_assumed_role("arn:aws:iam::123456789012:user/DeveloperUser"),
            (None, None)
        );
    }
}
