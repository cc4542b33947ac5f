//! The job's matrix: which units of work a row stands for.
//!
//! A unit is (id, model, sample): a row goes to every model of the matrix,
//! `samples` times each, unless its `model` column pins it to one model
//! (then it goes to that one only, `samples` times). Everything that counts
//! work (the done set, resume, duplicate lines, `--retry-failures`, changed
//! rows, the summary) keys on [`unit_key`], so a row answered by one model is
//! still to do for another. This module decides membership only; the lanes
//! that send the units are `pipeline/lane.rs`.
//!
//! Samples are numbered from 1. Lines written before samples existed have
//! no `sample` and read as sample 1, and every line always carried `model`:
//! an output directory of a one-model job resumes unchanged.

use serde_json::{Map, Value};

use crate::config::Settings;
use crate::input::reader::{json_type, Item};

/// What a line without `sample` (written before samples existed) counts as.
pub(crate) const FIRST_SAMPLE: u32 = 1;

/// The done-set key of one unit of work.
pub(crate) fn unit_key(id: &str, model: &str, sample: u32) -> String {
    // \u{1f} (unit separator) cannot be typed into an id by accident, and a
    // collision would need an id ending in it followed by a model id.
    format!("{id}\u{1f}{model}\u{1f}{sample}")
}

/// The job's models and samples.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    pub(crate) models: Vec<String>,
    pub(crate) samples: u32,
    /// The columns the id is made of: see [`pinned_model`].
    pub(crate) id_columns: Vec<String>,
}

impl Matrix {
    pub(crate) fn of(settings: &Settings) -> Matrix {
        Matrix {
            models: settings.models.clone(),
            samples: settings.samples,
            id_columns: settings.id_columns.clone(),
        }
    }

    /// The models `item` goes to: the one its `model` column names, or
    /// every model of the matrix (a bad row too: each model's units of it
    /// are recorded as failed).
    pub(crate) fn models_of<'a>(&'a self, item: &'a Item) -> Vec<&'a str> {
        let pinned = match item {
            Item::Record(r) => pinned_model(&r.fields, &self.id_columns),
            Item::Bad(_) => None,
        };
        match pinned {
            Some(Ok(m)) => vec![m],
            // A cell that is not text is the row's input error, reported
            // for every model (`job.rs`).
            Some(Err(_)) | None => self.models.iter().map(String::as_str).collect(),
        }
    }

    /// The lane that sends `model`'s calls: its own, or the first model's
    /// for a model the row pins outside the matrix.
    pub(crate) fn lane_of(&self, model: &str) -> usize {
        self.models.iter().position(|m| m == model).unwrap_or(0)
    }

    /// Units of work `item` stands for.
    pub(crate) fn units(&self, item: &Item) -> u64 {
        self.models_of(item).len() as u64 * u64::from(self.samples)
    }

    /// 1..=samples.
    pub(crate) fn samples(&self) -> std::ops::RangeInclusive<u32> {
        FIRST_SAMPLE..=self.samples
    }
}

/// The model a row's own `model` column pins it to: the one rule, for
/// everything that sends a row or counts what it is sent to (the matrix,
/// `job.rs`, the budget's prices, `policy`'s model list).
///
/// `None`: the row goes to the job's models, because it has no `model`
/// column, the cell is blank or null, or `model` is one of `id_columns`
/// (then it says which row this is, e.g. the judged model of a judge job
/// over another job's results, not which model to call). `Some(Err)`: the
/// cell is not text, the row's input error.
pub(crate) fn pinned_model<'a>(
    fields: &'a Map<String, Value>,
    id_columns: &[String],
) -> Option<Result<&'a str, String>> {
    if id_columns.iter().any(|c| c == "model") {
        return None;
    }
    match fields.get("model")? {
        Value::Null => None,
        Value::String(m) if m.trim().is_empty() => None,
        Value::String(m) => Some(Ok(m.trim())),
        other => Some(Err(format!(
            "column `model` is a {}, expected text",
            json_type(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::reader::Record;
    use crate::outcome::Source;

    fn row(model: Option<&str>) -> Item {
        let mut fields = serde_json::Map::new();
        if let Some(m) = model {
            fields.insert("model".into(), Value::String(m.into()));
        }
        Item::Record(Record {
            source: Source {
                file: "f".into(),
                line: 2,
            },
            fields,
        })
    }

    #[test]
    fn a_row_goes_to_every_model_unless_its_column_pins_one() {
        let m = Matrix {
            models: vec!["a".into(), "b".into()],
            samples: 3,
            id_columns: vec![],
        };
        assert_eq!(m.models_of(&row(None)), ["a", "b"]);
        assert_eq!(m.units(&row(None)), 6);
        // A `model` that is part of the id pins nothing.
        let judge = Matrix {
            id_columns: vec!["id".into(), "model".into()],
            ..m.clone()
        };
        assert_eq!(judge.models_of(&row(Some("x"))), ["a", "b"]);
        assert_eq!(m.models_of(&row(Some(" b "))), ["b"]);
        assert_eq!(
            m.models_of(&row(Some(" "))),
            ["a", "b"],
            "blank keeps the matrix"
        );
        assert_eq!(m.units(&row(Some("z"))), 3);
        assert_eq!(m.lane_of("b"), 1);
        assert_eq!(
            m.lane_of("z"),
            0,
            "outside the matrix: the first model's lane"
        );
        assert_eq!(m.samples().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn a_rows_model_column_pins_the_model_unless_it_is_part_of_the_id() {
        let fields = |v: Value| {
            let mut f = Map::new();
            f.insert("model".into(), v);
            f
        };
        let none: &[String] = &[];
        let b = fields(" b ".into());
        assert_eq!(pinned_model(&b, none), Some(Ok("b")));
        assert_eq!(pinned_model(&Map::new(), none), None, "no column");
        assert_eq!(pinned_model(&fields(" ".into()), none), None, "blank");
        assert_eq!(pinned_model(&fields(Value::Null), none), None, "null");
        assert_eq!(
            pinned_model(&fields(7.into()), none),
            Some(Err("column `model` is a number, expected text".into()))
        );
        // A judge job over another job's results: `model` names the judged
        // answer's model, part of the row's id.
        let judge = ["id".to_string(), "model".to_string()];
        assert_eq!(pinned_model(&b, &judge), None);
        assert_eq!(pinned_model(&fields(7.into()), &judge), None);
        let other_id = ["id".to_string(), "sample".to_string()];
        assert_eq!(pinned_model(&b, &other_id), Some(Ok("b")));
    }

    #[test]
    fn unit_keys_tell_models_and_samples_apart() {
        let k = unit_key("1", "a", 1);
        assert_ne!(k, unit_key("1", "a", 2));
        assert_ne!(k, unit_key("1", "b", 1));
        assert_ne!(unit_key("1", "a1", 1), unit_key("1a", "1", 1));
    }
}
