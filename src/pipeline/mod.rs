//! The run: the runner joins the stages; the limiter and backoff pace it.

pub mod backoff;
pub(crate) mod breaker;
pub mod early_stop;
pub mod limiter;
pub mod runner;
