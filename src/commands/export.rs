//! `bedrock-batch export`: an output directory as one table, one row per
//! input row, in input order, for spreadsheets and pandas.
//!
//! `results.jsonl` and `failures.jsonl` stay in completion order (a line is
//! written the moment its row ends, which is what makes them safe); this
//! reads them back next to the job's inputs (the manifest's `inputs` and
//! `id_column`) and joins each input row's columns with its status, answer,
//! tokens, cost (when the lines carry `cost_usd`) and error. A row in neither
//! file is `unsent` (a stopped run, or a row not reached yet).
//!
//! Memory is bounded by the number of output lines (a 128-bit id hash and a
//! file offset each), not by their size: the table is streamed, and each row's
//! line is read back from its offset. This module only reads; it never
//! changes the output directory.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cli::{ExportArgs, ExportFormat};
use crate::error::SetupError;
use crate::input::job::{row_id, stand_in_id};
use crate::input::reader::{Item, RowReader};
use crate::outcome::Source;
use crate::output::checkpoint::id_hash;
use crate::output::manifest::Manifest;
use crate::output::sink::{FAILURES, RESULTS};

/// Rows are re-read with a limit far above any the run may have used, so a
/// row the run could read is read again; a row over the run's limit was
/// recorded under its stand-in id, which is looked up second.
const MAX_ROW_BYTES: usize = 1 << 30;

/// The columns the export adds after the input's own, in this order.
const OUTPUT_COLUMNS: [&str; 13] = [
    "status",
    "answer",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "attempts",
    "model",
    "error_kind",
    "error_code",
    "error",
    "source",
];

/// What the export wrote, for the line on stderr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub rows: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub unsent: u64,
}

/// Where one output line is: which file, its byte offset and length.
#[derive(Debug, Clone, Copy)]
struct Loc {
    failed: bool,
    offset: u64,
    len: u32,
}

/// The part of an output line the index needs.
#[derive(Deserialize)]
struct Head {
    id: String,
    source: Option<Source>,
    #[serde(default)]
    cost_usd: Option<Value>,
}

/// Every output line, by id hash.
struct Index {
    lines: HashMap<u128, Loc>,
    /// The input file names as the run wrote them into `source.file`.
    files: HashSet<String>,
    has_cost: bool,
    results: Option<File>,
    failures: Option<File>,
}

/// Writes the table for `args.dir` to `args.output` (or stdout) and returns
/// what it counted. Errors are setup errors: the directory or its inputs
/// cannot be read.
pub fn run(args: &ExportArgs) -> anyhow::Result<Counts> {
    let dir = &args.dir;
    let manifest = Manifest::read(dir)?.ok_or_else(|| {
        SetupError::OutputDir(format!(
            "{}: no manifest.json: not a bedrock-batch output directory (run `bedrock-batch run` into it first)",
            dir.display()
        ))
    })?;
    let index = Index::build(dir)?;
    let inputs: Vec<(PathBuf, String)> = manifest
        .inputs
        .iter()
        .map(|p| {
            let path = PathBuf::from(p);
            let name = run_name(&path, &manifest.inputs, &index.files);
            (path, name)
        })
        .collect();

    // First pass: the columns (a CSV header needs them all up front; JSONL
    // rows may each have others) and which ids repeat.
    let mut columns: Vec<String> = Vec::new();
    let mut seen_columns: HashSet<String> = HashSet::new();
    let mut counts: HashMap<u128, u32> = HashMap::new();
    for (path, name) in &inputs {
        let mut reader = open(path)?;
        if let Some(headers) = reader.headers() {
            for h in headers {
                if seen_columns.insert(h.clone()) {
                    columns.push(h.clone());
                }
            }
        }
        while let Some(item) = reader.next_item()? {
            let (fields, source) = parts(&item, name);
            for k in fields.keys() {
                if seen_columns.insert(k.clone()) {
                    columns.push(k.clone());
                }
            }
            *counts
                .entry(id_hash(&id_of(&manifest, fields, &source)))
                .or_default() += 1;
        }
    }
    columns.retain(|c| *c != manifest.id_column);
    let header = Header::new(&manifest.id_column, columns, index.has_cost);

    let format = args.format.unwrap_or(match &args.output {
        Some(p) if p.extension().is_some_and(|e| e == "jsonl") => ExportFormat::Jsonl,
        _ => ExportFormat::Csv,
    });
    let mut sink = Sink::open(args.output.as_deref(), format)?;
    if !sink.header(&header.names)? {
        return Ok(Counts::default());
    }

    // Second pass: one table row per input row, ids assigned as the run did.
    let mut n = Counts::default();
    let mut repeat: HashMap<u128, u32> = HashMap::new();
    for (path, name) in &inputs {
        let mut reader = open(path)?;
        while let Some(item) = reader.next_item()? {
            let (fields, source) = parts(&item, name);
            let mut id = id_of(&manifest, fields, &source);
            let h = id_hash(&id);
            if counts.get(&h).is_some_and(|c| *c > 1) {
                let k = repeat.entry(h).or_default();
                *k += 1;
                if *k > 1 {
                    id = format!("{id}#{k}");
                }
            }
            let line = index
                .find(&id)
                .or_else(|| index.find(&stand_in_id(&source)))
                .map(|loc| index.read(loc))
                .transpose()?;
            n.rows += 1;
            match &line {
                None => n.unsent += 1,
                Some((true, _)) => n.failed += 1,
                Some((false, _)) => n.succeeded += 1,
            }
            let row = header.row(&id, fields, line.as_ref());
            if !sink.row(&row)? {
                return Ok(n);
            }
        }
    }
    sink.finish()?;
    Ok(n)
}

fn open(path: &Path) -> Result<RowReader, SetupError> {
    RowReader::open(path, MAX_ROW_BYTES).map_err(|e| match e {
        SetupError::Input { path, message } => SetupError::Input {
            path,
            message: format!("{message} (an input of the job, from manifest.json)"),
        },
        other => other,
    })
}

/// A row's columns and its source as the run named it.
fn parts<'a>(item: &'a Item, name: &str) -> (&'a Map<String, Value>, Source) {
    let (fields, source) = match item {
        Item::Record(r) => (&r.fields, &r.source),
        Item::Bad(b) => (&b.fields, &b.source),
    };
    (
        fields,
        Source {
            file: name.to_string(),
            line: source.line,
        },
    )
}

fn id_of(manifest: &Manifest, fields: &Map<String, Value>, source: &Source) -> String {
    row_id(&manifest.id_column, fields, source).unwrap_or_else(|_| stand_in_id(source))
}

impl Index {
    fn build(dir: &Path) -> anyhow::Result<Index> {
        let mut index = Index {
            lines: HashMap::new(),
            files: HashSet::new(),
            has_cost: false,
            results: None,
            failures: None,
        };
        // Results first: should an id be in both files, its answer wins.
        for (failed, name) in [(false, RESULTS), (true, FAILURES)] {
            let path = dir.join(name);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("{}: cannot open", path.display()))
                }
            };
            let mut reader = BufReader::new(file.try_clone()?);
            let mut offset = 0u64;
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .with_context(|| format!("{}: cannot read", path.display()))?;
                if n == 0 {
                    break;
                }
                // A torn last line (no newline: the process died mid-write)
                // is not a record; the next run cuts it away and resends the row.
                if buf.ends_with(b"\n") {
                    if let Ok(head) = serde_json::from_slice::<Head>(&buf) {
                        index.has_cost |= head.cost_usd.is_some_and(|c| !c.is_null());
                        if let Some(s) = head.source {
                            if !index.files.contains(&s.file) {
                                index.files.insert(s.file);
                            }
                        }
                        index.lines.entry(id_hash(&head.id)).or_insert(Loc {
                            failed,
                            offset,
                            len: u32::try_from(n).unwrap_or(u32::MAX),
                        });
                    }
                }
                offset += n as u64;
            }
            if failed {
                index.failures = Some(file);
            } else {
                index.results = Some(file);
            }
        }
        Ok(index)
    }

    fn find(&self, id: &str) -> Option<Loc> {
        self.lines.get(&id_hash(id)).copied()
    }

    /// The line at `loc`, parsed: (is a failure, record).
    fn read(&self, loc: Loc) -> anyhow::Result<(bool, Value)> {
        let (file, name) = if loc.failed {
            (self.failures.as_ref(), FAILURES)
        } else {
            (self.results.as_ref(), RESULTS)
        };
        // `loc` came from this very file, which was opened above.
        let file = file.context("output file vanished")?;
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset)
            .with_context(|| format!("{name}: cannot read back byte {}", loc.offset))?;
        let v = serde_json::from_slice(&buf)
            .with_context(|| format!("{name}: byte {}: not a JSON line", loc.offset))?;
        Ok((loc.failed, v))
    }
}

/// The name the run gave `input` in `source.file` (the path as given on its
/// command line or in its config), so that stand-in ids (`FILE:LINE`) match.
/// The manifest holds absolute paths; the run may have been started from
/// another directory, so the names in the output files are matched by
/// resolving them here, then by their trailing path components, then by
/// file name when that is unambiguous. Without a match, the absolute path.
fn run_name(input: &Path, all: &[String], seen: &HashSet<String>) -> String {
    let mut names: Vec<&String> = seen.iter().collect();
    names.sort();
    if let Some(n) = names.iter().find(|n| {
        std::fs::canonicalize(n)
            .map(|p| p == input)
            .unwrap_or(false)
    }) {
        return n.to_string();
    }
    let tail = |n: &str| -> PathBuf {
        Path::new(n)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect()
    };
    if let Some(n) = names.iter().find(|n| {
        let t = tail(n);
        !t.as_os_str().is_empty() && input.ends_with(&t)
    }) {
        return n.to_string();
    }
    let same_name = |p: &Path| p.file_name() == input.file_name();
    let inputs_named_so = all.iter().filter(|p| same_name(Path::new(p))).count();
    let matching: Vec<&&String> = names.iter().filter(|n| same_name(Path::new(n))).collect();
    if inputs_named_so == 1 && matching.len() == 1 {
        return matching[0].to_string();
    }
    input.display().to_string()
}

/// The table's columns: the id, the inputs' columns, then ours.
struct Header {
    names: Vec<String>,
    inputs: Vec<String>,
    has_cost: bool,
}

impl Header {
    fn new(id_column: &str, inputs: Vec<String>, has_cost: bool) -> Header {
        let mut names = vec![id_column.to_string()];
        names.extend(inputs.iter().cloned());
        for c in OUTPUT_COLUMNS {
            if c == "cost_usd" && !has_cost {
                continue;
            }
            // An input column of the same name (a row's own `model`, say)
            // keeps its name; ours gives way.
            if inputs.iter().any(|i| i == c) || c == id_column {
                names.push(format!("result_{c}"));
            } else {
                names.push(c.to_string());
            }
        }
        Header {
            names,
            inputs,
            has_cost,
        }
    }

    /// One table row, aligned with `names`.
    fn row(
        &self,
        id: &str,
        fields: &Map<String, Value>,
        line: Option<&(bool, Value)>,
    ) -> Vec<Value> {
        let mut row = Vec::with_capacity(self.names.len());
        row.push(Value::String(id.to_string()));
        for c in &self.inputs {
            row.push(fields.get(c).cloned().unwrap_or(Value::Null));
        }
        let rec = line.map(|(_, v)| v);
        let get = |pointer: &str| {
            rec.and_then(|v| v.pointer(pointer))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let status = match line {
            None => "unsent",
            Some((true, _)) => "failed",
            Some((false, _)) => "succeeded",
        };
        row.push(Value::String(status.into()));
        row.push(get("/output"));
        row.push(get("/stop_reason"));
        row.push(get("/usage/input_tokens"));
        row.push(get("/usage/output_tokens"));
        if self.has_cost {
            row.push(get("/cost_usd"));
        }
        row.push(get("/latency_ms"));
        row.push(get("/attempts"));
        row.push(get("/model"));
        row.push(get("/error/kind"));
        row.push(get("/error/code"));
        row.push(get("/error/message"));
        row.push(match (get("/source/file"), get("/source/line")) {
            (Value::String(f), Value::Number(l)) => Value::String(format!("{f}:{l}")),
            _ => Value::Null,
        });
        row
    }
}

/// Where the table goes: a file (written to a temporary file beside it and
/// renamed at the end, so a reader never sees half a table) or stdout.
struct Sink {
    out: Out,
    names: Vec<String>,
    file: Option<(tempfile::NamedTempFile, PathBuf)>,
}

enum Out {
    /// `csv` quotes a cell holding a comma, quote or line break.
    Csv(Box<csv::Writer<Box<dyn Write>>>),
    Jsonl(Box<dyn Write>),
}

impl Sink {
    fn open(path: Option<&Path>, format: ExportFormat) -> anyhow::Result<Sink> {
        let (w, file): (Box<dyn Write>, _) = match path {
            Some(p) => {
                let parent = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                // Created 0600, like every file we write: it holds prompts and answers.
                let tmp = tempfile::NamedTempFile::new_in(&parent)
                    .with_context(|| format!("{}: cannot write here", parent.display()))?;
                let w = tmp.reopen()?;
                (
                    Box::new(std::io::BufWriter::new(w)),
                    Some((tmp, p.to_path_buf())),
                )
            }
            None => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
        };
        let out = match format {
            ExportFormat::Csv => Out::Csv(Box::new(csv::Writer::from_writer(w))),
            ExportFormat::Jsonl => Out::Jsonl(w),
        };
        Ok(Sink {
            out,
            names: Vec::new(),
            file,
        })
    }

    fn header(&mut self, names: &[String]) -> anyhow::Result<bool> {
        self.names = names.to_vec();
        let result = match &mut self.out {
            Out::Csv(w) => w.write_record(names).map_err(io_error),
            Out::Jsonl(_) => Ok(()),
        };
        self.check(result)
    }

    /// False once stdout's reader has gone (`export … | head`): stop quietly.
    fn row(&mut self, row: &[Value]) -> anyhow::Result<bool> {
        let result = match &mut self.out {
            Out::Csv(w) => w.write_record(row.iter().map(cell)).map_err(io_error),
            Out::Jsonl(w) => {
                let obj: Map<String, Value> = self
                    .names
                    .iter()
                    .cloned()
                    .zip(row.iter().cloned())
                    .collect();
                let mut line = serde_json::to_vec(&obj)?;
                line.push(b'\n');
                w.write_all(&line)
            }
        };
        self.check(result)
    }

    fn check(&self, result: std::io::Result<()>) -> anyhow::Result<bool> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && self.file.is_none() => {
                Ok(false)
            }
            Err(e) => Err(e).context("cannot write the export"),
        }
    }

    fn finish(mut self) -> anyhow::Result<()> {
        let result = match &mut self.out {
            Out::Csv(w) => w.flush(),
            Out::Jsonl(w) => w.flush(),
        };
        if !self.check(result)? {
            return Ok(());
        }
        drop(self.out);
        if let Some((tmp, path)) = self.file.take() {
            tmp.persist(&path)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
        Ok(())
    }
}

/// A CSV error as the I/O error it wraps (the only kind writing can meet,
/// since every record has the header's length).
fn io_error(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// A JSON value as a CSV cell: text as itself, numbers and booleans as
/// written, null as empty, arrays and objects as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_columns_give_way_to_input_columns_of_the_same_name() {
        let h = Header::new("id", vec!["prompt".into(), "model".into()], false);
        assert_eq!(
            h.names,
            [
                "id",
                "prompt",
                "model",
                "status",
                "answer",
                "stop_reason",
                "input_tokens",
                "output_tokens",
                "latency_ms",
                "attempts",
                "result_model",
                "error_kind",
                "error_code",
                "error",
                "source"
            ]
        );
        let fields = json!({"prompt": "p", "model": "m"});
        let row = h.row("a", fields.as_object().unwrap(), None);
        assert_eq!(row.len(), h.names.len());
        assert_eq!(row[3], json!("unsent"));
        assert!(row[4..].iter().all(Value::is_null));
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!("a,b")), "a,b");
        assert_eq!(cell(&json!(0.5)), "0.5");
        assert_eq!(cell(&json!(["x"])), "[\"x\"]");
    }

    #[test]
    fn run_names_match_by_trailing_components_then_file_name() {
        let all = vec![
            "/data/job/a.csv".to_string(),
            "/data/job/b.jsonl".to_string(),
        ];
        let seen: HashSet<String> = ["../job/a.csv".to_string(), "b.jsonl".to_string()]
            .into_iter()
            .collect();
        assert_eq!(
            run_name(Path::new("/data/job/a.csv"), &all, &seen),
            "../job/a.csv"
        );
        assert_eq!(
            run_name(Path::new("/data/job/b.jsonl"), &all, &seen),
            "b.jsonl"
        );
        assert_eq!(
            run_name(Path::new("/data/job/c.csv"), &all, &seen),
            "/data/job/c.csv"
        );
    }
}
