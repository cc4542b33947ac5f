//! The breaker: a job that cannot succeed stops early, sends nothing more,
//! and a plain rerun after the fix sends exactly what is missing.

use std::process::Output;
use std::time::Duration;

use bedrock_batch::emulator::{Emulator, EmulatorConfig};

use crate::cli_util::{
    assert_each_id_once, bedrock_calls, csv_ids, csv_rows, csv_units, run_args, show,
    start_workspace, stderr, units, Workspace, MODEL,
};
use crate::util::{static_credentials, sts_client};

const ROWS: usize = 200;

/// The emulator refusing MODEL as a role without the permission would, and a
/// workspace holding `csv_rows(ROWS)`.
async fn denied() -> (Emulator, Workspace) {
    let emu = Emulator::start(EmulatorConfig {
        denied_models: vec![MODEL.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(ROWS));
    (emu, ws)
}

/// Checks that `out` is a run the breaker stopped on MODEL's refusals (exit
/// 2, the error naming the kind and the model) and returns its stderr.
fn stopped_on_denied(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", show(out));
    let err = stderr(out);
    assert!(
        err.contains(&format!(
            "error: stopped early: the first 20 calls all failed with access_denied (AccessDeniedException) on model `{MODEL}`"
        )),
        "{err}"
    );
    err
}

/// The policy fixed: the emulator stopped and started again refusing
/// nothing; the workspace, and the output directory the stopped job left,
/// carry over to the rerun.
async fn fixed(emu: Emulator, ws: Workspace) -> (Emulator, Workspace) {
    emu.shutdown().await;
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ws = Workspace {
        url: emu.url(),
        ..ws
    };
    (emu, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_role_may_not_invoke_stops_the_job_and_a_rerun_sends_those_rows() {
    let (emu, ws) = denied().await;
    let args = run_args(&[MODEL], "50");
    let err = stopped_on_denied(&ws.run(&args));
    assert!(err.contains("`bedrock-batch policy`"), "{err}");
    assert!(
        err.contains("arn:aws:bedrock:ap-northeast-2::foundation-model/"),
        "names the resource: {err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    // Sent: the window plus what was in flight, not 200 rows.
    let sent = bedrock_calls(&emu).len();
    assert!((20..=28).contains(&sent), "{sent} calls");
    assert!(ws.results().is_empty());
    assert_eq!(ws.failures().len(), sent, "each refused row recorded once");
    assert_eq!(ws.summary()["stopped_by"], "breaker");
    // The report is written on this stop too.
    assert!(ws.out().join("report.html").exists());
    assert!(
        err.contains(&format!(
            "report:   {}",
            ws.out().join("report.html").display()
        )),
        "{err}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["job_wide_failure"], "access_denied");

    // The policy is fixed: a plain rerun (no --retry-failures) sends every
    // row, the refused ones included, and each id ends up once.
    let (emu, ws) = fixed(emu, ws).await;
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out).contains("the last run stopped because every call failed with access_denied"),
        "the note says the failures are sent again: {}",
        show(&out)
    );
    assert_eq!(ws.results().len(), ROWS);
    assert!(ws.failures().is_empty());
    assert_each_id_once(&ws.out(), &csv_ids(ROWS));
    assert_eq!(bedrock_calls(&emu).len(), ROWS);
}

/// A matrix with one model the role may not invoke: that model's start
/// trips the breaker although the other model answers, so the job stops
/// instead of writing a refusal for every unit of the wrong model. A rerun
/// after the fix sends exactly what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_model_of_a_matrix_stops_the_job_though_the_other_answers() {
    const GOOD: &str = "amazon.nova-lite-v1:0";
    let (emu, ws) = denied().await;
    let args = run_args(&[MODEL, GOOD], "50");
    stopped_on_denied(&ws.run(&args));
    let failures = ws.failures();
    assert!(
        failures.iter().all(|f| f["model"] == MODEL),
        "only the refused model failed"
    );
    assert!(
        failures.len() < 40,
        "stopped near the window, not after {ROWS}: {}",
        failures.len()
    );
    assert!(ws.results().iter().all(|r| r["model"] == GOOD));

    let (_emu, ws) = fixed(emu, ws).await;
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(ws.failures().is_empty());
    assert_eq!(
        units(&ws, "results.jsonl"),
        csv_units(ROWS, &[MODEL, GOOD], 1),
        "every (id, model) once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_stops_the_job_with_every_row_left_unsent() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ws = Workspace::new(&format!("http://127.0.0.1:{port}"));
    ws.write("p.csv", csv_rows(ROWS));
    let started = std::time::Instant::now();
    let out = ws.run(&run_args(&[MODEL], "50"));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("stopped early: the last 20 calls all failed before Bedrock answered"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped early, not after every row's attempts"
    );
    assert!(ws.results().is_empty());
    assert!(
        ws.failures().is_empty(),
        "rows that would be retried are left unsent: {:?}",
        ws.failures()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_keys_in_the_environment_stop_the_job_with_how_to_renew_them() {
    let emu = Emulator::start(EmulatorConfig {
        require_assumed_role: true,
        credential_ttl: Duration::from_secs(2),
        latency_ms: 100,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    // Session keys minted by STS, then put in the environment as a user
    // would paste them: nothing in the chain can renew them.
    let creds = sts_client(&emu.url(), static_credentials())
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/BedrockExecutionRole")
        .role_session_name("pasted")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let ws = Workspace::new(&emu.url());
    ws.write("p.csv", csv_rows(ROWS));
    let mut cmd = ws.command();
    cmd.env("AWS_ACCESS_KEY_ID", creds.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", creds.secret_access_key())
        .env("AWS_SESSION_TOKEN", creds.session_token());
    let mut args = run_args(&[MODEL], "50");
    args.extend(["--concurrency", "2"]);
    let out = ws.add_run(&mut cmd, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Bedrock says the credentials expired, and they come from environment variables (AWS_ACCESS_KEY_ID), which cannot renew them: export new AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert!(
        !err.contains(creds.secret_access_key()),
        "no secret in errors"
    );
    let answered = ws.results().len();
    assert!(
        answered > 0 && answered < ROWS,
        "{answered} answered before expiry"
    );
    assert!(
        ws.failures().is_empty(),
        "the unsent rows stay unsent for a resume: {:?}",
        ws.failures()
    );
    let refused = bedrock_calls(&emu)
        .iter()
        .filter(|r| r.status != 200)
        .count();
    assert!(refused <= 4, "stopped at the first refusals: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_scattered_among_successes_do_not_stop_the_job() {
    let (_emu, ws) = start_workspace(0).await;
    let mut csv = String::from("id,prompt\n");
    for i in 0..60 {
        // Every other row is refused, from the first row on.
        let marker = if i % 2 == 0 {
            "[[emu:validation]] "
        } else {
            ""
        };
        csv.push_str(&format!("r{i:03},{marker}question {i}\n"));
    }
    ws.write("p.csv", csv);
    let out = ws.run(&run_args(&[MODEL], "50"));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(ws.results().len(), 30);
    assert_eq!(ws.failures().len(), 30);
    assert!(ws.summary()["stopped_by"].is_null());
}

/// The other job-wide kinds trip the breaker the same way: a refused request
/// (a wrong model id), an unknown model, keys Bedrock does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_wide_refusal_stops_the_job() {
    for (kind, code, marker, config) in [
        (
            "validation",
            "ValidationException",
            "[[emu:validation]] ",
            EmulatorConfig::default(),
        ),
        (
            "not_found",
            "ResourceNotFoundException",
            "[[emu:not_found]] ",
            EmulatorConfig::default(),
        ),
        (
            "credentials",
            "UnrecognizedClientException",
            "",
            // Static keys are not session keys: every call is refused.
            EmulatorConfig {
                require_assumed_role: true,
                ..EmulatorConfig::default()
            },
        ),
    ] {
        let emu = Emulator::start(config).await.unwrap();
        let ws = Workspace::new(&emu.url());
        let mut csv = String::from("id,prompt\n");
        for i in 0..ROWS {
            csv.push_str(&format!("r{i:03},{marker}question {i}\n"));
        }
        ws.write("p.csv", csv);
        let out = ws.run(&run_args(&[MODEL], "50"));
        assert_eq!(out.status.code(), Some(2), "{kind}: {}", show(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "the first 20 calls all failed with {kind} ({code})"
            )),
            "{kind}: {err}"
        );
        let sent = bedrock_calls(&emu).len();
        assert!((20..=28).contains(&sent), "{kind}: {sent} calls");
        assert_eq!(ws.failures().len(), sent, "{kind}");
    }
}
