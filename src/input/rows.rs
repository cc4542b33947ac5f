//! One stream of rows over all of a job's inputs, each with its final id.
//!
//! Every pass over the inputs goes through [`Rows`]: the inventory (counting,
//! duplicate ids), the runner's reader thread, the duplicate-id report and
//! `policy --config`'s scan for per-row models. So "both passes assign the same
//! ids" holds by construction, not by keeping copies in step: a row without a
//! usable id gets its stand-in (`FILE:LINE`) here, and a repeated id gets its
//! suffix here, bad rows included, so no id is ever written twice.
//!
//! The stream also checks what a job's rows must have before anything is sent:
//! the columns the template uses (a CSV's header, or a JSONL file's first good
//! row). It does not decide what a column *means* beyond the id: that is
//! `job.rs`'s business.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::input::reader::{json_type, Bad, Item, Record, RowReader};
use crate::input::s3::S3Inputs;
use crate::input::template::Template;
use crate::outcome::Source;

/// One input row with the id it is known by in every output file.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) id: String,
    /// A [`Item::Record`] whose id could not be read arrives here as
    /// [`Item::Bad`], with the reason and its stand-in id in the message.
    pub(crate) item: Item,
}

impl Row {
    pub(crate) fn source(&self) -> &Source {
        match &self.item {
            Item::Record(r) => &r.source,
            Item::Bad(b) => &b.source,
        }
    }
}

/// What identifies and checks a job's rows.
#[derive(Clone, Copy)]
pub(crate) struct RowSpec<'a> {
    pub(crate) inputs: &'a [PathBuf],
    pub(crate) id_column: &'a str,
    /// `id_columns`: when not empty, the id is these columns' values joined
    /// (see [`joined_id`]) and `id_column` is not read.
    pub(crate) id_columns: &'a [String],
    /// The `[[score]]` entries: the columns they compare with must exist.
    pub(crate) scorers: &'a [crate::eval::score::Scorer],
    pub(crate) max_row_bytes: usize,
    /// Checked against each file's columns before its first row is used.
    pub(crate) template: Option<&'a Template>,
    /// The column every row's prompt comes from, when there is no template:
    /// a file without it (and, for JSONL, without `messages` or a native
    /// `body`) is a setup error, not one failure per row.
    pub(crate) prompt_column: Option<&'a str>,
    /// Reads the inputs given as `s3://` URIs; `None` where no S3 input was checked.
    pub(crate) s3: Option<&'a S3Inputs>,
}

/// Ids that occur more than once, by hash (from the inventory): their second
/// and later rows get a suffix (`ID#2`, `ID#3`, …).
pub(crate) type Repeated = HashMap<u128, u32>;

/// The rows of every input file in order. Yields `Err` for a file that cannot
/// be read (a setup error) and then ends.
pub(crate) struct Rows<'a> {
    spec: RowSpec<'a>,
    next_input: usize,
    reader: Option<RowReader>,
    /// Whether the current file's columns were checked against the template.
    columns_checked: bool,
    rows_in_file: u64,
    repeated: Option<&'a Repeated>,
    /// Rows seen so far of each repeated id.
    seen: HashMap<u128, u32>,
    /// Files that held no row, for a warning.
    empty: Vec<String>,
    failed: bool,
    /// Each input's name in stand-in ids (see [`stand_in_names`]).
    names: Vec<String>,
}

impl<'a> Rows<'a> {
    /// `repeated`: `None` on the inventory's pass (ids as written), the
    /// inventory's result on every later pass.
    pub(crate) fn new(spec: RowSpec<'a>, repeated: Option<&'a Repeated>) -> Rows<'a> {
        Rows {
            spec,
            next_input: 0,
            reader: None,
            columns_checked: false,
            rows_in_file: 0,
            repeated,
            seen: HashMap::new(),
            empty: Vec::new(),
            failed: false,
            names: stand_in_names(spec.inputs),
        }
    }

    /// Input files that held no row (header only, or blank lines only).
    pub(crate) fn empty_files(&self) -> &[String] {
        &self.empty
    }

    fn open_next(&mut self) -> anyhow::Result<bool> {
        if let Some(done) = self.reader.take() {
            if self.rows_in_file == 0 {
                self.empty.push(done.name().to_string());
            }
        }
        let Some(path) = self.spec.inputs.get(self.next_input) else {
            return Ok(false);
        };
        self.next_input += 1;
        let reader = RowReader::open(path, self.spec.max_row_bytes, self.spec.s3)?;
        self.columns_checked = false;
        self.rows_in_file = 0;
        if let Some(headers) = reader.headers() {
            check_columns(&self.spec, reader.name(), 1, headers, false)?;
            self.columns_checked = true;
        }
        self.reader = Some(reader);
        Ok(true)
    }

    fn next_row(&mut self) -> anyhow::Result<Option<Row>> {
        loop {
            if self.reader.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let reader = self.reader.as_mut().expect("opened above");
            let Some(item) = reader.next_item()? else {
                if !self.open_next()? {
                    return Ok(None);
                }
                continue;
            };
            self.rows_in_file += 1;
            // JSONL has no header: the first good row stands for the file's columns.
            if let (false, Item::Record(r)) = (self.columns_checked, &item) {
                let cols: Vec<String> = r.fields.keys().cloned().collect();
                check_columns(&self.spec, reader.name(), r.source.line, &cols, true)?;
                self.columns_checked = true;
            }
            return Ok(Some(self.identify(item)));
        }
    }

    /// The row's final id: its own, or its stand-in, suffixed when repeated.
    fn identify(&mut self, item: Item) -> Row {
        let file = &self.names[self.next_input - 1];
        let stand_in = |source: &Source| format!("{file}:{}", source.line);
        let (named, item) = match item {
            Item::Record(r) => match row_id(&self.spec, &r.fields, &stand_in(&r.source)) {
                Ok(id) => (id, Item::Record(r)),
                Err(message) => {
                    let Record { source, fields } = r;
                    (
                        stand_in(&source),
                        Item::Bad(Bad {
                            source,
                            fields,
                            message,
                        }),
                    )
                }
            },
            // A bad row keeps whatever id could be salvaged, so a repeated id
            // is suffixed the same way whichever of its rows are bad.
            Item::Bad(b) => (
                row_id(&self.spec, &b.fields, &stand_in(&b.source))
                    .unwrap_or_else(|_| stand_in(&b.source)),
                Item::Bad(b),
            ),
        };
        let mut id = named;
        if let Some(repeated) = self.repeated {
            let h = id_hash(&id);
            if repeated.contains_key(&h) {
                let n = self.seen.entry(h).or_insert(0);
                *n += 1;
                if *n > 1 {
                    id = format!("{id}#{n}");
                }
            }
        }
        Row { id, item }
    }
}

impl Iterator for Rows<'_> {
    type Item = anyhow::Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_row() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The row's id under `spec`: from its one id column, or from several.
fn row_id(spec: &RowSpec, fields: &Map<String, Value>, stand_in: &str) -> Result<String, String> {
    if spec.id_columns.is_empty() {
        return id_of(fields, spec.id_column, stand_in);
    }
    let mut parts = Vec::with_capacity(spec.id_columns.len());
    for c in spec.id_columns {
        parts.push(id_of(fields, c, stand_in)?);
    }
    Ok(joined_id(&parts))
}

/// The separator of an id made from several columns (`id_columns`).
pub(crate) const ID_SEPARATOR: char = '|';

/// Several columns' values as one id: each value with `%` written `%25`
/// and `|` written `%7C`, joined with `|`. So `a|b` + `c` and `a` + `b|c`
/// stay two ids (`a%7Cb|c`, `a|b%7Cc`), and an id that has neither
/// character reads as itself: `r001|anthropic.claude-3-haiku-20240307-v1:0|0`.
pub(crate) fn joined_id(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| p.replace('%', "%25").replace(ID_SEPARATOR, "%7C"))
        .collect::<Vec<_>>()
        .join(&ID_SEPARATOR.to_string())
}

/// The row's id from `column`, or why it has none (with the stand-in it is
/// recorded under, so that resume counts it as done like any other row).
fn id_of(fields: &Map<String, Value>, column: &str, stand_in: &str) -> Result<String, String> {
    match fields.get(column) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            Err(format!("missing id (column `{column}`)"))
        }
        Some(other) => Err(format!(
            "id (column `{column}`) is a {}, expected a string or number",
            json_type(other)
        )),
    }
    .map_err(|m| m + &format!("; recorded as `{stand_in}`"))
}

/// How each input is named in the stand-in ids (`NAME:LINE`) of rows without
/// a usable id: its file name, or as many trailing path components as it
/// takes to tell inputs with the same file name apart (`a/p.csv`, `b/p.csv`).
/// Never the path as typed, which changes with the working directory: a
/// resume from elsewhere must find those rows done.
fn stand_in_names(inputs: &[PathBuf]) -> Vec<String> {
    let parts: Vec<Vec<String>> = inputs
        .iter()
        .map(|p| {
            let full = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            full.components()
                .rev()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let deepest = parts.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let name = |p: &Vec<String>, k: usize| {
        let mut tail: Vec<&str> = p.iter().take(k).map(String::as_str).collect();
        tail.reverse();
        tail.join("/")
    };
    for k in 1..=deepest {
        let names: Vec<String> = parts.iter().map(|p| name(p, k)).collect();
        let mut seen = std::collections::HashSet::new();
        if names.iter().all(|n| seen.insert(n)) {
            return names;
        }
    }
    // The same file given twice: the full paths, as unique as they get.
    parts.iter().map(|p| name(p, deepest)).collect()
}

/// How ids are compared in bulk (duplicates, done sets) at 16 bytes a row:
/// two SipHash values of the id under std's fixed keys, so a false match
/// needs a 2^-128 coincidence. std does not promise the same values across
/// Rust releases, and nothing here needs it to: every set of hashes is
/// rebuilt from the files, every run, by the binary that compares them.
/// Never store these values. (SHA-256 was tried: unoptimised in debug builds
/// it doubled the CPU of a 200,000-row resume in the test suite.)
pub(crate) fn id_hash(id: &str) -> u128 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut a = DefaultHasher::new();
    (0u8, id).hash(&mut a);
    let mut b = DefaultHasher::new();
    (1u8, id).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// A file's columns (a CSV header, or a JSONL file's first good row) have
/// what every row needs: the template's columns, or the prompt column.
fn check_columns(
    spec: &RowSpec,
    file: &str,
    line: u64,
    columns: &[String],
    jsonl: bool,
) -> anyhow::Result<()> {
    if let Some(t) = spec.template {
        if let Some(col) = t.missing_column(columns) {
            anyhow::bail!(
                "{file}: line {line}: the template uses column `{col}`, which the file does not have"
            );
        }
    }
    for c in spec.id_columns {
        if !columns.contains(c) {
            anyhow::bail!(
                "{file}: line {line}: `id_columns` names column `{c}`, which the {} does not have",
                if jsonl { "first row" } else { "file" }
            );
        }
    }
    for s in spec.scorers {
        // A dotted path (`meta.label`) starts with a top-level column.
        let Some(col) = s.column.as_deref() else {
            continue;
        };
        let top = col.split('.').next().unwrap_or(col);
        if !columns.iter().any(|h| h == top) {
            anyhow::bail!(
                "{file}: line {line}: [[score]] \"{}\" compares with column `{col}`, which the {} does not have",
                s.name,
                if jsonl { "first row" } else { "file" }
            );
        }
    }
    if let Some(prompt) = spec.prompt_column {
        let has = |c: &str| columns.iter().any(|h| h == c);
        let other_ways = jsonl && (has("messages") || has("body"));
        if !has(prompt) && !other_ways {
            anyhow::bail!(
                "{file}: line {line}: no `{prompt}` column for the prompt (the {} has: {}); name the prompt's column with prompt_column (--prompt-column) or write a template",
                if jsonl { "first row" } else { "file" },
                columns.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(inputs: &'a [PathBuf]) -> RowSpec<'a> {
        RowSpec {
            inputs,
            id_column: "id",
            id_columns: &[],
            scorers: &[],
            max_row_bytes: 1 << 20,
            template: None,
            prompt_column: None,
            s3: None,
        }
    }

    fn ids(rows: Rows) -> Vec<String> {
        rows.map(|r| r.unwrap().id).collect()
    }

    #[test]
    fn an_id_from_several_columns_cannot_be_confused() {
        let j = |p: &[&str]| joined_id(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(j(&["r1", "m.x:0", "0"]), "r1|m.x:0|0");
        assert_ne!(j(&["a|b", "c"]), j(&["a", "b|c"]));
        assert_eq!(j(&["a|b", "c"]), "a%7Cb|c");
        assert_ne!(j(&["a%7Cb", "c"]), j(&["a|b", "c"]));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"r1\",\"model\":\"a\",\"sample\":0}\n{\"id\":\"r1\",\"model\":\"b\",\"sample\":0}\n{\"id\":\"r2\",\"model\":\"a\"}\n",
        )
        .unwrap();
        let inputs = [p.clone()];
        let cols = ["id".to_string(), "model".to_string(), "sample".to_string()];
        let rows: Vec<Row> = Rows::new(
            RowSpec {
                id_columns: &cols,
                ..spec(&inputs)
            },
            None,
        )
        .map(Result::unwrap)
        .collect();
        assert_eq!(rows[0].id, "r1|a|0");
        assert_eq!(rows[1].id, "r1|b|0");
        // A row without one of the columns is a bad row under its stand-in.
        assert_eq!(rows[2].id, "r.jsonl:3");
        match &rows[2].item {
            Item::Bad(b) => assert!(
                b.message.starts_with("missing id (column `sample`)"),
                "{}",
                b.message
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stand_in_ids_and_suffixes_are_assigned_once_for_every_pass() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "id,prompt\nx,p1\n,p2\nx,p3\n").unwrap();
        let b = dir.path().join("b.jsonl");
        std::fs::write(&b, "{\"id\":\"x\",\"prompt\":\"p4\"}\nnot json\n").unwrap();
        let inputs = [a.clone(), b.clone()];

        // The inventory's pass: ids as written; stand-ins by file name.
        let first = ids(Rows::new(spec(&inputs), None));
        let (a_name, b_name) = ("a.csv", "b.jsonl");
        assert_eq!(
            first,
            [
                "x",
                &format!("{a_name}:3"),
                "x",
                "x",
                &format!("{b_name}:2")
            ]
        );

        // Every later pass: the repeated id suffixed, the same way each time.
        let mut repeated = Repeated::new();
        repeated.insert(id_hash("x"), 3);
        let later = ids(Rows::new(spec(&inputs), Some(&repeated)));
        assert_eq!(
            later,
            [
                "x",
                &format!("{a_name}:3"),
                "x#2",
                "x#3",
                &format!("{b_name}:2")
            ]
        );
        assert_eq!(later, ids(Rows::new(spec(&inputs), Some(&repeated))));
    }

    #[test]
    fn a_row_without_an_id_is_a_bad_row_naming_its_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "id,prompt\n  ,p\n").unwrap();
        let inputs = [a.clone()];
        let row = Rows::new(spec(&inputs), None).next().unwrap().unwrap();
        let Item::Bad(bad) = &row.item else {
            panic!("{row:?}")
        };
        assert_eq!(
            bad.message,
            "missing id (column `id`); recorded as `a.csv:2`"
        );
        assert_eq!(row.id, "a.csv:2");
    }

    #[test]
    fn stand_in_names_do_not_depend_on_how_the_path_was_typed() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["x", "y"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("p.csv"), "id\n").unwrap();
        }
        std::fs::write(dir.path().join("q.csv"), "id\n").unwrap();
        let d = dir.path();
        assert_eq!(
            stand_in_names(&[d.join("x/p.csv"), d.join("q.csv")]),
            ["p.csv", "q.csv"]
        );
        assert_eq!(
            stand_in_names(&[d.join("x/p.csv"), d.join("y/../y/p.csv")]),
            ["x/p.csv", "y/p.csv"]
        );
    }

    #[test]
    fn template_columns_are_checked_per_file_and_empty_files_noted() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "id,question\n").unwrap();
        let b = dir.path().join("b.jsonl");
        std::fs::write(&b, "{\"id\":1,\"q\":\"?\"}\n").unwrap();
        let t = Template::compile("{{ question }}").unwrap();
        let inputs = [a.clone(), b.clone()];
        let mut rows = Rows::new(
            RowSpec {
                template: Some(&t),
                ..spec(&inputs)
            },
            None,
        );
        let err = rows.next().unwrap().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: line 1: the template uses column `question`, which the file does not have",
                b.display()
            )
        );
        assert!(rows.next().is_none(), "a setup error ends the stream");
        assert_eq!(rows.empty_files(), [a.display().to_string()]);
    }

    #[test]
    fn a_file_without_the_prompt_column_is_refused_naming_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "id,question,expected\n1,why?,because\n").unwrap();
        let b = dir.path().join("b.jsonl");
        std::fs::write(&b, "\n{\"id\":1,\"question\":\"?\"}\n").unwrap();
        let c = dir.path().join("c.jsonl");
        std::fs::write(&c, "{\"id\":1,\"messages\":[]}\n{\"id\":2}\n").unwrap();
        let check = |path: &PathBuf| {
            let inputs = [path.clone()];
            let spec = RowSpec {
                prompt_column: Some("prompt"),
                ..spec(&inputs)
            };
            Rows::new(spec, None)
                .collect::<anyhow::Result<Vec<Row>>>()
                .map(|rows| rows.len())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            check(&a).unwrap_err(),
            format!("{}: line 1: no `prompt` column for the prompt (the file has: id, question, expected); name the prompt's column with prompt_column (--prompt-column) or write a template", a.display())
        );
        assert_eq!(
            check(&b).unwrap_err(),
            format!("{}: line 2: no `prompt` column for the prompt (the first row has: id, question); name the prompt's column with prompt_column (--prompt-column) or write a template", b.display())
        );
        // Multi-turn rows need no prompt column; a later row without either
        // is that row's own failure.
        assert_eq!(check(&c), Ok(2));
    }

    #[test]
    fn id_hash_tells_ids_apart() {
        assert_eq!(id_hash("a"), id_hash("a"));
        assert_ne!(id_hash("a"), id_hash("b"));
        assert_ne!(id_hash("a#2"), id_hash("a"));
    }
}
