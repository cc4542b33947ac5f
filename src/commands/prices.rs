//! `bedrock-batch prices`: the prices a run would use and where each came from.
//!
//! It reads the job file only for its `[prices."MODEL-ID"]` entries; it sends
//! nothing. The table itself is `cost/price.rs`.

use std::fmt::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::cli::PricesArgs;
use crate::config::{FileConfig, DEFAULT_CONFIG};
use crate::cost::price::{Found, PriceTable};

/// What `prices` prints, and whether every model asked for has a price.
pub struct Listing {
    pub text: String,
    pub json: Value,
    pub all_known: bool,
}

pub fn run(args: &PricesArgs) -> anyhow::Result<Listing> {
    let path = args.config.clone().or_else(|| {
        let p = PathBuf::from(DEFAULT_CONFIG);
        p.exists().then_some(p)
    });
    let file = match &path {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let table = PriceTable::with_overrides(
        file.prices.unwrap_or_default(),
        path.as_ref().map(|p| p.display().to_string()),
    )
    .map_err(anyhow::Error::msg)?;

    let rows: Vec<(String, Option<Found>)> = if args.model.is_empty() {
        table
            .entries()
            .into_iter()
            .map(|(id, f)| (id, Some(f)))
            .collect()
    } else {
        args.model
            .iter()
            .map(|m| (m.clone(), table.find(m)))
            .collect()
    };
    let all_known = rows.iter().all(|(_, f)| f.is_some());

    let mut text = format!(
        "USD per million tokens. Built-in table: {}, {}\n",
        table.date, table.source
    );
    let width = rows
        .iter()
        .map(|(id, _)| id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        text,
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>15}  {:>15}  {:>15}",
        "model",
        "input",
        "output",
        "cache rd",
        "cache wr",
        "flex in/out",
        "priority in/out",
        "batch in/out"
    );
    for (id, found) in &rows {
        let Some(f) = found else {
            let _ = writeln!(
                text,
                "{id:<width$}  no price known: its rows get cost_usd null and --max-cost refuses to start; add [prices.\"{id}\"] to the config"
            );
            continue;
        };
        let k = 1.0 + f.premium.unwrap_or(0.0);
        let one = |x: Option<f64>| x.map_or("-".to_string(), |v| money(v * k));
        let pair = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{}/{}", money(a * k), money(b * k)),
            _ => "-".to_string(),
        };
        let p = &f.price;
        let _ = writeln!(
            text,
            "{id:<width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>15}  {:>15}  {:>15}",
            money(p.input * k),
            money(p.output * k),
            one(p.cache_read),
            one(p.cache_write),
            pair(p.flex_input, p.flex_output),
            pair(p.priority_input, p.priority_output),
            pair(p.batch_input, p.batch_output),
        );
        if !args.model.is_empty() {
            let premium = f
                .premium
                .map(|x| format!(", regional premium +{:.0}%", x * 100.0))
                .unwrap_or_default();
            let _ = writeln!(text, "  priced as {}{premium}; from {}", f.key, f.origin);
        }
    }

    let json = json!({
        "date": table.date,
        "source": table.source,
        "models": rows.iter().map(|(id, f)| match f {
            Some(f) => json!({"model": id, "priced_as": f.key, "price": f.price, "regional_premium": f.premium, "origin": f.origin}),
            None => json!({"model": id, "price": null}),
        }).collect::<Vec<_>>(),
    });
    Ok(Listing {
        text,
        json,
        all_known,
    })
}

/// A price with as many decimals as it needs, at most six.
fn money(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0');
    let s = if s.ends_with('.') {
        format!("{s}00")
    } else if s.split('.').nth(1).is_some_and(|d| d.len() < 2) {
        format!("{s}0")
    } else {
        s.to_string()
    };
    format!("${s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_the_figure() {
        assert_eq!(money(0.25), "$0.25");
        assert_eq!(money(15.0), "$15.00");
        assert_eq!(money(0.00875), "$0.00875");
        assert_eq!(money(1.5), "$1.50");
    }
}
