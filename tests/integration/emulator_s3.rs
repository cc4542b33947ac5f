//! The emulator's S3 through the real `aws-sdk-s3` client: the assumed-role chain signs,
//! `s3s` verifies, objects land in the backing directory (and the other way round), and
//! credentials the emulator did not issue, or issued without their token, are refused.

use aws_credential_types::Credentials;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bedrock_batch::emulator::{
    Emulator, EmulatorConfig, STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY,
};

use crate::util::{s3_client, static_credentials, EnvGuard};

/// Deterministic, incompressible-looking bytes, so a part boundary mistake shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(13);
    (0..len).map(|_| rng.u8(..)).collect()
}

#[tokio::test]
async fn assumed_role_creates_a_bucket_and_multipart_uploads_lists_and_gets() {
    let mut env = EnvGuard::new().await;
    let emu = Emulator::start(EmulatorConfig {
        require_assumed_role: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    env.write_profiles(STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY);
    env.set("AWS_PROFILE", "bedrock-app-dev");
    env.set("AWS_ENDPOINT_URL_STS", emu.url());
    env.set("AWS_ENDPOINT_URL_S3", emu.url());
    let conf = crate::util::env_sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );

    s3.create_bucket()
        .bucket("nightly-evals")
        .send()
        .await
        .expect("create bucket");

    // Two parts: S3's 5 MiB minimum for every part but the last, then a short last part.
    let body = pattern(5 * 1024 * 1024 + 300_000);
    let (first, last) = body.split_at(5 * 1024 * 1024);
    let key = "in/2026-11-30/prompts.jsonl";
    let up = s3
        .create_multipart_upload()
        .bucket("nightly-evals")
        .key(key)
        .send()
        .await
        .expect("create multipart upload");
    let upload_id = up.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (n, chunk) in [(1, first), (2, last)] {
        let p = s3
            .upload_part()
            .bucket("nightly-evals")
            .key(key)
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload part {n}: {e:?}"));
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(p.e_tag().map(str::to_owned))
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket("nightly-evals")
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete multipart upload");
    assert!(done.e_tag().is_some());

    emu.s3()
        .put("nightly-evals", "in/seeded.csv", b"id,prompt\n1,hi\n")
        .unwrap();
    let listed = s3
        .list_objects_v2()
        .bucket("nightly-evals")
        .prefix("in/")
        .send()
        .await
        .expect("list");
    let keys: Vec<(&str, i64)> = listed
        .contents()
        .iter()
        .map(|o| (o.key().unwrap(), o.size().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [(key, body.len() as i64), ("in/seeded.csv", 15)],
        "both the uploaded and the directly seeded object are listed"
    );

    let got = s3
        .get_object()
        .bucket("nightly-evals")
        .key(key)
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_length(), Some(body.len() as i64));
    let bytes = got.body.collect().await.expect("read body").into_bytes();
    assert!(
        bytes.as_ref() == body.as_slice(),
        "GetObject returns the bytes uploaded"
    );
    assert!(
        emu.s3().get("nightly-evals", key).unwrap().unwrap() == body,
        "the store sees the multipart upload"
    );
    let seeded = s3
        .get_object()
        .bucket("nightly-evals")
        .key("in/seeded.csv")
        .send()
        .await
        .expect("get seeded");
    let seeded = seeded.body.collect().await.unwrap().into_bytes();
    assert_eq!(seeded.as_ref(), b"id,prompt\n1,hi\n");

    // Every S3 call was signed by the role's issued key, with its session token.
    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1);
    let recs = emu.requests();
    let s3_recs: Vec<_> = recs.iter().filter(|r| r.service == "s3").collect();
    let ops: Vec<&str> = s3_recs.iter().map(|r| r.operation).collect();
    assert_eq!(
        ops,
        [
            "CreateBucket",
            "CreateMultipartUpload",
            "UploadPart",
            "UploadPart",
            "CompleteMultipartUpload",
            "ListObjectsV2",
            "GetObject",
            "GetObject"
        ]
    );
    for r in s3_recs {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.access_key.as_deref(),
            Some(issued[0].access_key_id.as_str())
        );
        assert!(r.session_token);
    }
}

#[tokio::test]
async fn credentials_the_emulator_cannot_vouch_for_are_refused() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.s3().create_bucket("bkt").unwrap();
    emu.s3().put("bkt", "k", b"secret data").unwrap();

    // The static key signs correctly: allowed in the default (not assumed-only) mode.
    let ok = s3_client(&emu.url(), static_credentials());
    let got = ok
        .get_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"secret data"
    );

    // The right key with a wrong secret: the signature does not match.
    let wrong_secret = Credentials::new(STATIC_ACCESS_KEY_ID, "not-the-secret", None, None, "t");
    let e = s3_client(&emu.url(), wrong_secret)
        .get_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .expect_err("bad signature");
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e:?}");

    // A key the emulator never issued.
    let unknown = Credentials::new("AKIANEVERISSUED00000", "x", None, None, "t");
    let e = s3_client(&emu.url(), unknown)
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(e.code(), Some("InvalidAccessKeyId"), "{e:?}");

    // Issued credentials presented with another session token.
    let sts = crate::util::sts_client(&emu.url(), static_credentials());
    let role = sts
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/BedrockExecutionRole")
        .role_session_name("s3-test")
        .send()
        .await
        .expect("assume role");
    let c = role.credentials().unwrap();
    let forged = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some("IQoJb3JpZ2luX2VjEforged".into()),
        None,
        "t",
    );
    let e = s3_client(&emu.url(), forged)
        .get_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .expect_err("wrong token");
    assert_eq!(e.code(), Some("InvalidToken"), "{e:?}");
    let genuine = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "t",
    );
    s3_client(&emu.url(), genuine)
        .head_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .expect("the genuine token works");

    // A missing object and bucket are S3's own errors.
    let e = ok
        .get_object()
        .bucket("bkt")
        .key("missing")
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(e.code(), Some("NoSuchKey"), "{e:?}");
    let e = ok
        .list_objects_v2()
        .bucket("nobucket")
        .send()
        .await
        .expect_err("no such bucket");
    assert_eq!(e.code(), Some("NoSuchBucket"), "{e:?}");
}

#[tokio::test]
async fn static_keys_are_refused_when_only_assumed_roles_may_call() {
    let emu = Emulator::start(EmulatorConfig {
        require_assumed_role: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emu.s3().create_bucket("bkt").unwrap();
    let e = s3_client(&emu.url(), static_credentials())
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .expect_err("static key in assumed-only mode");
    assert_eq!(e.code(), Some("InvalidToken"), "{e:?}");
}
