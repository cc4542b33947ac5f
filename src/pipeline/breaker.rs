//! The breaker: stops a run early when the job as a whole cannot succeed,
//! instead of spending every row's attempts on the same refusal.
//!
//! It watches call attempts, not rows, and trips on three patterns:
//! - **A refusal at the start**: the first [`WINDOW`] attempts on a model of
//!   the job all fail with the same non-retryable kind (`validation`,
//!   `access_denied`, `not_found`, `credentials`) and the same code, and
//!   none on that model succeeded: a wrong model id, a role that may not
//!   invoke it, keys Bedrock does not know. Counted per model of the matrix
//!   (as its lanes are), so one wrong model next to a good one still stops
//!   the job instead of failing all of its own units; rows pinned to a model
//!   outside the matrix count with the first model, whose lane they go
//!   through. Once a call on a model has succeeded, its failures are
//!   ordinary row failures: failures scattered among successes never stop
//!   the job.
//! - **A dead endpoint**: the last [`WINDOW`] attempts all failed at the
//!   network level (connection refused or reset, no answer), wherever in the
//!   run; one answer of any kind resets the count.
//! - **Credentials that cannot be renewed**: Bedrock says the token expired
//!   and the credential chain hands back the same keys (static session keys
//!   in the environment), so no attempt can succeed until a person renews
//!   them. This trips at once, whatever came before.
//!
//! 20 attempts: at the default concurrency of 8 that is under three waves,
//! a few seconds of a dead job; and 20 same-kind refusals in a row at the
//! start of a healthy job do not happen by chance.
//!
//! Not here: what a trip does (the runner stops intake, lets calls in flight
//! finish, and marks the manifest so a plain rerun retries the rows that
//! failed for this job-wide reason).

use std::sync::Mutex;

use crate::bedrock::invoker::{Classified, Disposition};
use crate::outcome::ErrorKind;

/// Attempts that decide: see the module header.
pub(crate) const WINDOW: u32 = 20;

/// Why the breaker stopped the run: one line for a person.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Trip {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

pub(crate) struct Breaker {
    /// The job's models, in lane order: what the start is counted per.
    models: Vec<String>,
    state: Mutex<State>,
}

struct State {
    /// One per model of `Breaker::models`.
    starts: Vec<Start>,
    network_streak: u32,
    tripped: Option<Trip>,
}

/// How one model's calls began.
struct Start {
    any_success: bool,
    /// The first failure's kind and code, while every attempt so far failed
    /// the same non-retryable way; `None` once that stopped being true.
    refusal: Option<(ErrorKind, String)>,
    /// False once a different failure broke the run of same refusals.
    refusals_alike: bool,
    refusals: u32,
}

impl Start {
    fn new() -> Start {
        Start {
            any_success: false,
            refusal: None,
            refusals_alike: true,
            refusals: 0,
        }
    }
}

impl Breaker {
    /// A breaker for a job of these models (its matrix, in lane order).
    pub(crate) fn new(models: &[String]) -> Breaker {
        Breaker {
            models: models.to_vec(),
            state: Mutex::new(State {
                starts: (0..models.len().max(1)).map(|_| Start::new()).collect(),
                network_streak: 0,
                tripped: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whose start an attempt on `model` counts in: its own if it is a
    /// model of the job, else the first's (as its lane is the first).
    fn lane(&self, model: &str) -> usize {
        self.models.iter().position(|m| m == model).unwrap_or(0)
    }

    /// Whether an attempt on `model` (counted as its lane is) has had an answer.
    pub(crate) fn answered(&self, model: &str) -> bool {
        let lane = self.lane(model);
        self.lock().starts[lane].any_success
    }

    /// An attempt on `model` got an answer.
    pub(crate) fn succeeded(&self, model: &str) {
        let lane = self.lane(model);
        let mut s = self.lock();
        s.starts[lane].any_success = true;
        s.network_streak = 0;
    }

    /// An attempt on `model` failed with `error`; `renewable` says whether
    /// the credentials could still be renewed. Returns the trip the first
    /// time the breaker trips.
    pub(crate) fn failed(&self, error: &Classified, model: &str, renewable: bool) -> Option<Trip> {
        let lane = self.lane(model);
        let mut s = self.lock();
        if s.tripped.is_some() {
            return None;
        }
        let trip = if error.expired_credentials() && !renewable {
            Some(Trip {
                kind: ErrorKind::Credentials,
                message: String::new(),
            })
        } else {
            s.count(error, lane);
            s.verdict(error, lane, model)
        };
        s.tripped = trip.clone();
        trip
    }

    /// Whether it tripped (the runner reports it after draining).
    pub(crate) fn tripped(&self) -> Option<Trip> {
        self.lock().tripped.clone()
    }
}

impl State {
    fn count(&mut self, error: &Classified, lane: usize) {
        if is_network(error) {
            self.network_streak += 1;
        } else {
            self.network_streak = 0;
        }
        let start = &mut self.starts[lane];
        if start.any_success || !start.refusals_alike {
            return;
        }
        let this = (error.kind, error.code.clone());
        match &start.refusal {
            _ if error.disposition != Disposition::Fail || !is_job_wide(error.kind) => {
                start.refusals_alike = false
            }
            None => {
                start.refusal = Some(this);
                start.refusals = 1;
            }
            Some(first) if *first == this => start.refusals += 1,
            Some(_) => start.refusals_alike = false,
        }
    }

    fn verdict(&self, error: &Classified, lane: usize, model: &str) -> Option<Trip> {
        if self.network_streak >= WINDOW {
            return Some(Trip {
                kind: error.kind,
                message: format!(
                    "the last {WINDOW} calls all failed before Bedrock answered ({}: {}); check the network, a proxy, or AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
                    error.code, error.message
                ),
            });
        }
        let start = &self.starts[lane];
        if !start.any_success && start.refusals_alike && start.refusals >= WINDOW {
            return Some(Trip {
                kind: error.kind,
                message: format!(
                    "the first {WINDOW} calls all failed with {} ({}) on model `{model}`: {}; {}",
                    error.kind.as_str(),
                    error.code,
                    error.message,
                    what_to_check(error.kind)
                ),
            });
        }
        None
    }
}

/// Kinds that say the job, not the row, is wrong.
fn is_job_wide(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Validation
            | ErrorKind::AccessDenied
            | ErrorKind::NotFound
            | ErrorKind::Credentials
    )
}

/// Failed before Bedrock answered: no connection, or the connection broke.
fn is_network(error: &Classified) -> bool {
    error.kind == ErrorKind::Network || error.code == "ConnectTimeout"
}

fn what_to_check(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Validation => {
            "check the model id (and that it supports the API in use) and the inference parameters"
        }
        // Bedrock's message names the caller and the resource, and the
        // classifier has added the `bedrock-batch policy` hint to it.
        ErrorKind::AccessDenied => "`bedrock-batch whoami` shows the role in use",
        ErrorKind::NotFound => {
            "check the model id and that the model is offered in this region (`bedrock-batch whoami` shows the region)"
        }
        _ => "`bedrock-batch whoami` shows which credentials the run uses",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, code: &str) -> Classified {
        Classified {
            kind,
            code: code.into(),
            message: "m".into(),
            disposition: Disposition::Fail,
            throttle: None,
            tier_refused: false,
        }
    }

    #[test]
    fn the_same_refusal_from_the_start_trips_after_the_window() {
        let b = Breaker::new(&[]);
        let v = err(ErrorKind::Validation, "ValidationException");
        for _ in 1..WINDOW {
            assert_eq!(b.failed(&v, "gpt-4o", true), None);
        }
        let trip = b.failed(&v, "gpt-4o", true).expect("trips on the 20th");
        assert_eq!(trip.kind, ErrorKind::Validation);
        assert!(
            trip.message.starts_with(
                "the first 20 calls all failed with validation (ValidationException) on model `gpt-4o`"
            ),
            "{}",
            trip.message
        );
        assert!(trip.message.contains("check the model id"));
        assert_eq!(b.failed(&v, "gpt-4o", true), None, "trips once");
        assert_eq!(b.tripped(), Some(trip));
    }

    #[test]
    fn failures_among_successes_or_of_mixed_kinds_are_ordinary() {
        let b = Breaker::new(&[]);
        let v = err(ErrorKind::Validation, "ValidationException");
        b.failed(&v, "m", true);
        b.succeeded("m");
        for _ in 0..100 {
            assert_eq!(b.failed(&v, "m", true), None);
        }

        let b = Breaker::new(&[]);
        b.failed(
            &err(ErrorKind::AccessDenied, "AccessDeniedException"),
            "m",
            true,
        );
        for _ in 0..100 {
            assert_eq!(b.failed(&v, "m", true), None);
        }

        // Retryable kinds at the start (throttling, 5xx, an expired token
        // that can be renewed) never trip it.
        let b = Breaker::new(&[]);
        let mut expired = err(ErrorKind::Credentials, "ExpiredTokenException");
        expired.disposition = Disposition::Retry;
        for _ in 0..100 {
            assert_eq!(b.failed(&expired, "m", true), None);
        }
        for _ in 0..100 {
            assert_eq!(
                b.failed(&err(ErrorKind::Throttled, "ThrottlingException"), "m", true),
                None
            );
            assert_eq!(
                b.failed(
                    &err(ErrorKind::Server, "InternalServerException"),
                    "m",
                    true
                ),
                None
            );
        }
    }

    #[test]
    fn a_model_refused_from_its_start_trips_though_another_model_answers() {
        let models = ["good".to_string(), "wrong".to_string()];
        let b = Breaker::new(&models);
        let nf = err(ErrorKind::NotFound, "ResourceNotFoundException");
        for _ in 1..WINDOW {
            b.succeeded("good");
            assert_eq!(b.failed(&nf, "wrong", true), None);
        }
        let trip = b.failed(&nf, "wrong", true).expect("its own 20th");
        assert!(
            trip.message.contains("on model `wrong`"),
            "{}",
            trip.message
        );
        assert!(b.answered("good") && !b.answered("wrong"));

        // A row pinned to a model outside the matrix counts with the first
        // model: scattered among that lane's answers, it never trips.
        let b = Breaker::new(&models);
        b.succeeded("good");
        for _ in 0..100 {
            assert_eq!(b.failed(&nf, "pinned-elsewhere", true), None);
        }
    }

    #[test]
    fn a_dead_endpoint_trips_even_after_successes_and_an_answer_resets_it() {
        let b = Breaker::new(&[]);
        b.succeeded("m");
        let n = err(ErrorKind::Network, "ConnectionError");
        for _ in 1..WINDOW {
            assert_eq!(b.failed(&n, "m", true), None);
        }
        b.failed(&err(ErrorKind::Throttled, "ThrottlingException"), "m", true);
        for _ in 1..WINDOW {
            assert_eq!(b.failed(&n, "m", true), None);
        }
        let trip = b.failed(&n, "m", true).expect("20 in a row");
        assert_eq!(trip.kind, ErrorKind::Network);
        assert!(trip.message.contains("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"));
    }

    #[test]
    fn expired_credentials_that_cannot_be_renewed_trip_at_once() {
        let b = Breaker::new(&[]);
        b.succeeded("m");
        let mut expired = err(ErrorKind::Credentials, "ExpiredTokenException");
        expired.disposition = Disposition::Retry;
        assert_eq!(b.failed(&expired, "m", true), None, "renewable: retried");
        let trip = b.failed(&expired, "m", false).expect("not renewable");
        assert_eq!(trip.kind, ErrorKind::Credentials);
    }
}
