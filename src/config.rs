//! `config.toml` + flags + built-in defaults → validated [`Settings`].
//!
//! The only place that knows about precedence (flags over the file, the file
//! over defaults) and the only place that reads [`cli::RunArgs`]. Everything
//! downstream takes `Settings`, whose fields are already checked, so a bad value
//! is reported once, here, with the file and key it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bedrock::request::Api;
use crate::cli::RunArgs;
use crate::cost::settings::{CostSettings, FileKeys};

/// What a resume does with a row answered before whose request has changed
/// since (an edited prompt under the same id): see `output/changed.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnChanged {
    /// Stop before sending anything, naming the changed rows.
    #[default]
    Refuse,
    /// Send the new request; the old line moves to superseded.jsonl.
    Resend,
    /// Keep the old answer (the pre-fingerprint behaviour), with a warning.
    Keep,
}

/// The file as written. Every field is optional: a missing key falls back to a
/// flag or a default. Unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub model: Option<String>,
    pub api: Option<Api>,
    pub inputs: Option<Vec<PathBuf>>,
    pub output_dir: Option<PathBuf>,
    pub id_column: Option<String>,
    pub prompt_column: Option<String>,
    pub template: Option<String>,
    pub system: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop_sequences: Option<Vec<String>>,
    pub concurrency: Option<usize>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub max_attempts: Option<u32>,
    pub request_timeout_secs: Option<u64>,
    pub row_deadline_secs: Option<u64>,
    pub grace_period_secs: Option<u64>,
    pub max_row_bytes: Option<usize>,
    pub include_prompt: Option<bool>,
    pub on_changed: Option<OnChanged>,
    pub stream: Option<bool>,
    // Cost keys: resolved by `cost::settings`.
    pub service_tier: Option<crate::bedrock::request::ServiceTier>,
    pub cache_system: Option<bool>,
    pub max_cost: Option<f64>,
    pub prices: Option<std::collections::BTreeMap<String, crate::cost::price::Price>>,
    /// `[batch]`: read by `submit` and `collect` only (`batch/settings.rs`).
    pub batch: Option<crate::batch::settings::BatchFile>,
}

/// A validated job. Built only by [`Settings::resolve`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role: Option<RoleSettings>,
    pub model: String,
    pub api: Api,
    pub inputs: Vec<PathBuf>,
    pub output_dir: PathBuf,
    pub id_column: String,
    pub prompt_column: String,
    pub template: Option<String>,
    pub system: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop_sequences: Vec<String>,
    pub concurrency: usize,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub max_attempts: u32,
    pub request_timeout: Duration,
    pub row_deadline: Duration,
    pub grace_period: Duration,
    pub max_row_bytes: usize,
    pub resume: ResumeMode,
    pub on_changed: OnChanged,
    pub allow_duplicate_ids: bool,
    /// Write each row's rendered prompt (or messages) into its results line.
    pub include_prompt: bool,
    /// Send through ConverseStream and record time to first token (api = converse only).
    pub stream: bool,
    /// Service tier, prompt caching, budget, prices, dry-run.
    pub cost: CostSettings,
    /// Draw a progress bar even when stderr is not a terminal? Never: set by
    /// `resolve` from the terminal check so tests and cron get plain lines.
    pub progress_bar: bool,
}

/// An explicit role to assume on top of the chain's base credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSettings {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
}

/// What to do with the output directory's earlier rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeMode {
    /// Skip ids already written; refuse if the job's settings changed.
    Continue,
    /// Move the old files aside and start over.
    Fresh,
    /// Send the failed rows again: all of them (empty list) or those whose
    /// `error.kind` is listed.
    RetryFailures(Vec<String>),
}

pub const DEFAULT_CONFIG: &str = "config.toml";
const DEFAULT_CONCURRENCY: usize = 8;
const DEFAULT_MAX_ATTEMPTS: u32 = 8;
const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 300;
const DEFAULT_ROW_DEADLINE_SECS: u64 = 1800;
/// Flex-tier answers may wait in Bedrock's queue: longer defaults when the
/// job's tier is `flex` and the key is not set.
const FLEX_REQUEST_TIMEOUT_SECS: u64 = 900;
const FLEX_ROW_DEADLINE_SECS: u64 = 7200;
const DEFAULT_GRACE_SECS: u64 = 30;
const DEFAULT_MAX_ROW_BYTES: usize = 4 * 1024 * 1024;

impl FileConfig {
    /// Reads and parses a config file; errors name the file (and the line, as toml reports it).
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            // toml's Display spans several lines with a source excerpt; keep the
            // first line and the position so the message stays on one line.
            let msg = e.message().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            anyhow::anyhow!("{}: {at}{msg}", path.display())
        })
    }
}

/// Where a setting's value came from, named in its error.
#[derive(Clone, Copy)]
enum Origin {
    Flag,
    File,
}

/// The two layers over the defaults: the flags and the config file (with
/// its path, when there is one). Every value is taken through [`Layers::pick`],
/// which checks it and, when it is wrong, says where it came from: `--flag`,
/// or ``FILE: `key` ``.
struct Layers<'a> {
    path: Option<&'a Path>,
}

impl<'a> Layers<'a> {
    /// The flag's value, else the file's, checked by `check`.
    fn pick<T>(
        &self,
        key: &str,
        flag: Option<T>,
        file: Option<T>,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> anyhow::Result<Option<T>> {
        let (value, origin) = match (flag, file) {
            (Some(v), _) => (v, Origin::Flag),
            (None, Some(v)) => (v, Origin::File),
            (None, None) => return Ok(None),
        };
        check(&value)
            .map_err(|problem| anyhow::anyhow!("{}: {problem}", self.name(key, origin)))?;
        Ok(Some(value))
    }

    /// A setting the job cannot do without.
    fn required<T>(&self, key: &str, flag: Option<T>, file: Option<T>) -> anyhow::Result<T> {
        flag.or(file).ok_or_else(|| self.missing(key))
    }

    fn name(&self, key: &str, origin: Origin) -> String {
        match (origin, self.path) {
            (Origin::File, Some(p)) => format!("{}: `{key}`", p.display()),
            _ => format!("--{}", key.replace('_', "-")),
        }
    }

    fn missing(&self, key: &str) -> anyhow::Error {
        let flag = format!("--{}", key.replace('_', "-").trim_end_matches('s'));
        match self.path {
            Some(p) => anyhow::anyhow!(
                "{}: no `{key}` set (add it to the file or pass {flag})",
                p.display()
            ),
            None => anyhow::anyhow!(
                "no `{key}`: pass {flag}, or run where a config.toml is (or with --config FILE)"
            ),
        }
    }

    /// A path as written in the file is relative to the file, so a job runs
    /// the same from any working directory.
    fn relative_to_file(&self, p: &Path) -> PathBuf {
        match self.path.and_then(Path::parent) {
            Some(base) if !p.is_absolute() => base.join(p),
            _ => p.to_path_buf(),
        }
    }
}

/// Checks for [`Layers::pick`].
fn between<T: PartialOrd + std::fmt::Display + Copy>(
    lo: T,
    hi: T,
) -> impl Fn(&T) -> Result<(), String> {
    move |v| {
        if *v >= lo && *v <= hi {
            Ok(())
        } else {
            Err(format!("must be between {lo} and {hi}, got {v}"))
        }
    }
}

fn at_least_one<T: PartialEq + From<u8>>(v: &T) -> Result<(), String> {
    if *v == T::from(0) {
        Err("must be at least 1".into())
    } else {
        Ok(())
    }
}

/// A quota: at least 1, or left out for none.
fn quota(v: &u32) -> Result<(), String> {
    if *v == 0 {
        Err("must be at least 1 (leave it out for no limit)".into())
    } else {
        Ok(())
    }
}

fn seconds(v: &u64) -> Result<(), String> {
    if *v == 0 {
        Err("must be at least 1 second".into())
    } else {
        Ok(())
    }
}

fn unit_range(v: &f32) -> Result<(), String> {
    if (0.0..=1.0).contains(v) {
        Ok(())
    } else {
        Err(format!("must be between 0 and 1, got {v}"))
    }
}

fn role_arn(arn: &String) -> Result<(), String> {
    if !arn.starts_with("arn:") || arn.split(':').count() < 6 || !arn.contains(":role/") {
        return Err(format!(
            "`{arn}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ));
    }
    Ok(())
}

/// Text given inline, or `@FILE` for the contents of a file.
fn text_or_file(flag: &str, value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{flag}: {path}: {e}"))
        }
        None => Ok(value.to_string()),
    }
}

impl Settings {
    /// Flags over file over defaults. `stderr_is_terminal` decides bar vs plain lines.
    pub fn resolve(args: &RunArgs, stderr_is_terminal: bool) -> anyhow::Result<Settings> {
        let (file, path) = match &args.config {
            Some(path) => (FileConfig::load(path)?, Some(path.clone())),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                let path = PathBuf::from(DEFAULT_CONFIG);
                (FileConfig::load(&path)?, Some(path))
            }
            None => (FileConfig::default(), None),
        };
        let l = Layers {
            path: path.as_deref(),
        };
        let f = &file;

        let model = l.required("model", args.model.clone(), f.model.clone())?;
        let inputs: Vec<PathBuf> = if !args.input.is_empty() {
            args.input.clone()
        } else {
            f.inputs
                .iter()
                .flatten()
                .map(|p| l.relative_to_file(p))
                .collect()
        };
        if inputs.is_empty() {
            return Err(l.missing("inputs"));
        }
        let output_dir = l.required(
            "output_dir",
            args.output_dir.clone(),
            f.output_dir.as_deref().map(|p| l.relative_to_file(p)),
        )?;
        let template = match &args.template {
            Some(t) => Some(text_or_file("--template", t)?),
            None => f.template.clone(),
        };
        let system = match &args.system {
            Some(t) => Some(text_or_file("--system", t)?),
            None => f.system.clone(),
        };

        let api = args.api.or(f.api).unwrap_or(Api::Converse);
        let cost = CostSettings::resolve(
            args,
            FileKeys {
                service_tier: f.service_tier,
                cache_system: f.cache_system,
                max_cost: f.max_cost,
                prices: f.prices.as_ref(),
                api,
            },
            path.as_deref(),
        )?;
        let flex = cost.is_flex();
        let secs = |key, flag, file, default| -> anyhow::Result<Duration> {
            let v = l.pick(key, flag, file, seconds)?.unwrap_or(default);
            Ok(Duration::from_secs(v))
        };
        let role = l
            .pick(
                "role_arn",
                args.role_arn.clone(),
                f.role_arn.clone(),
                role_arn,
            )?
            .map(|role_arn| RoleSettings {
                role_arn,
                external_id: args.external_id.clone().or(f.external_id.clone()),
                session_name: args.session_name.clone().or(f.session_name.clone()),
            });

        let api = args.api.or(f.api).unwrap_or(Api::Converse);
        let stream = args.stream || f.stream.unwrap_or(false);
        if stream && api == Api::Invoke {
            let place = l
                .path
                .map_or("flags".to_string(), |p| p.display().to_string());
            anyhow::bail!(
                "{place}: `stream = true` (--stream) needs `api = \"converse\"`; streaming is not implemented for `api = \"invoke\"`"
            );
        }

        Ok(Settings {
            region: args.region.clone().or(f.region.clone()),
            profile: args.profile.clone().or(f.profile.clone()),
            role,
            model,
            api,
            inputs,
            output_dir,
            id_column: args
                .id_column
                .clone()
                .or(f.id_column.clone())
                .unwrap_or_else(|| "id".into()),
            prompt_column: args
                .prompt_column
                .clone()
                .or(f.prompt_column.clone())
                .unwrap_or_else(|| "prompt".into()),
            template,
            system,
            max_tokens: l.pick("max_tokens", args.max_tokens, f.max_tokens, at_least_one)?,
            temperature: l.pick("temperature", args.temperature, f.temperature, unit_range)?,
            top_p: l.pick("top_p", args.top_p, f.top_p, unit_range)?,
            stop_sequences: f.stop_sequences.clone().unwrap_or_default(),
            concurrency: l
                .pick(
                    "concurrency",
                    args.concurrency,
                    f.concurrency,
                    between(1, 4096),
                )?
                .unwrap_or(DEFAULT_CONCURRENCY),
            rpm: l.pick("rpm", args.rpm, f.rpm, quota)?,
            tpm: l.pick("tpm", args.tpm, f.tpm, quota)?,
            max_attempts: l
                .pick(
                    "max_attempts",
                    args.max_attempts,
                    f.max_attempts,
                    at_least_one,
                )?
                .unwrap_or(DEFAULT_MAX_ATTEMPTS),
            request_timeout: secs(
                "request_timeout_secs",
                args.request_timeout_secs,
                f.request_timeout_secs,
                if flex {
                    FLEX_REQUEST_TIMEOUT_SECS
                } else {
                    DEFAULT_REQUEST_TIMEOUT_SECS
                },
            )?,
            row_deadline: secs(
                "row_deadline_secs",
                None,
                f.row_deadline_secs,
                if flex {
                    FLEX_ROW_DEADLINE_SECS
                } else {
                    DEFAULT_ROW_DEADLINE_SECS
                },
            )?,
            grace_period: secs(
                "grace_period_secs",
                args.grace_period_secs,
                f.grace_period_secs,
                DEFAULT_GRACE_SECS,
            )?,
            max_row_bytes: f.max_row_bytes.unwrap_or(DEFAULT_MAX_ROW_BYTES),
            resume: resume_mode(args)?,
            on_changed: args.on_changed.or(f.on_changed).unwrap_or_default(),
            allow_duplicate_ids: args.allow_duplicate_ids,
            include_prompt: args.include_prompt || f.include_prompt.unwrap_or(false),
            stream,
            cost,
            progress_bar: stderr_is_terminal && !args.no_progress,
        })
    }
}

/// `--fresh`, `--retry-failures [KINDS]`, or neither.
fn resume_mode(args: &RunArgs) -> anyhow::Result<ResumeMode> {
    if args.fresh && args.retry_failures.is_some() {
        anyhow::bail!("--fresh and --retry-failures cannot be used together");
    }
    if args.fresh {
        return Ok(ResumeMode::Fresh);
    }
    let Some(kinds) = &args.retry_failures else {
        return Ok(ResumeMode::Continue);
    };
    let kinds: Vec<String> = kinds
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty() && k != "all")
        .collect();
    let known = crate::outcome::ErrorKind::ALL.map(|k| k.as_str());
    if let Some(k) = kinds.iter().find(|k| !known.contains(&k.as_str())) {
        anyhow::bail!(
            "--retry-failures: unknown kind `{k}` (known: {})",
            known.join(", ")
        );
    }
    Ok(ResumeMode::RetryFailures(kinds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["bedrock-batch", "run"];
        argv.extend_from_slice(extra);
        match crate::cli::Args::parse_from(argv).command {
            crate::cli::Command::Run(r) => r,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn shipped_config_parses_and_resolves() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let file = FileConfig::load(&path).expect("config.toml parses");
        assert_eq!(file.region.as_deref(), Some("ap-northeast-2"));
        assert!(file.profile.is_none(), "profile must stay commented out");
        let args = run_args(&["--config", path.to_str().unwrap()]);
        let s = Settings::resolve(&args, false).unwrap();
        assert!(s.inputs.iter().all(|p| p.exists()), "{:?}", s.inputs);
        assert_eq!(s.api, Api::Converse);
    }

    #[test]
    fn stream_needs_converse() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("job.toml");
        let base = "model = \"m\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\n";
        std::fs::write(&cfg, format!("{base}stream = true\napi = \"invoke\"\n")).unwrap();
        let err = Settings::resolve(&run_args(&["--config", cfg.to_str().unwrap()]), false)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(cfg.to_str().unwrap()), "{err}");
        assert!(
            err.contains("`stream = true`") && err.contains("`api = \"invoke\"`"),
            "{err}"
        );
        // The flag alone turns it on; converse is the default api.
        std::fs::write(&cfg, base).unwrap();
        let s = Settings::resolve(
            &run_args(&["--config", cfg.to_str().unwrap(), "--stream"]),
            false,
        )
        .unwrap();
        assert!(s.stream);
        assert!(
            !Settings::resolve(&run_args(&["--config", cfg.to_str().unwrap()]), false)
                .unwrap()
                .stream
        );
    }

    #[test]
    fn flags_override_file_and_defaults_fill_in() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("job.toml");
        std::fs::write(
            &cfg,
            "model = \"m-file\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\nconcurrency = 3\n",
        )
        .unwrap();
        let args = run_args(&["--config", cfg.to_str().unwrap(), "--model", "m-flag"]);
        let s = Settings::resolve(&args, false).unwrap();
        assert_eq!(s.model, "m-flag");
        assert_eq!(s.concurrency, 3);
        assert_eq!(s.inputs, vec![dir.path().join("in.csv")]);
        assert_eq!(s.output_dir, dir.path().join("out"));
        assert_eq!(s.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(s.resume, ResumeMode::Continue);
    }

    #[test]
    fn bad_values_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("job.toml");
        std::fs::write(
            &cfg,
            "model = \"m\"\ninputs = [\"a.csv\"]\noutput_dir = \"o\"\nconcurrency = 0\n",
        )
        .unwrap();
        let err = Settings::resolve(&run_args(&["--config", cfg.to_str().unwrap()]), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("job.toml: `concurrency`: must be between 1 and 4096"),
            "{err}"
        );

        std::fs::write(&cfg, "model = \"m\"\nconcurency = 3\n").unwrap();
        let err = Settings::resolve(&run_args(&["--config", cfg.to_str().unwrap()]), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("job.toml: line 2: unknown field `concurency`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn no_file_needs_model_input_and_output_dir() {
        // An empty file stands for "no config file": flags alone must suffice.
        let err = Settings::resolve(&run_args(&["--config", "/dev/null"]), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `model` set"), "{err}");
        let args = run_args(&[
            "--config",
            "/dev/null",
            "--model",
            "m",
            "--input",
            "a.csv",
            "--input",
            "b.jsonl",
            "--output-dir",
            "o",
        ]);
        let s = Settings::resolve(&args, false).unwrap();
        assert_eq!(
            s.inputs,
            vec![PathBuf::from("a.csv"), PathBuf::from("b.jsonl")]
        );
        assert_eq!(s.concurrency, DEFAULT_CONCURRENCY);
    }

    #[test]
    fn retry_failures_kinds_are_checked() {
        let a = run_args(&[
            "--model",
            "m",
            "--input",
            "a.csv",
            "--output-dir",
            "o",
            "--config",
            "/dev/null",
            "--retry-failures",
            "throttled,timeout",
        ]);
        let s = Settings::resolve(&a, false).unwrap();
        assert_eq!(
            s.resume,
            ResumeMode::RetryFailures(vec!["throttled".into(), "timeout".into()])
        );
        let a = run_args(&[
            "--model",
            "m",
            "--input",
            "a.csv",
            "--output-dir",
            "o",
            "--config",
            "/dev/null",
            "--retry-failures",
            "bogus",
        ]);
        let err = Settings::resolve(&a, false).unwrap_err().to_string();
        assert!(err.contains("unknown kind `bogus`"), "{err}");
    }
}
