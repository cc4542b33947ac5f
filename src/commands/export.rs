//! `bedrock-batch export`: an output directory as one table, one row per
//! input row, in input order, for spreadsheets and pandas. For a matrix job
//! (several models or samples, from the manifest) one row per unit: each
//! input row once per model and sample, with a `sample` column.
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
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cli::{ExportArgs, ExportFormat};
use crate::input::matrix::{unit_key, Matrix, FIRST_SAMPLE};
use crate::input::reader::Item;
use crate::input::rows::{id_hash, Repeated, RowSpec, Rows};
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
    /// Absent only from hand-made lines: the job's first model.
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    sample: Option<u32>,
    #[serde(default)]
    cost_usd: Option<Value>,
}

/// Every output line, by the hash of its unit's key (`input/matrix.rs`).
struct Index {
    lines: HashMap<u128, Loc>,
    has_cost: bool,
    results: Option<File>,
    failures: Option<File>,
}

/// Writes the table for `args.dir` to `args.output` (or stdout) and returns
/// what it counted. Errors are setup errors: the directory or its inputs
/// cannot be read.
pub(crate) fn run(args: &ExportArgs) -> anyhow::Result<Counts> {
    let dir = &args.dir;
    let manifest = Manifest::read(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no manifest.json: not a bedrock-batch output directory (run `bedrock-batch run` into it first)",
            dir.display()
        )
    })?;
    let index = Index::build(dir, &manifest.model)?;
    let inputs: Vec<PathBuf> = manifest.inputs.iter().map(PathBuf::from).collect();
    // The one row stream the run reads its rows with, so every row gets the
    // id the run gave it (stand-ins and duplicate suffixes included).
    let spec = RowSpec {
        inputs: &inputs,
        id_column: &manifest.id_column,
        id_columns: &manifest.id_columns,
        scorers: &[],
        max_row_bytes: MAX_ROW_BYTES,
        template: None,
        prompt_column: None,
        s3: None,
    };
    let in_the_job = |e: anyhow::Error| e.context("an input of the job, from manifest.json");

    // First pass: the columns (a CSV header needs them all up front; JSONL
    // rows may each have others) and which ids repeat.
    let mut columns: Vec<String> = Vec::new();
    let mut seen_columns: HashSet<String> = HashSet::new();
    let mut counts: Repeated = HashMap::new();
    for row in Rows::new(spec, None) {
        let row = row.map_err(in_the_job)?;
        for k in fields(&row.item).keys() {
            if seen_columns.insert(k.clone()) {
                columns.push(k.clone());
            }
        }
        *counts.entry(id_hash(&row.id)).or_default() += 1;
    }
    counts.retain(|_, n| *n > 1);
    columns.retain(|c| *c != manifest.id_column);
    let matrix = Matrix {
        models: manifest.matrix(),
        samples: manifest.samples,
        id_columns: manifest.id_columns.clone(),
    };
    let sampled = matrix.models.len() > 1 || matrix.samples > 1;
    let mut header = Header::new(&manifest.id_column, columns, index.has_cost);
    if sampled {
        header.add_sample();
    }

    let format = args.format.unwrap_or(match &args.output {
        Some(p) if p.extension().is_some_and(|e| e == "jsonl") => ExportFormat::Jsonl,
        _ => ExportFormat::Csv,
    });
    let mut sink = Sink::open(args.output.as_deref(), format)?;
    if !sink.header(&header.names)? {
        return Ok(Counts::default());
    }

    // Second pass: one table row per input row, under its final id.
    let mut n = Counts::default();
    for row in Rows::new(spec, Some(&counts)) {
        let row = row.map_err(in_the_job)?;
        for model in matrix.models_of(&row.item) {
            for sample in matrix.samples() {
                let key = unit_key(&row.id, model, sample);
                let line = index.find(&key).map(|loc| index.read(loc)).transpose()?;
                n.rows += 1;
                match &line {
                    None => n.unsent += 1,
                    Some((true, _)) => n.failed += 1,
                    Some((false, _)) => n.succeeded += 1,
                }
                let unit = (model, sampled.then_some(sample));
                let cells = header.row(&row.id, unit, fields(&row.item), line.as_ref());
                if !sink.row(&cells)? {
                    return Ok(n);
                }
            }
        }
    }
    sink.finish()?;
    Ok(n)
}

fn fields(item: &Item) -> &Map<String, Value> {
    match item {
        Item::Record(r) => &r.fields,
        Item::Bad(b) => &b.fields,
    }
}

impl Index {
    fn build(dir: &Path, model: &str) -> anyhow::Result<Index> {
        let mut index = Index {
            lines: HashMap::new(),
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
                        let key = unit_key(
                            &head.id,
                            head.model.as_deref().unwrap_or(model),
                            head.sample.unwrap_or(FIRST_SAMPLE),
                        );
                        index.lines.entry(id_hash(&key)).or_insert(Loc {
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

    fn find(&self, key: &str) -> Option<Loc> {
        self.lines.get(&id_hash(key)).copied()
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

/// The table's columns: the id, the inputs' columns, then ours.
struct Header {
    names: Vec<String>,
    inputs: Vec<String>,
    has_cost: bool,
    /// A `sample` column after `model` (a matrix job).
    sampled: bool,
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
            sampled: false,
        }
    }

    /// One table row, aligned with `names`.
    /// Adds the `sample` column (a matrix job) after `model`.
    fn add_sample(&mut self) {
        // The columns after `model` (the error and the source) stay last.
        let model_at = OUTPUT_COLUMNS.iter().position(|c| *c == "model");
        let after = OUTPUT_COLUMNS.len() - 1 - model_at.unwrap_or(OUTPUT_COLUMNS.len() - 1);
        let at = self.names.len() - after;
        let name = if self.inputs.iter().any(|i| i == "sample") {
            "result_sample"
        } else {
            "sample"
        };
        self.names.insert(at, name.to_string());
        self.sampled = true;
    }

    /// The table row of one unit: `unit` is its model and, for a matrix
    /// job, its sample (an unsent unit has no line to take them from).
    fn row(
        &self,
        id: &str,
        unit: (&str, Option<u32>),
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
        row.push(Value::String(unit.0.to_string()));
        if self.sampled {
            row.push(unit.1.map_or(Value::Null, Value::from));
        }
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
        let row = h.row("a", ("m", None), fields.as_object().unwrap(), None);
        assert_eq!(row.len(), h.names.len());
        assert_eq!(row[3], json!("unsent"));
        let model_at = h.names.iter().position(|n| n == "result_model").unwrap();
        assert_eq!(row[model_at], json!("m"), "the model it is to be sent to");
        assert!(row[4..]
            .iter()
            .enumerate()
            .all(|(i, v)| i + 4 == model_at || v.is_null()));

        // A matrix job: a `sample` column right after `model`.
        let mut h = Header::new("id", vec!["prompt".into()], false);
        h.add_sample();
        let at = h.names.iter().position(|n| n == "model").unwrap();
        assert_eq!(h.names[at + 1], "sample");
        assert_eq!(h.names.last().map(String::as_str), Some("source"));
        let row = h.row("a", ("m", Some(2)), fields.as_object().unwrap(), None);
        assert_eq!(
            (row.len(), &row[at], &row[at + 1]),
            (h.names.len(), &json!("m"), &json!(2))
        );
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!("a,b")), "a,b");
        assert_eq!(cell(&json!(0.5)), "0.5");
        assert_eq!(cell(&json!(["x"])), "[\"x\"]");
    }
}
