//! The run: the runner joins the stages; one lane per model (`lane.rs`)
//! feeds the calls; the limiter and backoff pace them.

pub mod backoff;
pub(crate) mod breaker;
pub mod early_stop;
pub(crate) mod lane;
pub mod limiter;
pub mod runner;
