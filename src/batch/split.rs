//! Records → parts (one Bedrock job each) → files, within Bedrock's limits.
//!
//! A model's records are shared evenly between as few jobs as
//! `records_per_job` allows (10,001 records with a limit of 5,000 make three
//! jobs of 3,334, 3,334 and 3,333, never 5,000 + 5,000 + 1, which would fall
//! below the minimum). Inside a job, a new file starts before
//! `records_per_file` or `bytes_per_file` would be passed; a job closes early
//! before `bytes_per_job` would be. A model with fewer records than
//! `min_records` gets no part: `submit` reports those rows as below the
//! minimum. This file only writes local files; uploading is `store.rs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::records::Mapped;
use super::settings::Limits;
use super::state::{part_dir, PartFile};
use crate::output::fs::owner_only;

/// A part as written locally, before it has a token or a job.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) index: u32,
    pub(crate) model: String,
    pub(crate) records: u64,
    pub(crate) files: Vec<PartFile>,
    /// SHA-256 over the part's record files, for its token.
    pub(crate) digest: String,
}

struct Open {
    index: u32,
    dir: PathBuf,
    records: u64,
    bytes: u64,
    files: Vec<PartFile>,
    file: Option<BufWriter<File>>,
    map: BufWriter<File>,
    hash: Sha256,
}

/// Writes each model's records into parts as they come.
pub(crate) struct Splitter {
    output_dir: PathBuf,
    limits: Limits,
    /// Records each model's parts aim for (its share, see the module header).
    target: BTreeMap<String, u64>,
    next_index: u32,
    open: BTreeMap<String, Open>,
    written: Vec<Written>,
}

impl Splitter {
    /// `counts`: records per model this submit will send; models below the
    /// minimum must already be left out by the caller.
    pub(crate) fn new(
        output_dir: &Path,
        limits: Limits,
        counts: &BTreeMap<String, u64>,
        first_index: u32,
    ) -> Splitter {
        let target = counts
            .iter()
            .map(|(m, &c)| (m.clone(), share(c, limits.records_per_job)))
            .collect();
        Splitter {
            output_dir: output_dir.to_path_buf(),
            limits,
            target,
            next_index: first_index,
            open: BTreeMap::new(),
            written: Vec::new(),
        }
    }

    /// Adds one record line (without its newline) and its mapping.
    pub(crate) fn push(&mut self, mapped: &Mapped, line: &[u8]) -> anyhow::Result<()> {
        let size = line.len() as u64 + 1;
        let target = self.target.get(&mapped.model).copied().unwrap_or(u64::MAX);
        let full = self.open.get(&mapped.model).is_some_and(|o| {
            o.records >= target.min(self.limits.records_per_job)
                || o.bytes + size > self.limits.bytes_per_job
        });
        if full {
            let o = self.open.remove(&mapped.model).expect("checked above");
            self.close(&mapped.model, o)?;
        }
        if !self.open.contains_key(&mapped.model) {
            let index = self.next_index;
            self.next_index += 1;
            let dir = part_dir(&self.output_dir, index);
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", dir.display()))?;
            let map = create(&dir.join("map.jsonl"))?;
            self.open.insert(
                mapped.model.clone(),
                Open {
                    index,
                    dir,
                    records: 0,
                    bytes: 0,
                    files: Vec::new(),
                    file: None,
                    map,
                    hash: Sha256::new(),
                },
            );
        }
        let limits = self.limits;
        let o = self.open.get_mut(&mapped.model).expect("inserted above");
        let new_file = match o.files.last() {
            None => true,
            Some(f) => {
                f.records >= limits.records_per_file || f.bytes + size > limits.bytes_per_file
            }
        };
        if new_file {
            if let Some(mut f) = o.file.take() {
                f.flush()?;
            }
            let name = format!("records-{:04}.jsonl", o.files.len() + 1);
            o.file = Some(create(&o.dir.join(&name))?);
            o.files.push(PartFile {
                name,
                records: 0,
                bytes: 0,
            });
        }
        let f = o.file.as_mut().expect("opened above");
        f.write_all(line)?;
        f.write_all(b"\n")?;
        o.hash.update(line);
        o.hash.update(b"\n");
        let last = o.files.last_mut().expect("pushed above");
        last.records += 1;
        last.bytes += size;
        o.records += 1;
        o.bytes += size;
        serde_json::to_writer(&mut o.map, mapped)?;
        o.map.write_all(b"\n")?;
        Ok(())
    }

    fn close(&mut self, model: &str, mut o: Open) -> anyhow::Result<()> {
        if let Some(mut f) = o.file.take() {
            f.flush()?;
            f.get_ref().sync_all()?;
        }
        o.map.flush()?;
        o.map.get_ref().sync_all()?;
        self.written.push(Written {
            index: o.index,
            model: model.to_owned(),
            records: o.records,
            files: o.files,
            digest: hex::encode(o.hash.finalize()),
        });
        Ok(())
    }

    /// Closes every open part; the parts in the order they were opened.
    pub(crate) fn finish(mut self) -> anyhow::Result<Vec<Written>> {
        for (model, o) in std::mem::take(&mut self.open) {
            self.close(&model, o)?;
        }
        self.written.sort_by_key(|w| w.index);
        Ok(self.written)
    }
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let f = owner_only()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
    Ok(BufWriter::new(f))
}

/// Records per job for `count` records shared evenly under `per_job`.
pub(crate) fn share(count: u64, per_job: u64) -> u64 {
    let jobs = count.div_ceil(per_job.max(1)).max(1);
    count.div_ceil(jobs)
}

/// Jobs `count` records make under `per_job`: for `--dry-run`.
pub(crate) fn jobs_for(count: u64, limits: &Limits) -> u64 {
    if count < limits.min_records {
        0
    } else {
        count.div_ceil(limits.records_per_job.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Source;

    fn mapped(i: u64, model: &str) -> Mapped {
        Mapped {
            record_id: format!("r{i}"),
            id: format!("r{i}"),
            model: model.into(),
            source: Source {
                file: "in.csv".into(),
                line: i + 2,
            },
            meta: Default::default(),
            fingerprint: "f".into(),
            prompt: None,
        }
    }

    #[test]
    fn records_are_shared_evenly_so_no_job_falls_below_the_minimum() {
        assert_eq!(share(10_001, 5_000), 3_334);
        assert_eq!(share(10_000, 5_000), 5_000);
        assert_eq!(share(99, 50_000), 99);
        let limits = Limits {
            records_per_job: 5_000,
            ..Limits::default()
        };
        assert_eq!(jobs_for(10_001, &limits), 3);
        assert_eq!(jobs_for(99, &limits), 0);
    }

    #[test]
    fn parts_and_files_respect_every_limit() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            records_per_file: 4,
            bytes_per_file: 1_000_000,
            records_per_job: 10,
            bytes_per_job: 1_000_000,
            min_records: 1,
            max_concurrent_jobs: 20,
        };
        let counts = BTreeMap::from([("a".to_string(), 25), ("b".to_string(), 3)]);
        let mut s = Splitter::new(dir.path(), limits, &counts, 1);
        for i in 0..25 {
            s.push(
                &mapped(i, "a"),
                format!("{{\"recordId\":\"r{i}\"}}").as_bytes(),
            )
            .unwrap();
            if i < 3 {
                s.push(&mapped(100 + i, "b"), b"{}").unwrap();
            }
        }
        let parts = s.finish().unwrap();
        let sizes: Vec<(String, u64)> =
            parts.iter().map(|p| (p.model.clone(), p.records)).collect();
        // 25 records of `a` under 10 per job: three jobs of 9, 9, 7.
        assert_eq!(
            sizes,
            vec![
                ("a".into(), 9),
                ("b".into(), 3),
                ("a".into(), 9),
                ("a".into(), 7)
            ]
        );
        let first = &parts[0];
        assert_eq!(
            first.files.iter().map(|f| f.records).collect::<Vec<_>>(),
            vec![4, 4, 1]
        );
        let part_dir = part_dir(dir.path(), first.index);
        let lines = std::fs::read_to_string(part_dir.join("records-0001.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 4);
        let map = std::fs::read_to_string(part_dir.join("map.jsonl")).unwrap();
        assert_eq!(map.lines().count(), 9);
        assert_ne!(parts[0].digest, parts[2].digest);
    }

    #[test]
    fn a_byte_limit_starts_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            bytes_per_file: 25,
            min_records: 1,
            ..Limits::default()
        };
        let counts = BTreeMap::from([("a".to_string(), 3)]);
        let mut s = Splitter::new(dir.path(), limits, &counts, 7);
        for i in 0..3 {
            s.push(&mapped(i, "a"), &[b'x'; 11]).unwrap();
        }
        let parts = s.finish().unwrap();
        assert_eq!(parts[0].index, 7);
        assert_eq!(
            parts[0].files.iter().map(|f| f.records).collect::<Vec<_>>(),
            vec![2, 1]
        );
    }
}
