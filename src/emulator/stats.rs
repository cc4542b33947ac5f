//! `Stats`: what the emulator has seen, as live counters plus a bounded log of per-request
//! records, and the serialisable `StatsSnapshot` / `RequestRecord` it hands out.
//!
//! Observation only: nothing here influences a response. Counters are atomics so the hot
//! path never takes a lock for them; the per-key map and the record log take a brief one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;

use super::fault::Fault;

/// One request as the emulator saw it.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// Milliseconds since the emulator started, when the request arrived.
    pub at_ms: u64,
    /// `bedrock`, `sts`, `imds`, `s3` or `emulator` (unknown routes).
    pub service: &'static str,
    /// `Converse`, `ConverseStream`, `InvokeModel`, `InvokeModelWithResponseStream`,
    /// `AssumeRole`, `GetCallerIdentity`, `GetToken`, `GetRegion`, `ListRoles`,
    /// `GetCredentials`, an S3 operation (`PutObject`, `GetObject`, ...), or `Unknown`.
    pub operation: &'static str,
    /// Decoded model id, for Bedrock calls.
    pub model: Option<String>,
    /// HTTP status sent; 0 when the connection was dropped without a response.
    pub status: u16,
    pub error_code: Option<&'static str>,
    /// Access key from the SigV4 scope, if the request was signed.
    pub access_key: Option<String>,
    /// Whether `x-amz-security-token` was sent.
    pub session_token: bool,
    /// From `amz-sdk-request: attempt=N; max=M`.
    pub attempt: Option<u32>,
    pub max_attempts: Option<u32>,
    /// `amz-sdk-invocation-id` (constant across the SDK's retries of one call).
    pub invocation_id: Option<String>,
    /// The answered prompt (last user message), cut to 500 characters; for a Converse call
    /// refused for its credentials, the prompt it carried.
    pub prompt: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// For AssumeRole: the role, session name and external id the caller asked for (an
    /// external id is an identifier agreed with the role's owner, not a credential).
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub external_id: Option<String>,
    /// The service tier the call asked for (Converse `serviceTier`, InvokeModel's header).
    pub service_tier: Option<String>,
    /// Prompt-cache tokens read and written by the call.
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// Quota throttles by the quota that refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Throttles {
    pub requests: u64,
    pub tokens: u64,
}

/// A point-in-time copy of every counter.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsSnapshot {
    /// Bedrock model calls received (any outcome).
    pub requests: u64,
    /// Bedrock model calls answered 200 with a whole answer (a broken stream is `forced`).
    pub successes: u64,
    /// Calls refused by the rpm / tpm quotas.
    pub throttles: Throttles,
    /// Random faults injected by `fault_rate`, by error code.
    pub faults: BTreeMap<String, u64>,
    /// Errors forced by `[[emu:...]]` markers (drops, hangs and broken streams included).
    pub forced: u64,
    /// Connections closed without a response (`drop_rate` and `[[emu:drop]]`).
    pub dropped: u64,
    /// Every error response sent, by code (Bedrock, STS and IMDS).
    pub errors_by_code: BTreeMap<String, u64>,
    /// Model calls admitted and not yet answered (only those hold an in-flight slot).
    pub in_flight: u64,
    pub peak_in_flight: u64,
    /// Signed requests (any service) by access key.
    pub per_access_key: BTreeMap<String, u64>,
    pub assume_role: u64,
    pub get_caller_identity: u64,
    pub imds_tokens: u64,
    pub imds_credentials: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Records kept, and records not kept because the log was full.
    pub records_kept: u64,
    pub records_omitted: u64,
}

/// Live counters. Every field is written from many connection tasks at once.
#[derive(Debug)]
pub struct Stats {
    pub requests: AtomicU64,
    pub successes: AtomicU64,
    pub throttle_requests: AtomicU64,
    pub throttle_tokens: AtomicU64,
    pub forced: AtomicU64,
    pub dropped: AtomicU64,
    faults: [AtomicU64; Fault::ALL.len()],
    errors: [AtomicU64; Fault::ALL.len()],
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    pub assume_role: AtomicU64,
    pub get_caller_identity: AtomicU64,
    pub imds_tokens: AtomicU64,
    pub imds_credentials: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    /// Few distinct keys exist, so a map under a brief lock is cheap.
    per_key: Mutex<HashMap<String, u64>>,
    records: Mutex<Vec<RequestRecord>>,
    /// `records.len()`, readable without the lock so a full log costs no locking at all.
    kept: AtomicUsize,
    max_records: usize,
    records_omitted: AtomicU64,
}

/// Holds one in-flight slot; dropping it (answer sent, or the client went away) frees it.
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    pub fn new(max_records: usize) -> Stats {
        Stats {
            requests: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            throttle_requests: AtomicU64::new(0),
            throttle_tokens: AtomicU64::new(0),
            forced: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            faults: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            assume_role: AtomicU64::new(0),
            get_caller_identity: AtomicU64::new(0),
            imds_tokens: AtomicU64::new(0),
            imds_credentials: AtomicU64::new(0),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            per_key: Mutex::new(HashMap::new()),
            records: Mutex::new(Vec::new()),
            kept: AtomicUsize::new(0),
            max_records,
            records_omitted: AtomicU64::new(0),
        }
    }

    pub fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Relaxed);
        InFlight(self)
    }

    pub fn error(&self, f: Fault) {
        self.errors[f.index()].fetch_add(1, Relaxed);
    }

    pub fn fault(&self, f: Fault) {
        self.faults[f.index()].fetch_add(1, Relaxed);
    }

    pub fn access_key(&self, key: &str) {
        let mut m = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                m.insert(key.to_owned(), 1);
            }
        }
    }

    /// Keeps the record `build` makes, unless the log is full; `build` runs only when the
    /// record will (most likely) be kept, so a full log costs no allocation.
    pub fn record_with(&self, build: impl FnOnce() -> RequestRecord) {
        if self.kept.load(Relaxed) >= self.max_records {
            self.records_omitted.fetch_add(1, Relaxed);
            return;
        }
        let r = build();
        let mut v = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < self.max_records {
            v.push(r);
            self.kept.store(v.len(), Relaxed);
        } else {
            self.records_omitted.fetch_add(1, Relaxed);
        }
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let by_code = |a: &[AtomicU64; Fault::ALL.len()]| {
            let mut m = BTreeMap::new();
            for f in Fault::ALL {
                let n = a[f.index()].load(Relaxed);
                if n > 0 {
                    *m.entry(f.code().to_owned()).or_insert(0) += n;
                }
            }
            m
        };
        StatsSnapshot {
            requests: self.requests.load(Relaxed),
            successes: self.successes.load(Relaxed),
            throttles: Throttles {
                requests: self.throttle_requests.load(Relaxed),
                tokens: self.throttle_tokens.load(Relaxed),
            },
            faults: by_code(&self.faults),
            forced: self.forced.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            errors_by_code: by_code(&self.errors),
            in_flight: self.in_flight.load(Relaxed),
            peak_in_flight: self.peak_in_flight.load(Relaxed),
            per_access_key: self
                .per_key
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            assume_role: self.assume_role.load(Relaxed),
            get_caller_identity: self.get_caller_identity.load(Relaxed),
            imds_tokens: self.imds_tokens.load(Relaxed),
            imds_credentials: self.imds_credentials.load(Relaxed),
            input_tokens: self.input_tokens.load(Relaxed),
            output_tokens: self.output_tokens.load(Relaxed),
            records_kept: self.kept.load(Relaxed) as u64,
            records_omitted: self.records_omitted.load(Relaxed),
        }
    }

    /// Zeroes the peak so a test can measure one phase.
    pub fn reset_peak(&self) {
        self.peak_in_flight
            .store(self.in_flight.load(Relaxed), Relaxed);
    }
}
