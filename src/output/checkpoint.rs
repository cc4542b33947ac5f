//! Resume: what an output directory already holds, and getting it ready for
//! this run.
//!
//! Before anything is sent: refuse a directory that holds another job (the
//! manifest), move old files aside for `--fresh` (never delete), cut away a
//! torn last line left by a killed process, drop the rows to retry from
//! `failures.jsonl` for `--retry-failures` (rewritten atomically: temp file +
//! rename), and collect the ids already done so the runner skips them, in
//! the one read of the files that also counts what they hold and what was
//! paid (`earlier.rs`).
//!
//! Done ids are kept as 128-bit hashes in a sorted vector, each with the
//! fingerprint of the request that answered it (`input/fingerprint.rs`): 24
//! bytes a row, so a million-row resume costs 24 MB, and a false match would
//! need a 2^-128 coincidence. `superseded.jsonl` holds the earlier lines of
//! rows sent again because their request changed (`changed.rs`).

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::ResumeMode;
use crate::eval::score::Scorer;
pub(crate) use crate::input::rows::id_hash;
pub use crate::output::earlier::Earlier;
use crate::output::earlier::{self, for_each_record, Purpose};
use crate::output::fs::write_atomic;
use crate::output::manifest::{self, Manifest};
use crate::output::sink::{FAILURES, RESULTS};

pub const SUMMARY: &str = "summary.json";

pub const SUPERSEDED: &str = "superseded.jsonl";

/// A set of ids, by 128-bit hash, each with what its line recorded of the
/// request (see [`Recorded`]): one sorted vector of `[hash high, hash low,
/// recorded code]`, 24 bytes an id with nothing built beside it.
#[derive(Debug, Default, Clone)]
pub struct IdSet {
    sorted: Vec<[u64; 3]>,
}

pub(crate) fn entry(hash: u128, recorded: Recorded) -> [u64; 3] {
    [(hash >> 64) as u64, hash as u64, recorded.code()]
}

fn key(e: &[u64; 3]) -> (u64, u64) {
    (e[0], e[1])
}

/// What a done line says about the request that ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Written before fingerprints existed: whether it changed is unknown.
    Unknown,
    /// An input error: nothing was sent.
    NotSent,
    /// The fingerprint of the request sent, as 64 bits.
    Sent(u64),
}

impl Recorded {
    /// Parses a line's `fingerprint` (16 hex digits) and error kind.
    pub(crate) fn of_line(fingerprint: Option<&str>, input_error: bool) -> Recorded {
        match fingerprint.and_then(|f| u64::from_str_radix(f, 16).ok()) {
            Some(fp) => Recorded::Sent(fp),
            None if input_error => Recorded::NotSent,
            None => Recorded::Unknown,
        }
    }

    /// 0 and 1 stand for Unknown and NotSent; a fingerprint that is 0 or 1
    /// (a 2^-63 chance) is stored as 2, which can only hide an edit to that row.
    fn code(self) -> u64 {
        match self {
            Recorded::Unknown => 0,
            Recorded::NotSent => 1,
            Recorded::Sent(fp) => fp.max(2),
        }
    }

    fn from_code(code: u64) -> Recorded {
        match code {
            0 => Recorded::Unknown,
            1 => Recorded::NotSent,
            fp => Recorded::Sent(fp),
        }
    }

    /// Compares with a fingerprint as [`Recorded::code`] stores it.
    pub(crate) fn same_as(self, now: Recorded) -> bool {
        self.code() == now.code()
    }
}

impl IdSet {
    pub fn from_hashes(v: Vec<u128>) -> IdSet {
        IdSet::from_entries(v.into_iter().map(|h| entry(h, Recorded::Unknown)).collect())
    }
    /// The first line of an id wins; there is only one unless the files were edited.
    pub(crate) fn from_entries(mut v: Vec<[u64; 3]>) -> IdSet {
        v.sort_by_key(key);
        v.dedup_by_key(|e| key(e));
        IdSet { sorted: v }
    }
    fn find(&self, id: &str) -> Option<&[u64; 3]> {
        let h = id_hash(id);
        let k = ((h >> 64) as u64, h as u64);
        let i = self.sorted.binary_search_by_key(&k, key).ok()?;
        Some(&self.sorted[i])
    }
    /// Whether the unit with this [`unit_key`] is done.
    pub fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }
    /// What the done line of a unit recorded, `None` when it is not done.
    pub(crate) fn recorded(&self, id: &str) -> Option<Recorded> {
        self.find(id).map(|e| Recorded::from_code(e[2]))
    }
    /// Whether any line recorded its request (fingerprint or input error):
    /// files written before fingerprints existed record none.
    pub(crate) fn any_recorded(&self) -> bool {
        self.sorted.iter().any(|e| e[2] != 0)
    }
    /// Without the ids whose hashes are in `gone` (sorted).
    pub(crate) fn without(mut self, gone: &[u128]) -> IdSet {
        self.sorted.retain(|e| {
            let h = ((e[0] as u128) << 64) | e[1] as u128;
            gone.binary_search(&h).is_err()
        });
        self
    }
    pub fn len(&self) -> usize {
        self.sorted.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

/// The state of the output directory, ready for the run.
#[derive(Debug, Default)]
pub struct Checkpoint {
    pub done: IdSet,
    /// What the files held before this run, for the job's summary.
    pub earlier: Earlier,
    /// Things a person should know (torn lines cut, files moved aside).
    pub notes: Vec<String>,
}

/// Prepares `dir` for a run of `job`, whose answers `scorers` score.
/// Errors are setup errors: nothing has been sent.
pub fn prepare(
    dir: &Path,
    mode: &ResumeMode,
    job: &Manifest,
    scorers: &[Scorer],
) -> anyhow::Result<Checkpoint> {
    let mut notes = Vec::new();
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let names = [RESULTS, FAILURES, SUPERSEDED, SUMMARY, manifest::FILE];
    let existing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| dir.join(n).exists())
        .collect();

    if *mode == ResumeMode::Fresh && !existing.is_empty() {
        let aside = claim_aside_dir(dir)?;
        for n in &existing {
            std::fs::rename(dir.join(n), aside.join(n))
                .with_context(|| format!("{}: cannot move aside", dir.join(n).display()))?;
        }
        notes.push(format!(
            "--fresh: earlier files moved to {}",
            crate::path::normalize(&aside).display()
        ));
    }
    let old = match mode {
        ResumeMode::Fresh => None,
        _ => job.may_continue_in(dir)?,
    };
    if let Some(old) = &old {
        if let (Some(kind), ResumeMode::Continue) = (&old.job_wide_failure, mode) {
            let n = drop_failures(&dir.join(FAILURES), std::slice::from_ref(kind))?;
            notes.push(format!(
                "the last run stopped because every call failed with {kind}; its {n} {kind} failure(s) will be sent again"
            ));
        }
    }

    for name in [RESULTS, FAILURES] {
        let path = dir.join(name);
        if let Some(note) = repair_torn_tail(&path)? {
            notes.push(note);
        }
    }
    // Other scorers than the last run's: the answers already written are
    // scored again, before they are counted, so the job's pass rates come
    // from one set of scorers. Before the manifest records the new ones: a
    // crash in between re-scores again on the next run.
    if let Some(old) = old.filter(|o| o.scorers != job.scorers) {
        let n = crate::eval::rescore::rescore(&dir.join(RESULTS), scorers)?;
        if n > 0 || old.scorers.is_some() {
            notes.push(format!(
                "[[score]] changed since the last run: {n} earlier answer(s) scored again with the new scorers"
            ));
        }
    }
    write_atomic(&dir.join(manifest::FILE), &serde_json::to_vec_pretty(job)?)?;
    if let ResumeMode::RetryFailures(kinds) = mode {
        let n = drop_failures(&dir.join(FAILURES), kinds)?;
        notes.push(format!(
            "--retry-failures: {n} failed row(s) will be sent again"
        ));
    }
    // The one read of the files a resume makes before its first call.
    // (The checkpoint is built from it, not filled in: an `Earlier` holds
    // histograms, and a second one built only to be replaced costs 0.4 MB.)
    let pass = earlier::read(dir, &job.model, Purpose::Resume)?;
    Ok(Checkpoint {
        done: pass.done,
        earlier: pass.earlier,
        notes,
    })
}

/// A new, empty `previous-<UTC time>` directory, e.g.
/// `previous-2026-11-30T155653Z` (`…Z-2`, … when that one exists: two
/// `--fresh` runs in one second must not move files onto each other, since
/// rename replaces an existing file).
fn claim_aside_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let stamp = aside_stamp(std::time::SystemTime::now());
    for n in 1u32.. {
        let name = match n {
            1 => format!("previous-{stamp}"),
            n => format!("previous-{stamp}-{n}"),
        };
        let aside = dir.join(name);
        match std::fs::create_dir(&aside) {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create", aside.display())),
        }
    }
    unreachable!("u32 names run out only after 4 billion directories")
}

/// `2026-11-30T155653Z`: the UTC time, readable and sorting in time order,
/// without the colons some tools and file systems refuse in a name.
fn aside_stamp(t: std::time::SystemTime) -> String {
    // Whole seconds: the fraction would only make the name longer.
    let secs = crate::time::unix_secs(t);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    crate::time::rfc3339(t).replace(':', "")
}

/// A process killed mid-write can leave a last line without its newline.
/// Cut it away (that row is sent again) and say so.
fn repair_torn_tail(path: &Path) -> anyhow::Result<Option<String>> {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return Ok(None);
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    // Scan back from the end for the last newline, in chunks.
    let mut end = len;
    let mut last_nl = None;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 && last_nl.is_none() {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        std::io::Read::read_exact(&mut f, &mut buf[..n])?;
        last_nl = buf[..n]
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| start + i as u64);
        end = start;
    }
    let keep = last_nl.map_or(0, |i| i + 1);
    if keep == len {
        return Ok(None);
    }
    f.set_len(keep)?;
    Ok(Some(format!(
        "{}: cut a torn last line ({} bytes) left by an interrupted run; that row will be sent again",
        path.display(),
        len - keep
    )))
}

/// Moves the lines of the units in `gone` (sorted hashes of unit keys; a
/// line without `model` is `model`'s) out of
/// results.jsonl and failures.jsonl into superseded.jsonl, so each id has
/// at most one current line. The moved lines are appended and synced first,
/// then each file is replaced atomically, streaming, so a crash in between
/// leaves a line in both places (moved again next time), never in neither.
/// Returns how many lines moved. `earlier` is recounted from the lines
/// kept, in the same pass, so the job's summary needs no read after it.
pub(crate) fn supersede(
    dir: &Path,
    gone: &[u128],
    model: &str,
    earlier: &mut Earlier,
) -> anyhow::Result<usize> {
    earlier.recount();
    let aside_path = dir.join(SUPERSEDED);
    let mut aside = crate::output::fs::open_append(&aside_path)?;
    let mut moved = 0;
    for name in [RESULTS, FAILURES] {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let tmp = path.with_extension("tmp");
        let mut kept = std::io::BufWriter::new(
            crate::output::fs::owner_only()
                .write(true)
                .truncate(true)
                .open(&tmp)
                .with_context(|| format!("{}: cannot write", tmp.display()))?,
        );
        let mut result = Ok(());
        let mut here = 0;
        for_each_record(&path, |line, rec| {
            if result.is_err() {
                return;
            }
            let out: &mut dyn Write = if gone.binary_search(&id_hash(&rec.key(model))).is_ok() {
                here += 1;
                &mut aside
            } else {
                earlier.count(&rec, model);
                &mut kept
            };
            result = out
                .write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"));
        })?;
        result.with_context(|| format!("{}: cannot write", tmp.display()))?;
        aside
            .sync_all()
            .with_context(|| format!("{}: cannot write", aside_path.display()))?;
        let kept = kept
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        kept.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("{}: cannot replace", path.display()))?;
        moved += here;
    }
    Ok(moved)
}

/// Removes the failures to retry (all, or those of `kinds`) from the file,
/// atomically. Returns how many were removed. A removed line with usage
/// (answers refused as invalid output: paid for) moves to superseded.jsonl,
/// appended and synced first, so what was spent stays on record.
fn drop_failures(path: &Path, kinds: &[String]) -> anyhow::Result<usize> {
    if !path.exists() {
        return Ok(0);
    }
    let mut kept = Vec::new();
    let mut paid = Vec::new();
    let mut dropped = 0;
    for_each_record(path, |line, rec| {
        let has_usage = rec.usage.is_some();
        let kind = rec.error.map(|e| e.kind).unwrap_or_default();
        if kinds.is_empty() || kinds.contains(&kind) {
            dropped += 1;
            if has_usage {
                paid.extend_from_slice(line.as_bytes());
                paid.push(b'\n');
            }
        } else {
            kept.extend_from_slice(line.as_bytes());
            kept.push(b'\n');
        }
    })?;
    if !paid.is_empty() {
        let aside_path = path.with_file_name(SUPERSEDED);
        let mut aside = crate::output::fs::open_append(&aside_path)?;
        aside
            .write_all(&paid)
            .and_then(|()| aside.sync_all())
            .with_context(|| format!("{}: cannot write", aside_path.display()))?;
    }
    write_atomic(path, &kept)?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::request::Api;
    use crate::input::matrix::unit_key;

    /// Whether `id`'s unit of the job's model "m" (the hand-made lines
    /// below name none), sample 1, is done.
    fn done(cp: &Checkpoint, id: &str) -> bool {
        cp.done.contains(&unit_key(id, "m", 1))
    }

    #[test]
    fn a_unit_is_its_id_model_and_sample_and_old_lines_are_sample_1() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), &ResumeMode::Continue, &job("m"), &[]).unwrap();
        std::fs::write(
            dir.path().join(RESULTS),
            concat!(
                "{\"id\":\"a\",\"model\":\"m\"}\n",
                "{\"id\":\"a\",\"model\":\"m\",\"sample\":2}\n",
                "{\"id\":\"a\",\"model\":\"n\",\"sample\":1}\n",
                "{\"id\":\"a\",\"model\":\"n\",\"sample\":1}\n",
            ),
        )
        .unwrap();
        let cp = prepare(dir.path(), &ResumeMode::Continue, &job("m"), &[]).unwrap();
        assert_eq!(cp.done.len(), 3, "a unit written twice is one done unit");
        for (model, sample) in [("m", 1), ("m", 2), ("n", 1)] {
            assert!(
                cp.done.contains(&unit_key("a", model, sample)),
                "{model} {sample}"
            );
        }
        assert!(!cp.done.contains(&unit_key("a", "n", 2)));
        assert!(!cp.done.contains(&unit_key("a", "m", 3)));
    }

    fn job(model: &str) -> Manifest {
        Manifest {
            inputs: vec!["/data/p.csv".into()],
            model: model.into(),
            models: vec![],
            samples: 1,
            api: Api::Converse,
            id_column: "id".into(),
            id_columns: vec![],
            prompt_column: "prompt".into(),
            template: None,
            system: None,
            max_tokens: Some(100),
            temperature: None,
            top_p: None,
            stop_sequences: vec![],
            job_wide_failure: None,
            scorers: None,
        }
    }

    #[test]
    fn collects_done_ids_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), &ResumeMode::Continue, &job("m"), &[]).unwrap();
        std::fs::write(
            dir.path().join(RESULTS),
            "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\",\"out",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(FAILURES),
            "{\"id\":\"x\",\"error\":{\"kind\":\"throttled\"}}\n",
        )
        .unwrap();
        let cp = prepare(dir.path(), &ResumeMode::Continue, &job("m"), &[]).unwrap();
        assert!(done(&cp, "a") && done(&cp, "b") && done(&cp, "x"));
        assert!(!done(&cp, "c"), "the torn row is sent again");
        assert_eq!(cp.done.len(), 3);
        assert!(
            cp.notes[0].contains("cut a torn last line (14 bytes)"),
            "{:?}",
            cp.notes
        );
        let results = std::fs::read_to_string(dir.path().join(RESULTS)).unwrap();
        assert_eq!(results, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
    }

    #[test]
    fn refuses_another_job_and_fresh_moves_files_aside() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), &ResumeMode::Continue, &job("m1"), &[]).unwrap();
        std::fs::write(dir.path().join(RESULTS), "{\"id\":\"a\"}\n").unwrap();
        let err = prepare(dir.path(), &ResumeMode::Continue, &job("m2"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds a different job (model: \"m1\" → \"m2\")"),
            "{err}"
        );
        assert!(err.contains("--fresh"));

        let cp = prepare(dir.path(), &ResumeMode::Fresh, &job("m2"), &[]).unwrap();
        assert!(cp.done.is_empty());
        assert!(!dir.path().join(RESULTS).exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("previous-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].path().join(RESULTS).exists(), "moved, not deleted");
    }

    #[test]
    fn aside_directories_are_named_by_utc_time() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_050_736_250);
        assert_eq!(aside_stamp(t), "2026-11-30T145856Z");
    }

    #[test]
    fn fresh_twice_in_one_second_keeps_both_earlier_sets_of_files() {
        let dir = tempfile::tempdir().unwrap();
        // Stand-ins for the directories a --fresh run made a moment ago.
        let now = std::time::SystemTime::now();
        for t in [now, now + std::time::Duration::from_secs(1)] {
            let earlier = dir.path().join(format!("previous-{}", aside_stamp(t)));
            std::fs::create_dir(&earlier).unwrap();
            std::fs::write(earlier.join(RESULTS), "{\"id\":\"old\"}\n").unwrap();
        }
        prepare(dir.path(), &ResumeMode::Continue, &job("m"), &[]).unwrap();
        std::fs::write(dir.path().join(RESULTS), "{\"id\":\"new\"}\n").unwrap();
        let cp = prepare(dir.path(), &ResumeMode::Fresh, &job("m"), &[]).unwrap();
        assert!(cp.done.is_empty());
        let mut kept: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|p| std::fs::read_to_string(p.join(RESULTS)).unwrap())
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            [
                "{\"id\":\"new\"}\n",
                "{\"id\":\"old\"}\n",
                "{\"id\":\"old\"}\n"
            ],
            "moved aside, nothing overwritten"
        );
    }

    #[test]
    fn retry_failures_drops_only_the_chosen_kinds() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), &ResumeMode::Continue, &job("m"), &[]).unwrap();
        std::fs::write(
            dir.path().join(FAILURES),
            "{\"id\":\"t\",\"error\":{\"kind\":\"throttled\"}}\n{\"id\":\"v\",\"error\":{\"kind\":\"validation\"}}\n",
        )
        .unwrap();
        let cp = prepare(
            dir.path(),
            &ResumeMode::RetryFailures(vec!["throttled".into()]),
            &job("m"),
            &[],
        )
        .unwrap();
        assert!(!done(&cp, "t"));
        assert!(done(&cp, "v"));
        let left = std::fs::read_to_string(dir.path().join(FAILURES)).unwrap();
        assert_eq!(left, "{\"id\":\"v\",\"error\":{\"kind\":\"validation\"}}\n");
    }

    #[test]
    fn unknown_files_without_manifest_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RESULTS), "{\"id\":\"a\"}\n").unwrap();
        let err = prepare(dir.path(), &ResumeMode::Continue, &job("m"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no manifest.json"), "{err}");
    }
}
