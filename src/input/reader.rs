//! CSV / JSONL files → a stream of [`Item`]s, one per input row, read lazily.
//!
//! The reader knows file formats, not jobs: it yields a row's columns as a JSON
//! object with the row's [`Source`], or a [`Bad`] row when the bytes cannot be a
//! row at all (ragged CSV record, badly quoted CSV record, invalid JSON, a
//! JSON line that is not an object, invalid UTF-8, a row over the size
//! limit). A badly quoted record is reported at its first line and reading
//! goes on from the next line, so an open quote cannot swallow later rows;
//! memory stays bounded by `max_row_bytes` whatever the file holds (CSV
//! records come from `scanner.rs`, JSONL lines are cut at the limit). What the columns *mean*
//! (id, prompt, parameters) is `job.rs`'s business. Only a file that cannot be
//! opened or has no usable header is an error, and that is a setup error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use crate::input::s3::{is_s3, S3Inputs};
use crate::input::scanner::{ByteSource, Scanner};
use std::path::Path;

use serde_json::{Map, Value};

use crate::outcome::Source;

/// A row as read: columns and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub source: Source,
    pub fields: Map<String, Value>,
}

/// A row that cannot be read as a row. `fields` holds whatever could be
/// salvaged (e.g. the id of a ragged CSV record) so the failure can name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bad {
    pub source: Source,
    pub fields: Map<String, Value>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(Record),
    Bad(Bad),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn of(path: &Path) -> anyhow::Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") | Some("ndjson") => Ok(Format::Jsonl),
            _ => Err(input_error(
                &path.display().to_string(),
                "unknown input format (expected .csv, .jsonl or .ndjson)",
            )),
        }
    }
}

/// An open input file, iterated row by row.
pub struct RowReader {
    name: String,
    max_row_bytes: usize,
    inner: Inner,
}

enum Inner {
    Csv {
        scanner: Box<Scanner>,
        headers: Vec<String>,
    },
    Jsonl {
        reader: BufReader<Box<dyn Read + Send>>,
        line: u64,
        buf: Vec<u8>,
    },
}

/// Most columns a header may have: the ends of the header's fields are
/// kept whole, so this bounds them.
const MAX_COLUMNS: usize = 65_536;

impl RowReader {
    /// Opens a file and, for CSV, reads and checks its header row.
    /// `s3` reads the inputs that are `s3://` URIs (checked and pinned before the first pass).
    pub fn open(
        path: &Path,
        max_row_bytes: usize,
        s3: Option<&S3Inputs>,
    ) -> anyhow::Result<RowReader> {
        let format = Format::of(path)?;
        let name = path.display().to_string();
        let err = |message: String| input_error(&name, message);
        let file: Box<dyn ByteSource> = if is_s3(path) {
            let Some(s3) = s3 else {
                return Err(err(
                    "S3 inputs are read by `run` (with its credentials); this command reads local files only".into(),
                ));
            };
            // Zero bytes: as for a local file below.
            if s3.size(&name) == Some(0) {
                return Err(err("the object is empty".into()));
            }
            Box::new(s3.open(&name)?)
        } else {
            let file =
                File::open(path).map_err(|e| err(format!("cannot open: {}", io_message(&e))))?;
            if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(err("is a directory, not a file".into()));
            }
            // Zero bytes is a failed export or a wrong path far more often than a
            // job with nothing to do; say so before anything runs.
            if file.metadata().is_ok_and(|m| m.is_file() && m.len() == 0) {
                return Err(err("the file is empty".into()));
            }
            Box::new(file)
        };
        let inner = match format {
            Format::Csv => {
                let mut scanner = Box::new(Scanner::new(file, max_row_bytes, MAX_COLUMNS + 1));
                let read_err = |e: io::Error| err(format!("read failed: {}", io_message(&e)));
                let Some(head) = scanner.next().map_err(read_err)? else {
                    return Err(err("line 1: no header row".into()));
                };
                let at = head.line;
                // Without a header no row can be read, so a header that cannot
                // be read is a setup error rather than a row to skip.
                if let Some(problem) = head.problem {
                    return Err(err(format!(
                        "line {at}: the header row has malformed quoting: {problem}"
                    )));
                }
                if head.count > MAX_COLUMNS {
                    return Err(err(format!(
                        "line {at}: the header row has {} columns, over the limit of {MAX_COLUMNS}",
                        head.count
                    )));
                }
                if head.size > max_row_bytes as u64 {
                    return Err(err(format!(
                        "line {at}: the header row is {} bytes, over the limit of {max_row_bytes} (max_row_bytes)",
                        head.size
                    )));
                }
                let raw: Vec<&[u8]> = (0..head.count).filter_map(|i| scanner.field(i)).collect();
                if raw.is_empty() || (raw.len() == 1 && raw[0].is_empty()) {
                    return Err(err(format!("line {at}: no header row")));
                }
                let mut headers = Vec::with_capacity(raw.len());
                for (i, h) in raw.iter().enumerate() {
                    let h = std::str::from_utf8(h).map_err(|_| {
                        err(format!(
                            "line {at}: header column {} is not valid UTF-8",
                            i + 1
                        ))
                    })?;
                    let h = h.trim_start_matches('\u{feff}').trim().to_string();
                    if h.is_empty() {
                        return Err(err(format!(
                            "line {at}: header column {} has no name",
                            i + 1
                        )));
                    }
                    if headers.contains(&h) {
                        return Err(err(format!(
                            "line {at}: column `{h}` appears twice in the header"
                        )));
                    }
                    headers.push(h);
                }
                scanner.keep_fields(headers.len() + 1);
                Inner::Csv { scanner, headers }
            }
            Format::Jsonl => Inner::Jsonl {
                reader: BufReader::with_capacity(64 * 1024, Box::new(file) as Box<dyn Read + Send>),
                line: 0,
                buf: Vec::new(),
            },
        };
        Ok(RowReader {
            name,
            max_row_bytes,
            inner,
        })
    }

    /// Column names, where the format has a header (CSV).
    pub fn headers(&self) -> Option<&[String]> {
        match &self.inner {
            Inner::Csv { headers, .. } => Some(headers),
            Inner::Jsonl { .. } => None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes held for reading, whatever the file holds (property tests).
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        match &self.inner {
            Inner::Csv { scanner, .. } => scanner.held_bytes(),
            Inner::Jsonl { reader, buf, .. } => reader.capacity() + buf.capacity(),
        }
    }

    /// The next row, `None` at the end. An I/O error mid-file is fatal: the
    /// rows after it cannot be accounted for.
    pub fn next_item(&mut self) -> anyhow::Result<Option<Item>> {
        let name = &self.name;
        let max = self.max_row_bytes;
        match &mut self.inner {
            Inner::Csv { scanner, headers } => {
                let Some(scanned) = scanner
                    .next()
                    .map_err(|e| input_error(name, format!("read failed: {}", io_message(&e))))?
                else {
                    return Ok(None);
                };
                Ok(Some(csv_item(name, headers, scanner, &scanned, max)))
            }
            Inner::Jsonl { reader, line, buf } => loop {
                buf.clear();
                let (n, overflow) = read_line_limited(reader, buf, max).map_err(|e| {
                    input_error(
                        name,
                        format!("line {}: read failed: {}", *line + 1, io_message(&e)),
                    )
                })?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                let source = Source {
                    file: name.clone(),
                    line: *line,
                };
                if overflow {
                    return Ok(Some(Item::Bad(Bad {
                        source,
                        fields: Map::new(),
                        message: format!(
                            "row is {n} bytes, over the limit of {max} (max_row_bytes)"
                        ),
                    })));
                }
                let mut bytes: &[u8] = buf;
                if *line == 1 {
                    bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                }
                let bytes = bytes.trim_ascii();
                if bytes.is_empty() {
                    // Blank lines (often a trailing one) are not rows.
                    continue;
                }
                return Ok(Some(jsonl_item(source, bytes)));
            },
        }
    }
}

impl Iterator for RowReader {
    type Item = anyhow::Result<Item>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// A file that cannot be read at all, as a setup error: `FILE: what`.
fn input_error(path: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{path}: {message}")
}

fn csv_item(
    name: &str,
    headers: &[String],
    scanner: &Scanner,
    scanned: &crate::input::scanner::Scanned,
    max: usize,
) -> Item {
    let source = Source {
        file: name.to_string(),
        line: scanned.line,
    };
    if let Some(problem) = scanned.problem {
        // csv reads a quote that never closes (or closes early) as one field
        // running over the following lines, which would swallow those rows
        // into this one's prompt: the scanner reports this line alone and
        // reads on from the next. Fields before the one that runs over a
        // line end are this row's own.
        let mut fields = Map::new();
        for (i, col) in headers.iter().enumerate() {
            match scanner.field(i).map(std::str::from_utf8) {
                Some(Ok(v)) if !v.contains('\n') => {
                    fields.insert(col.clone(), Value::String(v.to_string()));
                }
                _ => break,
            }
        }
        return Item::Bad(Bad {
            source,
            fields: salvage(fields),
            message: format!("malformed quoting: {problem}"),
        });
    }
    let mut fields = Map::new();
    let mut problem = None;
    for (i, col) in headers.iter().enumerate().take(scanned.count) {
        // A field past the kept bytes of an over-long record is not kept.
        let Some(raw) = scanner.field(i) else { break };
        match std::str::from_utf8(raw) {
            Ok(v) => {
                fields.insert(col.clone(), Value::String(v.to_string()));
            }
            Err(e) => {
                problem.get_or_insert(format!(
                    "column `{col}` is not valid UTF-8 (byte {})",
                    e.valid_up_to()
                ));
            }
        }
    }
    let size = scanned.size;
    if size > max as u64 {
        return Item::Bad(Bad {
            source,
            fields: salvage(fields),
            message: format!("row is {size} bytes, over the limit of {max} (max_row_bytes)"),
        });
    }
    let count = scanned.count;
    if count != headers.len() {
        return Item::Bad(Bad {
            source,
            fields: salvage(fields),
            message: format!(
                "record has {} field{}, the header has {}",
                count,
                if count == 1 { "" } else { "s" },
                headers.len()
            ),
        });
    }
    match problem {
        Some(message) => Item::Bad(Bad {
            source,
            fields: salvage(fields),
            message,
        }),
        None => Item::Record(Record { source, fields }),
    }
}

/// Keeps only short string fields of a bad row: enough to find its id, never a
/// megabyte of garbage in failures.jsonl.
fn salvage(mut fields: Map<String, Value>) -> Map<String, Value> {
    fields.retain(|_, v| v.as_str().is_some_and(|s| s.len() <= 256));
    fields
}

fn jsonl_item(source: Source, bytes: &[u8]) -> Item {
    let bad = |message: String| {
        Item::Bad(Bad {
            source: source.clone(),
            fields: Map::new(),
            message,
        })
    };
    if let Err(e) = std::str::from_utf8(bytes) {
        return bad(format!("not valid UTF-8 (byte {})", e.valid_up_to()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => Item::Record(Record { source, fields }),
        Ok(other) => bad(format!(
            "line is a JSON {}, not an object",
            json_type(&other)
        )),
        // serde's message ends in "at line 1 column N": the line is ours, keep the column.
        Err(e) => bad(format!(
            "invalid JSON: {} (column {})",
            json_error_text(&e),
            e.column()
        )),
    }
}

fn json_error_text(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads one line (through `\n`) into `buf`, keeping at most `max` bytes; the
/// rest of an over-long line is consumed and dropped so memory stays bounded.
/// Returns the line's full length and whether it was cut.
fn read_line_limited<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<(usize, bool)> {
    let mut total = 0;
    loop {
        let (done, used) = {
            let available = match r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok((total, total > max));
            }
            let (done, used) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, available.len()),
            };
            let room = max.saturating_add(1).saturating_sub(buf.len());
            buf.extend_from_slice(&available[..used.min(room)]);
            (done, used)
        };
        r.consume(used);
        total += used;
        if done {
            let content = total - 1;
            return Ok((total, content > max));
        }
    }
}

fn io_message(e: &io::Error) -> String {
    // io::Error's Display adds "(os error 2)"; the kind is what a person needs.
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(name: &str, bytes: &[u8]) -> Vec<Item> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        RowReader::open(&path, 1000, None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn lines(items: &[Item]) -> Vec<(u64, bool)> {
        items
            .iter()
            .map(|i| match i {
                Item::Record(r) => (r.source.line, true),
                Item::Bad(b) => (b.source.line, false),
            })
            .collect()
    }

    #[test]
    fn csv_rows_carry_their_line_even_across_quoted_newlines() {
        let items = read_all(
            "p.csv",
            b"\xEF\xBB\xBFid,prompt\r\n1,\"two\r\nlines\"\r\n2,plain\r\n",
        );
        assert_eq!(lines(&items), vec![(2, true), (4, true)]);
        let Item::Record(r) = &items[0] else { panic!() };
        assert_eq!(r.fields["id"], "1", "BOM stripped from the first header");
        assert_eq!(r.fields["prompt"], "two\r\nlines");
    }

    #[test]
    fn csv_ragged_and_bad_utf8_rows_are_bad_not_fatal() {
        let items = read_all("p.csv", b"id,prompt\n1,a\n2,b,extra\n3,\xff\xfe\n4,d\n");
        assert_eq!(
            lines(&items),
            vec![(2, true), (3, false), (4, false), (5, true)]
        );
        let Item::Bad(b) = &items[1] else { panic!() };
        assert_eq!(b.message, "record has 3 fields, the header has 2");
        assert_eq!(b.fields["id"], "2");
        let Item::Bad(b) = &items[2] else { panic!() };
        assert!(
            b.message.contains("column `prompt` is not valid UTF-8"),
            "{}",
            b.message
        );
    }

    #[test]
    fn csv_header_problems_are_setup_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (bytes, want) in [
            (&b""[..], "the file is empty"),
            (b"\n\n", "no header row"),
            (b"id,id\n1,2\n", "column `id` appears twice"),
            (b"id,\n1,2\n", "header column 2 has no name"),
        ] {
            let p = dir.path().join("h.csv");
            std::fs::write(&p, bytes).unwrap();
            let err = RowReader::open(&p, 1000, None).err().unwrap().to_string();
            assert!(err.contains(want), "{err}");
            assert!(err.starts_with(&p.display().to_string()), "{err}");
        }
        let err = RowReader::open(&dir.path().join("missing.csv"), 10, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.ends_with("missing.csv: cannot open: no such file"),
            "{err}"
        );
        let err = RowReader::open(&dir.path().join("x.txt"), 10, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown input format"), "{err}");
    }

    #[test]
    fn jsonl_bad_lines_are_reported_with_their_line() {
        let items = read_all(
            "p.jsonl",
            b"\xEF\xBB\xBF{\"id\":1}\r\n\n{\"id\":\n[1,2]\n\"s\"\n{\"id\":\"\xff\"}\n{\"id\":5}",
        );
        assert_eq!(
            lines(&items),
            vec![
                (1, true),
                (3, false),
                (4, false),
                (5, false),
                (6, false),
                (7, true)
            ]
        );
        let msgs: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                Item::Bad(b) => Some(b.message.clone()),
                _ => None,
            })
            .collect();
        assert!(
            msgs[0].starts_with("invalid JSON: EOF while parsing"),
            "{}",
            msgs[0]
        );
        assert_eq!(msgs[1], "line is a JSON array, not an object");
        assert_eq!(msgs[2], "line is a JSON string, not an object");
        assert_eq!(msgs[3], "not valid UTF-8 (byte 7)");
    }

    #[test]
    fn csv_bad_quoting_is_one_bad_row_and_the_rows_after_it_are_read() {
        // Without the check, b's open quote runs to c's line and the record
        // swallows c; a's open quote runs to the end of the file.
        let items = read_all(
            "p.csv",
            b"id,prompt\r\nb,\"open\r\nc,plain\r\nd,\"ok \"\"q\"\" ok\"\r\ne,\"two\nlines\"\nf,5\" long\ng,\"x\"y\nh,after\na,\"never closed\n",
        );
        assert_eq!(
            lines(&items),
            vec![
                (2, false),
                (3, true),
                (4, true),
                (5, true),
                (7, true),
                (8, false),
                (9, true),
                (10, false)
            ]
        );
        let bad: Vec<(String, String)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Bad(b) => Some((b.fields["id"].to_string(), b.message.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            bad,
            vec![
                (
                    "\"b\"".into(),
                    "malformed quoting: text after a closing quote".into()
                ),
                (
                    "\"g\"".into(),
                    "malformed quoting: text after a closing quote".into()
                ),
                (
                    "\"a\"".into(),
                    "malformed quoting: a quoted field is never closed".into()
                ),
            ]
        );
        let Item::Record(c) = &items[1] else { panic!() };
        assert_eq!(c.fields["prompt"], "plain");
        let Item::Record(e) = &items[3] else { panic!() };
        assert_eq!(
            e.fields["prompt"], "two\nlines",
            "a well-quoted multi-line field is kept"
        );
    }

    #[test]
    fn huge_rows_are_cut_off_and_reported() {
        let mut data = b"{\"id\":1}\n{\"id\":2,\"prompt\":\"".to_vec();
        data.extend(std::iter::repeat_n(b'x', 5000));
        data.extend_from_slice(b"\"}\n{\"id\":3}\n");
        let items = read_all("p.jsonl", &data);
        assert_eq!(lines(&items), vec![(1, true), (2, false), (3, true)]);
        let Item::Bad(b) = &items[1] else { panic!() };
        assert!(
            b.message.contains("over the limit of 1000"),
            "{}",
            b.message
        );

        let mut csv = b"id,prompt\n1,a\n2,".to_vec();
        csv.extend(std::iter::repeat_n(b'y', 5000));
        csv.extend_from_slice(b"\n3,c\n");
        let items = read_all("p.csv", &csv);
        assert_eq!(lines(&items), vec![(2, true), (3, false), (4, true)]);
    }
}
