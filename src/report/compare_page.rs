//! The comparison page `report --compare` writes: the per-model changes and,
//! for each kind of row change, the rows with what each run said, side by
//! side. Plain HTML drawn here with every text escaped, its styles inline and
//! no script; the same Content Security Policy as the report forbids every
//! request. Not the figures: `compare.rs` decides what changed.

use std::fmt::Write;

use crate::report::compare::Comparison;

/// Rows listed per kind of change; the text summary still counts them all.
const LISTED: usize = 1000;

const STYLE: &str = "body{margin:0;padding:18px 28px;font:14px/1.45 system-ui,sans-serif;color:#1d2330;background:#f6f7f9}\
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:14px 18px;margin:14px 0}\
h1{font-size:22px;margin:0}h2{font-size:16px;margin:0 0 8px}.note{color:#5b6475}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #dde1e8;padding:5px 8px;text-align:left;vertical-align:top}\
th{color:#5b6475;font-size:12px}td.t{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:12.5px;width:42%}\
.bad{color:#b3261e;font-weight:600}.ok{color:#1f7a44;font-weight:600}";

pub fn render(c: &Comparison, before: &str, after: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>bedrock-batch comparison</title><style>{STYLE}</style></head><body>\
         <h1>bedrock-batch comparison</h1><p class=\"note\">before: {} · after: {}</p>",
        esc(before),
        esc(after)
    );
    h.push_str("<section id=\"regressions\"><h2>Regressions</h2>");
    if c.regressions.is_empty() {
        h.push_str("<p class=\"ok\">None.</p>");
    } else {
        h.push_str("<ul>");
        for r in &c.regressions {
            let _ = write!(h, "<li class=\"bad\">{}</li>", esc(r));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section><section id=\"models\"><h2>Per model</h2><table><tr><th>model</th><th>before → after</th></tr>");
    for (model, line) in &c.models {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(model), esc(line));
    }
    h.push_str("</table></section>");
    for (name, list) in c.changes.lists() {
        let _ = write!(
            h,
            "<section class=\"changes\" data-kind=\"{}\"><h2>{} ({})</h2>",
            esc(name),
            esc(name),
            list.len()
        );
        if list.is_empty() {
            h.push_str("<p class=\"note\">None.</p></section>");
            continue;
        }
        h.push_str("<table><tr><th>id</th><th>before</th><th>after</th></tr>");
        for ch in list.iter().take(LISTED) {
            let _ = write!(
                h,
                "<tr data-id=\"{}\"><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
                esc(&ch.label),
                esc(&ch.label),
                esc(ch.before.as_deref().unwrap_or("—")),
                esc(ch.after.as_deref().unwrap_or("—"))
            );
        }
        h.push_str("</table>");
        if list.len() > LISTED {
            let _ = write!(
                h,
                "<p class=\"note\">{} more not listed; every one is in the JSONL files.</p>",
                list.len() - LISTED
            );
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    h
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::{Change, Changes};

    #[test]
    fn lists_changes_escaped_with_both_sides() {
        let c = Comparison {
            regressions: vec!["m success rate −25.0 points".into()],
            models: vec![("m".into(), "success 100.0% → 75.0% (-25.0)".into())],
            changes: Changes {
                answers: vec![Change {
                    label: "c".into(),
                    before: Some("three".into()),
                    after: Some("<b>3</b>".into()),
                }],
                ..Changes::default()
            },
            ..Comparison::default()
        };
        let html = render(&c, "out/before", "out/after");
        assert!(html.contains("<tr data-id=\"c\"><td>c</td><td class=\"t\">three</td><td class=\"t\">&lt;b&gt;3&lt;/b&gt;</td></tr>"), "{html}");
        assert!(html.contains("<h2>answers changed (1)</h2>"));
        assert!(html.contains("<h2>new failures (0)</h2>"));
        assert!(html.contains("m success rate −25.0 points"));
        assert!(!html.contains("<script"));
    }
}
