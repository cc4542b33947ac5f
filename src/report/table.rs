//! The per-model table printed at the end of `run` (and by `report`), drawn
//! with comfy-table: aligned columns, no colours ever, Unicode borders on a
//! terminal and plain ASCII otherwise (logs, CI, cron mail).

use std::io::IsTerminal;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

use crate::report::stats::ModelStats;

/// Whether stdout is a terminal (borders drawn with box characters).
pub fn terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// The table, one row per model; empty when there are no rows at all.
pub fn render(models: &[ModelStats], tty: bool) -> String {
    if models.is_empty() {
        return String::new();
    }
    let mut scorers: Vec<&String> = models.iter().flat_map(|m| m.scorers.keys()).collect();
    scorers.sort();
    scorers.dedup();
    let cost = models.iter().any(|m| m.cost_usd.is_some());
    let ttft = models.iter().any(|m| m.ttft_p50.is_some());

    let mut header: Vec<String> = ["model", "rows", "success", "failed"]
        .map(String::from)
        .to_vec();
    header.extend(scorers.iter().map(|s| format!("{s} pass")));
    if cost {
        header.push("cost".into());
    }
    header.extend(["tokens in", "tokens out", "p50", "p95", "p99"].map(String::from));
    if ttft {
        header.push("ttft p50".into());
    }

    let mut table = Table::new();
    table
        .load_preset(if tty {
            presets::UTF8_HORIZONTAL_ONLY
        } else {
            presets::ASCII_MARKDOWN
        })
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.clone());
    for m in models {
        let mut row = vec![
            m.model.clone(),
            m.rows.to_string(),
            format!("{:.1}%", m.success_pct),
            m.failed.to_string(),
        ];
        row.extend(scorers.iter().map(|s| match m.pass_pct(s) {
            Some(p) => format!("{p:.1}%"),
            None => "–".into(),
        }));
        if cost {
            row.push(m.cost_usd.map_or("–".into(), |c| format!("${c:.4}")));
        }
        row.push(m.input_tokens.to_string());
        row.push(m.output_tokens.to_string());
        for p in [m.latency_p50, m.latency_p95, m.latency_p99] {
            row.push(p.map_or("–".into(), |v| format!("{v} ms")));
        }
        if ttft {
            row.push(m.ttft_p50.map_or("–".into(), |v| format!("{v} ms")));
        }
        table.add_row(row);
    }
    for i in 1..header.len() {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_plain_ascii_off_a_terminal() {
        let m = ModelStats {
            model: "anthropic.claude-3-haiku".into(),
            rows: 12,
            succeeded: 11,
            failed: 1,
            success_pct: 11.0 * 100.0 / 12.0,
            input_tokens: 1200,
            output_tokens: 345,
            latency_p50: Some(41),
            latency_p95: Some(90),
            latency_p99: Some(120),
            ..ModelStats::default()
        };
        let text = render(&[m], false);
        assert!(text.is_ascii(), "{text}");
        assert!(!text.contains('\x1b'), "no colour codes");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("model") && lines[0].contains("p99"),
            "{text}"
        );
        assert!(
            lines[2].contains("91.7%") && lines[2].contains("120 ms"),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count()),
            "every line has the same width:\n{text}"
        );
        assert!(!text.contains("cost"), "no cost column without costs");
        assert_eq!(render(&[], false), "");
    }
}
