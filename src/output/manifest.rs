//! What job an output directory holds, so a resume with other settings is
//! refused before it mixes two jobs' answers in one file.
//!
//! Only what changes the answers is part of the job (inputs, model, prompt,
//! parameters); how fast it runs (concurrency, quotas, timeouts) may change
//! between resumes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bedrock::request::Api;
use crate::config::Settings;

pub const FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub inputs: Vec<String>,
    pub model: String,
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
        }
    }

    /// Whether `other` describes the same job (the breaker's mark aside).
    pub fn same_job(&self, other: &Manifest) -> bool {
        let strip = |m: &Manifest| Manifest {
            job_wide_failure: None,
            ..m.clone()
        };
        strip(self) == strip(other)
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
        b.iter()
            .filter(|(k, _)| *k != "job_wide_failure")
            .filter(|(k, v)| a.get(*k) != Some(v))
            .map(|(k, v)| {
                let was = a.get(k).map(short).unwrap_or_else(|| "unset".into());
                format!("{k}: {was} → {}", short(v))
            })
            .collect()
    }
}

/// A setting's value as quoted in the "holds a different job" message.
fn short(v: &serde_json::Value) -> String {
    crate::error::clip(&v.to_string(), 60)
}
