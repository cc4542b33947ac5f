//! The HTML report as a person sees it: a real run against the emulator,
//! then its `report.html` opened in headless Chromium with the network off.
//! Also `report -o`, `report --compare` and the closing table of `run`.

use std::collections::BTreeSet;
use std::time::Duration;

use bedrock_batch::emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

use crate::browser::{shows_something, Browser};
use crate::cli_util::{show, Workspace, MODEL};

const OTHER_MODEL: &str = "apac.anthropic.claude-3-5-sonnet-20240620-v1:0";

/// A job with answers from two models, input failures, a validation
/// failure, and an answer that carries markup and a link.
fn job(ws: &Workspace) {
    let mut csv = String::from("id,prompt,model\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "r{i:03},Question number {i}: what is {i} + {i}?,\n"
        ));
    }
    csv.push_str(&format!("s001,Say which model you are,{OTHER_MODEL}\n"));
    csv.push_str("bad1,,\n");
    csv.push_str("bad2,Please [[emu:validation]] this,\n");
    csv.push_str(
        "html,<img src=\"http://example.invalid/x.png\"> and <script>alert(1)</script>,\n",
    );
    ws.write("job.csv", csv);
}

fn ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every id the side-by-side view shows, collected by scrolling it from top
/// to bottom as a person would (only rows on screen are in the DOM).
fn listed_ids(b: &mut Browser) -> BTreeSet<String> {
    b.eval("document.getElementById('rows').scrollTop = 0");
    let mut seen = BTreeSet::new();
    loop {
        // Scroll events paint on the next animation frame.
        let page: Vec<String> = serde_json::from_value(b.eval(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => \
             r([...document.querySelectorAll('#rows .sbs-row[data-id]')].map(e => e.dataset.id)))))",
        ))
        .unwrap();
        seen.extend(page);
        let at_end = b.eval(
            "(() => { const v = document.getElementById('rows'); \
             if (v.scrollTop + v.clientHeight >= v.scrollHeight - 1) return true; \
             v.scrollTop += v.clientHeight / 2; return false; })()",
        );
        if at_end == Value::Bool(true) {
            break;
        }
    }
    seen
}

fn shown_count(b: &mut Browser) -> String {
    b.eval("document.getElementById('shown').textContent")
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_opens_offline_in_chromium_and_shows_the_run() {
    let emu = Emulator::start(EmulatorConfig {
        latency_ms: 5,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let ws = Workspace::new(&emu.url());
    job(&ws);
    let out = ws.run(&["--model", MODEL, "--input", "job.csv", "--concurrency", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    // The closing lines end with the per-model table and the report's path.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = ws.out().join("report.html");
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("report:   {}", report.display())),
        "{stdout}"
    );
    let table: Vec<&str> = stdout.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(
        table.len(),
        4,
        "header, rule and one line per model:\n{stdout}"
    );
    assert!(
        table[2].contains(MODEL) && table[3].contains(OTHER_MODEL),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "no colours off a terminal");

    let results = ws.results();
    let failures = ws.failures();
    let summary = ws.summary();
    for r in results.iter().chain(&failures) {
        for key in ["started_at", "finished_at"] {
            let t = r[key].as_str().unwrap_or_else(|| panic!("{key} in {r}"));
            assert_eq!(t.len(), 24, "RFC 3339 UTC with milliseconds: {t}");
            assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
            assert!(bedrock_batch::time::parse_epoch_ms(t).is_some(), "{t}");
        }
        assert!(r["started_at"].as_str() <= r["finished_at"].as_str(), "{r}");
    }
    let all_ids: BTreeSet<String> = ids(&results).union(&ids(&failures)).cloned().collect();
    assert_eq!(all_ids.len(), 44);

    let tmp = tempfile::tempdir().unwrap();
    let shot_path = std::env::var_os("BEDROCK_BATCH_REPORT_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("report.png"));
    let report_for_browser = report.clone();
    let (figures, listed, filtered, failed_only, errors, requests, url, shot, stats) =
        tokio::task::spawn_blocking(move || {
            let mut b = Browser::launch(1280, 1400);
            let url = b.open(&report_for_browser);
            b.wait_for("document.documentElement.dataset.rendered", Duration::from_secs(60));
            let figures = b.eval(
                "Object.fromEntries([...document.querySelectorAll('[data-figure]')]\
                 .map(e => [e.dataset.figure, [e.dataset.value, e.textContent]]))",
            );
            let listed = listed_ids(&mut b);
            let stats = (
                shown_count(&mut b),
                b.eval("document.querySelectorAll('.uplot canvas').length"),
                b.eval("[...document.querySelectorAll('#model-table tr')].map(r => r.dataset.model || '')"),
                b.eval("[...document.querySelectorAll('#failure-groups .group')].map(g => g.dataset.code)"),
                b.eval("document.getElementById('settings-list').textContent"),
            );

            // Type into the filter box; the list narrows to matching ids.
            b.eval("document.getElementById('filter').focus()");
            b.type_text("number 1");
            b.wait_for(
                "document.getElementById('shown').textContent.startsWith('11 of')",
                Duration::from_secs(10),
            );
            let filtered = listed_ids(&mut b);
            // Clear it, then tick "failed".
            b.eval(
                "(() => { const f = document.getElementById('filter'); f.value = ''; \
                 f.dispatchEvent(new Event('input')); })()",
            );
            b.wait_for(
                "document.getElementById('shown').textContent.startsWith('44 of')",
                Duration::from_secs(10),
            );
            b.eval("document.getElementById('f-failed').click()");
            let failed_only = listed_ids(&mut b);

            b.eval("document.getElementById('rows').scrollTop = 0; window.scrollTo(0, 0)");
            let shot = b.screenshot();
            // Let late events (a blocked request, an error) arrive.
            b.eval("new Promise(r => setTimeout(r, 200))");
            (figures, listed, filtered, failed_only, b.errors(), b.requests(), url, shot, stats)
        })
        .await
        .unwrap();
    std::fs::write(&shot_path, &shot).unwrap();

    assert!(errors.is_empty(), "console errors: {errors:#?}");
    assert!(
        requests.iter().all(|r| r == &url),
        "the page requested more than itself: {requests:#?}"
    );

    // At a glance: every figure equals summary.json's.
    let figures = figures.as_object().expect("figures").clone();
    for key in [
        "total",
        "succeeded",
        "failed",
        "unfinished",
        "failed_by_kind.input",
        "failed_by_kind.validation",
        "tokens.input",
        "tokens.output",
        "attempts",
        "latency_ms.p50",
        "this_run.succeeded",
        "this_run.skipped",
        "this_run.failed_by_kind.validation",
        "this_run.elapsed_secs",
        "this_run.throughput.rows_per_min",
        "this_run.throttles.requests",
        "this_run.retries",
        "this_run.attempts",
        "this_run.latency_ms.p99",
    ] {
        assert!(
            figures.contains_key(key),
            "the page shows {key}: {figures:?}"
        );
    }
    for (key, shown) in &figures {
        let want = key.split('.').fold(&summary, |v, k| &v[k]);
        let (value, text) = (shown[0].as_str().unwrap(), shown[1].as_str().unwrap());
        let got: f64 = value.parse().unwrap_or_else(|_| panic!("{key}: {value}"));
        let want_f = want
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in summary.json: {want}"));
        assert!(
            (got - want_f).abs() < 1e-9,
            "{key}: page {got}, summary.json {want_f}"
        );
        if want.is_u64() && !key.contains("throughput") {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(digits, want.to_string(), "{key}: the page reads {text:?}");
        }
    }
    assert_eq!(summary["succeeded"], 42);
    assert_eq!(summary["failed"], 2);

    // Side by side: every id, then the filter's and the checkbox's subsets.
    assert_eq!(listed, all_ids);
    let want_filtered: BTreeSet<String> = (0..40)
        .filter(|i| i.to_string().starts_with('1'))
        .map(|i| format!("r{i:03}"))
        .collect();
    assert_eq!(
        filtered, want_filtered,
        "ids whose answer contains `number 1`"
    );
    assert_eq!(failed_only, ids(&failures));

    let (count, canvases, model_rows, groups, settings) = stats;
    assert_eq!(count, "44 of 44 ids");
    assert!(canvases.as_u64().unwrap() >= 3, "charts drawn: {canvases}");
    assert_eq!(
        model_rows,
        serde_json::json!(["", MODEL, OTHER_MODEL, "all models"]),
        "header, one row per model, the total"
    );
    assert_eq!(
        groups,
        serde_json::json!(["InvalidRow", "ValidationException"])
    );
    let settings = settings.as_str().unwrap();
    assert!(settings.contains("account123456789012"), "{settings}");
    for secret in ["AKIA", "aws_secret", "wJalr"] {
        assert!(!settings.contains(secret), "{settings}");
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(!html.contains(bedrock_batch::emulator::STATIC_SECRET_ACCESS_KEY));
    assert!(!html.contains(bedrock_batch::emulator::STATIC_ACCESS_KEY_ID));

    assert!(
        shows_something(&shot, 0.9, 20),
        "the screenshot is not blank"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_command_writes_where_asked_and_compare_flags_regressions() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let ws = Workspace::new(&emu.url());
    ws.write("good.csv", "id,prompt\na,one\nb,two\nc,three\nd,four\n");
    ws.write(
        "worse.csv",
        "id,prompt\na,one\nb,[[emu:validation]] two\nc,three changed\nd,four\n",
    );
    let before = ws.path("before");
    let after = ws.path("after");
    let b = before.to_str().unwrap();
    let a = after.to_str().unwrap();
    let o = ws.run(&["--model", MODEL, "--input", "good.csv", "--output-dir", b]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = ws.run(&["--model", MODEL, "--input", "worse.csv", "--output-dir", a]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));

    // Run again: every row is done, nothing is read back or rewritten.
    let o = ws.run(&["--model", MODEL, "--input", "good.csv", "--output-dir", b]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!(
            "report:   {} (unchanged: this run wrote no row)",
            before.join("report.html").display()
        )),
        "{stdout}"
    );

    let elsewhere = ws.path("elsewhere/r.html");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    let o = ws
        .command()
        .args(["report", b, "-o"])
        .arg(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("report:   {}", elsewhere.display()))
    );
    let html = std::fs::read_to_string(&elsewhere).unwrap();
    assert!(html.contains("\"succeeded\":4"), "the summary is embedded");

    let compare = |extra: &[&str]| {
        let mut c = ws.command();
        c.args(["report", "--compare", b, a]).args(extra);
        c.output().unwrap()
    };
    let o = compare(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("success 100.0% → 75.0% (-25.0)"), "{text}");
    assert!(text.contains("answers changed: 1 (c)"), "{text}");
    assert!(text.contains("new failures: 1 (b)"), "{text}");
    assert!(text.contains("fixed failures: 0"), "{text}");
    assert!(text.contains("success rate −25.0 points"), "{text}");
    // The comparison page lands in the after run's directory, both sides of each change listed.
    let page_path = after.join("compare.html");
    assert!(
        text.trim_end()
            .ends_with(&format!("report:   {}", page_path.display())),
        "{text}"
    );
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(page.contains("<h2>answers changed (1)</h2>"), "{page}");
    assert!(page.contains("<h2>new failures (1)</h2>"), "{page}");
    assert!(page.contains("<tr data-id=\"b\">"), "{page}");
    assert!(page.contains("validation ValidationException"), "{page}");

    let o = compare(&["--fail-on-regression"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    let o = compare(&["--fail-on-regression", "--threshold", "30"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a drop within the threshold: {}",
        show(&o)
    );
    let o = compare(&["--fail-on-regression", "--threshold", "30"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("regressions: none"));

    // Not an output directory: one line, exit 2.
    let o = ws
        .command()
        .args(["report"])
        .arg(ws.path("home"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("not a bedrock-batch output directory"),
        "{err}"
    );
}
