//! Credentials during `run`, through the real binary against the emulator: the guide's
//! profile, `--role-arn`, the EC2 instance role, credentials that expire mid-run (short
//! lifetimes, a client clock running behind, a forced ExpiredToken), Bedrock refusing a
//! model, and no secret ever reaching a log line or an output file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bedrock_batch::emulator::{
    answer, Emulator, EmulatorConfig, Origin, RequestRecord, STATIC_ACCESS_KEY_ID,
    STATIC_SECRET_ACCESS_KEY,
};

use crate::cli_util::{csv_rows, show, stderr, Workspace, MODEL};

const APAC: &str = "apac.anthropic.claude-3-5-sonnet-20240620-v1:0";

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// Only credentials the emulator issued (AssumeRole, IMDS) may call Bedrock.
fn assumed_only() -> EmulatorConfig {
    EmulatorConfig {
        require_assumed_role: true,
        ..EmulatorConfig::default()
    }
}

/// The guide's setup: `AWS_PROFILE=bedrock-app-dev` (role_arn + source_profile = default),
/// no keys or region in the environment.
fn profile_command(ws: &Workspace) -> Command {
    ws.write_profiles();
    let mut c = ws.command();
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env("AWS_PROFILE", "bedrock-app-dev");
    c
}

/// An EC2 instance: no profile files, no keys, no region; IMDS at the emulator.
fn instance_command(ws: &Workspace) -> Command {
    let mut c = ws.command();
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &ws.url);
    c
}

/// `run` with `cmd`'s environment: no config file, output in the workspace's `out`.
fn run(ws: &Workspace, mut cmd: Command, args: &[&str]) -> Output {
    ws.add_run(&mut cmd, &[&["--no-progress"], args].concat())
        .output()
        .expect("run the binary")
}

fn bedrock(records: &[RequestRecord]) -> Vec<&RequestRecord> {
    records.iter().filter(|r| r.service == "bedrock").collect()
}

fn assume_roles(records: &[RequestRecord]) -> Vec<&RequestRecord> {
    records
        .iter()
        .filter(|r| r.operation == "AssumeRole")
        .collect()
}

/// Each prompt's Bedrock attempts in arrival order, as (access key, status).
fn attempts_by_prompt(records: &[RequestRecord]) -> BTreeMap<String, Vec<(String, u16)>> {
    let mut by: BTreeMap<String, Vec<(String, u16)>> = BTreeMap::new();
    for r in bedrock(records) {
        by.entry(r.prompt.clone().unwrap_or_default())
            .or_default()
            .push((r.access_key.clone().unwrap_or_default(), r.status));
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_arn_assumes_that_role_with_external_id_and_session_name_and_renews_it() {
    // 3 s credentials and a ~9 s run: the explicit role is assumed again several times.
    let emu = emulator(EmulatorConfig {
        credential_ttl: Duration::from_secs(3),
        ..assumed_only()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(36));
    let role = "arn:aws:iam::123456789012:role/BatchRole";
    let out = ws.run(&[
        "--model",
        MODEL,
        "--input",
        "p.csv",
        "--rpm",
        "240",
        "--max-tokens",
        "20",
        "--role-arn",
        role,
        "--external-id",
        "ext-42",
        "--session-name",
        "nightly-7",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.results().len(), 36);
    assert!(
        stderr(&out).contains(
            "credentials: --role-arn AssumeRole on top of: environment variables (AWS_ACCESS_KEY_ID)"
        ),
        "{}",
        show(&out)
    );

    let records = emu.requests();
    let assumed = assume_roles(&records);
    assert!(
        (3..=12).contains(&assumed.len()),
        "renewed several times, not per request: {} AssumeRole calls",
        assumed.len()
    );
    for a in &assumed {
        assert_eq!(a.status, 200);
        assert_eq!(a.role_arn.as_deref(), Some(role));
        assert_eq!(a.role_session_name.as_deref(), Some("nightly-7"));
        assert_eq!(a.external_id.as_deref(), Some("ext-42"));
        // The base credentials are the environment's static keys.
        assert_eq!(a.access_key.as_deref(), Some(STATIC_ACCESS_KEY_ID));
    }
    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), assumed.len());
    let issued_keys: BTreeSet<&str> = issued.iter().map(|c| c.access_key_id.as_str()).collect();
    for c in &issued {
        assert_eq!(c.origin, Origin::AssumeRole);
        assert_eq!(
            c.arn,
            "arn:aws:sts::123456789012:assumed-role/BatchRole/nightly-7"
        );
    }
    let calls = bedrock(&records);
    assert_eq!(calls.len(), 36, "no attempt was refused");
    let used: BTreeSet<&str> = calls
        .iter()
        .map(|r| r.access_key.as_deref().unwrap_or(""))
        .collect();
    assert!(used.is_subset(&issued_keys), "{used:?}");
    assert!(used.len() >= 3, "signed with the renewed keys: {used:?}");
    assert!(calls.iter().all(|r| r.status == 200 && r.session_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_outlives_many_credential_lifetimes_without_a_failed_row() {
    // 4 s credentials, ~24 s of work (96 rows at 4 a second): six lifetimes and more.
    let emu = emulator(EmulatorConfig {
        credential_ttl: Duration::from_secs(4),
        latency_ms: 100,
        ..assumed_only()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(96));
    let started = std::time::Instant::now();
    let out = run(
        &ws,
        profile_command(&ws),
        &[
            "--model",
            MODEL,
            "--input",
            "p.csv",
            "--rpm",
            "240",
            "--concurrency",
            "4",
            "--max-tokens",
            "20",
        ],
    );
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        secs > 16.0,
        "the run must outlast several lifetimes: {secs:.1}s"
    );
    assert_eq!(ws.results().len(), 96);
    assert!(ws.failures().is_empty(), "{:?}", ws.failures());
    assert_eq!(ws.summary()["failed"], 0);

    let records = emu.requests();
    let stats = emu.stats();
    // Renewed ahead of expiry, about every 3 s: several AssumeRole calls, and not one per
    // request (the SDK's own cache, renewing 5-10 s ahead, reloads on every request here).
    assert!(
        (5..=30).contains(&stats.assume_role),
        "{} AssumeRole calls for 96 requests over {secs:.1}s",
        stats.assume_role
    );
    let keys: BTreeSet<String> = bedrock(&records)
        .iter()
        .filter_map(|r| r.access_key.clone())
        .collect();
    eprintln!(
        "96 rows in {secs:.1}s: {} AssumeRole, {} distinct keys",
        stats.assume_role,
        keys.len()
    );
    assert!(keys.len() >= 5, "{} distinct keys", keys.len());
    let expired = stats
        .errors_by_code
        .get("ExpiredTokenException")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        expired, 0,
        "renewal ahead of expiry means Bedrock never saw an expired key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_from_bedrock_drops_the_cached_credentials_even_when_the_clock_lags() {
    // The client's clock runs 10 minutes behind: credentials that die after 4 s look good
    // for 10 minutes. Only Bedrock's ExpiredToken can tell the run to renew them.
    let emu = emulator(EmulatorConfig {
        credential_ttl: Duration::from_secs(4),
        clock_skew: Duration::from_secs(600),
        latency_ms: 50,
        ..assumed_only()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(48));
    let out = run(
        &ws,
        profile_command(&ws),
        &[
            "--model",
            MODEL,
            "--input",
            "p.csv",
            "--rpm",
            "240",
            "--concurrency",
            "4",
            "--max-tokens",
            "20",
            "--max-attempts",
            "4",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.results().len(), 48);
    assert!(ws.failures().is_empty(), "{:?}", ws.failures());

    let stats = emu.stats();
    let expired = stats.errors_by_code["ExpiredTokenException"];
    eprintln!(
        "48 rows: {expired} ExpiredToken refusals, {} AssumeRole, {} retries",
        stats.assume_role,
        ws.summary()["this_run"]["retries"]
    );
    assert!(expired >= 2, "the lifetime ran out mid-run: {expired}");
    // One renewal per wave of refusals at most (plus the start), not one per refused row.
    assert!(
        (2..=expired + 1).contains(&stats.assume_role),
        "{} AssumeRole calls for {expired} refusals",
        stats.assume_role
    );
    // Every refused attempt was retried with a different key, which then worked.
    for (prompt, tries) in attempts_by_prompt(&emu.requests()) {
        for pair in tries.windows(2) {
            if pair[0].1 == 403 {
                assert_ne!(
                    pair[0].0, pair[1].0,
                    "{prompt}: retried with the refused key"
                );
            }
        }
        assert_eq!(tries.last().unwrap().1, 200, "{prompt}: {tries:?}");
    }
    assert!(
        stderr(&out).contains("Bedrock says the credentials expired"),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_expired_token_is_retried_with_new_credentials() {
    let emu = emulator(assumed_only()).await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "p.csv",
        "id,prompt\nok1,first question\nexp,expiring [[emu:expired*1]] question\nok2,second question\n",
    );
    let out = run(
        &ws,
        profile_command(&ws),
        &["--model", MODEL, "--input", "p.csv", "--concurrency", "1"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let results = ws.results();
    let row = |id: &str| results.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row("exp")["attempts"], 2);
    assert_eq!(
        row("exp")["output"],
        answer("expiring [[emu:expired*1]] question")
    );
    assert_eq!(row("ok1")["attempts"], 1);

    let records = emu.requests();
    let tries = &attempts_by_prompt(&records)["expiring [[emu:expired*1]] question"];
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(tries[0].1, 403);
    assert_eq!(tries[1].1, 200);
    assert_ne!(
        tries[0].0, tries[1].0,
        "the retry must not sign with the credentials Bedrock just refused"
    );
    // One AssumeRole at start, one after the refusal.
    assert_eq!(assume_roles(&records).len(), 2);
    let issued = emu.issued_credentials();
    assert_eq!(tries[1].0, issued[1].access_key_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ec2_instance_role_runs_the_job_through_imds() {
    let emu = emulator(assumed_only()).await;
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(5));
    let out = run(
        &ws,
        instance_command(&ws),
        &["--model", MODEL, "--input", "p.csv"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(ws.results().len(), 5);
    assert!(
        stderr(&out).contains(
            "credentials: EC2 instance metadata (IMDSv2, instance role); region ap-northeast-2"
        ),
        "{}",
        show(&out)
    );
    let issued = emu.issued_credentials();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].origin, Origin::Imds);
    let records = emu.requests();
    let calls = bedrock(&records);
    assert_eq!(calls.len(), 5);
    assert!(calls.iter().all(|r| r.status == 200
        && r.access_key.as_deref() == Some(issued[0].access_key_id.as_str())
        && r.session_token));
    let imds: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.service == "imds")
        .map(|r| r.operation)
        .collect();
    for op in ["GetToken", "GetRegion", "GetCredentials"] {
        assert!(imds.contains(op), "{op} in {imds:?}");
    }
    assert_eq!(emu.stats().assume_role, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_policy_does_not_cover_fails_its_rows_once_with_a_hint() {
    let emu = emulator(EmulatorConfig {
        denied_models: vec!["apac.".into()],
        ..assumed_only()
    })
    .await;
    let ws = Workspace::new(&emu.url());
    ws.write(
        "p.csv",
        format!("id,prompt,model\na1,one,\na2,two,{APAC}\na3,three,\na4,four,{APAC}\n"),
    );
    let out = run(
        &ws,
        profile_command(&ws),
        &["--model", MODEL, "--input", "p.csv"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let ok: BTreeSet<String> = ws
        .results()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ok, BTreeSet::from(["a1".into(), "a3".into()]));
    let failures = ws.failures();
    assert_eq!(failures.len(), 2);
    for f in &failures {
        assert!(f["id"] == "a2" || f["id"] == "a4", "{f}");
        assert_eq!(f["model"], APAC);
        assert_eq!(f["error"]["kind"], "access_denied");
        assert_eq!(f["error"]["code"], "AccessDeniedException");
        assert_eq!(f["attempts"], 1, "access denied is not retried");
        let msg = f["error"]["message"].as_str().unwrap();
        assert!(msg.contains("`bedrock-batch policy`"), "{msg}");
        // Bedrock names the caller: the role the profile assumed.
        assert!(
            msg.starts_with(
                "User: arn:aws:sts::123456789012:assumed-role/BedrockExecutionRole/assume-role-from-profile-"
            ),
            "{msg}"
        );
    }
    assert_eq!(ws.summary()["failed_by_kind"]["access_denied"], 2);
    let records = emu.requests();
    let denied: Vec<_> = bedrock(&records)
        .into_iter()
        .filter(|r| r.model.as_deref() == Some(APAC))
        .collect();
    assert_eq!(denied.len(), 2, "one request per denied row");
    assert!(denied.iter().all(|r| r.status == 403));
}

/// Every file under `dir`, recursively, as text.
fn files_under(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            out.push((p.display().to_string(), text));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_an_error_or_an_output_file() {
    let emu = emulator(EmulatorConfig {
        credential_ttl: Duration::from_secs(3),
        ..EmulatorConfig::default()
    })
    .await;
    let denying = emulator(EmulatorConfig {
        deny_assume_role: true,
        ..EmulatorConfig::default()
    })
    .await;
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, o: &Output| {
        seen.push((
            format!("{what}: stdout"),
            String::from_utf8_lossy(&o.stdout).into(),
        ));
        seen.push((
            format!("{what}: stderr"),
            String::from_utf8_lossy(&o.stderr).into(),
        ));
    };
    // A run through the profile at debug level, long enough to renew, with a refused key,
    // a failed row and a denied model.
    let ws = Workspace::new(&emu.url());
    let mut rows = csv_rows(12);
    rows.push_str("x1,expiring [[emu:expired*1]] row,\nx2,invalid [[emu:validation]] row,\n");
    ws.write("p.csv", rows);
    let mut cmd = profile_command(&ws);
    cmd.args(["--log", "debug"]);
    let out = run(
        &ws,
        cmd,
        &["--model", MODEL, "--input", "p.csv", "--rpm", "180"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    keep("run --log debug", &out);
    // `--role-arn` on top of the profile, at trace level.
    let ws2 = Workspace::new(&emu.url());
    ws2.write("p.csv", csv_rows(3));
    let mut cmd = profile_command(&ws2);
    cmd.args(["--log", "trace"]);
    let out = run(
        &ws2,
        cmd,
        &[
            "--model",
            MODEL,
            "--input",
            "p.csv",
            "--role-arn",
            "arn:aws:iam::123456789012:role/OtherRole",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    keep("run --role-arn --log trace", &out);
    // The instance role, at debug level.
    let ws3 = Workspace::new(&emu.url());
    ws3.write("p.csv", csv_rows(3));
    let mut cmd = instance_command(&ws3);
    cmd.args(["--log", "debug"]);
    let out = run(&ws3, cmd, &["--model", MODEL, "--input", "p.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    keep("run on EC2 --log debug", &out);
    // whoami, as text at debug level and as JSON.
    for args in [&["--log", "debug", "whoami"][..], &["whoami", "--json"]] {
        let out = profile_command(&ws).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        keep(&format!("{args:?}"), &out);
    }
    // A refused AssumeRole: the error message.
    let ws4 = Workspace::new(&denying.url());
    let out = profile_command(&ws4)
        .args(["--log", "debug", "whoami"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    keep("whoami refused", &out);
    for w in [&ws, &ws2, &ws3] {
        files_under(&w.out(), &mut seen);
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "results.jsonl",
        "failures.jsonl",
        "summary.json",
        "manifest",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "{want} in {names:?}"
        );
    }

    let mut secrets = emu.issued_secrets();
    secrets.extend(denying.issued_secrets());
    secrets.push(STATIC_SECRET_ACCESS_KEY.to_string());
    // At least seven sets were issued (the profile run's first and its replacement for the
    // refused key, --role-arn's two, IMDS, two whoamis), each a secret and a token, plus the
    // static secret three times: the search below has something to find if anything leaked.
    assert!(secrets.len() >= 17, "{} secrets", secrets.len());
    for (name, text) in &seen {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{name} contains a secret");
            // A prefix long enough to be unique, in case something cut the value.
            assert!(!text.contains(&s[..24]), "{name} contains part of a secret");
        }
    }
}
