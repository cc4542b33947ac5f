//! `config.toml` + flags + built-in defaults → validated [`Settings`].
//!
//! The only place that knows about precedence (flags over the file, the file
//! over defaults) and the only place that reads [`cli::RunArgs`]. Everything
//! downstream takes `Settings`, whose fields are already checked, so a bad value
//! is reported once, here, with the file and key it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::RunArgs;
use crate::cost::settings::{CostSettings, FileKeys};
use crate::error::SetupError;

/// Which Bedrock operation carries each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `Converse`: one request shape for every model.
    Converse,
    /// `InvokeModel` with the model's native JSON body (built from the row, or
    /// taken verbatim from a JSONL row's `body`).
    Invoke,
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
    // Cost keys: resolved by `cost::settings`.
    pub service_tier: Option<crate::bedrock::request::ServiceTier>,
    pub cache_system: Option<bool>,
    pub max_cost: Option<f64>,
    pub prices: Option<std::collections::BTreeMap<String, crate::cost::price::Price>>,
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
    pub allow_duplicate_ids: bool,
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
    pub fn load(path: &Path) -> Result<FileConfig, SetupError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SetupError::Config(format!("{}: {e}", path.display())))?;
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
            SetupError::Config(format!("{}: {at}{msg}", path.display()))
        })
    }
}

impl Settings {
    /// Flags over file over defaults. `stderr_is_terminal` decides bar vs plain lines.
    pub fn resolve(args: &RunArgs, stderr_is_terminal: bool) -> Result<Settings, SetupError> {
        let (file, origin) = match &args.config {
            Some(path) => (FileConfig::load(path)?, Some(path.clone())),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                let path = PathBuf::from(DEFAULT_CONFIG);
                (FileConfig::load(&path)?, Some(path))
            }
            None => (FileConfig::default(), None),
        };
        // Relative paths in the file are relative to the file, so a job runs
        // the same from any working directory.
        let base = origin
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let from_file = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let where_ = |key: &str| match &origin {
            Some(p) => format!("{}: `{key}`", p.display()),
            None => format!("--{}", key.replace('_', "-")),
        };

        let model = args
            .model
            .clone()
            .or(file.model.clone())
            .ok_or_else(|| SetupError::Config(missing("model", &origin)))?;
        let inputs: Vec<PathBuf> = if !args.input.is_empty() {
            args.input.clone()
        } else {
            file.inputs.iter().flatten().map(from_file).collect()
        };
        if inputs.is_empty() {
            return Err(SetupError::Config(missing("inputs", &origin)));
        }
        let output_dir = args
            .output_dir
            .clone()
            .or(file.output_dir.as_ref().map(from_file))
            .ok_or_else(|| SetupError::Config(missing("output_dir", &origin)))?;

        let concurrency = args
            .concurrency
            .or(file.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 || concurrency > 4096 {
            return Err(SetupError::Config(format!(
                "{}: must be between 1 and 4096, got {concurrency}",
                where_("concurrency")
            )));
        }
        let rpm = args.rpm.or(file.rpm);
        let tpm = args.tpm.or(file.tpm);
        for (key, v) in [("rpm", rpm), ("tpm", tpm)] {
            if v == Some(0) {
                return Err(SetupError::Config(format!(
                    "{}: must be at least 1 (leave it out for no limit)",
                    where_(key)
                )));
            }
        }
        let max_tokens = args.max_tokens.or(file.max_tokens);
        if max_tokens == Some(0) {
            return Err(SetupError::Config(format!(
                "{}: must be at least 1",
                where_("max_tokens")
            )));
        }
        let temperature = file.temperature;
        if let Some(t) = temperature {
            if !(0.0..=1.0).contains(&t) {
                return Err(SetupError::Config(format!(
                    "{}: must be between 0 and 1, got {t}",
                    where_("temperature")
                )));
            }
        }
        if let Some(p) = file.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(SetupError::Config(format!(
                    "{}: must be between 0 and 1, got {p}",
                    where_("top_p")
                )));
            }
        }
        let max_attempts = args
            .max_attempts
            .or(file.max_attempts)
            .unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if max_attempts == 0 {
            return Err(SetupError::Config(format!(
                "{}: must be at least 1",
                where_("max_attempts")
            )));
        }
        let cost = CostSettings::resolve(
            args,
            FileKeys {
                service_tier: file.service_tier,
                cache_system: file.cache_system,
                max_cost: file.max_cost,
                prices: file.prices.as_ref(),
                api: args.api.or(file.api).unwrap_or(Api::Converse),
            },
            origin.as_deref(),
        )?;
        let flex = cost.is_flex();
        let secs = |flag: Option<u64>, file: Option<u64>, default: u64, key: &str| {
            let v = flag.or(file).unwrap_or(default);
            if v == 0 {
                Err(SetupError::Config(format!(
                    "{}: must be at least 1 second",
                    where_(key)
                )))
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        let request_timeout = secs(
            args.request_timeout_secs,
            file.request_timeout_secs,
            if flex {
                FLEX_REQUEST_TIMEOUT_SECS
            } else {
                DEFAULT_REQUEST_TIMEOUT_SECS
            },
            "request_timeout_secs",
        )?;
        let row_deadline = secs(
            None,
            file.row_deadline_secs,
            if flex {
                FLEX_ROW_DEADLINE_SECS
            } else {
                DEFAULT_ROW_DEADLINE_SECS
            },
            "row_deadline_secs",
        )?;
        let grace_period = secs(
            args.grace_period_secs,
            file.grace_period_secs,
            DEFAULT_GRACE_SECS,
            "grace_period_secs",
        )?;

        let role_arn = args.role_arn.clone().or(file.role_arn.clone());
        let role = match role_arn {
            Some(arn) => {
                if !arn.starts_with("arn:") || arn.split(':').count() < 6 || !arn.contains(":role/")
                {
                    return Err(SetupError::Config(format!(
                        "{}: `{arn}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                        where_("role_arn")
                    )));
                }
                Some(RoleSettings {
                    role_arn: arn,
                    external_id: args.external_id.clone().or(file.external_id.clone()),
                    session_name: args.session_name.clone().or(file.session_name.clone()),
                })
            }
            None => None,
        };

        if args.fresh && args.retry_failures.is_some() {
            return Err(SetupError::Config(
                "--fresh and --retry-failures cannot be used together".into(),
            ));
        }
        let resume = if args.fresh {
            ResumeMode::Fresh
        } else if let Some(kinds) = &args.retry_failures {
            let kinds: Vec<String> = kinds
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty() && k != "all")
                .collect();
            for k in &kinds {
                if !crate::outcome::ErrorKind::ALL
                    .iter()
                    .any(|known| known.as_str() == k)
                {
                    return Err(SetupError::Config(format!(
                        "--retry-failures: unknown kind `{k}` (known: {})",
                        crate::outcome::ErrorKind::ALL
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            ResumeMode::RetryFailures(kinds)
        } else {
            ResumeMode::Continue
        };

        let id_column = file.id_column.clone().unwrap_or_else(|| "id".into());
        let prompt_column = file
            .prompt_column
            .clone()
            .unwrap_or_else(|| "prompt".into());
        let max_row_bytes = file.max_row_bytes.unwrap_or(DEFAULT_MAX_ROW_BYTES);

        Ok(Settings {
            region: args.region.clone().or(file.region.clone()),
            profile: args.profile.clone().or(file.profile.clone()),
            role,
            model,
            api: args.api.or(file.api).unwrap_or(Api::Converse),
            inputs,
            output_dir,
            id_column,
            prompt_column,
            template: file.template.clone(),
            system: file.system.clone(),
            max_tokens,
            temperature,
            top_p: file.top_p,
            stop_sequences: file.stop_sequences.clone().unwrap_or_default(),
            concurrency,
            rpm,
            tpm,
            max_attempts,
            request_timeout,
            row_deadline,
            grace_period,
            max_row_bytes,
            resume,
            allow_duplicate_ids: args.allow_duplicate_ids,
            cost,
            progress_bar: stderr_is_terminal && !args.no_progress,
        })
    }
}

fn missing(key: &str, origin: &Option<PathBuf>) -> String {
    let flag = format!("--{}", key.replace('_', "-").trim_end_matches('s'));
    match origin {
        Some(p) => format!(
            "{}: no `{key}` set (add it to the file or pass {flag})",
            p.display()
        ),
        None => format!(
            "no `{key}`: pass {flag}, or run where a config.toml is (or with --config FILE)"
        ),
    }
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
