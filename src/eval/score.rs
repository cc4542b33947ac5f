//! `[[score]]`: comparing each answer with a column of its row.
//!
//! Each entry is compiled once at setup ([`Scorer::compile`]), so an unknown
//! kind, a bad regex or a missing key stops the job before any call, with the
//! entry named. Applied to an answer ([`Scorer::score`]) it gives a
//! [`Score`]: pass/fail, or for a `one_of` without a column the label the
//! answer is (a classification to count, not to grade). What is compared is
//! the answer's text, or with `field`, a field of `output_json`.
//!
//! Not here: where the column's value comes from (the row's `meta`, read by
//! the runner), and the pass rates (`output/summary.rs`).

use serde::Deserialize;
use serde_json::{Map, Value};

/// One `[[score]]` entry as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    pub name: Option<String>,
    pub kind: Option<String>,
    /// The row's column the answer is compared with (a dotted path into a
    /// JSONL row's nested objects, such as `meta.label`).
    pub column: Option<String>,
    /// `exact`, `contains`, `json_field`: compare case-sensitively (default true).
    pub case_sensitive: Option<bool>,
    /// `regex`: the pattern.
    pub pattern: Option<String>,
    /// `one_of`: the labels an answer may be.
    pub labels: Option<Vec<String>>,
    /// `number`: the largest difference that still passes (default 0).
    pub tolerance: Option<f64>,
    /// A dotted path into `output_json` to score instead of the answer's
    /// text (required for `json_field`).
    pub field: Option<String>,
}

/// The kinds of comparison.
#[derive(Debug, Clone)]
pub enum Kind {
    /// The trimmed answer equals the column.
    Exact,
    /// The answer contains the column's text.
    Contains,
    /// The answer matches; with a column, the first capture group (or the
    /// whole match) equals it.
    Regex(regex::Regex),
    /// The answer, normalised, is one of the labels; with a column, that
    /// label is the column's.
    OneOf(Vec<String>),
    /// The first number in the answer is within `tolerance` of the column's.
    Number { tolerance: f64 },
    /// `field` of `output_json` equals the column.
    JsonField,
}

pub const KINDS: &str = "exact, contains, regex, one_of, number, json_field";

/// A compiled `[[score]]` entry.
#[derive(Debug, Clone)]
pub struct Scorer {
    pub name: String,
    pub kind: Kind,
    pub column: Option<String>,
    pub case_sensitive: bool,
    pub field: Option<String>,
}

/// What one scorer says of one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Score {
    Pass(bool),
    /// A `one_of` without a column: the label the answer is, if any.
    Label(Option<String>),
}

impl Score {
    /// As written in a results line's `scores`.
    pub fn to_json(&self) -> Value {
        match self {
            Score::Pass(b) => Value::Bool(*b),
            Score::Label(Some(l)) => Value::String(l.clone()),
            Score::Label(None) => Value::Bool(false),
        }
    }
}

/// A results line's `scores`: each scorer's verdict on one answer, by name;
/// `None` for a job without scorers. The run and a re-score both use it.
pub fn scores_of(
    scorers: &[Scorer],
    output: &str,
    output_json: Option<&Value>,
    meta: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    (!scorers.is_empty()).then(|| {
        scorers
            .iter()
            .map(|s| (s.name.clone(), s.score(output, output_json, meta).to_json()))
            .collect()
    })
}

impl Scorer {
    /// What the scorer compares and how, as JSON: what a job's scorers are,
    /// for the manifest's fingerprint of them (`eval/rescore.rs`).
    pub fn describe(&self) -> Value {
        let kind = match &self.kind {
            Kind::Exact => serde_json::json!("exact"),
            Kind::Contains => serde_json::json!("contains"),
            Kind::Regex(re) => serde_json::json!({"regex": re.as_str()}),
            Kind::OneOf(labels) => serde_json::json!({"one_of": labels}),
            Kind::Number { tolerance } => serde_json::json!({"number": tolerance}),
            Kind::JsonField => serde_json::json!("json_field"),
        };
        serde_json::json!({
            "name": self.name,
            "kind": kind,
            "column": self.column,
            "case_sensitive": self.case_sensitive,
            "field": self.field,
        })
    }

    /// Checks and compiles entry number `n` (1-based). `has_schema`: whether
    /// the job has an `output_schema` (`field` needs `output_json`). Errors
    /// name the entry: `[[score]] "NAME"` (or `[[score]] #N` without a name).
    pub fn compile(n: usize, c: &ScoreConfig, has_schema: bool) -> Result<Scorer, String> {
        let entry = match &c.name {
            Some(name) => format!("[[score]] \"{name}\""),
            None => format!("[[score]] #{n}"),
        };
        let fail = |why: String| format!("{entry}: {why}");
        let name = c
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| fail("no `name`".into()))?;
        let kind_name = c
            .kind
            .as_deref()
            .ok_or_else(|| fail(format!("no `kind` (one of {KINDS})")))?;
        let needs = |key: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(fail(format!("kind `{kind_name}` needs `{key}`")))
            }
        };
        let kind = match kind_name {
            "exact" => Kind::Exact,
            "contains" => Kind::Contains,
            "regex" => {
                let p = c
                    .pattern
                    .as_deref()
                    .ok_or_else(|| fail("kind `regex` needs `pattern`".into()))?;
                let re = regex::Regex::new(p).map_err(|e| {
                    // regex's error spans several lines (pattern, caret, message).
                    let text = e.to_string();
                    let last = text.lines().last().unwrap_or_default().trim();
                    let last = last.strip_prefix("error: ").unwrap_or(last).to_string();
                    fail(format!("bad regex `{p}`: {last}"))
                })?;
                Kind::Regex(re)
            }
            "one_of" => {
                let labels = c.labels.clone().unwrap_or_default();
                if labels.is_empty() {
                    return Err(fail(
                        "kind `one_of` needs `labels` (a non-empty list)".into(),
                    ));
                }
                let normal: Vec<String> = labels.iter().map(|l| normalise(l)).collect();
                if let Some(l) = labels.iter().zip(&normal).find(|(_, n)| n.is_empty()) {
                    return Err(fail(format!("label `{}` is empty once normalised", l.0)));
                }
                Kind::OneOf(labels)
            }
            "number" => {
                let tolerance = c.tolerance.unwrap_or(0.0);
                if !(tolerance >= 0.0 && tolerance.is_finite()) {
                    return Err(fail(format!(
                        "`tolerance` must be 0 or more, got {tolerance}"
                    )));
                }
                Kind::Number { tolerance }
            }
            "json_field" => {
                needs("field", c.field.is_some())?;
                Kind::JsonField
            }
            other => return Err(fail(format!("unknown kind `{other}` (known: {KINDS})"))),
        };
        let column_optional = matches!(kind, Kind::Regex(_) | Kind::OneOf(_));
        if !column_optional {
            needs("column", c.column.is_some())?;
        }
        if c.field.is_some() && !has_schema {
            return Err(fail(
                "`field` reads output_json, which needs `output_schema`".into(),
            ));
        }
        for (key, set, allowed) in [
            (
                "pattern",
                c.pattern.is_some(),
                matches!(kind, Kind::Regex(_)),
            ),
            ("labels", c.labels.is_some(), matches!(kind, Kind::OneOf(_))),
            (
                "tolerance",
                c.tolerance.is_some(),
                matches!(kind, Kind::Number { .. }),
            ),
        ] {
            if set && !allowed {
                return Err(fail(format!(
                    "`{key}` does not apply to kind `{kind_name}`"
                )));
            }
        }
        Ok(Scorer {
            name,
            kind,
            column: c.column.clone(),
            case_sensitive: c.case_sensitive.unwrap_or(true),
            field: c.field.clone(),
        })
    }

    /// Scores one answer: `output` its text, `output_json` its parsed value
    /// (with a schema), `meta` the row's columns.
    pub fn score(
        &self,
        output: &str,
        output_json: Option<&Value>,
        meta: &Map<String, Value>,
    ) -> Score {
        let expected = self.column.as_deref().and_then(|c| lookup_map(meta, c));
        let fail = Score::Pass(false);
        // With `field`, the answer is that field of output_json.
        let picked = match &self.field {
            Some(f) => match output_json.and_then(|v| lookup(v, f)) {
                Some(v) => Some(v),
                None => return self.missing(),
            },
            None => None,
        };
        if let Kind::JsonField = self.kind {
            let (Some(got), Some(want)) = (picked, expected) else {
                return fail;
            };
            return Score::Pass(self.values_equal(got, want));
        }
        let text = match picked {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => output.to_string(),
        };
        let want = expected.map(as_text);
        match &self.kind {
            Kind::Exact => match want {
                Some(w) => Score::Pass(self.text_equal(text.trim(), w.trim())),
                None => fail,
            },
            Kind::Contains => match want {
                Some(w) if self.case_sensitive => Score::Pass(text.contains(w.trim())),
                Some(w) => Score::Pass(text.to_lowercase().contains(&w.trim().to_lowercase())),
                None => fail,
            },
            Kind::Regex(re) => {
                let Some(caps) = re.captures(&text) else {
                    return fail;
                };
                match (self.column.is_some(), want) {
                    (false, _) => Score::Pass(true),
                    (true, Some(w)) => {
                        let got = caps
                            .get(1)
                            .or_else(|| caps.get(0))
                            .map_or("", |m| m.as_str());
                        Score::Pass(self.text_equal(got.trim(), w.trim()))
                    }
                    (true, None) => fail,
                }
            }
            Kind::OneOf(labels) => {
                let said = normalise(&text);
                let label = labels.iter().find(|l| normalise(l) == said).cloned();
                match (self.column.is_some(), want) {
                    (false, _) => Score::Label(label),
                    (true, Some(w)) => {
                        Score::Pass(label.is_some_and(|l| normalise(&l) == normalise(&w)))
                    }
                    (true, None) => fail,
                }
            }
            Kind::Number { tolerance } => {
                let want = want.and_then(|w| first_number(&w));
                match (first_number(&text), want) {
                    (Some(got), Some(w)) => Score::Pass((got - w).abs() <= *tolerance + 1e-9),
                    _ => fail,
                }
            }
            Kind::JsonField => unreachable!("returned above"),
        }
    }

    /// The score of an answer whose `field` is absent.
    fn missing(&self) -> Score {
        match (&self.kind, &self.column) {
            (Kind::OneOf(_), None) => Score::Label(None),
            _ => Score::Pass(false),
        }
    }

    fn text_equal(&self, a: &str, b: &str) -> bool {
        if self.case_sensitive {
            a == b
        } else {
            a.to_lowercase() == b.to_lowercase()
        }
    }

    /// A JSON field against a column: numbers as numbers (a CSV cell `3`
    /// equals `3.0`), everything else as trimmed text.
    fn values_equal(&self, got: &Value, want: &Value) -> bool {
        let num = |v: &Value| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        if let (Value::Number(_), Some(a), Some(b)) = (got, num(got), num(want)) {
            return a == b;
        }
        self.text_equal(as_text(got).trim(), as_text(want).trim())
    }
}

/// A value as plain text: a string without its quotes, anything else as JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `path` (`a.b.c`) in a JSON value.
pub fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn lookup_map<'v>(m: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let (first, rest) = match path.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (path, None),
    };
    let v = m.get(first)?;
    match rest {
        Some(r) => lookup(v, r),
        None => Some(v),
    }
}

/// For `one_of`: trimmed, case-folded, punctuation dropped, runs of
/// whitespace made one space. "Positive." and " positive" are one label.
pub fn normalise(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| !c.is_ascii_punctuation() && !matches!(c, '“' | '”' | '‘' | '’' | '…'))
        .flat_map(char::to_lowercase)
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first number in `s` (`-3`, `4.5`, `1e3`, `1,234`), if any.
pub fn first_number(s: &str) -> Option<f64> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let signed = (c == b'-' || c == b'+') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if c.is_ascii_digit() || signed {
            let start = i;
            i += 1;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit()
                    || (bytes[i] == b'.' || bytes[i] == b',')
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                    || matches!(bytes[i], b'e' | b'E')
                        && bytes
                            .get(i + 1)
                            .is_some_and(|b| b.is_ascii_digit() || *b == b'-'))
            {
                i += 1;
                if matches!(bytes[i - 1], b'e' | b'E') && bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            let text: String = s[start..i].chars().filter(|c| *c != ',').collect();
            return text.parse().ok();
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scorer(v: Value) -> Result<Scorer, String> {
        let c: ScoreConfig = serde_json::from_value(v).unwrap();
        Scorer::compile(1, &c, true)
    }

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn exact_trims_and_folds_case_on_request() {
        let s = scorer(json!({"name": "e", "kind": "exact", "column": "want"})).unwrap();
        let m = meta(json!({"want": "Paris"}));
        assert_eq!(s.score("  Paris\n", None, &m), Score::Pass(true));
        assert_eq!(s.score("paris", None, &m), Score::Pass(false));
        let s = scorer(
            json!({"name": "e", "kind": "exact", "column": "want", "case_sensitive": false}),
        )
        .unwrap();
        assert_eq!(s.score("PARIS", None, &m), Score::Pass(true));
        // A row without the column fails, it does not pass by accident.
        assert_eq!(s.score("PARIS", None, &Map::new()), Score::Pass(false));
    }

    #[test]
    fn contains_and_regex() {
        let s = scorer(
            json!({"name": "c", "kind": "contains", "column": "w", "case_sensitive": false}),
        )
        .unwrap();
        assert_eq!(
            s.score("The capital is PARIS.", None, &meta(json!({"w": "paris"}))),
            Score::Pass(true)
        );
        assert_eq!(
            s.score("Lyon", None, &meta(json!({"w": "paris"}))),
            Score::Pass(false)
        );
        let r =
            scorer(json!({"name": "r", "kind": "regex", "pattern": "^\\d{4}-\\d{2}$"})).unwrap();
        assert_eq!(r.score("2024-05", None, &Map::new()), Score::Pass(true));
        assert_eq!(r.score("May 2024", None, &Map::new()), Score::Pass(false));
        let r = scorer(
            json!({"name": "r", "kind": "regex", "pattern": "Answer: (\\w+)", "column": "w"}),
        )
        .unwrap();
        assert_eq!(
            r.score("Thinking… Answer: B", None, &meta(json!({"w": "B"}))),
            Score::Pass(true)
        );
        assert_eq!(
            r.score("Answer: C", None, &meta(json!({"w": "B"}))),
            Score::Pass(false)
        );
    }

    #[test]
    fn one_of_normalises_to_a_label() {
        let s = scorer(json!({"name": "l", "kind": "one_of", "labels": ["positive", "negative", "mixed"], "column": "label"})).unwrap();
        let m = meta(json!({"label": "Mixed"}));
        assert_eq!(s.score(" Mixed.\n", None, &m), Score::Pass(true));
        assert_eq!(s.score("positive", None, &m), Score::Pass(false));
        assert_eq!(
            s.score("mixed, mostly positive", None, &m),
            Score::Pass(false)
        );
        let s = scorer(json!({"name": "l", "kind": "one_of", "labels": ["Correct", "Incorrect"]}))
            .unwrap();
        assert_eq!(
            s.score("correct!", None, &Map::new()),
            Score::Label(Some("Correct".into()))
        );
        assert_eq!(s.score("unsure", None, &Map::new()), Score::Label(None));
        assert_eq!(Score::Label(None).to_json(), json!(false));
    }

    #[test]
    fn number_within_tolerance() {
        let s = scorer(json!({"name": "n", "kind": "number", "column": "x", "tolerance": 0.5}))
            .unwrap();
        let m = meta(json!({"x": "42"}));
        assert_eq!(s.score("About 42.4 items", None, &m), Score::Pass(true));
        assert_eq!(s.score("43", None, &m), Score::Pass(false));
        assert_eq!(s.score("none", None, &m), Score::Pass(false));
        assert_eq!(first_number("total: -1,234.5 units"), Some(-1234.5));
        assert_eq!(first_number("x1e3"), Some(1000.0));
        assert_eq!(first_number("v2."), Some(2.0));
        assert_eq!(first_number("no digits"), None);
    }

    #[test]
    fn json_field_and_field_paths() {
        let s = scorer(json!({"name": "j", "kind": "json_field", "field": "answer.label", "column": "meta.label"})).unwrap();
        let out = json!({"answer": {"label": "positive", "stars": 4}});
        let m = meta(json!({"meta": {"label": "positive"}}));
        assert_eq!(s.score("", Some(&out), &m), Score::Pass(true));
        assert_eq!(s.score("", None, &m), Score::Pass(false));
        let s = scorer(
            json!({"name": "j", "kind": "json_field", "field": "answer.stars", "column": "stars"}),
        )
        .unwrap();
        assert_eq!(
            s.score("", Some(&out), &meta(json!({"stars": "4"}))),
            Score::Pass(true)
        );
        assert_eq!(
            s.score("", Some(&out), &meta(json!({"stars": "5"}))),
            Score::Pass(false)
        );
        // `field` on another kind scores that field's text.
        let s = scorer(json!({"name": "n", "kind": "number", "field": "answer.stars", "column": "stars", "tolerance": 1})).unwrap();
        assert_eq!(
            s.score("", Some(&out), &meta(json!({"stars": 5}))),
            Score::Pass(true)
        );
    }

    #[test]
    fn bad_entries_are_named_errors() {
        let cases = [
            (json!({"name": "a", "kind": "fuzzy", "column": "x"}), "[[score]] \"a\": unknown kind `fuzzy` (known: exact, contains, regex, one_of, number, json_field)"),
            (json!({"name": "b", "kind": "regex", "pattern": "(unclosed"}), "[[score]] \"b\": bad regex `(unclosed`: "),
            (json!({"name": "c", "kind": "exact"}), "[[score]] \"c\": kind `exact` needs `column`"),
            (json!({"kind": "exact", "column": "x"}), "[[score]] #1: no `name`"),
            (json!({"name": "d", "kind": "one_of", "labels": []}), "[[score]] \"d\": kind `one_of` needs `labels`"),
            (json!({"name": "e", "kind": "exact", "column": "x", "tolerance": 1}), "[[score]] \"e\": `tolerance` does not apply to kind `exact`"),
            (json!({"name": "f", "kind": "json_field", "column": "x"}), "[[score]] \"f\": kind `json_field` needs `field`"),
        ];
        for (v, want) in cases {
            let err = scorer(v).unwrap_err();
            assert!(err.starts_with(want), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let c: ScoreConfig = serde_json::from_value(
            json!({"name": "g", "kind": "json_field", "field": "a", "column": "x"}),
        )
        .unwrap();
        let err = Scorer::compile(1, &c, false).unwrap_err();
        assert!(err.contains("needs `output_schema`"), "{err}");
    }
}
