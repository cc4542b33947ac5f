//! Scores kept true to the job's `[[score]]` entries across resumes.
//!
//! Scorers are not part of the job's identity (changing them changes no
//! answer, so a resume is allowed), but a results line's `scores` were
//! computed by the scorers of the run that wrote it. So the manifest keeps a
//! [`fingerprint`] of the scorers, and when a run finds other scorers than
//! the last one, it re-scores every answer already in `results.jsonl` before
//! anything is counted: the summary's pass rates then describe one set of
//! scorers, not a mix. Scoring needs only the line (its `output`,
//! `output_json` and the row's columns in `meta`): no call is sent.
//!
//! Not here: when to re-score (`output/checkpoint.rs`, with the old manifest
//! in hand), the scoring itself (`score.rs`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::eval::score::{scores_of, Scorer};

/// A short hash of what the scorers compare and how; `None` without scorers.
pub fn fingerprint(scorers: &[Scorer]) -> Option<String> {
    if scorers.is_empty() {
        return None;
    }
    let described: Vec<Value> = scorers.iter().map(Scorer::describe).collect();
    let digest = Sha256::digest(Value::Array(described).to_string().as_bytes());
    Some(hex::encode(&digest[..8]))
}

/// Rewrites `path` (a results.jsonl) with every answer's `scores` as
/// `scorers` give them (none: the field is dropped). Atomic: a new file is
/// written beside it, synced, and renamed over it, so a crash leaves the old
/// file or the new one. Lines that are not answers are kept as they are.
/// Returns how many lines' scores changed.
pub fn rescore(path: &Path, scorers: &[Scorer]) -> anyhow::Result<u64> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    let tmp = path.with_extension("jsonl.rescore");
    // Owner-only (0600), as every file bedrock-batch writes: the new file
    // takes the old one's place and holds the same answers.
    let mut out = std::io::BufWriter::new(
        crate::output::fs::owner_only()
            .write(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?,
    );
    let mut changed = 0;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", path.display(), n + 1))?;
        let rescored = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(mut rec)) if rec.get("output").is_some_and(Value::is_string) => {
                let before = rec.get("scores").cloned();
                let meta = match rec.get("meta") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                let output = rec["output"].as_str().unwrap_or_default().to_string();
                let now = scores_of(scorers, &output, rec.get("output_json"), &meta);
                match now {
                    Some(scores) => rec.insert("scores".into(), Value::Object(scores)),
                    None => rec.remove("scores"),
                };
                if rec.get("scores") != before.as_ref() {
                    changed += 1;
                }
                Value::Object(rec).to_string()
            }
            // Not an answer of ours (or not JSON): copied unchanged.
            _ => line,
        };
        writeln!(out, "{rescored}").with_context(|| format!("{}: cannot write", tmp.display()))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", tmp.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("{}: cannot sync", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot replace with the re-scored file", path.display()))?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::score::ScoreConfig;

    fn scorer(name: &str, kind: &str, column: &str) -> Scorer {
        let c = ScoreConfig {
            name: Some(name.into()),
            kind: Some(kind.into()),
            column: Some(column.into()),
            ..ScoreConfig::default()
        };
        Scorer::compile(1, &c, false).unwrap()
    }

    #[test]
    fn the_fingerprint_follows_what_is_compared() {
        let exact = [scorer("label", "exact", "expected")];
        let contains = [scorer("label", "contains", "expected")];
        assert_eq!(fingerprint(&[]), None);
        assert_eq!(fingerprint(&exact), fingerprint(&exact.clone()));
        assert_ne!(fingerprint(&exact), fingerprint(&contains));
        assert_ne!(
            fingerprint(&exact),
            fingerprint(&[scorer("label", "exact", "other")])
        );
    }

    #[test]
    fn answers_are_rescored_in_place_and_other_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let lines = [
            r#"{"id":"a","output":"Paris ","meta":{"expected":"paris"},"scores":{"old":true}}"#,
            r#"{"id":"b","output":"Lyon","meta":{"expected":"Lyon"}}"#,
            "not json at all",
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let c = ScoreConfig {
            name: Some("city".into()),
            kind: Some("exact".into()),
            column: Some("expected".into()),
            case_sensitive: Some(false),
            ..ScoreConfig::default()
        };
        let scorers = [Scorer::compile(1, &c, false).unwrap()];
        assert_eq!(rescore(&path, &scorers).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<&str> = text.lines().collect();
        let a: Value = serde_json::from_str(got[0]).unwrap();
        let b: Value = serde_json::from_str(got[1]).unwrap();
        assert_eq!(a["scores"], serde_json::json!({"city": true}));
        assert_eq!(b["scores"], serde_json::json!({"city": true}));
        assert_eq!(a["id"], "a", "other fields kept");
        assert_eq!(got[2], "not json at all");
        assert!(!path.with_extension("jsonl.rescore").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "owner-only, as every output file");
        }
        // Again with the same scorers: nothing changes; without any: dropped.
        assert_eq!(rescore(&path, &scorers).unwrap(), 0);
        assert_eq!(rescore(&path, &[]).unwrap(), 2);
        let first: Value = serde_json::from_str(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert!(first.get("scores").is_none());
    }
}
