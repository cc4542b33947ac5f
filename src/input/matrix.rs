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

use serde_json::Value;

use crate::config::Settings;
use crate::input::reader::Item;

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
    /// `model` is one of `id_columns`: it names the judged model, not the
    /// model to call, so it pins nothing (as in `job.rs`).
    pub(crate) model_is_id: bool,
}

impl Matrix {
    pub(crate) fn of(settings: &Settings) -> Matrix {
        Matrix {
            models: settings.models.clone(),
            samples: settings.samples,
            model_is_id: settings.id_columns.iter().any(|c| c == "model"),
        }
    }

    /// The models `item` goes to: the one its `model` column names, or
    /// every model of the matrix (a bad row too: each model's units of it
    /// are recorded as failed).
    pub(crate) fn models_of<'a>(&'a self, item: &'a Item) -> Vec<&'a str> {
        match pinned(item).filter(|_| !self.model_is_id) {
            Some(m) => vec![m],
            None => self.models.iter().map(String::as_str).collect(),
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

/// The model a row's `model` column names, if it names one (a blank cell
/// keeps the matrix, as in `job.rs`; a cell that is not text is the row's
/// input error, reported for every model).
fn pinned(item: &Item) -> Option<&str> {
    let Item::Record(r) = item else {
        return None;
    };
    match r.fields.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Some(m.trim()),
        _ => None,
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
            model_is_id: false,
        };
        assert_eq!(m.models_of(&row(None)), ["a", "b"]);
        assert_eq!(m.units(&row(None)), 6);
        // A `model` that is part of the id pins nothing.
        let judge = Matrix {
            model_is_id: true,
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
    fn unit_keys_tell_models_and_samples_apart() {
        let k = unit_key("1", "a", 1);
        assert_ne!(k, unit_key("1", "a", 2));
        assert_ne!(k, unit_key("1", "b", 1));
        assert_ne!(unit_key("1", "a1", 1), unit_key("1a", "1", 1));
    }
}
