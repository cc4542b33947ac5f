//! One input row → one [`Job`]: its id, the request to send, the columns to carry.
//!
//! The meaning of columns lives here: which one is the id, the prompt, a
//! multi-turn `messages` array, a per-row `system`/`model`/`max_tokens`/
//! `temperature`/`top_p`, a verbatim native `body`; every other column is
//! `meta`, carried to the output row untouched. A row that cannot become a
//! request is a [`Failure`] of kind `input` with its file and line.

use serde_json::{Map, Value};

use crate::bedrock::native;
use crate::bedrock::request::Api;
use crate::bedrock::request::{Message, Request, Role, SchemaFormat, ServiceTier};
use crate::config::Settings;
use crate::eval::schema::{route, Route};
use crate::input::fingerprint;
use crate::input::matrix::pinned_model;
use crate::input::reader::{json_type, Bad, Record};
use crate::input::template::Template;
use crate::outcome::{ErrorInfo, ErrorKind, Failure, Source, Times};

/// A row ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: String,
    /// Which of the matrix's answers for this row and model (1-based).
    pub(crate) sample: u32,
    pub(crate) source: Source,
    pub(crate) request: Request,
    /// The InvokeModel body (api = invoke): a JSONL row's own `body`, sent
    /// verbatim, or the model's native body built from `request`.
    pub(crate) body: Option<Invoke>,
    pub(crate) meta: Map<String, Value>,
    /// Of the request as sent (`fingerprint.rs`): written with the outcome so
    /// a resume can tell the row was edited since.
    pub(crate) fingerprint: String,
}

/// What InvokeModel sends for a row, and how to read the answer.
#[derive(Debug, Clone)]
pub(crate) struct Invoke {
    pub(crate) body: Value,
    /// Known when the body was built for a model family; `None` for a
    /// verbatim body, whose answer is recognised by its shape.
    pub(crate) family: Option<native::Family>,
}

/// Columns with a meaning; everything else is meta.
const RESERVED: [&str; 8] = [
    "service_tier",
    "messages",
    "system",
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "body",
];

/// What each column of a row means under one job's settings: turns a row
/// into a [`Job`], or into the input [`Failure`] it is recorded as.
pub(crate) struct Columns<'a> {
    settings: &'a Settings,
    template: Option<&'a Template>,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(settings: &'a Settings, template: Option<&'a Template>) -> Columns<'a> {
        Columns { settings, template }
    }

    /// The failure a bad row is recorded as for `model`, under `id`: its
    /// final id from the row stream (possibly suffixed, or its stand-in).
    pub(crate) fn failure(&self, bad: Bad, id: String, model: &str) -> Failure {
        input_failure(id, model, bad.source, bad.message, Map::new())
    }

    /// The row as a job to send to `model` (a model of the matrix; a row's
    /// own `model` column still wins), under `id` (its final id from the row
    /// stream), or the input failure saying what is wrong with it. Its
    /// `sample` is the first; the lane sets the others.
    pub(crate) fn job(&self, record: Record, id: String, model: &str) -> Result<Job, Box<Failure>> {
        let Record { source, mut fields } = record;
        let s = self.settings;
        match self.request(&fields, model) {
            Ok((request, body)) => {
                // The id columns go in `meta_of`, with the reserved keys.
                if self.template.is_none() {
                    fields.remove(&s.prompt_column);
                }
                let fingerprint = fingerprint::of(s.api, &request, body.as_ref().map(|b| &b.body));
                Ok(Job {
                    id,
                    sample: crate::input::matrix::FIRST_SAMPLE,
                    source,
                    request,
                    body,
                    meta: meta_of(fields, s),
                    fingerprint,
                })
            }
            Err(message) => Err(Box::new(input_failure(
                id,
                model,
                source,
                message,
                meta_of(fields, s),
            ))),
        }
    }

    /// The request a row asks for, and its InvokeModel body (api = invoke).
    /// `model`'s own `[models."ID"]` settings come over the job's, and the
    /// row's columns over both.
    fn request(
        &self,
        fields: &Map<String, Value>,
        model: &str,
    ) -> Result<(Request, Option<Invoke>), String> {
        let s = self.settings;
        let own = s.model_settings.get(model).cloned().unwrap_or_default();
        let mut request = Request {
            model: model.to_string(),
            system: s.system.clone(),
            messages: Vec::new(),
            max_tokens: own.max_tokens.or(s.max_tokens),
            temperature: own.temperature.or(s.temperature),
            top_p: s.top_p,
            stop_sequences: s.stop_sequences.clone(),
            service_tier: own.service_tier.or(s.cost.service_tier),
            cache_system: s.cost.cache_system,
            output_schema: None,
        };
        // The prompt first, so a template sees every column.
        let rendered = match self.template {
            Some(t) => Some(t.render(fields).map_err(|e| format!("template: {e}"))?),
            None => None,
        };
        apply_row_parameters(fields, &s.id_columns, &mut request)?;
        self.ask_for_schema(&mut request);
        let verbatim = self.verbatim_body(fields)?;
        request.messages = self.messages(fields, rendered, verbatim.is_some())?;
        let body = self.invoke_body(&request, verbatim)?;
        Ok((request, body))
    }

    /// With `output_schema`: the schema as Converse's `outputConfig` for a
    /// model that takes it, else as an instruction after the system prompt.
    fn ask_for_schema(&self, request: &mut Request) {
        let Some(schema) = &self.settings.eval.schema else {
            return;
        };
        match route(&request.model, self.settings.api) {
            Route::Native => {
                request.output_schema = Some(SchemaFormat {
                    name: schema.name.clone(),
                    schema: schema.text.clone(),
                })
            }
            Route::Instruction => {
                let instruction = schema.instruction();
                request.system = Some(match request.system.take() {
                    Some(s) if !s.trim().is_empty() => format!("{s}\n\n{instruction}"),
                    _ => instruction,
                });
            }
        }
    }

    /// A JSONL row's own native body, sent as it is (api = invoke only).
    fn verbatim_body(&self, fields: &Map<String, Value>) -> Result<Option<Value>, String> {
        match fields.get("body") {
            Some(Value::Object(_)) if self.settings.api == Api::Invoke => {
                Ok(fields.get("body").cloned())
            }
            Some(Value::Object(_)) => {
                Err("column `body` (a native InvokeModel body) needs api = \"invoke\"".into())
            }
            _ => Ok(None),
        }
    }

    /// The turns to send: the rendered template, a `messages` column, or the
    /// prompt column. A row with a verbatim body needs none of them.
    fn messages(
        &self,
        fields: &Map<String, Value>,
        rendered: Option<String>,
        has_body: bool,
    ) -> Result<Vec<Message>, String> {
        let column = &self.settings.prompt_column;
        if let Some(text) = rendered {
            if text.trim().is_empty() {
                return Err("empty prompt (the template rendered to nothing)".into());
            }
            return Ok(vec![Message {
                role: Role::User,
                text,
                ..Message::default()
            }]);
        }
        if let Some(messages) = fields.get("messages") {
            return parse_messages(messages).map_err(|e| format!("column `messages`: {e}"));
        }
        if has_body {
            return Ok(Vec::new());
        }
        match fields.get(column) {
            Some(Value::String(p)) if !p.trim().is_empty() => Ok(vec![Message {
                role: Role::User,
                text: p.clone(),
                ..Message::default()
            }]),
            Some(Value::String(_)) | Some(Value::Null) => {
                Err(format!("empty prompt (column `{column}`)"))
            }
            Some(other) => Err(format!(
                "column `{column}` is a {}, expected text",
                json_type(other)
            )),
            None => Err(format!("missing column `{column}`")),
        }
    }

    /// What InvokeModel sends: the verbatim body, or the model family's
    /// native body built from the request. `None` for Converse.
    fn invoke_body(
        &self,
        request: &Request,
        verbatim: Option<Value>,
    ) -> Result<Option<Invoke>, String> {
        if self.settings.api == Api::Converse {
            return Ok(None);
        }
        if let Some(body) = verbatim {
            return Ok(Some(Invoke { body, family: None }));
        }
        let Some(family) = native::family(&request.model) else {
            return Err(format!(
                "model `{}` has no known native body format: use api = \"converse\", or give the row a `body`",
                request.model
            ));
        };
        let body = native::request_body(family, request).map_err(|e| e.to_string())?;
        Ok(Some(Invoke {
            body,
            family: Some(family),
        }))
    }
}

/// A row's own `system`, `model`, `max_tokens`, `temperature`, `top_p` and
/// `service_tier` over the job's; a blank cell keeps the job's value. A
/// column that is one of `id_columns` says which row this is (a judged
/// answer's `model`), not how to send it.
fn apply_row_parameters(
    fields: &Map<String, Value>,
    id_columns: &[String],
    request: &mut Request,
) -> Result<(), String> {
    let given = |key: &str| -> Option<&Value> {
        if id_columns.iter().any(|c| c == key) {
            return None;
        }
        match fields.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(v)) if v.trim().is_empty() => None,
            Some(v) => Some(v),
        }
    };
    let text = |key: &str, v: &Value| match v {
        Value::String(v) => Ok(v.clone()),
        other => Err(format!(
            "column `{key}` is a {}, expected text",
            json_type(other)
        )),
    };
    if let Some(v) = given("system") {
        request.system = Some(text("system", v)?);
    }
    if let Some(m) = pinned_model(fields, id_columns) {
        request.model = m?.to_string();
    }
    if let Some(v) = given("max_tokens") {
        match as_u32(v) {
            Some(n) if n > 0 => request.max_tokens = Some(n),
            _ => {
                return Err(format!(
                    "column `max_tokens`: {} is not a whole number above 0",
                    short(v)
                ))
            }
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = given(key) {
            let x = as_f32(v)
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| {
                    format!("column `{key}`: {} is not a number from 0 to 1", short(v))
                })?;
            if key == "temperature" {
                request.temperature = Some(x);
            } else {
                request.top_p = Some(x);
            }
        }
    }
    if let Some(v) = given("service_tier") {
        let tier = v.as_str().and_then(ServiceTier::parse).ok_or_else(|| {
            format!(
                "column `service_tier`: {} is not default, flex or priority",
                short(v)
            )
        })?;
        request.service_tier = Some(tier);
    }
    Ok(())
}

fn input_failure(
    id: String,
    model: &str,
    source: Source,
    message: String,
    meta: Map<String, Value>,
) -> Failure {
    Failure {
        id,
        model: model.to_string(),
        sample: crate::input::matrix::FIRST_SAMPLE,
        error: ErrorInfo {
            kind: ErrorKind::Input,
            code: "InvalidRow".into(),
            message: format!("{source}: {message}"),
        },
        attempts: 0,
        output: None,
        usage: None,
        cost_usd: None,
        source,
        meta,
        // Never sent: it starts and ends when it is read.
        times: Times::since(std::time::SystemTime::now(), 0),
        fingerprint: None,
    }
}

fn meta_of(mut fields: Map<String, Value>, s: &Settings) -> Map<String, Value> {
    fields.remove(&s.id_column);
    for c in &s.id_columns {
        fields.remove(c);
    }
    for k in RESERVED {
        fields.remove(k);
    }
    fields
}

/// Converse-form messages: `[{"role":"user","content":[{"text":"…"}]}, …]`;
/// `content` may also be a plain string.
fn parse_messages(v: &Value) -> Result<Vec<Message>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            "expected an array of messages, got a {}",
            json_type(v)
        ));
    };
    if items.is_empty() {
        return Err("no messages".into());
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let n = i + 1;
        let role = match m.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(r) => {
                return Err(format!(
                    "message {n}: role `{r}` (expected user or assistant)"
                ))
            }
            None => return Err(format!("message {n}: no role")),
        };
        let mut cache_after = Vec::new();
        let text = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(blocks)) => {
                let mut joined = String::new();
                for b in blocks {
                    if b.get("cachePoint").is_some() {
                        // Converse form, passed through: `{"cachePoint": {"type": "default"}}`.
                        if !joined.is_empty() && cache_after.last() != Some(&joined.len()) {
                            cache_after.push(joined.len());
                        }
                        continue;
                    }
                    match b.get("text").and_then(Value::as_str) {
                        Some(t) => {
                            if !joined.is_empty() {
                                joined.push('\n');
                            }
                            joined.push_str(t);
                        }
                        None => {
                            return Err(format!(
                                "message {n}: only text and cachePoint content blocks are supported"
                            ))
                        }
                    }
                }
                joined
            }
            _ => return Err(format!("message {n}: no content")),
        };
        if text.trim().is_empty() {
            return Err(format!("message {n}: empty text"));
        }
        if out.last().map(|p: &Message| p.role) == Some(role) {
            return Err(format!(
                "message {n}: two {} turns in a row",
                if role == Role::User {
                    "user"
                } else {
                    "assistant"
                }
            ));
        }
        if i == 0 && role != Role::User {
            return Err("the first message must be from the user".into());
        }
        out.push(Message {
            role,
            text,
            cache_after,
        });
    }
    if out.last().map(|m| m.role) != Some(Role::User) {
        return Err("the last message must be from the user".into());
    }
    Ok(out)
}

fn as_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f32(v: &Value) -> Option<f32> {
    match v {
        Value::Number(n) => n.as_f64().map(|x| x as f32),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A cell's value as quoted in a message.
fn short(v: &Value) -> String {
    crate::error::clip(&v.to_string(), 40)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResumeMode;
    use serde_json::json;
    use std::time::Duration;

    fn settings() -> Settings {
        Settings {
            region: None,
            profile: None,
            role: None,
            model: "m-default".into(),
            models: vec!["m-default".into()],
            samples: 1,
            model_settings: Default::default(),
            api: Api::Converse,
            inputs: vec![],
            output_dir: "o".into(),
            id_column: "id".into(),
            id_columns: vec![],
            prompt_column: "prompt".into(),
            template: None,
            system: Some("sys".into()),
            max_tokens: Some(100),
            temperature: None,
            top_p: None,
            stop_sequences: vec![],
            concurrency: 1,
            rpm: None,
            tpm: None,
            max_attempts: 1,
            request_timeout: Duration::from_secs(1),
            row_deadline: Duration::from_secs(1),
            grace_period: Duration::from_secs(1),
            max_row_bytes: 1000,
            resume: ResumeMode::Continue,
            on_changed: crate::config::OnChanged::Refuse,
            allow_duplicate_ids: false,
            include_prompt: false,
            stream: false,
            cost: Default::default(),
            eval: Default::default(),
            progress_bar: false,
            upload: None,
            s3_inputs: None,
        }
    }

    fn record(v: Value) -> Record {
        Record {
            source: Source {
                file: "p.jsonl".into(),
                line: 7,
            },
            fields: v.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn prompt_row_with_overrides_and_meta() {
        let s = settings();
        let b = Columns::new(&s, None);
        let job = b
            .job(
                record(json!({"id": "a", "prompt": "hi", "model": "m2", "max_tokens": "50", "temperature": 0.5, "expected": "x", "label": 3})),
                "a".into(),
                "m-default",
            )
            .unwrap();
        assert_eq!(job.request.model, "m2");
        assert_eq!(job.request.max_tokens, Some(50));
        assert_eq!(job.request.temperature, Some(0.5));
        assert_eq!(job.request.system.as_deref(), Some("sys"));
        assert_eq!(
            job.request.messages,
            vec![Message {
                role: Role::User,
                text: "hi".into(),
                ..Message::default()
            }]
        );
        assert_eq!(
            Value::Object(job.meta),
            json!({"expected": "x", "label": 3})
        );
    }

    #[test]
    fn a_models_own_settings_come_over_the_jobs_and_the_row_over_both() {
        let mut s = settings();
        s.models.push("m2".into());
        s.model_settings.insert(
            "m2".into(),
            crate::config::ModelSettings {
                max_tokens: Some(20),
                temperature: Some(0.9),
                ..Default::default()
            },
        );
        let b = Columns::new(&s, None);
        let plain = json!({"id": "a", "prompt": "hi"});
        let job = b.job(record(plain.clone()), "a".into(), "m2").unwrap();
        assert_eq!(job.request.model, "m2");
        assert_eq!(
            (job.request.max_tokens, job.request.temperature),
            (Some(20), Some(0.9))
        );
        let job = b.job(record(plain), "a".into(), "m-default").unwrap();
        assert_eq!(
            (job.request.max_tokens, job.request.temperature),
            (Some(100), None)
        );
        let row = json!({"id": "a", "prompt": "hi", "max_tokens": 7});
        let job = b.job(record(row), "a".into(), "m2").unwrap();
        assert_eq!(job.request.max_tokens, Some(7));
    }

    #[test]
    fn multi_turn_messages() {
        let s = settings();
        let job = Columns::new(&s, None)
            .job(
                record(json!({"id": 1, "messages": [
                    {"role": "user", "content": [{"text": "a"}]},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"}]})),
                "1".into(),
                "m-default",
            )
            .unwrap();
        assert_eq!(job.request.messages.len(), 3);
        let err = Columns::new(&s, None)
            .job(
                record(json!({"id": 1, "messages": [{"role": "assistant", "content": "b"}]})),
                "1".into(),
                "m-default",
            )
            .unwrap_err();
        assert!(
            err.error
                .message
                .contains("column `messages`: the first message must be from the user"),
            "{}",
            err.error.message
        );
    }

    #[test]
    fn bad_rows_name_the_problem_and_location() {
        let s = settings();
        let b = Columns::new(&s, None);
        let cases = [
            (
                json!({"id": "x"}),
                "p.jsonl: line 7: missing column `prompt`",
            ),
            (
                json!({"id": "x", "prompt": "  "}),
                "p.jsonl: line 7: empty prompt (column `prompt`)",
            ),
            (
                json!({"id": "x", "prompt": 5}),
                "p.jsonl: line 7: column `prompt` is a number, expected text",
            ),
            (
                json!({"id": "x", "prompt": "p", "max_tokens": "lots"}),
                "p.jsonl: line 7: column `max_tokens`: \"lots\" is not a whole number above 0",
            ),
            (
                json!({"id": "x", "prompt": "p", "temperature": 3}),
                "p.jsonl: line 7: column `temperature`: 3 is not a number from 0 to 1",
            ),
        ];
        for (row, want) in cases {
            let f = b.job(record(row), "x".into(), "m-default").unwrap_err();
            assert_eq!(f.error.kind, ErrorKind::Input);
            assert_eq!(f.error.message, want);
            assert_eq!(f.attempts, 0);
        }
    }

    #[test]
    fn template_rows_keep_all_columns_as_meta() {
        let mut s = settings();
        s.template = Some("Q: {{ question }}".into());
        let t = Template::compile(s.template.as_deref().unwrap()).unwrap();
        let job = Columns::new(&s, Some(&t))
            .job(
                record(json!({"id": "q1", "question": "why?", "answer": "because"})),
                "q1".into(),
                "m-default",
            )
            .unwrap();
        assert_eq!(job.request.messages[0].text, "Q: why?");
        assert_eq!(
            Value::Object(job.meta),
            json!({"question": "why?", "answer": "because"})
        );
    }
}
