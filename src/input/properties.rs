//! Properties of the readers over arbitrary bytes (random quoting, invalid
//! UTF-8, BOMs, CR/LF mixes, NULs, fields far over `max_row_bytes`): no
//! panic, no error past the header; every data line is accounted for
//! exactly once, as a row, part of a row, an input failure or a blank line;
//! line numbers are right; the memory held stays bounded by
//! `max_row_bytes`, not by the file.
//!
//! CSV is checked against a reference reader written the obvious way (the
//! whole file in memory, unbounded buffers, the quoting of each whole record
//! checked after it is read, a fresh parser after each resynchronisation),
//! so the bounded, streaming scanner must agree with it row by row.
//!
//! Case counts (kept modest so CI stays fast) are in README.md.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::reader::{Item, RowReader};

const MAX: usize = 64;
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// What the CSV scanner may hold besides a record's kept bytes: its
/// read buffer, its scratch buffers and the field ends of a narrow header.
const OVERHEAD: usize = 64 * 1024 + 64 * 1024 + (64 + 1024) * 8 + 4096;

fn csv_token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(b"a".to_vec()),
        2 => Just(b"bc".to_vec()),
        3 => Just(b",".to_vec()),
        3 => Just(b"\"".to_vec()),
        1 => Just(b"\"\"".to_vec()),
        3 => Just(b"\n".to_vec()),
        2 => Just(b"\r\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(b"\0".to_vec()),
        1 => Just(b"\xff\xfe".to_vec()),
        1 => Just(BOM.to_vec()),
        1 => Just(b" ".to_vec()),
        1 => (0usize..400).prop_map(|n| vec![b'x'; n]),
    ]
}

fn csv_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just(&b"id,prompt\n"[..]),
            Just(&b"\xEF\xBB\xBFid,prompt\r\n"[..]),
            Just(&b""[..])
        ],
        proptest::collection::vec(csv_token(), 0..120),
    )
        .prop_map(|(head, tokens)| {
            let mut f = head.to_vec();
            f.extend(tokens.concat());
            f
        })
}

fn jsonl_token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(br#"{"id":"a","prompt":"p"}"#.to_vec()),
        2 => Just(b"{".to_vec()),
        2 => Just(b"\"".to_vec()),
        1 => Just(b"[1]".to_vec()),
        4 => Just(b"\n".to_vec()),
        2 => Just(b"\r\n".to_vec()),
        1 => Just(b" \t".to_vec()),
        1 => Just(b"\0".to_vec()),
        1 => Just(b"\xff".to_vec()),
        1 => Just(BOM.to_vec()),
        1 => (0usize..400).prop_map(|n| vec![b'x'; n]),
    ]
}

fn read_all(name: &str, bytes: &[u8]) -> Result<(Vec<Item>, usize), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let mut reader = RowReader::open(&path, MAX).map_err(|e| format!("{e:#}"))?;
    let mut items = Vec::new();
    let mut held = reader.held_bytes();
    while let Some(item) = reader.next_item().map_err(|e| format!("{e:#}"))? {
        held = held.max(reader.held_bytes());
        items.push(item);
    }
    Ok((items, held))
}

fn line_of(item: &Item) -> u64 {
    match item {
        Item::Record(r) => r.source.line,
        Item::Bad(b) => b.source.line,
    }
}

/// One record as the reference reads it.
#[derive(Debug)]
struct RefRecord {
    line: u64,
    /// The last line its bytes reach (its first, when its quoting is bad).
    last_line: u64,
    fields: Vec<Vec<u8>>,
    bad_quoting: bool,
}

/// The whole file in memory, one `csv_core` record at a time with buffers
/// as big as the file; a record with bad quoting stands for its first line
/// and a fresh parser starts on the next.
fn reference_csv(bytes: &[u8]) -> Vec<RefRecord> {
    use csv_core::ReadRecordResult as R;
    let line_at = |pos: usize| 1 + bytes[..pos].iter().filter(|&&b| b == b'\n').count() as u64;
    let mut out = vec![0u8; bytes.len() + 1];
    let mut ends = vec![0usize; bytes.len() + 2];
    let mut records = Vec::new();
    let mut pos = 0;
    let mut fresh = true;
    let mut core = csv_core::Reader::new();
    loop {
        // csv_core drops a BOM on its own when it has read nothing yet (at
        // the start and after each resynchronisation): skip it here only for
        // the line and quoting bookkeeping, never a second one.
        let bom = if fresh && bytes[pos..].starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        fresh = false;
        let start = pos + bom;
        let (mut nout, mut nend) = (0, 0);
        let mut input = &bytes[pos..];
        let res = loop {
            let (res, nin, o, e) = core.read_record(input, &mut out[nout..], &mut ends[nend..]);
            nout += o;
            nend += e;
            pos += nin;
            input = &input[nin..];
            // An empty input tells the parser the file has ended.
            if res != R::InputEmpty {
                break res;
            }
        };
        if res == R::End {
            return records;
        }
        assert_eq!(res, R::Record);
        let raw = &bytes[start..pos];
        let lead = raw
            .iter()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .count();
        let body = &raw[lead..];
        let line = line_at(start + lead);
        let fields = (0..nend)
            .map(|i| out[if i == 0 { 0 } else { ends[i - 1] }..ends[i]].to_vec())
            .collect();
        let bad_quoting = whole_record_quoting_is_bad(body);
        let first_nl = body
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| start + lead + i + 1);
        let last_line = match (bad_quoting, body.last()) {
            (true, _) => line,
            // The terminator's `\n` ends the record's last line.
            (false, Some(b'\n')) => line_at(pos) - 1,
            (false, _) => line_at(pos),
        };
        records.push(RefRecord {
            line,
            last_line,
            fields,
            bad_quoting,
        });
        if let Some(nl) = first_nl.filter(|&nl| bad_quoting && nl < pos) {
            pos = nl;
            fresh = true;
            core = csv_core::Reader::new();
        }
    }
}

/// A field opening with a quote must close with one followed by a comma or
/// the end of the line; checked on a whole record at once.
fn whole_record_quoting_is_bad(raw: &[u8]) -> bool {
    let mut i = 0;
    loop {
        if raw.get(i) == Some(&b'"') {
            i += 1;
            loop {
                let Some(p) = raw[i..].iter().position(|&b| b == b'"') else {
                    return true;
                };
                i += p + 1;
                if raw.get(i) == Some(&b'"') {
                    i += 1;
                } else {
                    break;
                }
            }
            match raw.get(i) {
                Some(b',') => i += 1,
                None | Some(b'\r') | Some(b'\n') => return false,
                Some(_) => return true,
            }
        } else {
            match raw[i..]
                .iter()
                .position(|&b| b == b',' || b == b'\n' || b == b'\r')
            {
                Some(p) if raw[i + p] == b',' => i += p + 1,
                _ => return false,
            }
        }
    }
}

/// What the reader accepts as a header: good quoting, within the size
/// limit, every name UTF-8, non-blank and unique.
fn header_ok(h: &RefRecord) -> bool {
    let names: Option<Vec<&str>> = h
        .fields
        .iter()
        .map(|f| {
            std::str::from_utf8(f)
                .ok()
                .map(|s| s.trim_start_matches('\u{feff}').trim())
        })
        .collect();
    let Some(names) = names else { return false };
    let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
    !h.bad_quoting
        && h.fields.iter().map(Vec::len).sum::<usize>() <= MAX
        && names.iter().all(|n| !n.is_empty())
        && unique.len() == names.len()
}

/// Physical lines, as line numbers count them: split at `\n`.
fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

/// The CSV property on one file: the scanner agrees with the reference row
/// by row, and every physical line is accounted for.
fn check_csv(bytes: &[u8]) -> Result<(), TestCaseError> {
    let bytes = bytes.to_vec();
    let reference = reference_csv(&bytes);
    let (items, held) = match read_all("p.csv", &bytes) {
        Ok(r) => r,
        Err(e) => {
            if bytes.is_empty() {
                prop_assert!(e.ends_with("p.csv: the file is empty"), "{}", e);
                return Ok(());
            }
            // Only the header may stop a file, with its line.
            prop_assert!(e.contains("p.csv: line "), "{}", e);
            let head = reference.first();
            prop_assert!(!head.is_some_and(header_ok), "{}: {:?}", e, head);
            return Ok(());
        }
    };
    prop_assert!(held <= MAX + OVERHEAD, "held {} bytes", held);
    let header = &reference[0];
    let width = header.fields.len();
    let rows = &reference[1..];
    prop_assert_eq!(items.len(), rows.len(), "{:?}\n{:?}", items, rows);
    for (item, want) in items.iter().zip(rows) {
        prop_assert_eq!(line_of(item), want.line);
        let size: usize = want.fields.iter().map(Vec::len).sum();
        let good = !want.bad_quoting
            && size <= MAX
            && want.fields.len() == width
            && want.fields.iter().all(|f| std::str::from_utf8(f).is_ok());
        match item {
            Item::Record(r) => {
                prop_assert!(good, "{:?} read as a row: {:?}", want, r);
                let got: Vec<&str> = r.fields.values().map(|v| v.as_str().unwrap()).collect();
                let want: Vec<&str> = want
                    .fields
                    .iter()
                    .map(|f| std::str::from_utf8(f).unwrap())
                    .collect();
                prop_assert_eq!(got, want);
            }
            Item::Bad(b) => {
                prop_assert!(!good, "{:?} read as bad: {}", want, b.message);
                if want.bad_quoting {
                    prop_assert!(
                        b.message.starts_with("malformed quoting: "),
                        "{}",
                        b.message
                    );
                }
            }
        }
    }
    // Every line: the header's, exactly one record's, or blank.
    prop_assert!(header_ok(header));
    let physical = lines(&bytes);
    let mut owner = vec![0u32; physical.len() + 1];
    for r in &reference {
        prop_assert!(r.line <= r.last_line);
        for l in r.line..=r.last_line {
            owner[l as usize] += 1;
        }
    }
    for (i, text) in physical.iter().enumerate() {
        let n = i + 1;
        // A fresh parser (at the start, or after a resynchronisation)
        // drops a BOM, so a line holding only one is blank too.
        let blank = text
            .strip_prefix(BOM)
            .unwrap_or(text)
            .iter()
            .all(|&b| b == b'\r');
        // A lone CR ends a record as csv reads it, but not a line as
        // lines are counted: several records may share such a line.
        let lone_cr = text
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && i + 1 < text.len());
        prop_assert!(
            owner[n] == 1 || (owner[n] == 0 && blank) || (owner[n] > 1 && lone_cr),
            "line {} ({:?}) belongs to {} records",
            n,
            String::from_utf8_lossy(text),
            owner[n]
        );
    }
    Ok(())
}

/// 256 cases from a fixed seed, so CI gives one verdict per commit; a wider
/// search sets `PROPTEST_RNG_SEED` (and `PROPTEST_CASES`), as proptest
/// documents, e.g. `PROPTEST_CASES=5000 PROPTEST_RNG_SEED=7 cargo test --lib properties`.
fn config() -> ProptestConfig {
    let env = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            256
        },
        failure_persistence: None,
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            env.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(14)
        },
        ..env
    }
}

/// Inputs a random search once found disagreeing, kept as regressions: the
/// reference stripped a BOM after a resynchronisation and csv_core, which
/// strips one itself on a fresh parser, stripped a second.
#[test]
fn csv_regressions_match_the_reference() {
    for bytes in [
        &b"id,prompt\n\"\n\xef\xbb\xbf\xef\xbb\xbf\n"[..],
        b"id,prompt\n\"\"\"\n\xef\xbb\xbf\xef\xbb\xbf",
        b"id,prompt\n\"a\n\xef\xbb\xbf\xef\xbb\xbfa\"\"\na\"\"\n",
    ] {
        if let Err(e) = check_csv(bytes) {
            panic!("{:?}: {e}", String::from_utf8_lossy(bytes));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csv_rows_match_the_reference_and_every_line_is_accounted_for(bytes in csv_file()) {
        check_csv(&bytes)?;
    }

    #[test]
    fn jsonl_every_non_blank_line_is_one_item_at_its_line(tokens in proptest::collection::vec(jsonl_token(), 1..80)) {
        let bytes = tokens.concat();
        let (items, held) = match read_all("p.jsonl", &bytes) {
            Ok(r) => r,
            Err(e) => {
                prop_assert!(bytes.is_empty(), "{}", e);
                return Ok(());
            }
        };
        prop_assert!(held <= 2 * (MAX + 1) + 64 * 1024, "held {} bytes", held);
        let want: Vec<(u64, &[u8])> = lines(&bytes)
            .into_iter()
            .enumerate()
            .filter(|(i, l)| {
                let l = if *i == 0 { l.strip_prefix(BOM).unwrap_or(l) } else { l };
                !l.trim_ascii().is_empty()
            })
            .map(|(i, l)| (i as u64 + 1, l))
            .collect();
        let got: Vec<u64> = items.iter().map(line_of).collect();
        prop_assert_eq!(got, want.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        for (item, (_, text)) in items.iter().zip(&want) {
            if text.len() > MAX + 1 {
                prop_assert!(matches!(item, Item::Bad(b) if b.message.contains("over the limit")), "{:?}", item);
            }
        }
    }
}
