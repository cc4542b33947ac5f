//! The few ways bedrock-batch writes files, in one place: every file is
//! created owner-only (0600, since prompts and answers may be confidential),
//! appended a whole line per `write`, or replaced atomically.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Opens for appending, creating with owner-only permissions: prompts and
/// answers may be confidential.
pub(crate) fn open_append(path: &Path) -> anyhow::Result<File> {
    owner_only()
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open for writing", path.display()))
}

/// Options that create files readable and writable by their owner only
/// (0600): every file bedrock-batch writes may hold prompts or answers.
pub(crate) fn owner_only() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Writes one record as one line with a single `write` call.
pub(crate) fn write_line<T: serde::Serialize>(file: &mut File, record: &T) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    file.write_all(&line)?;
    Ok(())
}

/// Temp file in the same directory, fsync, rename: a reader (or a crash) sees
/// the old file or the new one, never half of one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    {
        let mut f = owner_only()
            .write(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot replace", path.display()))?;
    Ok(())
}
