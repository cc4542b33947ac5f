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
    /// The model matrix: a list of ids, or `[models."ID"]` tables (see [`Models`]).
    pub models: Option<Models>,
    pub samples: Option<u32>,
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
    /// Several columns that together make a row's id (`eval`'s judge jobs).
    pub id_columns: Option<Vec<String>>,
    // Evaluation keys: resolved by `eval_settings`.
    pub output_schema: Option<PathBuf>,
    pub invalid_output_retries: Option<u32>,
    pub score: Option<Vec<crate::eval::score::ScoreConfig>>,
    // Cost keys: resolved by `cost::settings`.
    pub service_tier: Option<crate::bedrock::request::ServiceTier>,
    pub cache_system: Option<bool>,
    pub max_cost: Option<f64>,
    pub prices: Option<std::collections::BTreeMap<String, crate::cost::price::Price>>,
    /// `s3://BUCKET/PREFIX/` the output files are copied to at the end of a run.
    pub upload: Option<String>,
    /// `[batch]`: read by `submit` and `collect` only (`batch/settings.rs`).
    pub batch: Option<crate::batch::settings::BatchFile>,
}

/// `models` as written: a list of ids (`models = ["a", "b"]`), or one table
/// per model with its own quotas and parameters (`[models."a"] rpm = 600`).
/// TOML cannot give one key both shapes, so a job that needs settings for a
/// model lists every model as a table (an empty `[models."b"]` will do);
/// tables come in id order.
#[derive(Debug, Clone)]
pub enum Models {
    List(Vec<String>),
    Tables(std::collections::BTreeMap<String, ModelSettings>),
}

/// By shape, by hand rather than `untagged`: a mistake inside a table (an
/// unknown key, a wrong type) keeps its own message and line.
impl<'de> Deserialize<'de> for Models {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Models, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = Models;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of model ids, or [models.\"MODEL-ID\"] tables")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Models, A::Error> {
                Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Models::List)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Models, A::Error> {
                Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Models::Tables)
            }
        }
        d.deserialize_any(Shape)
    }
}

/// One model's own settings in a matrix (`[models."MODEL-ID"]`): each
/// overrides the job's key of the same name for that model's calls. Its
/// quotas and concurrency are that model's alone (see `pipeline/lane.rs`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub concurrency: Option<usize>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub service_tier: Option<crate::bedrock::request::ServiceTier>,
}

/// What one model's lane runs at (`Settings::lane_of`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneSettings {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub concurrency: usize,
}

/// A validated job. Built only by [`Settings::resolve`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role: Option<RoleSettings>,
    /// The default model: the first of [`Settings::models`]. Rows whose
    /// `model` column names a model outside the matrix go with it.
    pub model: String,
    /// The matrix: every row goes to each of these (unless its `model`
    /// column pins it to one), `samples` times. Never empty; `models[0] == model`.
    pub models: Vec<String>,
    /// Answers asked of each model per row, numbered 1..=samples.
    pub samples: u32,
    /// `[models."ID"]` settings, by model id (only models that have a table).
    pub model_settings: std::collections::BTreeMap<String, ModelSettings>,
    pub api: Api,
    pub inputs: Vec<PathBuf>,
    pub output_dir: PathBuf,
    pub id_column: String,
    /// With `id_columns`: the columns whose values, joined, are the id
    /// (`input/rows.rs`); empty for the one `id_column`.
    pub id_columns: Vec<String>,
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
    /// `output_schema`, `invalid_output_retries`, `[[score]]`.
    pub eval: crate::eval::EvalSettings,
    /// Draw a progress bar even when stderr is not a terminal? Never: set by
    /// `resolve` from the terminal check so tests and cron get plain lines.
    pub progress_bar: bool,
    /// Where the output files go at the end of a run (`--upload`, `upload`).
    pub upload: Option<crate::output::upload::Destination>,
    /// The `s3://` inputs, checked and pinned by the run before its first pass.
    pub(crate) s3_inputs: Option<std::sync::Arc<crate::input::s3::S3Inputs>>,
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
const DEFAULT_INVALID_OUTPUT_RETRIES: u32 = 1;

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

    /// The config file, for messages about a whole table or entry of it.
    fn place(&self) -> String {
        self.path
            .map_or("config".to_string(), |p| p.display().to_string())
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
            // An `s3://` URI is not a path relative to anything.
            Some(base) if !p.is_absolute() && !crate::input::s3::is_s3(p) => base.join(p),
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

        let (models, model_settings) = matrix(&l, args, f)?;
        let model = models[0].clone();
        let samples = l
            .pick("samples", args.samples, f.samples, between(1, 1000))?
            .unwrap_or(1);
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

        let eval = eval_settings(f, &l)?;
        // `--id-column` names the id for this run, over the file's
        // `id_columns` as every flag is over its key.
        let id_columns = match args.id_column {
            Some(_) => Vec::new(),
            None => id_columns(f, &l)?,
        };

        Ok(Settings {
            region: args.region.clone().or(f.region.clone()),
            profile: args.profile.clone().or(f.profile.clone()),
            role,
            model,
            models,
            samples,
            model_settings,
            api,
            inputs,
            output_dir,
            id_column: args
                .id_column
                .clone()
                .or(f.id_column.clone())
                .or(id_columns.first().cloned())
                .unwrap_or_else(|| "id".into()),
            id_columns,
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
            eval,
            progress_bar: stderr_is_terminal && !args.no_progress,
            upload: match args.upload.as_deref().or(f.upload.as_deref()) {
                Some(u) => Some(crate::output::upload::Destination::parse(u).map_err(|e| {
                    let place = l.path.map_or("--upload".to_string(), |p| {
                        if args.upload.is_some() {
                            "--upload".to_string()
                        } else {
                            format!("{}: upload", p.display())
                        }
                    });
                    anyhow::anyhow!("{place}: {e}")
                })?),
                None => None,
            },
            s3_inputs: None,
        })
    }
}

/// `output_schema` (loaded and compiled: a bad file is a setup error here),
/// `invalid_output_retries` and the `[[score]]` entries.
fn eval_settings(f: &FileConfig, l: &Layers) -> anyhow::Result<crate::eval::EvalSettings> {
    use crate::eval::{schema::OutputSchema, score::Scorer};
    let place = l.place();
    let schema = match &f.output_schema {
        Some(p) => Some(std::sync::Arc::new(OutputSchema::load(
            &l.relative_to_file(p),
        )?)),
        None => None,
    };
    let mut scorers = Vec::new();
    for (i, c) in f.score.iter().flatten().enumerate() {
        let s = Scorer::compile(i + 1, c, schema.is_some())
            .map_err(|e| anyhow::anyhow!("{place}: {e}"))?;
        if scorers.iter().any(|o: &Scorer| o.name == s.name) {
            anyhow::bail!(
                "{place}: [[score]] \"{}\": a second entry with this name",
                s.name
            );
        }
        scorers.push(s);
    }
    if f.invalid_output_retries.is_some() && schema.is_none() {
        anyhow::bail!("{place}: `invalid_output_retries` needs `output_schema`");
    }
    Ok(crate::eval::EvalSettings {
        schema,
        invalid_output_retries: f
            .invalid_output_retries
            .unwrap_or(DEFAULT_INVALID_OUTPUT_RETRIES),
        scorers: std::sync::Arc::new(scorers),
    })
}

/// `id_columns`: at least two distinct columns (one is `id_column`), and
/// not together with `id_column`.
fn id_columns(f: &FileConfig, l: &Layers) -> anyhow::Result<Vec<String>> {
    let Some(cols) = &f.id_columns else {
        return Ok(Vec::new());
    };
    let place = l.place();
    if f.id_column.is_some() {
        anyhow::bail!("{place}: `id_columns` and `id_column` cannot both be set");
    }
    if cols.len() < 2 {
        anyhow::bail!("{place}: `id_columns` needs at least two columns (use `id_column` for one)");
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(c) = cols
        .iter()
        .find(|c| c.trim().is_empty() || !seen.insert(c.as_str()))
    {
        anyhow::bail!("{place}: `id_columns`: `{c}` is empty or named twice");
    }
    Ok(cols.clone())
}

/// The models of the matrix, in order, and their `[models."ID"]` settings.
/// `--model` (repeatable) replaces the file's list; the tables still give
/// the settings of the models they name. The file's `model` with `models`
/// must be one of them, and comes first (it is the default model).
fn matrix(
    l: &Layers,
    args: &RunArgs,
    f: &FileConfig,
) -> anyhow::Result<(
    Vec<String>,
    std::collections::BTreeMap<String, ModelSettings>,
)> {
    let (listed, tables) = match &f.models {
        None => (Vec::new(), Default::default()),
        Some(Models::List(ids)) => (ids.clone(), Default::default()),
        Some(Models::Tables(t)) => (t.keys().cloned().collect(), t.clone()),
    };
    let file_key = |key: &str| l.name(key, Origin::File);
    for (id, m) in &tables {
        let check = |k: &str, r: Result<(), String>| {
            r.map_err(|problem| {
                anyhow::anyhow!("{}: {problem}", file_key(&format!("models.\"{id}\".{k}")))
            })
        };
        if let Some(v) = m.rpm {
            check("rpm", quota(&v))?;
        }
        if let Some(v) = m.tpm {
            check("tpm", quota(&v))?;
        }
        if let Some(v) = m.concurrency {
            check("concurrency", between(1, 4096)(&v))?;
        }
        if let Some(v) = m.max_tokens {
            check("max_tokens", at_least_one(&v))?;
        }
        if let Some(v) = m.temperature {
            check("temperature", unit_range(&v))?;
        }
    }
    let mut models = if !args.model.is_empty() {
        args.model.clone()
    } else if !listed.is_empty() {
        let mut models = listed;
        if let Some(first) = &f.model {
            let Some(at) = models.iter().position(|m| m == first) else {
                anyhow::bail!(
                    "{}: `{first}` is not one of `models`; leave `model` out, or list it in `models`",
                    file_key("model")
                );
            };
            let first = models.remove(at);
            models.insert(0, first);
        }
        models
    } else {
        vec![l.required("model", None, f.model.clone())?]
    };
    if let Some(blank) = models.iter().find(|m| m.trim().is_empty()) {
        anyhow::bail!("models: {blank:?} is not a model id");
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = models.iter().find(|m| !seen.insert(m.as_str())) {
        anyhow::bail!("models: `{twice}` is listed twice");
    }
    models.iter_mut().for_each(|m| *m = m.trim().to_string());
    Ok((models, tables))
}

impl Settings {
    /// `model`'s own setting (`[models."ID"]`), if it has one.
    pub fn model_setting<T>(
        &self,
        model: &str,
        pick: impl Fn(&ModelSettings) -> Option<T>,
    ) -> Option<T> {
        self.model_settings.get(model).and_then(pick)
    }

    /// Model `m`'s lane: its `[models."ID"]` rpm, tpm and concurrency,
    /// each else the job's. The run's lanes and the dry run's time use it.
    pub fn lane_of(&self, m: &str) -> LaneSettings {
        LaneSettings {
            rpm: self.model_setting(m, |s| s.rpm).or(self.rpm),
            tpm: self.model_setting(m, |s| s.tpm).or(self.tpm),
            concurrency: self
                .model_setting(m, |s| s.concurrency)
                .unwrap_or(self.concurrency),
        }
    }

    /// The credentials a command resolves for this job: its region,
    /// profile and role (one place, for the run, S3, CountTokens, batch and
    /// `--upload`).
    pub fn auth(&self) -> crate::bedrock::auth::AuthSettings {
        crate::bedrock::auth::AuthSettings {
            region: self.region.clone(),
            profile: self.profile.clone(),
            role: self.role.clone(),
        }
    }

    /// Units of work per unpinned row: every model, every sample.
    pub fn units_per_row(&self) -> u64 {
        self.models.len() as u64 * u64::from(self.samples)
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
    fn the_id_column_flag_stands_over_the_files_id_columns() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("job.toml");
        std::fs::write(
            &cfg,
            "model = \"m\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\nid_columns = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let file =
            Settings::resolve(&run_args(&["--config", cfg.to_str().unwrap()]), false).unwrap();
        assert_eq!(file.id_columns, ["a", "b"]);
        let flag = run_args(&["--config", cfg.to_str().unwrap(), "--id-column", "key"]);
        let s = Settings::resolve(&flag, false).unwrap();
        assert_eq!(s.id_column, "key");
        assert!(s.id_columns.is_empty(), "{:?}", s.id_columns);
    }

    #[test]
    fn flex_waits_longer_by_default_and_a_set_value_stands() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("job.toml");
        let base = "model = \"m\"\ninputs = [\"in.csv\"]\noutput_dir = \"out\"\n";
        let resolve = |extra: &str| {
            std::fs::write(&cfg, format!("{base}{extra}")).unwrap();
            Settings::resolve(&run_args(&["--config", cfg.to_str().unwrap()]), false).unwrap()
        };
        let standard = resolve("");
        assert_eq!(
            standard.request_timeout.as_secs(),
            DEFAULT_REQUEST_TIMEOUT_SECS
        );
        assert_eq!(standard.row_deadline.as_secs(), DEFAULT_ROW_DEADLINE_SECS);
        let flex = resolve("service_tier = \"flex\"\n");
        assert_eq!(flex.request_timeout.as_secs(), FLEX_REQUEST_TIMEOUT_SECS);
        assert_eq!(flex.row_deadline.as_secs(), FLEX_ROW_DEADLINE_SECS);
        const { assert!(FLEX_REQUEST_TIMEOUT_SECS > DEFAULT_REQUEST_TIMEOUT_SECS) };
        let set = resolve("service_tier = \"flex\"\nrequest_timeout_secs = 60\n");
        assert_eq!(set.request_timeout.as_secs(), 60);
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
    fn a_matrix_from_a_list_from_tables_or_from_repeated_flags() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("job.toml");
        let path = cfg.to_str().unwrap();
        let base = "inputs = [\"in.csv\"]\noutput_dir = \"out\"\n";
        let resolve = |toml: &str, extra: &[&str]| {
            std::fs::write(&cfg, format!("{base}{toml}")).unwrap();
            let mut argv = vec!["--config", path];
            argv.extend_from_slice(extra);
            Settings::resolve(&run_args(&argv), false)
        };
        // One `model`, as before: a matrix of one, one sample.
        let s = resolve("model = \"a\"\n", &[]).unwrap();
        assert_eq!(
            (s.models.clone(), s.samples, s.model),
            (vec!["a".to_string()], 1, "a".into())
        );
        // A list keeps its order; `model` among them comes first.
        let s = resolve(
            "models = [\"b\", \"a\", \"c\"]\nmodel = \"a\"\nsamples = 3\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.models, ["a", "b", "c"]);
        assert_eq!(
            (s.model.as_str(), s.samples, s.units_per_row()),
            ("a", 3, 9)
        );
        // Tables: each model's own settings, validated with their key.
        let tables = "[models.\"a\"]\nrpm = 600\nconcurrency = 2\n[models.\"b\"]\n";
        let s = resolve(tables, &[]).unwrap();
        assert_eq!(s.models, ["a", "b"]);
        assert_eq!(s.model_setting("a", |m| m.rpm), Some(600));
        assert_eq!(s.model_setting("b", |m| m.rpm), None);
        // Repeated --model replaces the file's list; --samples its samples.
        let s = resolve(tables, &["--model", "c", "--model", "a", "--samples", "2"]).unwrap();
        assert_eq!(
            (s.models.clone(), s.samples),
            (vec!["c".to_string(), "a".into()], 2)
        );
        assert_eq!(s.model_setting("a", |m| m.concurrency), Some(2));

        let err = |toml: &str, extra: &[&str]| resolve(toml, extra).unwrap_err().to_string();
        let e = err("[models.\"a\"]\nrpm = 0\n", &[]);
        assert!(
            e.contains("job.toml: `models.\"a\".rpm`: must be at least 1"),
            "{e}"
        );
        let e = err("models = [\"a\", \"a\"]\n", &[]);
        assert!(e.contains("models: `a` is listed twice"), "{e}");
        let e = err("models = [\"a\"]\nmodel = \"z\"\n", &[]);
        assert!(
            e.contains("job.toml: `model`: `z` is not one of `models`"),
            "{e}"
        );
        let e = err("model = \"a\"\n", &["--samples", "0"]);
        assert!(e.contains("--samples: must be between 1 and 1000"), "{e}");
        let e = err("[models.\"a\"]\nrpn = 5\n", &[]);
        assert!(
            e.contains("unknown field `rpn`") && !e.contains('\n'),
            "{e}"
        );
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
