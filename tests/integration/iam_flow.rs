//! Credentials end to end: the SDK's own default chain (profile + AssumeRole, EC2 instance
//! role via IMDSv2) against the emulator in assumed-role-only mode, and the errors a client
//! gets for static, expired, badly signed or refused credentials.
//!
//! Every test that lets the SDK read the environment holds an `EnvGuard` for its whole run.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use bedrock_batch::emulator::{
    answer, Emulator, EmulatorConfig, IssuedCredentials, Origin, STATIC_ACCESS_KEY_ID,
    STATIC_SECRET_ACCESS_KEY,
};

use crate::util::{
    bedrock_client, converse, raw_http, static_credentials, sts_client, EnvGuard, HAIKU,
};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/BedrockExecutionRole";

fn assumed_only() -> EmulatorConfig {
    EmulatorConfig {
        require_assumed_role: true,
        ..EmulatorConfig::default()
    }
}

fn as_credentials(c: &IssuedCredentials) -> Credentials {
    Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        Some(c.session_token.clone()),
        None,
        "issued",
    )
}

#[tokio::test]
async fn profile_assume_role_chain_signs_bedrock_with_the_issued_key() {
    let mut env = EnvGuard::new().await;
    let emu = Emulator::start(assumed_only()).await.unwrap();
    env.write_profiles(STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY);
    env.set("AWS_PROFILE", "bedrock-app-dev");
    env.set("AWS_ENDPOINT_URL_STS", emu.url());
    env.set("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emu.url());
    let conf = crate::util::env_sdk_config().await;
    let client = aws_sdk_bedrockruntime::Client::new(&conf);

    for i in 0..2 {
        let prompt = format!("through the profile {i}");
        let out = converse(&client, HAIKU, &prompt)
            .send()
            .await
            .expect("converse as the role");
        let text = out.output().unwrap().as_message().unwrap().content()[0]
            .as_text()
            .unwrap()
            .clone();
        assert_eq!(text, answer(&prompt));
    }

    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1, "credentials are cached: one AssumeRole");
    let role = &issued[0];
    assert_eq!(role.origin, Origin::AssumeRole);
    let recs = emu.requests();
    let assume: Vec<_> = recs
        .iter()
        .filter(|r| r.operation == "AssumeRole")
        .collect();
    assert_eq!(assume.len(), 1);
    assert_eq!(assume[0].access_key.as_deref(), Some(STATIC_ACCESS_KEY_ID));
    assert!(!assume[0].session_token);
    let bedrock: Vec<_> = recs.iter().filter(|r| r.service == "bedrock").collect();
    assert_eq!(bedrock.len(), 2);
    for r in bedrock {
        assert_eq!(r.status, 200);
        assert_eq!(r.access_key.as_deref(), Some(role.access_key_id.as_str()));
        assert!(r.access_key.as_deref().unwrap().starts_with("ASIA"));
        assert!(r.session_token);
    }

    let sts = aws_sdk_sts::Client::new(&conf);
    let me = sts.get_caller_identity().send().await.expect("whoami");
    assert_eq!(me.arn(), Some(role.arn.as_str()));
    assert!(role.arn.starts_with(
        "arn:aws:sts::123456789012:assumed-role/BedrockExecutionRole/assume-role-from-profile-"
    ));
    assert_eq!(me.account(), Some("123456789012"));
    let s = emu.stats();
    assert_eq!((s.assume_role, s.get_caller_identity), (1, 1));
    assert_eq!(s.errors_by_code.len(), 0, "{:?}", s.errors_by_code);
}

#[tokio::test]
async fn ec2_instance_role_via_imds_signs_bedrock() {
    let mut env = EnvGuard::new().await;
    let emu = Emulator::start(assumed_only()).await.unwrap();
    env.remove("AWS_EC2_METADATA_DISABLED");
    env.remove("AWS_CONFIG_FILE");
    env.remove("AWS_SHARED_CREDENTIALS_FILE");
    env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.url());
    env.set("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emu.url());
    let conf = crate::util::env_sdk_config().await;
    assert_eq!(
        conf.region().map(|r| r.as_ref()),
        Some("ap-northeast-2"),
        "region from IMDS"
    );
    let client = aws_sdk_bedrockruntime::Client::new(&conf);
    converse(&client, HAIKU, "on an instance")
        .send()
        .await
        .expect("converse as the instance role");

    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].origin, Origin::Imds);
    let recs = emu.requests();
    let ops: Vec<_> = recs
        .iter()
        .filter(|r| r.service == "imds")
        .map(|r| r.operation)
        .collect();
    for op in ["GetToken", "GetRegion", "ListRoles", "GetCredentials"] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    let call = recs.iter().find(|r| r.service == "bedrock").unwrap();
    assert_eq!(call.status, 200);
    assert_eq!(
        call.access_key.as_deref(),
        Some(issued[0].access_key_id.as_str())
    );
    assert!(call.session_token);
    let s = emu.stats();
    assert!(s.imds_credentials >= 1 && s.imds_tokens >= 1);
}

#[tokio::test]
async fn imds_requires_a_session_token_and_its_ttl_header() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let host = emu.addr();
    let raw = raw_http(host, &format!("GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")).await;
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    let raw = raw_http(host, &format!("PUT /latest/api/token HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")).await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    let raw = raw_http(host, &format!("PUT /latest/api/token HTTP/1.1\r\nHost: {host}\r\nx-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("x-aws-ec2-metadata-token-ttl-seconds: 60"),
        "{raw}"
    );
}

#[tokio::test]
async fn static_keys_are_unrecognized_in_assumed_role_only_mode() {
    let mut env = EnvGuard::new().await;
    let emu = Emulator::start(assumed_only()).await.unwrap();
    env.set("AWS_ACCESS_KEY_ID", STATIC_ACCESS_KEY_ID);
    env.set("AWS_SECRET_ACCESS_KEY", STATIC_SECRET_ACCESS_KEY);
    env.set("AWS_REGION", "ap-northeast-2");
    env.set("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emu.url());
    let conf = crate::util::env_sdk_config().await;
    let client = aws_sdk_bedrockruntime::Client::new(&conf);
    let err = converse(&client, HAIKU, "static")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is invalid.")
    );
    assert_eq!(emu.requests()[0].status, 403);
}

#[tokio::test]
async fn expired_issued_credentials_get_expired_token_errors() {
    let cfg = EmulatorConfig {
        credential_ttl: Duration::from_millis(800),
        ..assumed_only()
    };
    let emu = Emulator::start(cfg).await.unwrap();
    let sts = sts_client(&emu.url(), static_credentials());
    let out = sts
        .assume_role()
        .role_arn(ROLE_ARN)
        .role_session_name("short-lived")
        .duration_seconds(900)
        .send()
        .await
        .expect("assume role");
    let issued = &emu.issued_credentials()[0];
    assert_eq!(
        out.credentials().unwrap().access_key_id(),
        issued.access_key_id
    );

    let client = bedrock_client(&emu.url(), as_credentials(issued), RetryConfig::disabled());
    converse(&client, HAIKU, "still fresh")
        .send()
        .await
        .expect("valid before expiry");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let err = converse(&client, HAIKU, "too late")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ExpiredTokenException"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is expired")
    );

    let err = sts_client(&emu.url(), as_credentials(issued))
        .get_caller_identity()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ExpiredToken"));
}

#[tokio::test]
async fn bad_signatures_and_wrong_tokens_are_refused() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let forged = Credentials::new(STATIC_ACCESS_KEY_ID, "not-the-secret", None, None, "forged");
    let client = bedrock_client(&emu.url(), forged, RetryConfig::disabled());
    let err = converse(&client, HAIKU, "forged")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidSignatureException"));

    let role = sts_client(&emu.url(), static_credentials())
        .assume_role()
        .role_arn(ROLE_ARN)
        .role_session_name("s1")
        .send()
        .await
        .unwrap();
    let c = role.credentials().unwrap();
    let wrong_token = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some("bogus".into()),
        None,
        "t",
    );
    let client = bedrock_client(&emu.url(), wrong_token, RetryConfig::disabled());
    let err = converse(&client, HAIKU, "bogus token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));
}

#[tokio::test]
async fn caller_identity_and_role_chaining() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let sts = sts_client(&emu.url(), static_credentials());
    let me = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(
        me.arn(),
        Some("arn:aws:iam::123456789012:user/DeveloperUser")
    );

    sts.assume_role()
        .role_arn(ROLE_ARN)
        .role_session_name("first")
        .send()
        .await
        .unwrap();
    let first = emu.issued_credentials()[0].clone();
    let chained = sts_client(&emu.url(), as_credentials(&first));
    chained
        .assume_role()
        .role_arn("arn:aws:iam::210987654321:role/path/CrossAccountRole")
        .role_session_name("second")
        .send()
        .await
        .expect("an issued key may assume another role");
    let second = emu.issued_credentials()[1].clone();
    let me = sts_client(&emu.url(), as_credentials(&second))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::210987654321:assumed-role/CrossAccountRole/second")
    );
    assert_eq!(me.account(), Some("210987654321"));

    let err = sts
        .assume_role()
        .role_arn(ROLE_ARN)
        .role_session_name("x")
        .duration_seconds(60)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"));
}

#[tokio::test]
async fn denied_assume_role_fails_the_chain_before_any_bedrock_call() {
    let mut env = EnvGuard::new().await;
    let cfg = EmulatorConfig {
        deny_assume_role: true,
        ..assumed_only()
    };
    let emu = Emulator::start(cfg).await.unwrap();
    env.write_profiles(STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY);
    env.set("AWS_PROFILE", "bedrock-app-dev");
    env.set("AWS_ENDPOINT_URL_STS", emu.url());
    env.set("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emu.url());
    let conf = crate::util::env_sdk_config().await;
    let client = aws_sdk_bedrockruntime::Client::new(&conf);
    let err = converse(&client, HAIKU, "no role for you")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    let recs = emu.requests();
    assert!(
        recs.iter().all(|r| r.service == "sts"),
        "no Bedrock request was sent"
    );
    assert_eq!(recs[0].error_code, Some("AccessDenied"));
}
