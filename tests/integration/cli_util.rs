//! Running the real `bedrock-batch` binary against an in-process emulator.
//!
//! Each [`Workspace`] is a temporary directory with its own HOME, inputs and
//! output directory; the child process gets a cleared environment holding
//! only what a user's shell would (PATH, HOME, the standard AWS variables
//! pointing at the emulator), so nothing leaks in from the machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bedrock_batch::emulator::{
    answer, Emulator, RequestRecord, STATIC_ACCESS_KEY_ID, STATIC_SECRET_ACCESS_KEY,
};
use serde_json::Value;
use tempfile::TempDir;

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
        c.arg("run");
        if !args.contains(&"--config") {
            c.args(["--config", "/dev/null"]);
        }
        if !args.contains(&"--output-dir") {
            c.arg("--output-dir").arg(self.out());
        }
        c.args(args);
        c.output().expect("run the binary")
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

/// Exit code, stdout and stderr on one string, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

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

pub const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

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
