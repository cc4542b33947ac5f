//! The Bedrock control plane for model invocation jobs (Batch Inference):
//! CreateModelInvocationJob, GetModelInvocationJob, ListModelInvocationJobs
//! and StopModelInvocationJob over restJson1, as `aws-sdk-bedrock` sends them
//! through `AWS_ENDPOINT_URL_BEDROCK`.
//!
//! This file is the registry and the HTTP face: validation of a create
//! request, `clientRequestToken` idempotency, the concurrent-jobs quota, the
//! job's fields as Get and List render them. Running a job (reading its
//! records from the emulator's S3 directory, answering them, writing
//! `.jsonl.out` and `manifest.json.out`) is `batch_run.rs`. It is not S3:
//! the emulator's S3 serves the same directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::auth::{self, Service};
use super::batch_run;
use super::fault::Fault;
use super::server::{Reply, Server, Trace};

/// Knobs of the emulated Batch Inference service. The figures default to
/// AWS's quota page ("Minimum number of records per batch inference job",
/// "Records per batch inference job", "Sum of in-progress and submitted batch
/// inference jobs using a base model"); the times default to a fast queue so
/// a demo finishes while one watches.
#[derive(Clone, Debug)]
pub struct InvocationJobConfig {
    /// Time from Submitted to InProgress (spent in Validating and Scheduled).
    pub queue: Duration,
    /// Processing time of one record.
    pub record_time: Duration,
    /// What one hour of `timeoutDurationInHours` lasts here, so a test can
    /// watch a job expire or time out part-way without waiting a day.
    pub hour: Duration,
    /// A job with fewer records fails validation.
    pub min_records: usize,
    /// A job with more records fails validation.
    pub max_records: usize,
    /// Jobs per model that may be submitted or in progress at once; one more
    /// CreateModelInvocationJob is a ServiceQuotaExceededException.
    pub max_concurrent: usize,
    /// Role ARNs (or prefixes) the caller may not pass: CreateModelInvocationJob
    /// answers AccessDeniedException for `iam:PassRole`, as IAM does.
    pub unpassable_roles: Vec<String>,
}

impl Default for InvocationJobConfig {
    fn default() -> Self {
        InvocationJobConfig {
            queue: Duration::from_millis(200),
            record_time: Duration::ZERO,
            hour: Duration::from_secs(3600),
            min_records: 100,
            max_records: 50_000,
            max_concurrent: 20,
            unpassable_roles: Vec::new(),
        }
    }
}

/// Every job created so far, and the tokens that created them.
#[derive(Default)]
pub struct InvocationJobs {
    state: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    jobs: Vec<Arc<Mutex<JobState>>>,
    by_token: HashMap<String, usize>,
    created: u64,
}

/// A model invocation job's status, as the SDK's `ModelInvocationJobStatus` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Submitted,
    Validating,
    Scheduled,
    InProgress,
    Completed,
    PartiallyCompleted,
    Failed,
    Stopping,
    Stopped,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "Submitted",
            Status::Validating => "Validating",
            Status::Scheduled => "Scheduled",
            Status::InProgress => "InProgress",
            Status::Completed => "Completed",
            Status::PartiallyCompleted => "PartiallyCompleted",
            Status::Failed => "Failed",
            Status::Stopping => "Stopping",
            Status::Stopped => "Stopped",
            Status::Expired => "Expired",
        }
    }

    /// Counts against the concurrent-jobs quota and may still be stopped.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Submitted
                | Status::Validating
                | Status::Scheduled
                | Status::InProgress
                | Status::Stopping
        )
    }
}

/// One job, as Get and List report it, plus what `batch_run` needs.
pub struct JobState {
    pub arn: String,
    pub id: String,
    pub name: String,
    pub model_id: String,
    pub token: Option<String>,
    pub role_arn: String,
    pub invocation_type: Option<String>,
    pub input_uri: String,
    pub output_uri: String,
    pub timeout_hours: i64,
    pub status: Status,
    pub message: Option<String>,
    pub submit_time: SystemTime,
    pub last_modified: SystemTime,
    pub end_time: Option<SystemTime>,
    pub expiration: SystemTime,
    pub total: Option<u64>,
    pub processed: u64,
    pub success: u64,
    pub error: u64,
    /// Cancelled by StopModelInvocationJob.
    pub stop: CancellationToken,
}

impl JobState {
    pub fn set_status(&mut self, s: Status) {
        self.status = s;
        self.last_modified = SystemTime::now();
        if !s.is_active() {
            self.end_time = Some(self.last_modified);
        }
    }

    fn render(&self) -> Value {
        let t = |t: SystemTime| crate::time::rfc3339_ms(t);
        let mut v = json!({
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "roleArn": self.role_arn,
            "status": self.status.as_str(),
            "submitTime": t(self.submit_time),
            "lastModifiedTime": t(self.last_modified),
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": self.input_uri, "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "timeoutDurationInHours": self.timeout_hours,
            "jobExpirationTime": t(self.expiration),
        });
        let o = v.as_object_mut().expect("built as an object");
        if let Some(tok) = &self.token {
            o.insert("clientRequestToken".into(), tok.as_str().into());
        }
        if let Some(m) = &self.message {
            o.insert("message".into(), m.as_str().into());
        }
        if let Some(e) = self.end_time {
            o.insert("endTime".into(), t(e).into());
        }
        if let Some(it) = &self.invocation_type {
            o.insert("modelInvocationType".into(), it.as_str().into());
        }
        // Bedrock reports the counts once the job has been validated.
        if let Some(total) = self.total {
            o.insert("totalRecordCount".into(), total.into());
            o.insert("processedRecordCount".into(), self.processed.into());
            o.insert("successRecordCount".into(), self.success.into());
            o.insert("errorRecordCount".into(), self.error.into());
        }
        v
    }
}

/// Handles `/model-invocation-job…` paths; `None` when the path is not one of them.
pub async fn handle(
    server: &Arc<Server>,
    parts: &Parts,
    body: &Bytes,
    trace: &mut Trace,
) -> Option<Reply> {
    let path = parts.uri.path();
    let reply = if path == "/model-invocation-job" && parts.method == Method::POST {
        trace.operation = "CreateModelInvocationJob";
        with_auth(server, parts, body, trace, |trace| {
            create(server, body, trace)
        })
    } else if path == "/model-invocation-jobs" && parts.method == Method::GET {
        trace.operation = "ListModelInvocationJobs";
        with_auth(server, parts, body, trace, |trace| {
            list(server, parts, trace)
        })
    } else if let Some(rest) = path.strip_prefix("/model-invocation-job/") {
        let (raw, stop) = match rest.strip_suffix("/stop") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        let ident = percent_decode_str(raw).decode_utf8_lossy().into_owned();
        match (stop, &parts.method) {
            (true, &Method::POST) => {
                trace.operation = "StopModelInvocationJob";
                with_auth(server, parts, body, trace, |trace| {
                    stop_job(server, &ident, trace)
                })
            }
            (false, &Method::GET) => {
                trace.operation = "GetModelInvocationJob";
                with_auth(server, parts, body, trace, |trace| {
                    get(server, &ident, trace)
                })
            }
            _ => return None,
        }
    } else {
        return None;
    };
    Some(reply)
}

fn with_auth(
    server: &Server,
    parts: &Parts,
    body: &[u8],
    trace: &mut Trace,
    f: impl FnOnce(&mut Trace) -> Reply,
) -> Reply {
    match auth::check(server, parts, body, Service::Bedrock) {
        Ok(_) => f(trace),
        Err((fault, msg)) => server.bedrock_error(fault, msg.as_deref(), trace),
    }
}

fn validation(server: &Server, trace: &mut Trace, msg: &str) -> Reply {
    server.bedrock_error(Fault::Validation, Some(msg), trace)
}

/// Bedrock's `ModelInvocationJobName` pattern: `[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}`.
pub fn valid_job_name(name: &str) -> bool {
    let b = name.as_bytes();
    let lead = b.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
    (1..=63).contains(&lead)
        && b.len() - lead <= 63 * 2
        && b[lead..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && b.len() <= 63 + 63 * 2
}

fn create(server: &Arc<Server>, body: &[u8], trace: &mut Trace) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return validation(server, trace, "The request body is not a JSON object."),
    };
    let s = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(name), Some(role_arn), Some(model_id)) = (s("jobName"), s("roleArn"), s("modelId"))
    else {
        return validation(
            server,
            trace,
            "1 validation error detected: jobName, roleArn and modelId are required.",
        );
    };
    trace.model = Some(model_id.clone());
    let input_uri = req
        .pointer("/inputDataConfig/s3InputDataConfig/s3Uri")
        .and_then(Value::as_str);
    let output_uri = req
        .pointer("/outputDataConfig/s3OutputDataConfig/s3Uri")
        .and_then(Value::as_str);
    let (Some(input_uri), Some(output_uri)) = (input_uri, output_uri) else {
        return validation(
            server,
            trace,
            "1 validation error detected: inputDataConfig and outputDataConfig must each name an s3Uri.",
        );
    };
    if !valid_job_name(&name) {
        let msg = format!("1 validation error detected: Value '{name}' at 'jobName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9]{{1,63}}(-*[a-zA-Z0-9\\+\\-\\.]){{0,63}}");
        return validation(server, trace, &msg);
    }
    if !valid_role_arn(&role_arn) {
        let msg = format!("1 validation error detected: Value '{role_arn}' at 'roleArn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws(-[^:]+)?:iam::([0-9]{{12}})?:role/.+");
        return validation(server, trace, &msg);
    }
    for uri in [input_uri, output_uri] {
        if !uri.starts_with("s3://") || uri.len() <= 5 {
            let msg = format!("1 validation error detected: Value '{uri}' is not a valid S3 URI.");
            return validation(server, trace, &msg);
        }
    }
    let timeout_hours = req
        .get("timeoutDurationInHours")
        .and_then(Value::as_i64)
        .unwrap_or(168);
    if !(24..=168).contains(&timeout_hours) {
        let msg = format!("1 validation error detected: Value '{timeout_hours}' at 'timeoutDurationInHours' failed to satisfy constraint: Member must have value between 24 and 168");
        return validation(server, trace, &msg);
    }
    let invocation_type = s("modelInvocationType");
    if let Some(t) = &invocation_type {
        if t != "Converse" && t != "InvokeModel" {
            let msg = format!("1 validation error detected: Value '{t}' at 'modelInvocationType' failed to satisfy constraint: Member must satisfy enum value set: [InvokeModel, Converse]");
            return validation(server, trace, &msg);
        }
    }
    if server
        .cfg
        .invocation_jobs
        .unpassable_roles
        .iter()
        .any(|p| role_arn.starts_with(p.as_str()))
    {
        let msg = format!(
            "User: arn:aws:iam::{}:user/DeveloperUser is not authorized to perform: iam:PassRole on resource: {role_arn}",
            server.cfg.account_id
        );
        return server.bedrock_error(Fault::AccessDenied, Some(&msg), trace);
    }
    let token = s("clientRequestToken");

    let cfg = &server.cfg.invocation_jobs;
    let job = {
        let mut reg = server
            .invocation_jobs
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // AWS: "If this token matches a previous request, Amazon Bedrock
        // ignores the request, but does not return an error." The first job's
        // ARN comes back and nothing new is billed.
        if let Some(&i) = token.as_ref().and_then(|t| reg.by_token.get(t)) {
            let arn = reg.jobs[i]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .arn
                .clone();
            return server.reply(
                StatusCode::OK,
                "application/json",
                json!({ "jobArn": arn }).to_string(),
            );
        }
        let active = reg
            .jobs
            .iter()
            .filter(|j| {
                let j = j.lock().unwrap_or_else(|e| e.into_inner());
                j.model_id == model_id && j.status.is_active()
            })
            .count();
        if active >= cfg.max_concurrent {
            let msg = format!(
                "You have reached the quota of {} submitted and in-progress batch inference jobs for model {model_id}. Wait for a job to finish or stop one.",
                cfg.max_concurrent
            );
            return server.bedrock_error(Fault::ServiceQuotaExceeded, Some(&msg), trace);
        }
        reg.created += 1;
        let id = job_id(server, reg.created);
        let now = SystemTime::now();
        let arn = format!(
            "arn:aws:bedrock:{}:{}:model-invocation-job/{id}",
            server.cfg.region, server.cfg.account_id
        );
        let job = Arc::new(Mutex::new(JobState {
            arn,
            id,
            name,
            model_id,
            token: token.clone(),
            role_arn,
            invocation_type,
            input_uri: input_uri.to_owned(),
            output_uri: output_uri.to_owned(),
            timeout_hours,
            status: Status::Submitted,
            message: None,
            submit_time: now,
            last_modified: now,
            end_time: None,
            expiration: now + cfg.hour * timeout_hours as u32,
            total: None,
            processed: 0,
            success: 0,
            error: 0,
            stop: CancellationToken::new(),
        }));
        reg.jobs.push(job.clone());
        if let Some(t) = token {
            let i = reg.jobs.len() - 1;
            reg.by_token.insert(t, i);
        }
        job
    };
    let arn = job.lock().unwrap_or_else(|e| e.into_inner()).arn.clone();
    tokio::spawn(batch_run::run(server.clone(), job));
    server.reply(
        StatusCode::OK,
        "application/json",
        json!({ "jobArn": arn }).to_string(),
    )
}

fn valid_role_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws") else {
        return false;
    };
    let Some((_, after)) = rest.split_once(":iam::") else {
        return false;
    };
    match after.split_once(":role/") {
        Some((acct, name)) => {
            (acct.is_empty() || (acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit())))
                && !name.is_empty()
        }
        None => false,
    }
}

/// Twelve lowercase alphanumerics, as Bedrock's job ids look.
fn job_id(server: &Server, n: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = super::model::fnv1a(format!("{}:{n}", server.request_id()).as_bytes());
    (0..12)
        .map(|_| {
            let c = ALPHABET[(x % 36) as usize] as char;
            x /= 36;
            if x == 0 {
                x = super::model::fnv1a(&n.to_le_bytes()) | 1;
            }
            c
        })
        .collect()
}

fn find(server: &Server, ident: &str) -> Option<Arc<Mutex<JobState>>> {
    let reg = server
        .invocation_jobs
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    reg.jobs
        .iter()
        .find(|j| {
            let j = j.lock().unwrap_or_else(|e| e.into_inner());
            j.arn == ident || j.id == ident
        })
        .cloned()
}

fn not_found(server: &Server, ident: &str, trace: &mut Trace) -> Reply {
    let msg = format!("The specified job {ident} could not be found.");
    server.bedrock_error(Fault::ResourceNotFound, Some(&msg), trace)
}

fn get(server: &Server, ident: &str, trace: &mut Trace) -> Reply {
    let Some(job) = find(server, ident) else {
        return not_found(server, ident, trace);
    };
    let body = job.lock().unwrap_or_else(|e| e.into_inner()).render();
    server.reply(StatusCode::OK, "application/json", body.to_string())
}

fn stop_job(server: &Server, ident: &str, trace: &mut Trace) -> Reply {
    let Some(job) = find(server, ident) else {
        return not_found(server, ident, trace);
    };
    let mut j = job.lock().unwrap_or_else(|e| e.into_inner());
    if !j.status.is_active() {
        let msg = format!(
            "The job {} is {} and cannot be stopped.",
            j.arn,
            j.status.as_str()
        );
        drop(j);
        return validation(server, trace, &msg);
    }
    if j.status != Status::Stopping {
        j.set_status(Status::Stopping);
        j.stop.cancel();
    }
    server.reply(StatusCode::OK, "application/json", "{}")
}

fn list(server: &Server, parts: &Parts, _trace: &mut Trace) -> Reply {
    let mut status_equals = None;
    let mut name_contains = None;
    let mut max_results = 1000usize;
    let mut next: usize = 0;
    let mut descending = true;
    for kv in parts.uri.query().unwrap_or("").split('&') {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let v = percent_decode_str(v).decode_utf8_lossy().into_owned();
        match k {
            "statusEquals" => status_equals = Some(v),
            "nameContains" => name_contains = Some(v),
            "maxResults" => max_results = v.parse().unwrap_or(max_results).clamp(1, 1000),
            "nextToken" => next = v.parse().unwrap_or(0),
            "sortOrder" => descending = v != "Ascending",
            _ => {}
        }
    }
    let reg = server
        .invocation_jobs
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<Value> = reg
        .jobs
        .iter()
        .filter_map(|j| {
            let j = j.lock().unwrap_or_else(|e| e.into_inner());
            let keep = status_equals
                .as_deref()
                .is_none_or(|s| s == j.status.as_str())
                && name_contains.as_deref().is_none_or(|n| j.name.contains(n));
            keep.then(|| j.render())
        })
        .collect();
    drop(reg);
    if descending {
        all.reverse();
    }
    let page: Vec<Value> = all.iter().skip(next).take(max_results).cloned().collect();
    let mut body = json!({ "invocationJobSummaries": page });
    if next + max_results < all.len() {
        body["nextToken"] = (next + max_results).to_string().into();
    }
    server.reply(StatusCode::OK, "application/json", body.to_string())
}

/// Where the emulator's S3 keeps `s3://BUCKET/KEY`: `ROOT/BUCKET/KEY`, the
/// layout of the directory the emulator's S3 serves.
pub fn object_path(root: &std::path::Path, uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || key.split('/').any(|seg| seg == "..") {
        return None;
    }
    Some(root.join(bucket).join(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_follow_bedrocks_pattern() {
        assert!(valid_job_name("nightly-1"));
        assert!(valid_job_name("a"));
        assert!(!valid_job_name(""));
        assert!(!valid_job_name("-lead"));
        assert!(!valid_job_name("has space"));
        assert!(!valid_job_name("under_score"));
    }

    #[test]
    fn role_arns_must_name_a_role() {
        assert!(valid_role_arn(
            "arn:aws:iam::123456789012:role/BedrockBatchRole"
        ));
        assert!(!valid_role_arn("arn:aws:iam::123456789012:user/me"));
        assert!(!valid_role_arn("BedrockBatchRole"));
    }

    #[test]
    fn object_paths_stay_under_the_root() {
        let root = std::path::Path::new("/r");
        assert_eq!(
            object_path(root, "s3://b/in/x.jsonl"),
            Some(PathBuf::from("/r/b/in/x.jsonl"))
        );
        assert_eq!(object_path(root, "s3://b/../etc"), None);
        assert_eq!(object_path(root, "http://b/x"), None);
    }
}
