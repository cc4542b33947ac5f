//! What a person watches while a run goes: an `indicatif` bar on a terminal,
//! a plain line every few seconds anywhere else (cron, EC2 user data, CI).
//!
//! Only the sink drives it. Log lines go *above* the bar through [`LogWriter`]
//! (installed by [`init_logging`]), never through it; a Drop guard clears the
//! bar even on error or panic.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::summary::Run;

/// The bar that log lines must step around. Global because the tracing
/// subscriber is global; it holds nothing but a handle to the drawn bar.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Shortest window a rate is shown for: over less, a handful of rows read
/// as thousands a minute.
pub(crate) const MIN_RATE_SECS: f64 = 1.0;

/// The headless progress line: `progress: 12/200 rows | 9.6 rows/s | ok …`.
fn plain_line(done: u64, of: &str, msg: &str) -> String {
    format!("progress: {done}{of} rows {msg}")
}

/// A bar the log lines go above (`LogWriter` suspends it while one is
/// written), cleared and forgotten when dropped: at its end, on an error or
/// a panic alike. The run's progress and batch's `follow` each hold one.
pub(crate) struct ActiveBar(ProgressBar);

impl ActiveBar {
    pub(crate) fn show(bar: ProgressBar) -> ActiveBar {
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        ActiveBar(bar)
    }
}

impl std::ops::Deref for ActiveBar {
    type Target = ProgressBar;
    fn deref(&self) -> &ProgressBar {
        &self.0
    }
}

impl Drop for ActiveBar {
    fn drop(&mut self) {
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.0.finish_and_clear();
    }
}

pub(crate) struct Progress {
    bar: Option<ActiveBar>,
    total: Option<u64>,
    started: Instant,
    last_plain: Instant,
}

impl Progress {
    pub(crate) fn new(total: Option<u64>, draw_bar: bool) -> Progress {
        let bar = draw_bar.then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(8));
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} eta {eta} {msg}",
            )
            // The template is a literal checked by the tests; it cannot fail.
            .expect("valid progress template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            ActiveBar::show(bar)
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            started: now,
            last_plain: now,
        }
    }

    /// Shows the counts so far; `allowed_rpm` is the limiter's current pace, if it has one.
    pub(crate) fn update(&mut self, s: &Run, allowed_rpm: Option<f64>, spent_usd: f64) {
        let done = s.succeeded + s.failed + s.skipped;
        let msg = self.message(s, allowed_rpm, spent_usd);
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(msg);
            }
            None => {
                if self.last_plain.elapsed() >= PLAIN_EVERY {
                    self.last_plain = Instant::now();
                    let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
                    eprintln!("{}", plain_line(done, &of, &msg));
                }
            }
        }
    }

    /// The bar's message, which the plain line also carries.
    fn message(&self, s: &Run, allowed_rpm: Option<f64>, spent_usd: f64) -> String {
        let rate = allowed_rpm
            .map(|r| format!(" | allowed {r:.0} rpm"))
            .unwrap_or_default();
        let secs = self.started.elapsed().as_secs_f64();
        // One rate, of rows this run finished (skipped ones are not work),
        // and only once the window means something.
        let per_sec = if secs >= MIN_RATE_SECS {
            format!("{:.1} rows/s", (s.succeeded + s.failed) as f64 / secs)
        } else {
            "– rows/s".to_string()
        };
        format!(
            "| {per_sec} | ok {} | failed {} | skipped {} | tokens in/out {}/{} | ${spent_usd:.4} | throttled {}{rate}",
            s.succeeded,
            s.failed,
            s.skipped,
            compact(s.tokens.input),
            compact(s.tokens.output),
            s.throttles.requests + s.throttles.tokens
        )
    }

    /// Clears the bar (dropping the progress does too).
    pub(crate) fn finish(&mut self) {
        self.bar = None;
    }
}

fn compact(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// A `tracing` writer that prints log lines above the bar (or straight to
/// stderr when there is none).
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match active {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// The filter when neither `--log` nor `RUST_LOG` sets one. `aws_config` warns about a refused
/// credential provider with a multi-line dump of the response; the one-line setup error already
/// says what STS said and what to do about it.
pub const DEFAULT_LOG_FILTER: &str = "warn,bedrock_batch=info,aws_config=error";

/// Installs the global subscriber: lines through [`LogWriter`], `filter` (an `EnvFilter`) or
/// [`DEFAULT_LOG_FILTER`].
pub fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // At trace level the SDK's orchestrator prints its runtime components, which hold the parsed
    // ~/.aws files, secret keys included: those events never get through, whatever the filter.
    let no_sdk_dumps = tracing_subscriber::filter::filter_fn(|m| {
        !(*m.level() == tracing::Level::TRACE && m.target().starts_with("aws_smithy_runtime"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            filter.unwrap_or(DEFAULT_LOG_FILTER),
        ))
        .with_writer(LogWriter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(no_sdk_dumps)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_shows_one_named_rate() {
        let mut p = Progress::new(Some(200), false);
        p.started = Instant::now() - Duration::from_secs(10);
        let s = Run {
            succeeded: 10,
            failed: 2,
            ..Run::default()
        };
        // What `update` prints, built the same way.
        let msg = p.message(&s, None, 0.0);
        let line = plain_line(12, "/200", &msg);
        assert!(
            line.starts_with("progress: 12/200 rows | 1.2 rows/s | ok 10 | failed 2"),
            "{line}"
        );
        assert_eq!(line.matches("/s").count(), 1, "{line}");
        // The spend so far rides on every line (bar and plain alike).
        assert!(
            p.message(&s, None, 0.0123).contains("| $0.0123 |"),
            "{}",
            p.message(&s, None, 0.0123)
        );
        p.started = Instant::now();
        assert!(
            p.message(&s, None, 0.0).starts_with("| – rows/s |"),
            "{}",
            p.message(&s, None, 0.0)
        );
    }
}
