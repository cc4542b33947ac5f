//! What job an output directory holds, so a resume with other settings is
//! refused before it mixes two jobs' answers in one file.
//!
//! Only what changes the answers is part of the job (inputs, models, prompt,
//! parameters); how fast it runs (concurrency, quotas, timeouts) may change
//! between resumes. The matrix may grow: a model added to a finished job's
//! `models`, or more `samples`, sends only the new units; a model removed,
//! or fewer samples, is a changed job like any other (refused unless
//! `--fresh`), since the files would hold answers the job no longer asks for.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bedrock::request::Api;
use crate::config::Settings;
use crate::output::sink::{FAILURES, RESULTS};

pub const FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub inputs: Vec<String>,
    /// The first model of the matrix (the only one before matrices existed).
    pub model: String,
    /// Every model of the matrix, written when there is more than one; a
    /// manifest without it holds the one `model`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Answers per row and model, written when more than one.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub samples: u32,
    pub api: Api,
    pub id_column: String,
    /// `id_columns`, when the id is made of several columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_columns: Vec<String>,
    pub prompt_column: String,
    pub template: Option<String>,
    pub system: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop_sequences: Vec<String>,
    /// Set when the breaker stopped the last run: the kind every call failed
    /// with (`validation`, `access_denied`, …). Not part of the job's
    /// identity: the next run sends that kind's failed rows again, since the
    /// cause was the job's, not theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_wide_failure: Option<String>,
    /// A fingerprint of the `[[score]]` entries the answers were scored
    /// with. Not part of the job's identity either: other scorers re-score
    /// the answers already written (`eval/rescore.rs`) instead of refusing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorers: Option<String>,
}

impl Manifest {
    pub fn of(s: &Settings) -> Manifest {
        Manifest {
            // Absolute, so the same job run from another directory matches.
            inputs: s
                .inputs
                .iter()
                .map(|p| {
                    std::fs::canonicalize(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                })
                .collect(),
            model: s.model.clone(),
            models: if s.models.len() > 1 {
                s.models.clone()
            } else {
                Vec::new()
            },
            samples: s.samples,
            api: s.api,
            id_column: s.id_column.clone(),
            id_columns: s.id_columns.clone(),
            prompt_column: s.prompt_column.clone(),
            template: s.template.clone(),
            system: s.system.clone(),
            max_tokens: s.max_tokens,
            temperature: s.temperature,
            top_p: s.top_p,
            stop_sequences: s.stop_sequences.clone(),
            job_wide_failure: None,
            scorers: crate::eval::rescore::fingerprint(&s.eval.scorers),
        }
    }

    /// Whether this job may continue in a directory that holds `old`: the
    /// same job (the breaker's mark aside), its matrix the same or grown.
    pub fn same_job(&self, old: &Manifest) -> bool {
        let strip = |m: &Manifest| Manifest {
            job_wide_failure: None,
            scorers: None,
            model: String::new(),
            models: Vec::new(),
            samples: 1,
            ..m.clone()
        };
        strip(self) == strip(old) && self.matrix_shrinks_from(old).is_empty()
    }

    /// The models of the matrix.
    pub fn matrix(&self) -> Vec<String> {
        if self.models.is_empty() {
            vec![self.model.clone()]
        } else {
            self.models.clone()
        }
    }

    /// What `old` asked for that this job no longer does, as phrases.
    fn matrix_shrinks_from(&self, old: &Manifest) -> Vec<String> {
        let (was, now) = (old.matrix(), self.matrix());
        let mut out = Vec::new();
        if was.len() == 1 && now.len() == 1 {
            if was != now {
                out.push(format!("model: {:?} → {:?}", was[0], now[0]));
            }
        } else {
            let gone: Vec<String> = was
                .iter()
                .filter(|m| !now.contains(m))
                .map(|m| format!("{m:?}"))
                .collect();
            if !gone.is_empty() {
                out.push(format!("models: {} removed", gone.join(", ")));
            }
        }
        if self.samples < old.samples {
            out.push(format!("samples: {} → {}", old.samples, self.samples));
        }
        out
    }

    /// Whether this job may continue in `dir`: refused, with the one-line
    /// reason, when `dir` holds another job's files or answers no manifest
    /// ties to a job. Returns what `dir` held. Reads only: `run` calls it
    /// before it touches the directory, and `--dry-run` (which must refuse
    /// what `run` would refuse) calls it without touching it at all.
    pub fn may_continue_in(&self, dir: &Path) -> anyhow::Result<Option<Manifest>> {
        let old = Manifest::read(dir)?;
        match &old {
            Some(old) if !self.same_job(old) => anyhow::bail!(
                "{}: holds a different job ({}); run with --fresh to start over (the old files are moved aside) or choose another --output-dir",
                dir.display(),
                self.changes_from(old).join("; ")
            ),
            None if [RESULTS, FAILURES].iter().any(|n| dir.join(n).exists()) => anyhow::bail!(
                "{}: holds results.jsonl/failures.jsonl but no manifest.json, so it cannot tell which job they belong to; run with --fresh (they are moved aside) or choose another --output-dir",
                dir.display()
            ),
            _ => Ok(old),
        }
    }

    /// Records in `dir`'s manifest that the breaker stopped the run for `kind`.
    pub(crate) fn mark_job_wide_failure(dir: &Path, kind: &str) -> anyhow::Result<()> {
        let Some(mut m) = Manifest::read(dir)? else {
            return Ok(());
        };
        m.job_wide_failure = Some(kind.to_string());
        crate::output::fs::write_atomic(&dir.join(FILE), &serde_json::to_vec_pretty(&m)?)
    }

    pub fn read(dir: &Path) -> anyhow::Result<Option<Manifest>> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("{}: not a bedrock-batch manifest: {e}", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    /// What differs, as `key: old → new` phrases.
    pub fn changes_from(&self, old: &Manifest) -> Vec<String> {
        let (a, b) = (
            serde_json::to_value(old).unwrap_or_default(),
            serde_json::to_value(self).unwrap_or_default(),
        );
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return vec!["the manifest format".into()];
        };
        let mut out = self.matrix_shrinks_from(old);
        out.extend(
            b.iter()
                .filter(|(k, _)| {
                    !["job_wide_failure", "model", "models", "samples"].contains(&k.as_str())
                })
                .filter(|(k, v)| a.get(*k) != Some(v))
                .map(|(k, v)| {
                    let was = a.get(k).map(short).unwrap_or_else(|| "unset".into());
                    format!("{k}: {was} → {}", short(v))
                }),
        );
        out
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A setting's value as quoted in the "holds a different job" message.
fn short(v: &serde_json::Value) -> String {
    crate::error::clip(&v.to_string(), 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(models: &[&str], samples: u32) -> Manifest {
        Manifest {
            inputs: vec!["/p.csv".into()],
            model: models[0].into(),
            models: if models.len() > 1 {
                models.iter().map(|m| m.to_string()).collect()
            } else {
                vec![]
            },
            samples,
            api: Api::Converse,
            id_column: "id".into(),
            prompt_column: "prompt".into(),
            template: None,
            system: None,
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop_sequences: vec![],
            id_columns: vec![],
            job_wide_failure: None,
            scorers: None,
        }
    }

    #[test]
    fn the_matrix_may_grow_but_not_shrink() {
        let one = job(&["a"], 1);
        assert!(job(&["a", "b"], 1).same_job(&one), "a model added");
        assert!(
            job(&["b", "a"], 2).same_job(&one),
            "and more samples, in any order"
        );
        let two = job(&["a", "b"], 2);
        assert!(!job(&["b"], 2).same_job(&two));
        assert_eq!(
            job(&["b", "c"], 2).changes_from(&two),
            ["models: \"a\" removed"]
        );
        assert_eq!(job(&["a", "b"], 1).changes_from(&two), ["samples: 2 → 1"]);
        assert_eq!(job(&["b"], 1).changes_from(&one), ["model: \"a\" → \"b\""]);
        let mut other = job(&["a", "b"], 2);
        other.max_tokens = Some(5);
        assert!(!other.same_job(&two));
        assert_eq!(other.changes_from(&two), ["max_tokens: null → 5"]);
    }

    #[test]
    fn a_manifest_of_one_model_reads_and_writes_as_before_matrices() {
        let old = r#"{"inputs":["/p.csv"],"model":"a","api":"converse","id_column":"id","prompt_column":"prompt","template":null,"system":null,"max_tokens":null,"temperature":null,"top_p":null,"stop_sequences":[]}"#;
        let m: Manifest = serde_json::from_str(old).unwrap();
        assert_eq!((m.matrix(), m.samples), (vec!["a".to_string()], 1));
        assert_eq!(serde_json::to_string(&m).unwrap(), old);
        assert!(m.same_job(&job(&["a"], 1)));
    }
}
