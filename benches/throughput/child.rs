//! A child process measured from the outside: wall time, user + system CPU
//! and peak RSS, read from `wait4`'s rusage for that one child.
//!
//! Measuring the client as a child keeps the in-process emulator's CPU and
//! memory out of the figures. Not here: what the child runs (main.rs builds
//! the command) or how the numbers are judged.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the kernel says one child cost.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_kb: u64,
    /// Exit code, or 128 + signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to the end with its output in files under `dir` (pipes could
/// fill up while we block in `wait4`). Blocking: call from a blocking thread
/// so the in-process emulator keeps serving.
pub fn run(mut cmd: Command, dir: &Path, label: &str) -> Measured {
    let out_path = dir.join(format!("{label}.stdout"));
    let err_path = dir.join(format!("{label}.stderr"));
    let out = File::create(&out_path).expect("create the child's stdout file");
    let err = File::create(&err_path).expect("create the child's stderr file");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn the child");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; both pointers are valid for
    // the call. Reaping it here means `child` must never be waited on again,
    // which it is not (std does not wait on drop).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        // Linux reports kilobytes.
        max_rss_kb: usage.ru_maxrss as u64,
        code,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}
