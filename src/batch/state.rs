//! `batch/state.json` in the output directory: the parts a `submit` split the
//! job into and, for each, how far it got (uploaded, created, collected).
//!
//! Written whole after every step (temp file + rename, `output/fs.rs`), so a
//! crash leaves the last step recorded or the one before it, never half a
//! file. What makes a crash harmless is the pair (state, token): a part whose
//! job was created but not yet recorded is created again with the same
//! `clientRequestToken`, and Bedrock answers with the first job's ARN
//! instead of billing a second one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::output::fs::write_atomic;

/// Folder of the engine's files inside the output directory.
pub(crate) const DIR: &str = "batch";
const FILE: &str = "state.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    /// How `submit` was called, so `collect OUTPUT_DIR` resolves the same job.
    #[serde(default)]
    pub(crate) invocation: Option<Invocation>,
    pub(crate) parts: Vec<Part>,
}

/// `submit`'s command line and working directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Invocation {
    pub(crate) argv: Vec<String>,
    pub(crate) cwd: PathBuf,
}

/// One Bedrock job: its records' files and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Part {
    /// 1-based, unique in the output directory across submits.
    pub(crate) index: u32,
    pub(crate) model: String,
    pub(crate) records: u64,
    pub(crate) files: Vec<PartFile>,
    /// `s3://…/input/TOKEN/`: the job's input folder, unique per part.
    pub(crate) input_uri: String,
    pub(crate) output_uri: String,
    pub(crate) job_name: String,
    /// The `clientRequestToken`: a hash of the job's settings, the part
    /// number and its files' bytes.
    pub(crate) token: String,
    pub(crate) uploaded: bool,
    pub(crate) job_arn: Option<String>,
    /// The last status seen (Bedrock's word).
    pub(crate) status: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) collected: Option<Collected>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Collected {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    /// Records the job never ran (stopped, expired, timed out, failed):
    /// still to be sent by a later submit, `run` or `--replay on-demand`.
    pub(crate) unfinished: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartFile {
    /// `records-0001.jsonl`: the object's name under `input_uri`, and the
    /// local file's under the part's folder until the job is created.
    pub(crate) name: String,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
}

impl Part {
    /// `OUTPUT_DIR/batch/part-0001/`: its record files and `map.jsonl`.
    pub(crate) fn dir(&self, output_dir: &Path) -> PathBuf {
        part_dir(output_dir, self.index)
    }

    pub(crate) fn job_id(&self) -> Option<&str> {
        self.job_arn.as_deref().and_then(|a| a.rsplit('/').next())
    }

    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self.status.as_deref(),
            Some("Completed" | "PartiallyCompleted" | "Failed" | "Stopped" | "Expired")
        )
    }
}

pub(crate) fn part_dir(output_dir: &Path, index: u32) -> PathBuf {
    output_dir.join(DIR).join(format!("part-{index:04}"))
}

impl State {
    pub(crate) fn path(output_dir: &Path) -> PathBuf {
        output_dir.join(DIR).join(FILE)
    }

    /// The recorded state, or an empty one when `submit` never ran here.
    pub(crate) fn load(output_dir: &Path) -> anyhow::Result<State> {
        let path = State::path(output_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: not a batch state file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(anyhow::anyhow!("{}: cannot read: {e}", path.display())),
        }
    }

    pub(crate) fn save(&self, output_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(output_dir.join(DIR)).map_err(|e| {
            anyhow::anyhow!("{}: cannot create: {e}", output_dir.join(DIR).display())
        })?;
        write_atomic(&State::path(output_dir), &serde_json::to_vec_pretty(self)?)
    }

    /// Parts created but not yet collected.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|p| p.collected.is_none())
    }

    pub(crate) fn next_index(&self) -> u32 {
        self.parts.iter().map(|p| p.index).max().unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_reads_back_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), State::default());
        let s = State {
            invocation: None,
            parts: vec![Part {
                index: 1,
                model: "m".into(),
                records: 3,
                files: vec![PartFile {
                    name: "records-0001.jsonl".into(),
                    records: 3,
                    bytes: 99,
                }],
                input_uri: "s3://b/p/input/t/".into(),
                output_uri: "s3://b/p/output/".into(),
                job_name: "n-1".into(),
                token: "t".into(),
                uploaded: true,
                job_arn: Some("arn:aws:bedrock:r:1:model-invocation-job/abc".into()),
                status: Some("InProgress".into()),
                message: None,
                collected: None,
            }],
        };
        s.save(dir.path()).unwrap();
        let back = State::load(dir.path()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.parts[0].job_id(), Some("abc"));
        assert!(!back.parts[0].is_final());
        assert_eq!(back.next_index(), 2);
        std::fs::write(State::path(dir.path()), "{").unwrap();
        let e = State::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("state.json: not a batch state file"), "{e}");
    }
}
