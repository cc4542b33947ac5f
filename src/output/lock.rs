//! One run per output directory: an exclusive OS file lock held for the
//! whole run.
//!
//! Two runs into one directory would read the same done set and send, pay for
//! and write the same rows twice. The lock is `flock(2)` on
//! `output_dir/.bedrock-batch.lock`: the kernel releases it when the process
//! ends however it ends (kill -9 included), so a stale lock cannot outlive
//! its run and nothing has to be cleaned up. The holder writes its pid, host
//! and start time into the file so a refused run can say who holds it.
//!
//! Not here: what the directory holds (`checkpoint.rs`, `manifest.rs`). The
//! lock file is never deleted: deleting it would let a third run lock a new
//! file while a second still holds the old one.
//!
//! `flock` is advisory and per open file: it guards against other
//! `bedrock-batch` processes (on this host, or on an NFS client that
//! forwards flock), not against other programs writing there.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The lock file's name inside the output directory.
pub(crate) const FILE: &str = ".bedrock-batch.lock";

/// The held lock. Dropping it (or the process ending) releases it.
#[derive(Debug)]
pub(crate) struct DirLock {
    // Held open for its lock; closing the file releases it.
    _file: File,
}

/// Takes the lock on `dir` (created if missing), or says which process holds it.
pub(crate) fn acquire(dir: &Path) -> anyhow::Result<DirLock> {
    let fail = |what: String| anyhow::anyhow!("{}: {what}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create: {e}")))?;
    let path = dir.join(FILE);
    // Not truncated on open: the holder's details must survive a refused open.
    let mut file = crate::output::fs::owner_only()
        .read(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| fail(format!("cannot open {FILE}: {e}")))?;
    // SAFETY: flock(2) on a descriptor we own for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(fail(format!("cannot lock {FILE}: {err}")));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let holder = if holder.is_empty() {
            "a process that has not yet written its details".to_string()
        } else {
            holder.to_string()
        };
        return Err(fail(format!(
            "in use by another bedrock-batch run ({holder}); wait for it to end or choose another --output-dir"
        )));
    }
    let details = format!(
        "pid {} on {}, started {}",
        std::process::id(),
        hostname(),
        crate::time::rfc3339(std::time::SystemTime::now())
    );
    let write = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(details.as_bytes())?;
        f.write_all(b"\n")
    };
    write(&mut file).map_err(|e| fail(format!("cannot write {FILE}: {e}")))?;
    Ok(DirLock { _file: file })
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "an unknown host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let held = acquire(&out).unwrap();
        // flock locks belong to the open file, so a second open in the same
        // process is refused just as another process would be.
        let err = acquire(&out).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: in use by another bedrock-batch run (pid {} on ",
                out.display(),
                std::process::id()
            )),
            "{err}"
        );
        assert!(err.contains(", started 20"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        drop(held);
        acquire(&out).unwrap();
        assert!(out.join(FILE).exists());
    }
}
