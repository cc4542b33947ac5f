//! Running the real `bedrock-batch` binary against an in-process emulator.
//!
//! Each [`Workspace`] is a temporary directory with its own HOME, inputs and
//! output directory; the child process gets a cleared environment holding
//! only what a user's shell would (PATH, HOME, the standard AWS variables
//! pointing at the emulator), so nothing leaks in from the machine.
//!
//! Also the checks and background runs that several test files share: the
//! ids and answers a run over [`csv_rows`] must end with, what the emulator
//! served and was paid for, and runs started in the background to be
//! signalled or killed part-way. One copy each, so a check made stricter
//! in one place is stricter everywhere.
//!
//! Not here: SDK clients and in-process environment isolation (util.rs),
//! and checks that only one file makes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use bedrock_batch::emulator::{
    answer, Emulator, EmulatorConfig, RequestRecord, STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY,
};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Child;

pub const BIN: &str = env!("CARGO_BIN_EXE_bedrock-batch");

pub struct Workspace {
    pub dir: TempDir,
    pub url: String,
}

impl Workspace {
    pub fn new(url: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Workspace {
            dir,
            url: url.to_string(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn out(&self) -> PathBuf {
        self.path("out")
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// The binary with static keys from the environment, endpoints at the emulator.
    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .current_dir(self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("AWS_CONFIG_FILE", self.path("home/.aws/config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("home/.aws/credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "ap-northeast-2")
            .env("AWS_ACCESS_KEY_ID", STATIC_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", STATIC_SECRET_ACCESS_KEY)
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &self.url)
            .env("AWS_ENDPOINT_URL_STS", &self.url)
            .env("AWS_ENDPOINT_URL_S3", &self.url)
            .stdin(Stdio::null());
        c
    }

    /// Writes the IAM guide's profile files: `[default]` keys and
    /// `[profile bedrock-app-dev]` assuming BedrockExecutionRole.
    pub fn write_profiles(&self) {
        self.write(
            "home/.aws/credentials",
            format!(
                "[default]\naws_access_key_id = {STATIC_ACCESS_KEY_ID}\naws_secret_access_key = {STATIC_SECRET_ACCESS_KEY}\n"
            ),
        );
        self.write(
            "home/.aws/config",
            "[default]\nregion = ap-northeast-2\n\n[profile bedrock-app-dev]\nrole_arn = arn:aws:iam::123456789012:role/BedrockExecutionRole\nsource_profile = default\nregion = ap-northeast-2\n",
        );
    }

    /// `run` with the given flags (plus `--output-dir out` unless given and
    /// `--config /dev/null` unless given, so no stray config.toml is read).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command();
        self.add_run(&mut c, args);
        c.output().expect("run the binary")
    }

    /// Adds `run` and `args` to `c` with the same defaults as [`Self::run`],
    /// for a test whose command needs an environment or a directory of its
    /// own (built from [`Self::command`]), so those defaults live in one place.
    pub fn add_run<'c>(&self, c: &'c mut Command, args: &[&str]) -> &'c mut Command {
        c.arg("run");
        if !args.contains(&"--config") {
            c.args(["--config", "/dev/null"]);
        }
        if !args.contains(&"--output-dir") {
            c.arg("--output-dir").arg(self.out());
        }
        c.args(args)
    }

    pub fn results(&self) -> Vec<Value> {
        read_jsonl(&self.out().join("results.jsonl"))
    }

    pub fn failures(&self) -> Vec<Value> {
        read_jsonl(&self.out().join("failures.jsonl"))
    }

    pub fn summary(&self) -> Value {
        let text = std::fs::read_to_string(self.out().join("summary.json")).expect("summary.json");
        serde_json::from_str(&text).expect("summary.json is JSON")
    }
}

// Reading and checking the output files.

/// The records of a JSONL file, or none if it does not exist yet.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Ids of a JSONL output file, checked to be complete lines, each id once.
pub fn ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{}: torn last line",
        path.display()
    );
    let ids: Vec<String> = read_jsonl(path)
        .iter()
        .map(|r| r["id"].as_str().expect("string id").to_string())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{}: an id twice", path.display());
    ids
}

/// Every id of `want` in exactly one of results.jsonl / failures.jsonl, and
/// nothing else there: the "nothing lost, nothing twice" check every test
/// that resumes, kills or retries ends with. One copy so that each of them
/// also checks for torn lines and an id twice in one file.
pub fn assert_each_id_once(out: &Path, want: &BTreeSet<String>) {
    let ok = ids(&out.join("results.jsonl"));
    let bad = ids(&out.join("failures.jsonl"));
    let mut all: Vec<&String> = ok.iter().chain(&bad).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an id in both files");
    let all: BTreeSet<String> = all.into_iter().cloned().collect();
    assert_eq!(&all, want, "ids across the two files");
}

/// A finished command's stderr as text, where the tests look for messages.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code, stdout and stderr on one string, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// The job most run tests share: `csv_rows` in `p.csv`, run with `run_args`,
// checked with `csv_ids` and `assert_csv_answers`.

/// The model most tests run.
pub const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// A CSV of `n` rows `id,prompt,expected` with distinct prompts.
pub fn csv_rows(n: usize) -> String {
    let mut s = String::from("id,prompt,expected\n");
    for i in 0..n {
        s.push_str(&format!("r{i:05},{},{}\n", csv_prompt(i), 2 * i));
    }
    s
}

/// Row `i`'s prompt in `csv_rows`: what a test compares answers and paid
/// calls against. csv_rows writes it through here, so the two cannot drift.
pub fn csv_prompt(i: usize) -> String {
    format!("Question number {i}: what is {i} + {i}?")
}

/// Each of `results` (lines of a run over `csv_rows`) carries the
/// emulator's answer to its own row's prompt, not a neighbour's: the check
/// that a resume or a kill did not mix rows up.
pub fn assert_csv_answers(results: &[Value]) {
    for r in results {
        let i: usize = r["id"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(r["output"], answer(&csv_prompt(i)), "{r}");
    }
}

/// The ids of `csv_rows(n)`: `r00000`, `r00001`, …
pub fn csv_ids(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("r{i:05}")).collect()
}

/// (id, model, sample) of every line of output file `name` in a matrix
/// job (several models or samples), checked to be unique: the matrix's
/// "every unit once", where an id alone repeats across models.
pub fn units(ws: &Workspace, name: &str) -> BTreeSet<(String, String, u64)> {
    let mut out = BTreeSet::new();
    for r in read_jsonl(&ws.out().join(name)) {
        let unit = (
            r["id"].as_str().unwrap().to_string(),
            r["model"].as_str().unwrap().to_string(),
            r["sample"].as_u64().expect("every line carries its sample"),
        );
        assert!(out.insert(unit.clone()), "{name}: {unit:?} twice");
    }
    out
}

/// Every unit of `csv_rows(rows)` × `models` × `samples`.
pub fn csv_units(rows: usize, models: &[&str], samples: u64) -> BTreeSet<(String, String, u64)> {
    let mut out = BTreeSet::new();
    for id in csv_ids(rows) {
        for m in models {
            for s in 1..=samples {
                out.insert((id.clone(), m.to_string(), s));
            }
        }
    }
    out
}

/// The flags most `run` tests start from: `--model` for each of `models`
/// (in order), `--input p.csv` (the workspace's `csv_rows` file) and
/// `--max-tokens`. A test pushes its own flags after these, so what makes
/// it different from its neighbours is all that is spelled out.
pub fn run_args<'a>(models: &[&'a str], max_tokens: &'a str) -> Vec<&'a str> {
    let mut args = Vec::new();
    for m in models {
        args.extend(["--model", m]);
    }
    args.extend(["--input", "p.csv", "--max-tokens", max_tokens]);
    args
}

/// The emulator (each call answered after `latency_ms`) and a workspace
/// pointed at it, for a test that writes its own `p.csv`.
pub async fn start_workspace(latency_ms: u64) -> (Emulator, Workspace) {
    let emu = Emulator::start(EmulatorConfig {
        latency_ms,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let ws = Workspace::new(&emu.url());
    (emu, ws)
}

/// `start_workspace` with `p.csv` = `csv_rows(rows)`: the start of every
/// test that runs [`run_args`] and then stops, resumes or refuses the run.
pub async fn start_job(rows: usize, latency_ms: u64) -> (Emulator, Workspace) {
    let (emu, ws) = start_workspace(latency_ms).await;
    ws.write("p.csv", csv_rows(rows));
    (emu, ws)
}

// What the emulator served.

/// The Bedrock calls the emulator served, in arrival order: not the STS,
/// IMDS or S3 requests the same run made. One copy, because a test that
/// counts "calls sent" must not count a credential look-up by accident;
/// filter or count the records at the call site.
pub fn bedrock_calls(emu: &Emulator) -> Vec<RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| r.service == "bedrock")
        .collect()
}

/// Successful (200) Bedrock calls per prompt: what was paid for, so a test
/// can check that a resume or a retry paid for nothing twice (beyond the
/// calls in flight at a kill).
pub fn paid_calls(emu: &Emulator) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in bedrock_calls(emu) {
        if r.status == 200 {
            *m.entry(r.prompt.expect("prompt recorded")).or_default() += 1;
        }
    }
    m
}

// Runs in the background, for the tests that stop a run part-way (signals,
// kill -9, a second run against a held directory) and then resume it. The
// shape is always the same: start, wait until the run is doing the work the
// test wants to cut into, signal, wait for the exit, run again to the end.

/// How long a run may take to exit after a signal before the test fails:
/// twice the default 30 s grace period, so a slow machine is not a failure.
pub const STOP_WITHIN: Duration = Duration::from_secs(60);

/// Starts `run` with `args` in the background; its stdout and stderr go to
/// `<tag>.stdout` / `<tag>.stderr` in the workspace.
pub fn spawn(ws: &Workspace, tag: &str, args: &[&str]) -> Child {
    let mut c = ws.command();
    ws.add_run(&mut c, args)
        .stdout(Stdio::from(
            std::fs::File::create(ws.path(&format!("{tag}.stdout"))).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(ws.path(&format!("{tag}.stderr"))).unwrap(),
        ));
    tokio::process::Command::from(c)
        .spawn()
        .expect("start the binary")
}

/// Sends `sig` to a run started by `spawn` (libc, because tokio's Child can
/// only send SIGKILL).
pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = child.id().expect("still running") as libc::pid_t;
    // SAFETY: kill(2) with a pid we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid} {sig}");
}

/// What the run started as `tag` has written to its stderr so far.
pub fn stderr_of(ws: &Workspace, tag: &str) -> String {
    std::fs::read_to_string(ws.path(&format!("{tag}.stderr"))).unwrap_or_default()
}

/// Complete lines in output file `name`: progress a test can wait for
/// without parsing a line that is being written.
pub fn lines(ws: &Workspace, name: &str) -> usize {
    std::fs::read_to_string(ws.out().join(name))
        .map(|t| t.matches('\n').count())
        .unwrap_or(0)
}

/// Polls `done` every 10 ms for up to 60 s.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `spawn`, returned once `ready` holds (polled as `until` does). Panics if
/// the run exits before that: a signal sent then would cut into nothing,
/// and the test would pass or fail for the wrong reason.
pub async fn spawn_until(
    ws: &Workspace,
    tag: &str,
    args: &[&str],
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Child {
    let mut child = spawn(ws, tag, args);
    until(what, || {
        if ready() {
            return true;
        }
        if let Some(status) = child.try_wait().expect("wait on the run") {
            panic!(
                "{tag} exited ({status}) before {what}: {}",
                stderr_of(ws, tag)
            );
        }
        false
    })
    .await;
    child
}

/// Sends `sig` to `child` and waits up to `within` for it to exit.
pub async fn stop(mut child: Child, sig: libc::c_int, within: Duration) -> ExitStatus {
    signal(&child, sig);
    tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("still running {within:?} after signal {sig}"))
        .expect("wait on the run")
}

/// `spawn` and wait for the run to end by itself: its exit code, and its
/// stderr for the assertion message.
pub async fn run_to_end(ws: &Workspace, tag: &str, args: &[&str]) -> (Option<i32>, String) {
    let status = spawn(ws, tag, args).wait().await.expect("wait on the run");
    (status.code(), stderr_of(ws, tag))
}
