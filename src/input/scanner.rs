//! CSV bytes → records, in bounded memory, with their lines and their
//! quoting checked.
//!
//! `csv::Reader` reads a record whole before anyone can look at its size, so
//! one quote that never closes turns the rest of a multi-gigabyte file into
//! one multi-gigabyte allocation. The scanner drives `csv_core` (the same
//! parser, so fields come out exactly as `csv` gives them) itself and keeps
//! at most `max_row_bytes + 1` bytes of a record's fields, and only the
//! first `keep_fields` field ends; past that it counts and discards.
//!
//! Quoting is checked as the bytes go by: a field that opens with a quote
//! must close with one followed by a comma or the end of the line. A record
//! that breaks that rule is reported at its first line, and the scanner
//! resynchronises at the line after it (seeking back when the record ran on
//! past that line), so an open quote cannot swallow the rows after it. A
//! quote that never closes is only known at the end of the file: that costs
//! one read to the end, in bounded memory, then reading resumes on the next
//! line. A record with good quoting that is simply too big (a legitimately
//! quoted multi-line field) ends where its quoting ends, and reading goes on
//! after it.
//!
//! Not here: what the fields mean, UTF-8, the header's names (`reader.rs`).

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the scanner reads: a local file, or an S3 object (`input/s3.rs`), which seeks by
/// starting a ranged read.
pub(crate) trait ByteSource: Read + Seek + Send {}

impl<T: Read + Seek + Send> ByteSource for T {}

/// What one [`Scanner::next`] found; the fields themselves are read with
/// [`Scanner::field`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scanned {
    /// The 1-based line the record starts on.
    pub line: u64,
    /// Fields in the record, kept or not.
    pub count: usize,
    /// Bytes of field data in the record, kept or not.
    pub size: u64,
    /// What is wrong with the record's quoting, if anything. The record then
    /// stands for its first line only.
    pub problem: Option<&'static str>,
}

pub(crate) struct Scanner {
    src: BufReader<Box<dyn ByteSource>>,
    core: csv_core::Reader,
    /// `core` has read nothing since it was made or reset, so it strips a
    /// leading BOM: mirrored here so the quoting check sees what it parses.
    fresh: bool,
    /// File offset of the next byte `src` yields.
    offset: u64,
    /// `\n` bytes before `offset`.
    newlines: u64,
    /// Field bytes kept per record: `max_row_bytes + 1`, so "over the limit"
    /// is known without keeping more.
    cap: usize,
    out: Vec<u8>,
    /// Bytes of `out` holding this record's fields.
    kept: usize,
    ends: Vec<usize>,
    /// Entries of `ends` in use.
    kept_ends: usize,
    scratch: Vec<u8>,
    scratch_ends: Vec<usize>,
}

impl Scanner {
    /// A scanner over `file` from its start, keeping up to `max_row_bytes`
    /// of a record and `keep_fields` of its field ends.
    pub fn new(file: Box<dyn ByteSource>, max_row_bytes: usize, keep_fields: usize) -> Scanner {
        Scanner {
            src: BufReader::with_capacity(64 * 1024, file),
            core: csv_core::Reader::new(),
            fresh: true,
            offset: 0,
            newlines: 0,
            cap: max_row_bytes.saturating_add(1),
            out: vec![0; 4096.min(max_row_bytes.saturating_add(1))],
            kept: 0,
            ends: vec![0; keep_fields.max(1)],
            kept_ends: 0,
            scratch: vec![0; 64 * 1024],
            scratch_ends: vec![0; 1024],
        }
    }

    /// Keep the ends of this many fields from now on (the header's width + 1).
    pub fn keep_fields(&mut self, n: usize) {
        self.ends = vec![0; n.max(1)];
    }

    /// Field `i` of the last record, if it was kept whole.
    pub fn field(&self, i: usize) -> Option<&[u8]> {
        if i >= self.kept_ends {
            return None;
        }
        let end = self.ends[i];
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (end <= self.kept).then(|| &self.out[start..end])
    }

    /// Bytes this scanner holds, whatever it has read.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.out.capacity()
            + self.scratch.capacity()
            + (self.ends.capacity() + self.scratch_ends.capacity()) * std::mem::size_of::<usize>()
            + self.src.capacity()
    }

    /// The next record, `None` at the end of the file.
    pub fn next(&mut self) -> io::Result<Option<Scanned>> {
        use csv_core::ReadRecordResult as R;
        self.kept = 0;
        self.kept_ends = 0;
        let mut count = 0usize;
        let mut size = 0u64;
        // The record's first line, once a byte that is not a blank line is seen.
        let mut line: Option<u64> = None;
        let mut quoting = Quoting::FieldStart;
        // Offset just past the first `\n` inside the record.
        let mut first_nl: Option<u64> = None;
        loop {
            let input = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let bom = if self.fresh && input.len() >= BOM.len() && input.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            let overflow = self.kept == self.out.len() && self.out.len() >= self.cap;
            let output: &mut [u8] = if overflow {
                &mut self.scratch
            } else {
                &mut self.out[self.kept..]
            };
            let ends: &mut [usize] = if self.kept_ends < self.ends.len() {
                &mut self.ends[self.kept_ends..]
            } else {
                &mut self.scratch_ends
            };
            let (res, nin, nout, nend) = self.core.read_record(input, output, ends);
            self.fresh = false;
            // Line and quoting bookkeeping over the bytes just parsed: byte by
            // byte until the record's start, first line end and quoting are
            // known, then only newlines are counted.
            let bytes = &input[bom..nin];
            let mut i = 0;
            while i < bytes.len() && !(quoting.is_done() && first_nl.is_some()) {
                let b = bytes[i];
                i += 1;
                if line.is_none() {
                    // Blank lines (and a CRLF's `\n`) before a record are not part of it.
                    if b == b'\n' {
                        self.newlines += 1;
                        continue;
                    }
                    if b == b'\r' {
                        continue;
                    }
                    line = Some(self.newlines + 1);
                }
                if b == b'\n' {
                    self.newlines += 1;
                    first_nl.get_or_insert(self.offset + (bom + i) as u64);
                }
                if !quoting.is_done() {
                    quoting = quoting.step(b);
                }
            }
            self.newlines += bytes[i..].iter().filter(|&&b| b == b'\n').count() as u64;
            self.src.consume(nin);
            self.offset += nin as u64;
            size += nout as u64;
            if !overflow {
                self.kept += nout;
            }
            if self.kept_ends < self.ends.len() {
                self.kept_ends += nend;
            }
            count += nend;
            let ended = match res {
                R::InputEmpty => false,
                R::OutputFull => {
                    if !overflow && self.kept == self.out.len() && self.out.len() < self.cap {
                        let grown = (self.out.len() * 2).clamp(4096, self.cap);
                        self.out.resize(grown, 0);
                    }
                    false
                }
                R::OutputEndsFull => false,
                R::Record => true,
                R::End => return Ok(None),
            };
            if ended && quoting == Quoting::Quoted {
                quoting = Quoting::Done(Some("a quoted field is never closed"));
            }
            let problem = quoting.problem();
            // A bad record stands for its first line: once that line is
            // behind us, nothing later in it needs to be read.
            let resync = problem.and(first_nl).filter(|&nl| nl < self.offset);
            if let Some(nl) = resync {
                self.src.seek(SeekFrom::Start(nl))?;
                self.core.reset();
                self.fresh = true;
                self.offset = nl;
                // Every line up to and including the record's first.
                self.newlines = line.unwrap_or(1);
            }
            if ended || resync.is_some() {
                return Ok(Some(Scanned {
                    line: line.unwrap_or(self.newlines + 1),
                    count,
                    size,
                    problem,
                }));
            }
        }
    }
}

/// Where a record's quoting check is: a field that opens with a quote must
/// close with one followed by a comma or the end of the line. A quote inside
/// an unquoted field is taken literally (as csv does): it cannot swallow
/// other rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: closing, or the first of `""`.
    QuoteSeen,
    /// The first line end outside quotes was reached, or a problem found.
    Done(Option<&'static str>),
}

impl Quoting {
    fn step(self, b: u8) -> Quoting {
        use Quoting::*;
        let line_end = b == b'\n' || b == b'\r';
        match self {
            FieldStart if b == b'"' => Quoted,
            FieldStart | Unquoted | QuoteSeen if b == b',' => FieldStart,
            FieldStart | Unquoted | QuoteSeen if line_end => Done(None),
            FieldStart | Unquoted => Unquoted,
            Quoted if b == b'"' => QuoteSeen,
            Quoted => Quoted,
            QuoteSeen if b == b'"' => Quoted,
            QuoteSeen => Done(Some("text after a closing quote")),
            Done(p) => Done(p),
        }
    }

    fn is_done(self) -> bool {
        matches!(self, Quoting::Done(_))
    }

    fn problem(self) -> Option<&'static str> {
        match self {
            Quoting::Done(p) => p,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(bytes: &[u8], max: usize) -> Vec<(Scanned, Vec<String>)> {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = Scanner::new(Box::new(f), max, 8);
        let mut all = Vec::new();
        while let Some(r) = s.next().unwrap() {
            let fields = (0..r.count)
                .map_while(|i| s.field(i))
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            all.push((r, fields));
        }
        all
    }

    #[test]
    fn records_fields_and_lines() {
        let got = scan(b"\xEF\xBB\xBFa,\"b\r\nc\"\r\n\r\nd,\"e \"\"q\"\"\"\n", 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.line, 1);
        assert_eq!(got[0].1, ["a", "b\r\nc"]);
        assert_eq!(got[1].0.line, 4);
        assert_eq!(got[1].1, ["d", "e \"q\""]);
        assert!(got.iter().all(|(r, _)| r.problem.is_none()));
    }

    #[test]
    fn an_open_quote_is_its_first_line_only_and_reading_goes_on() {
        let got = scan(b"a,\"open\nb,c\nd,\"x\"y\ne,f\n", 100);
        let lines: Vec<(u64, Option<&str>)> =
            got.iter().map(|(r, _)| (r.line, r.problem)).collect();
        assert_eq!(
            lines,
            [
                (1, Some("text after a closing quote")),
                (2, None),
                (3, Some("text after a closing quote")),
                (4, None)
            ]
        );
        assert_eq!(got[1].1, ["b", "c"]);
        let got = scan(b"a,\"never\nb,c\n", 100);
        assert_eq!(got[0].0.problem, Some("a quoted field is never closed"));
        assert_eq!(
            (got[1].0.line, &got[1].1[..]),
            (2, &["b".to_string(), "c".into()][..])
        );
    }

    #[test]
    fn a_big_record_is_counted_not_kept() {
        let mut data = b"id,\"".to_vec();
        data.extend(std::iter::repeat_n(b'x', 200_000));
        data.extend_from_slice(b"\nmore\",z\nnext,1\n");
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &data).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = Scanner::new(Box::new(f), 1000, 8);
        let r = s.next().unwrap().unwrap();
        assert_eq!((r.line, r.count, r.problem), (1, 3, None));
        assert_eq!(r.size, 2 + 200_005 + 1);
        assert_eq!(
            s.field(0),
            Some(&b"id"[..]),
            "the fields before the cut are kept"
        );
        assert_eq!(s.field(1), None);
        assert!(s.held_bytes() < 1000 + 200_000, "{}", s.held_bytes());
        let r = s.next().unwrap().unwrap();
        assert_eq!((r.line, r.count), (3, 2));
        assert_eq!(s.field(0), Some(&b"next"[..]));
    }
}
