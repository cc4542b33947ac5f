//! Prompt templates: `template = "..."` in config, rendered with a row's columns.
//!
//! A template is compiled once, and the columns it names are checked against
//! each input's header before any call is made, so a typo in a column name is a
//! setup error, not a million failed rows. Rendering is strict: a name the row
//! lacks fails that row instead of rendering as an empty string.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

pub struct Template {
    env: Environment<'static>,
    columns: BTreeSet<String>,
}

const NAME: &str = "prompt";

impl Template {
    pub fn compile(source: &str) -> Result<Template, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Prompts are plain text: no HTML escaping, keep the trailing newline.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| format!("template: {}", one_line(&e)))?;
        let columns = env
            .get_template(NAME)
            .map_err(|e| format!("template: {}", one_line(&e)))?
            .undeclared_variables(false)
            .into_iter()
            // `loop` and friends are not columns.
            .filter(|v| !env.globals().any(|(g, _)| g == v))
            .collect();
        Ok(Template { env, columns })
    }

    /// Column names the template reads.
    #[cfg(test)]
    pub fn columns(&self) -> &BTreeSet<String> {
        &self.columns
    }

    /// The first column the template needs that `available` lacks.
    pub fn missing_column<'a>(&'a self, available: &[String]) -> Option<&'a str> {
        self.columns
            .iter()
            .find(|c| !available.contains(c))
            .map(String::as_str)
    }

    pub fn render(&self, fields: &Map<String, Value>) -> Result<String, String> {
        // Infallible: the template was added under NAME in `compile`.
        let t = self
            .env
            .get_template(NAME)
            .expect("template compiled in new()");
        t.render(fields).map_err(|e| one_line(&e))
    }
}

fn one_line(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(detail) = e.detail() {
        s.push_str(": ");
        s.push_str(detail);
    }
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_columns_and_lists_them() {
        let t = Template::compile("Q: {{ question }}\n{% if context %}C: {{ context }}{% endif %}")
            .unwrap();
        assert_eq!(
            t.columns().iter().cloned().collect::<Vec<_>>(),
            vec!["context".to_string(), "question".to_string()]
        );
        let out = t
            .render(&fields(json!({"question": "2+2? <b>", "context": "math"})))
            .unwrap();
        assert_eq!(out, "Q: 2+2? <b>\nC: math");
        assert_eq!(t.missing_column(&["question".into()]), Some("context"));
        assert_eq!(
            t.missing_column(&["question".into(), "context".into()]),
            None
        );
    }

    #[test]
    fn dotted_paths_read_nested_objects() {
        // A results.jsonl line as the input of a judge job.
        let t = Template::compile("Expected: {{ meta.expected }}\nGot: {{ output }}").unwrap();
        assert_eq!(
            t.columns().iter().cloned().collect::<Vec<_>>(),
            vec!["meta".to_string(), "output".to_string()]
        );
        let row = fields(json!({"output": "4", "meta": {"expected": "four"}}));
        assert_eq!(t.render(&row).unwrap(), "Expected: four\nGot: 4");
        let err = t
            .render(&fields(json!({"output": "4", "meta": {}})))
            .unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn a_missing_value_fails_the_row_not_renders_empty() {
        let t = Template::compile("Q: {{ question }}").unwrap();
        let err = t.render(&fields(json!({"other": 1}))).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let err = Template::compile("{{ question ").err().unwrap();
        assert!(err.starts_with("template: syntax error"), "{err}");
        assert!(!err.contains('\n'));
    }
}
