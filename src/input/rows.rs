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
use sha2::{Digest, Sha256};

use crate::input::reader::{json_type, Bad, Item, Record, RowReader};
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
    pub(crate) max_row_bytes: usize,
    /// Checked against each file's columns before its first row is used.
    pub(crate) template: Option<&'a Template>,
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
        let reader = RowReader::open(path, self.spec.max_row_bytes)?;
        self.columns_checked = false;
        self.rows_in_file = 0;
        if let (Some(t), Some(headers)) = (self.spec.template, reader.headers()) {
            if let Some(col) = t.missing_column(headers) {
                return Err(missing_template_column(reader.name(), 1, col));
            }
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
            if let (Some(t), false, Item::Record(r)) =
                (self.spec.template, self.columns_checked, &item)
            {
                let cols: Vec<String> = r.fields.keys().cloned().collect();
                if let Some(col) = t.missing_column(&cols) {
                    return Err(missing_template_column(reader.name(), r.source.line, col));
                }
                self.columns_checked = true;
            }
            return Ok(Some(self.identify(item)));
        }
    }

    /// The row's final id: its own, or its stand-in, suffixed when repeated.
    fn identify(&mut self, item: Item) -> Row {
        let (named, item) = match item {
            Item::Record(r) => match id_of(&r.fields, self.spec.id_column, &r.source) {
                Ok(id) => (id, Item::Record(r)),
                Err(message) => {
                    let Record { source, fields } = r;
                    (
                        stand_in_id(&source),
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
                id_of(&b.fields, self.spec.id_column, &b.source)
                    .unwrap_or_else(|_| stand_in_id(&b.source)),
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

/// The row's id from `column`, or why it has none (with the stand-in it is
/// recorded under, so that resume counts it as done like any other row).
fn id_of(fields: &Map<String, Value>, column: &str, source: &Source) -> Result<String, String> {
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
    .map_err(|m| m + &format!("; recorded as `{}`", stand_in_id(source)))
}

/// The id a row without a usable id is recorded under.
pub(crate) fn stand_in_id(source: &Source) -> String {
    format!("{}:{}", source.file, source.line)
}

/// 128 bits of the id's SHA-256: how ids are compared in bulk (duplicates,
/// done sets) at 16 bytes a row. Stable across builds and platforms, though
/// nothing depends on that today: every set of hashes is rebuilt from the
/// files by the same binary that compares them.
pub(crate) fn id_hash(id: &str) -> u128 {
    let digest = Sha256::digest(id.as_bytes());
    u128::from_be_bytes(
        digest[..16]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

fn missing_template_column(file: &str, line: u64, col: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{file}: line {line}: the template uses column `{col}`, which the file does not have"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(inputs: &'a [PathBuf]) -> RowSpec<'a> {
        RowSpec {
            inputs,
            id_column: "id",
            max_row_bytes: 1 << 20,
            template: None,
        }
    }

    fn ids(rows: Rows) -> Vec<String> {
        rows.map(|r| r.unwrap().id).collect()
    }

    #[test]
    fn stand_in_ids_and_suffixes_are_assigned_once_for_every_pass() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "id,prompt\nx,p1\n,p2\nx,p3\n").unwrap();
        let b = dir.path().join("b.jsonl");
        std::fs::write(&b, "{\"id\":\"x\",\"prompt\":\"p4\"}\nnot json\n").unwrap();
        let inputs = [a.clone(), b.clone()];

        // The inventory's pass: ids as written.
        let first = ids(Rows::new(spec(&inputs), None));
        let a_name = a.display().to_string();
        let b_name = b.display().to_string();
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
            format!("missing id (column `id`); recorded as `{}:2`", a.display())
        );
        assert_eq!(row.id, format!("{}:2", a.display()));
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
    fn id_hash_is_a_fixed_function_of_the_id() {
        assert_eq!(id_hash("a"), id_hash("a"));
        assert_ne!(id_hash("a"), id_hash("b"));
        // The first 16 bytes of SHA-256("a").
        assert_eq!(id_hash("a"), 0xca978112ca1bbdcafac231b39a23dc4d);
    }
}
