//! The `[batch]` table of a job file, and Bedrock Batch Inference's limits.
//!
//! The limits default to AWS's "Quotas for Amazon Bedrock" page (Batch
//! inference): at least 100 records per job, at most 50,000 records per input
//! file and per job, 1 GB per input file, 5 GB per job, and 20 submitted or
//! in-progress jobs per base model. Quotas vary by model and account (some
//! can be raised), so each one is a key here.

use serde::Deserialize;

use crate::bedrock::request::Api;
use crate::input::s3::S3Uri;

/// `[batch]` as written; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    /// `s3://bucket/prefix/`: inputs go under `PREFIX/input/`, outputs under `PREFIX/output/`.
    pub s3_uri: Option<String>,
    /// The service role Bedrock assumes to read the inputs and write the outputs.
    pub role_arn: Option<String>,
    pub timeout_hours: Option<u32>,
    /// Prefix of every job name (`NAME-PART`).
    pub job_name: Option<String>,
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// `converse` or `invoke`: the record format (`modelInvocationType`); follows `api`.
    pub invocation: Option<Api>,
    pub records_per_file: Option<u64>,
    pub bytes_per_file: Option<u64>,
    pub records_per_job: Option<u64>,
    pub bytes_per_job: Option<u64>,
    pub min_records: Option<u64>,
    pub max_concurrent_jobs: Option<u64>,
    /// First wait between two polls of a job's status, in seconds; it doubles up to 5 minutes.
    pub poll_secs: Option<f64>,
}

/// `[batch]` resolved: what `submit` and `collect` use.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchSettings {
    pub s3_uri: String,
    pub role_arn: String,
    pub timeout_hours: u32,
    pub job_name: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub converse: bool,
    pub limits: Limits,
    pub poll_secs: f64,
}

/// Bedrock's batch quotas the splitter keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub records_per_file: u64,
    pub bytes_per_file: u64,
    pub records_per_job: u64,
    pub bytes_per_job: u64,
    pub min_records: u64,
    pub max_concurrent_jobs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            records_per_file: 50_000,
            bytes_per_file: 1_000_000_000,
            records_per_job: 50_000,
            bytes_per_job: 5_000_000_000,
            min_records: 100,
            max_concurrent_jobs: 20,
        }
    }
}

impl BatchSettings {
    /// `[batch]` over defaults; `api` is the job's, which `invocation` follows.
    /// `s3_uri` and `role_arn` may also come from the flags (`over`).
    pub fn resolve(
        file: Option<&BatchFile>,
        api: Api,
        s3_uri: Option<&str>,
        role_arn: Option<&str>,
    ) -> anyhow::Result<BatchSettings> {
        let f = file.cloned().unwrap_or_default();
        let s3_uri = s3_uri.map(str::to_owned).or(f.s3_uri).ok_or_else(|| {
            anyhow::anyhow!("[batch] s3_uri: not set (the S3 prefix for the job's records and outputs, e.g. s3://my-bucket/bedrock-batch/)")
        })?;
        parse_s3_uri(&s3_uri)?;
        let role_arn = role_arn.map(str::to_owned).or(f.role_arn).ok_or_else(|| {
            anyhow::anyhow!("[batch] role_arn: not set (the service role Bedrock assumes; `bedrock-batch policy --batch` prints it)")
        })?;
        if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
            anyhow::bail!("[batch] role_arn: {role_arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)");
        }
        let timeout_hours = f.timeout_hours.unwrap_or(24);
        if !(24..=168).contains(&timeout_hours) {
            anyhow::bail!(
                "[batch] timeout_hours: {timeout_hours} is outside Bedrock's range of 24 to 168"
            );
        }
        let job_name = f.job_name.unwrap_or_else(|| "bedrock-batch".into());
        if job_name.is_empty()
            || job_name.len() > 50
            || !job_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || !job_name.as_bytes()[0].is_ascii_alphanumeric()
        {
            anyhow::bail!("[batch] job_name: {job_name:?} must be 1 to 50 letters, digits and dashes, starting with a letter or digit");
        }
        let d = Limits::default();
        let limits = Limits {
            records_per_file: f.records_per_file.unwrap_or(d.records_per_file),
            bytes_per_file: f.bytes_per_file.unwrap_or(d.bytes_per_file),
            records_per_job: f.records_per_job.unwrap_or(d.records_per_job),
            bytes_per_job: f.bytes_per_job.unwrap_or(d.bytes_per_job),
            min_records: f.min_records.unwrap_or(d.min_records),
            max_concurrent_jobs: f.max_concurrent_jobs.unwrap_or(d.max_concurrent_jobs),
        };
        for (key, v) in [
            ("records_per_file", limits.records_per_file),
            ("bytes_per_file", limits.bytes_per_file),
            ("records_per_job", limits.records_per_job),
            ("bytes_per_job", limits.bytes_per_job),
            ("max_concurrent_jobs", limits.max_concurrent_jobs),
        ] {
            if v == 0 {
                anyhow::bail!("[batch] {key}: must be at least 1");
            }
        }
        if limits.min_records > limits.records_per_job {
            anyhow::bail!(
                "[batch] min_records: {} is more than records_per_job ({})",
                limits.min_records,
                limits.records_per_job
            );
        }
        let poll_secs = f.poll_secs.unwrap_or(30.0);
        if !(poll_secs.is_finite() && poll_secs > 0.0) {
            anyhow::bail!("[batch] poll_secs: must be a positive number of seconds");
        }
        Ok(BatchSettings {
            s3_uri,
            role_arn,
            timeout_hours,
            job_name,
            tags: f.tags.unwrap_or_default(),
            converse: f.invocation.unwrap_or(api) == Api::Converse,
            limits,
            poll_secs,
        })
    }
}

/// `s3://BUCKET/PREFIX` → (bucket, prefix without a trailing `/`).
pub fn parse_s3_uri(uri: &str) -> anyhow::Result<(String, String)> {
    // The inputs' parser (`input/s3.rs`), with the key this came from.
    let S3Uri { bucket, key } =
        S3Uri::parse(uri).map_err(|e| anyhow::anyhow!("[batch] s3_uri: {e:#}"))?;
    Ok((bucket, key.trim_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/BedrockBatchServiceRole";

    #[test]
    fn defaults_are_awss_quotas_and_invocation_follows_api() {
        let s = BatchSettings::resolve(None, Api::Invoke, Some("s3://b/p/"), Some(ROLE)).unwrap();
        assert_eq!(s.limits, Limits::default());
        assert!(!s.converse);
        assert_eq!(s.timeout_hours, 24);
        assert_eq!(parse_s3_uri(&s.s3_uri).unwrap(), ("b".into(), "p".into()));
    }

    #[test]
    fn bad_values_say_which_key() {
        let e = BatchSettings::resolve(None, Api::Converse, None, Some(ROLE)).unwrap_err();
        assert!(e.to_string().starts_with("[batch] s3_uri:"), "{e}");
        let f = BatchFile {
            timeout_hours: Some(2),
            ..BatchFile::default()
        };
        let e = BatchSettings::resolve(Some(&f), Api::Converse, Some("s3://b"), Some(ROLE))
            .unwrap_err();
        assert!(e.to_string().contains("timeout_hours"), "{e}");
        let e = BatchSettings::resolve(None, Api::Converse, Some("b/p"), Some(ROLE)).unwrap_err();
        assert!(e.to_string().contains("s3://"), "{e}");
    }
}
