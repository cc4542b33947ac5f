//! `whoami` and `policy` through the real binary: who a run would be (profile, environment
//! keys, EC2 instance role, `--role-arn`), each way it can't be (exit 2, one line), and the
//! IAM documents `policy` prints, compared with the library functions that build them.

use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

use bedrock_batch::commands::policy::{invoke_policy, trust_policy};
use bedrock_batch::emulator::{
    Emulator, EmulatorConfig, IssuedCredentials, Origin, STATIC_ACCESS_KEY_ID,
};
use bedrock_batch::time::rfc3339;
use serde_json::Value;

use crate::cli_util::{show, Workspace, BIN, MODEL};

const APAC: &str = "apac.anthropic.claude-3-5-sonnet-20240620-v1:0";
const GUIDE_ROLE: &str = "arn:aws:iam::123456789012:role/BedrockExecutionRole";
const DEVELOPER: &str = "arn:aws:iam::123456789012:user/DeveloperUser";

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

fn whoami(mut cmd: Command, args: &[&str]) -> Output {
    cmd.arg("whoami")
        .args(args)
        .output()
        .expect("run the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(o)))
}

/// The expiry as STS wrote it (whole seconds) and `whoami` prints it.
fn expiry(c: &IssuedCredentials) -> String {
    let secs = c.expiration.duration_since(UNIX_EPOCH).unwrap().as_secs();
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

/// A setup error: exit 2, nothing on stdout, one `error: ` line on stderr.
fn setup_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "{}", show(o));
    assert!(o.stdout.is_empty(), "{}", show(o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_through_the_guide_s_profile_names_the_assumed_role() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write_profiles();
    let mut cmd = ws.command();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env("AWS_PROFILE", "bedrock-app-dev");
    let out = whoami(cmd, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1, "one AssumeRole, checked and used");
    let role = &issued[0];
    let session = role.arn.rsplit('/').next().unwrap();
    assert!(
        session.starts_with("assume-role-from-profile-"),
        "{session}"
    );
    assert_eq!(
        stdout(&out),
        format!(
            "account:      123456789012\n\
             arn:          arn:aws:sts::123456789012:assumed-role/BedrockExecutionRole/{session}\n\
             assumed role: yes: role BedrockExecutionRole, session {session}\n\
             credentials:  profile with role_arn (AssumeRole), profile `bedrock-app-dev`\n\
             region:       ap-northeast-2 (from profile `bedrock-app-dev`)\n\
             expires:      {} (refreshed automatically during a run)\n",
            expiry(role)
        )
    );
    let records = emu.requests();
    let ops: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| (r.operation, r.access_key.as_deref()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("AssumeRole", Some(STATIC_ACCESS_KEY_ID)),
            ("GetCallerIdentity", Some(role.access_key_id.as_str())),
        ]
    );
    assert_eq!(records[0].role_arn.as_deref(), Some(GUIDE_ROLE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_json_with_environment_keys_is_the_developer_user() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    let out = whoami(ws.command(), &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        json(&out),
        serde_json::json!({
            "account": "123456789012",
            "arn": DEVELOPER,
            "user_id": "AIDAEMULATORDEVUSER01",
            "assumed_role": null,
            "session": null,
            "credential_source": "environment variables (AWS_ACCESS_KEY_ID)",
            "region": "ap-northeast-2",
            "region_source": "AWS_REGION",
            "expires": null,
        })
    );
    // --region wins over AWS_REGION, and says so.
    let out = whoami(ws.command(), &["--json", "--region", "us-east-1"]);
    let v = json(&out);
    assert_eq!(
        (v["region"].as_str(), v["region_source"].as_str()),
        (Some("us-east-1"), Some("--region"))
    );
    assert_eq!(emu.stats().get_caller_identity, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_on_ec2_uses_the_instance_role_and_region_from_imds() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    let instance = || {
        let mut c = ws.command();
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_REGION")
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &ws.url);
        c
    };
    let out = whoami(instance(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let issued = emu.issued_credentials();
    assert_eq!(issued[0].origin, Origin::Imds);
    let text = stdout(&out);
    for line in [
        "arn:          arn:aws:sts::123456789012:assumed-role/BedrockExecutionRole/i-0e1a2b3c4d5e6f708\n",
        "assumed role: yes: role BedrockExecutionRole, session i-0e1a2b3c4d5e6f708\n",
        "credentials:  EC2 instance metadata (IMDSv2, instance role)\n",
        "region:       ap-northeast-2 (from EC2 instance metadata (IMDS))\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(
        text.contains(&format!("expires:      {} (", expiry(&issued[0]))),
        "{text}"
    );
    let v = json(&whoami(instance(), &["--json"]));
    assert_eq!(v["assumed_role"], "BedrockExecutionRole");
    assert_eq!(
        v["credential_source"],
        "EC2 instance metadata (IMDSv2, instance role)"
    );
    assert_eq!(v["expires"], expiry(&issued[0]));
    assert_eq!(emu.stats().assume_role, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_role_arn_is_the_role_a_run_would_assume() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    let role = "arn:aws:iam::210987654321:role/jobs/BatchRole";
    let out = whoami(
        ws.command(),
        &[
            "--json",
            "--role-arn",
            role,
            "--external-id",
            "ext-42",
            "--session-name",
            "check-1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1);
    let v = json(&out);
    assert_eq!(v["account"], "210987654321");
    assert_eq!(
        v["arn"],
        "arn:aws:sts::210987654321:assumed-role/BatchRole/check-1"
    );
    assert_eq!(v["assumed_role"], "BatchRole");
    assert_eq!(v["session"], "check-1");
    assert_eq!(
        v["credential_source"],
        "--role-arn AssumeRole on top of: environment variables (AWS_ACCESS_KEY_ID)"
    );
    assert_eq!(v["expires"], expiry(&issued[0]));
    let records = emu.requests();
    let assume = records
        .iter()
        .find(|r| r.operation == "AssumeRole")
        .unwrap();
    assert_eq!(assume.role_arn.as_deref(), Some(role));
    assert_eq!(assume.external_id.as_deref(), Some("ext-42"));
    assert_eq!(assume.role_session_name.as_deref(), Some("check-1"));
    assert_eq!(assume.access_key.as_deref(), Some(STATIC_ACCESS_KEY_ID));
    let me = records
        .iter()
        .find(|r| r.operation == "GetCallerIdentity")
        .unwrap();
    assert_eq!(
        me.access_key.as_deref(),
        Some(issued[0].access_key_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_exits_2_with_one_line_when_it_cannot_say_who() {
    // The trust policy does not list the developer: STS refuses AssumeRole.
    let emu = emulator(EmulatorConfig {
        deny_assume_role: true,
        ..EmulatorConfig::default()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write_profiles();
    for json_flag in [&[][..], &["--json"]] {
        let mut cmd = ws.command();
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_PROFILE", "bedrock-app-dev");
        let err = setup_error(&whoami(cmd, json_flag));
        assert_eq!(
            err.trim_end(),
            format!(
                "error: no usable credentials: sts AssumeRole refused (AccessDenied): User: {DEVELOPER} \
                 is not authorized to perform: sts:AssumeRole on resource: {GUIDE_ROLE} (likely cause: \
                 the role's trust policy does not list this user, or the user may not call sts:AssumeRole)"
            )
        );
    }
    // --role-arn refused the same way.
    let err = setup_error(&whoami(
        ws.command(),
        &["--role-arn", "arn:aws:iam::123456789012:role/Other"],
    ));
    assert!(
        err.contains("(AccessDenied)") && err.contains("trust policy"),
        "{err}"
    );
    assert_eq!(emu.stats().get_caller_identity, 0);

    // No credentials anywhere: no keys, no ~/.aws, IMDS disabled.
    std::fs::create_dir_all(ws.path("empty-home")).unwrap();
    let bare = || {
        let mut c = ws.command();
        c.env("HOME", ws.path("empty-home"))
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE");
        c
    };
    let mut cmd = bare();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let err = setup_error(&whoami(cmd, &[]));
    assert!(
        err.starts_with("error: no usable credentials: ")
            && err.contains("no credentials found in chain")
            && err.contains("set AWS_PROFILE, pass --profile"),
        "{err}"
    );

    // No region anywhere.
    let mut cmd = bare();
    cmd.env_remove("AWS_REGION");
    let err = setup_error(&whoami(cmd, &["--json"]));
    assert!(err.starts_with("error: no region: "), "{err}");
    assert_eq!(emu.stats().get_caller_identity, 0);
}

/// A profile name that is not in the files is named as the mistake, with the profiles that
/// are there, by `whoami`, `run` and `policy` alike, before anything is sent (not "no
/// region", nor an IMDS failure once a region is given).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_profile_is_named_with_the_profiles_that_exist() {
    let emu = emulator(EmulatorConfig::default()).await;
    let ws = Workspace::new(&emu.url());
    ws.write_profiles();
    let want = "error: profile \"bedrock-app-prod\" not found in ~/.aws/config or ~/.aws/credentials (profiles there: default, bedrock-app-dev)\n";
    let with_profile = |region: bool| {
        let mut c = ws.command();
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_PROFILE", "bedrock-app-prod");
        if !region {
            c.env_remove("AWS_REGION");
        }
        c
    };
    for region in [false, true] {
        let err = setup_error(&whoami(with_profile(region), &[]));
        assert_eq!(err, want, "region set: {region}");
    }
    let mut cmd = ws.command();
    cmd.args(["whoami", "--profile", "bedrock-app-prod"]);
    assert_eq!(setup_error(&cmd.output().unwrap()), want, "--profile");

    ws.write("p.csv", "id,prompt\n1,hi\n");
    let mut cmd = with_profile(true);
    ws.add_run(&mut cmd, &["--model", MODEL, "--input", "p.csv"]);
    assert_eq!(setup_error(&cmd.output().unwrap()), want, "run");

    let mut cmd = with_profile(true);
    cmd.args(["policy", "--model", MODEL, "--region", "ap-northeast-2"]);
    assert_eq!(setup_error(&cmd.output().unwrap()), want, "policy");

    assert_eq!(emu.requests().len(), 0, "nothing was sent");
    // The profile that does exist still works.
    let mut cmd = with_profile(true);
    cmd.env("AWS_PROFILE", "bedrock-app-dev");
    assert_eq!(whoami(cmd, &[]).status.code(), Some(0));
}

/// `policy` in an empty directory (no ./config.toml), with a cleared environment.
fn policy(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .env_clear()
        .current_dir(dir.path())
        .arg("policy")
        .args(args)
        .output()
        .expect("run the binary")
}

fn policy_json(args: &[&str]) -> Value {
    let out = policy(args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(out.stderr.is_empty(), "{}", show(&out));
    json(&out)
}

#[test]
fn policy_for_the_shipped_config_covers_its_model_and_the_per_row_models() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let out = policy(&["--config", config]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // The models taken from rows are said on stderr; stdout stays the document.
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("policy: also covering 1 model(s) named in the inputs' `model` column: {APAC}\n")
    );
    let printed = json(&out);
    // config.toml's model, and the `apac.` profile that samples/conversations.jsonl's row
    // c005 asks for: without it that row would fail with AccessDenied.
    let want = invoke_policy(&[MODEL.into(), APAC.into()], "ap-northeast-2", None).unwrap();
    assert_eq!(printed, want);
    let text = printed.to_string();
    assert!(text.contains(&format!(
        "arn:aws:bedrock:ap-northeast-2::foundation-model/{MODEL}"
    )));
    assert!(text.contains(&format!(
        "arn:aws:bedrock:ap-northeast-2:*:inference-profile/{APAC}"
    )));
    // --region overrides the config's region.
    let printed = json(&policy(&["--config", config, "--region", "ap-northeast-1"]));
    let want = invoke_policy(&[MODEL.into(), APAC.into()], "ap-northeast-1", None).unwrap();
    assert_eq!(printed, want);
}

#[test]
fn policy_for_named_models_and_the_trust_policy_match_the_library() {
    let printed = policy_json(&[
        "--model",
        APAC,
        "--region",
        "ap-northeast-2",
        "--account",
        "123456789012",
    ]);
    let want = invoke_policy(&[APAC.into()], "ap-northeast-2", Some("123456789012")).unwrap();
    assert_eq!(printed, want);
    assert_eq!(printed["Statement"][1]["Sid"], "BedrockBatchViaGeoProfile");

    let printed = policy_json(&[
        "--model",
        MODEL,
        "--model",
        APAC,
        "--region",
        "ap-northeast-2",
    ]);
    let want = invoke_policy(&[MODEL.into(), APAC.into()], "ap-northeast-2", None).unwrap();
    assert_eq!(printed, want);

    let printed = policy_json(&["--trust", "--user-arn", DEVELOPER]);
    assert_eq!(printed, trust_policy(&[DEVELOPER.into()]).unwrap());
    assert_eq!(
        printed["Statement"][0]["Principal"]["Service"],
        "ec2.amazonaws.com"
    );
    assert_eq!(printed["Statement"][1]["Principal"]["AWS"], DEVELOPER);

    // Refusals are setup errors on one line.
    let err = setup_error(&policy(&["--model", MODEL]));
    assert!(err.contains("no region"), "{err}");
    let err = setup_error(&policy(&["--model", MODEL, "--region", "seoul"]));
    assert!(err.starts_with("error: policy: "), "{err}");
    let err = setup_error(&policy(&["--trust", "--user-arn", "DeveloperUser"]));
    assert!(err.starts_with("error: policy: "), "{err}");
    // --trust alone names the flag it needs.
    let err = setup_error(&policy(&["--trust"]));
    assert!(
        err.starts_with(
            "error: policy --trust: no --user-arn given: pass --user-arn arn:aws:iam::"
        ),
        "{err}"
    );
}

#[test]
fn the_iam_guides_show_what_policy_really_prints() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let outputs = [
        policy(&["--model", MODEL, "--region", "ap-northeast-2"]),
        policy(&["--config", config, "--account", "123456789012"]),
        policy(&[
            "--model",
            APAC,
            "--region",
            "ap-northeast-2",
            "--account",
            "123456789012",
        ]),
        policy(&["--trust", "--user-arn", DEVELOPER]),
    ];
    for guide in ["docs/iam-setup.md", "docs/iam-setup.ko.md"] {
        let path = format!("{}/{guide}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        for out in &outputs {
            assert_eq!(out.status.code(), Some(0), "{}", show(out));
            let block = format!("```json\n{}```", stdout(out));
            assert!(
                text.contains(&block),
                "{guide} lacks the current output:\n{block}"
            );
        }
    }
}

/// A config `run` would refuse is refused by `policy --config` too: a policy
/// printed without the rows' models would let those rows fail AccessDenied.
#[test]
fn policy_refuses_a_config_that_run_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.csv"), "id,prompt,model\n1,hi,apac.x\n").unwrap();
    let cfg = dir.path().join("job.toml");
    std::fs::write(
        &cfg,
        format!(
            "region = \"ap-northeast-2\"\nmodel = \"{MODEL}\"\ninputs = [\"p.csv\"]\noutput_dir = \"o\"\nconcurrency = 0\n"
        ),
    )
    .unwrap();
    let out = policy(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("job.toml: `concurrency`: must be between 1 and 4096, got 0"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no policy printed: {}", show(&out));
}
