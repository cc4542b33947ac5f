// The report page's layout. Every figure is computed in Rust (src/report/);
// this script only lays them out, draws the charts with uPlot, and keeps the
// side-by-side view fast: the rows are parsed once from the embedded JSON and
// only those on screen are in the DOM. Data is inserted with textContent,
// never as markup, so no answer can add an element to the page.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var S = D.summary || null;
  var COLORS = ["#2f5fd0", "#d9822b", "#1f9e74", "#b3261e", "#7b4fc9", "#8c6d31", "#d6609b", "#4a8bad"];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function int(n) { return n == null ? "–" : Math.round(n).toLocaleString("en-US"); }
  function dec(n, d) { return n == null ? "–" : Number(n).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }); }
  function usd(n) { return n == null ? "–" : "$" + dec(n, n < 1 ? 4 : 2); }
  function pct(n) { return n == null ? "–" : dec(n, 1) + "%"; }
  function ms(n) { return n == null ? "–" : int(n) + " ms"; }
  function secs(s) {
    if (s == null) return "–";
    if (s < 60) return dec(s, 1) + " s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }
  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function color(i) { return COLORS[i % COLORS.length]; }

  // ---- header and at a glance -------------------------------------------
  document.getElementById("subtitle").textContent =
    D.dir + " · report written " + D.generated_at.replace("T", " ").replace(/\.\d+Z$/, " UTC");

  function glance() {
    var box = document.getElementById("figures");
    var note = document.getElementById("glance-note");
    function group(title) {
      if (title) box.appendChild(el("h3", null, title));
      var g = el("div", "figures");
      box.appendChild(g);
      return g;
    }
    // Each figure: [label, summary.json path, formatter, tone].
    function show(g, figs) {
      figs.forEach(function (f) {
        var v = get(S, f[1]);
        if (v === undefined) return;
        var card = el("div", "fig" + (f[3] ? " " + f[3] : ""));
        card.appendChild(el("span", "label", f[0]));
        var val = el("span", "value", f[2](v));
        val.dataset.figure = f[1];
        val.dataset.value = String(v);
        card.appendChild(val);
        g.appendChild(card);
      });
    }
    function kinds(prefix) {
      return Object.keys(get(S, prefix + "failed_by_kind") || {}).map(function (k) {
        return ["failed: " + k, prefix + "failed_by_kind." + k, int, "bad"];
      });
    }
    function tone(path, bad) { return get(S, path) > 0 ? bad : ""; }
    if (S) {
      // summary.json since the job/run split: the job (every row in the
      // directory) at the top, this run under `this_run`; older files have
      // the run's figures at the top.
      var R = S.this_run ? "this_run." : "";
      if (R) {
        show(group("The job: every row in this directory"), [
          ["rows", "total", int], ["succeeded", "succeeded", int, "ok"],
          ["failed", "failed", int, tone("failed", "bad")], ["unfinished", "unfinished", int, tone("unfinished", "bad")]
        ].concat(kinds(""), [
          ["cost", "cost_usd", usd],
          ["input tokens", "tokens.input", int], ["output tokens", "tokens.output", int], ["attempts", "attempts", int],
          ["latency p50", "latency_ms.p50", ms], ["latency p95", "latency_ms.p95", ms], ["latency p99", "latency_ms.p99", ms]
        ]));
      }
      show(group(R ? "This run" : null), [
        ["rows", "total", int]].filter(function () { return !R; }).concat([
        ["succeeded", R + "succeeded", int, "ok"], ["failed", R + "failed", int, tone(R + "failed", "bad")],
        ["skipped (done before)", R + "skipped", int], ["unfinished", R + "unfinished", int, tone(R + "unfinished", "bad")]
      ], kinds(R), [
        ["cost", R + "cost_usd", usd],
        ["input tokens", R + "tokens.input", int], ["output tokens", R + "tokens.output", int],
        ["wall time", R + "elapsed_secs", secs], ["rows / min", R + "throughput.rows_per_min", int],
        ["requests / min", R + "throughput.requests_per_min", int], ["tokens / min", R + "throughput.tokens_per_min", int],
        ["throttled (requests)", R + "throttles.requests", int], ["throttled (tokens)", R + "throttles.tokens", int],
        ["retries", R + "retries", int], ["attempts", R + "attempts", int],
        ["latency p50", R + "latency_ms.p50", ms], ["latency p95", R + "latency_ms.p95", ms], ["latency p99", R + "latency_ms.p99", ms]
      ]));
      if (S.cost_usd == null && D.overall.cost_usd != null) {
        var card = el("div", "fig");
        card.appendChild(el("span", "label", "cost (sum of rows)"));
        card.appendChild(el("span", "value", usd(D.overall.cost_usd)));
        box.querySelector(".figures").appendChild(card);
      }
      var stopped = S.stopped_by ? "Stopped early by " + S.stopped_by + "; run the same command again to finish. " : "";
      note.textContent = stopped + "Figures from summary.json.";
    } else {
      var o = D.overall, g = group(null);
      [["rows", o.rows], ["succeeded", o.succeeded], ["failed", o.failed],
       ["input tokens", o.input_tokens], ["output tokens", o.output_tokens]].forEach(function (f) {
        var card = el("div", "fig");
        card.appendChild(el("span", "label", f[0]));
        card.appendChild(el("span", "value", int(f[1])));
        g.appendChild(card);
      });
      note.textContent = "No summary.json in this directory (the run was killed before it ended): figures counted from the rows.";
    }
    if (D.unreadable > 0) note.textContent += " " + D.unreadable + " unreadable line(s) were left out.";
  }

  // ---- settings and identity --------------------------------------------
  function settings() {
    var dl = document.getElementById("settings-list");
    function add(k, v) {
      if (v == null || v === "" || (Array.isArray(v) && !v.length)) return;
      dl.appendChild(el("dt", null, k));
      dl.appendChild(el("dd", null, Array.isArray(v) ? v.join(", ") : String(v)));
    }
    var c = D.context, m = D.manifest || {};
    var s = (c && c.settings) || {};
    var id = (c && c.identity) || null;
    add("models", D.models.map(function (x) { return x.model; }));
    add("default model", s.model || m.model);
    add("API", s.api || m.api);
    var tiers = {};
    D.models.forEach(function (x) { (x.service_tiers || []).forEach(function (t) { tiers[t] = 1; }); });
    add("service tier", Object.keys(tiers));
    add("region", s.region);
    add("account", id && id.account);
    add("identity (ARN)", id && id.arn);
    add("credentials from", id && id.credential_source);
    add("role ARN (--role-arn)", s.role_arn);
    add("profile", s.profile);
    if (c && !id) add("identity", "not recorded (STS GetCallerIdentity did not answer)");
    add("inputs", s.inputs || m.inputs);
    add("concurrency", s.concurrency);
    add("rpm quota", s.rpm);
    add("tpm quota", s.tpm);
    add("max attempts", s.max_attempts);
    add("request timeout", s.request_timeout_secs != null ? s.request_timeout_secs + " s" : null);
    add("row deadline", s.row_deadline_secs != null ? s.row_deadline_secs + " s" : null);
    add("max_tokens", m.max_tokens);
    add("temperature", m.temperature);
    add("top_p", m.top_p);
    add("template", m.template);
    add("system", m.system);
    add("run started", c && c.started_at);
    if (!c) add("note", "no run.json here (written by runs since the report existed): settings from manifest.json only");
  }

  // ---- per-model table --------------------------------------------------
  function models() {
    var t = document.getElementById("model-table");
    var scorers = {};
    D.models.forEach(function (x) { Object.keys(x.scorers).forEach(function (k) { scorers[k] = 1; }); });
    scorers = Object.keys(scorers).sort();
    var hasCost = D.overall.cost_usd != null;
    var hasTtft = D.overall.ttft_p50 != null;
    var cols = [["model", function (x) { return x.model; }], ["rows", function (x) { return int(x.rows); }],
      ["succeeded", function (x) { return int(x.succeeded); }], ["success", function (x) { return pct(x.success_pct); }],
      ["failed", function (x) { return int(x.failed); }]];
    scorers.forEach(function (k) {
      cols.push([k + " pass", function (x) { var s = x.scorers[k]; return s && s[1] ? pct(100 * s[0] / s[1]) : "–"; }]);
    });
    if (hasCost) cols.push(["cost", function (x) { return usd(x.cost_usd); }]);
    cols.push(["tokens in", function (x) { return int(x.input_tokens); }], ["tokens out", function (x) { return int(x.output_tokens); }],
      ["p50", function (x) { return ms(x.latency_p50); }], ["p95", function (x) { return ms(x.latency_p95); }],
      ["p99", function (x) { return ms(x.latency_p99); }]);
    if (hasTtft) cols.push(["TTFT p50", function (x) { return ms(x.ttft_p50); }]);
    cols.push(["throttled", function (x) { return int(x.throttles); }]);
    var head = el("tr");
    cols.forEach(function (c) { head.appendChild(el("th", null, c[0])); });
    t.appendChild(head);
    var list = D.models.slice();
    if (list.length > 1) list.push(D.overall);
    list.forEach(function (x, i) {
      var tr = el("tr", i === D.models.length ? "total" : null);
      cols.forEach(function (c) { tr.appendChild(el("td", null, c[1](x))); });
      tr.dataset.model = x.model;
      t.appendChild(tr);
    });
  }

  // ---- charts -----------------------------------------------------------
  var grid = document.getElementById("chart-grid");
  function chartBox(title, id) {
    var box = el("div", "chart");
    box.id = id;
    box.appendChild(el("h3", null, title));
    grid.appendChild(box);
    return box;
  }
  function width(box) { return Math.max(300, box.clientWidth || 460); }
  function draw(box, opts, data) {
    opts.width = width(box);
    opts.height = 240;
    opts.legend = { live: false };
    opts.cursor = opts.cursor || { drag: { x: false, y: false } };
    return new uPlot(opts, data, box);
  }
  function empty(box, why) { box.appendChild(el("p", "empty", why)); }

  function latencyChart() {
    var box = chartBox("Latency distribution per model (answered rows)", "chart-latency");
    var L = D.latency;
    if (!L) return empty(box, "No answered rows.");
    var names = Object.keys(L.counts);
    var data = [L.edges].concat(names.map(function (n) { return L.counts[n]; }));
    draw(box, {
      scales: { x: { time: false, distr: L.log ? 3 : 1 } },
      axes: [{ label: "latency (ms, bucket start)" }, { label: "rows" }],
      series: [{ label: "ms" }].concat(names.map(function (n, i) {
        return { label: n, stroke: color(i), width: 2, fill: color(i) + "22", points: { show: false }, paths: uPlot.paths.stepped({ align: 1 }) };
      }))
    }, data);
  }

  function timeChart(title, id, key) {
    var box = chartBox(title, id);
    var T = D.timeline;
    if (!T) return empty(box, "No row carries started_at/finished_at (written by runs since the report existed).");
    var names = Object.keys(T[key]);
    // Running totals: the last value is the whole count.
    var any = names.some(function (n) { var v = T[key][n]; return v[v.length - 1] > 0; });
    if (!any) return empty(box, "None.");
    var data = [T.x].concat(names.map(function (n) { return T[key][n]; }));
    draw(box, {
      scales: { x: { time: true } },
      axes: [{}, { label: "running total" }],
      series: [{ label: "time" }].concat(names.map(function (n) {
        return { label: n, stroke: color(D.models.findIndex(function (x) { return x.model === n; })), width: 2, points: { show: false } };
      }))
    }, data);
  }

  function costChart() {
    var T = D.timeline;
    if (!T || !T.cost) return;
    var box = chartBox("Cumulative cost (USD)", "chart-cost");
    draw(box, {
      scales: { x: { time: true } },
      axes: [{}, { label: "USD", values: function (u, v) { return v.map(function (x) { return "$" + x.toFixed(x < 1 ? 3 : 2); }); } }],
      series: [{ label: "time" }, { label: "cost", stroke: color(0), width: 2, fill: color(0) + "22", points: { show: false } }]
    }, [T.x, T.cost]);
  }

  // ---- failures ---------------------------------------------------------
  function failures() {
    var box = document.getElementById("failure-groups");
    if (!D.failures.length) { box.appendChild(el("p", "note", "No failed rows.")); return; }
    D.failures.forEach(function (g) {
      var div = el("div", "group");
      div.dataset.kind = g.kind;
      div.dataset.code = g.code;
      var h = el("h3");
      h.appendChild(el("span", null, g.kind + " · "));
      h.appendChild(el("code", null, g.code));
      h.appendChild(el("span", null, " — " + int(g.count) + " row" + (g.count === 1 ? "" : "s")));
      div.appendChild(h);
      var ul = el("ul");
      g.examples.forEach(function (x) {
        var li = el("li");
        li.appendChild(el("code", null, x.id));
        li.appendChild(el("span", null, " (" + x.model + ", " + x.file + ":" + x.line + "): " + x.message));
        ul.appendChild(li);
      });
      div.appendChild(ul);
      box.appendChild(div);
    });
  }

  // ---- answers side by side: a virtual list ----------------------------
  var ROW_H = 84;
  var rows = D.rows, cols = D.columns;
  var vp = document.getElementById("rows");
  var head = document.getElementById("rows-head");
  var spacer = document.getElementById("rows-spacer");
  var shownEl = document.getElementById("shown");
  var input = document.getElementById("filter");
  var boxes = { disagree: document.getElementById("f-disagree"), scorer: document.getElementById("f-scorer"), failed: document.getElementById("f-failed") };
  var template = "minmax(10em, 14em) repeat(" + Math.max(cols.length, 1) + ", minmax(18em, 1fr))";
  var shown = [], drawn = [-1, -1], nodes = [], hay = null;

  function sideBySide() {
    head.style.gridTemplateColumns = template;
    head.appendChild(el("div", null, "id"));
    cols.forEach(function (c) { head.appendChild(el("div", null, c)); });
    input.addEventListener("input", debounce(apply, 60));
    Object.keys(boxes).forEach(function (k) { boxes[k].addEventListener("change", apply); });
    vp.addEventListener("scroll", function () { window.requestAnimationFrame(paint); });
    window.addEventListener("resize", function () { drawn = [-1, -1]; paint(); });
    apply();
  }

  function debounce(f, wait) {
    var t = null;
    return function () { clearTimeout(t); t = setTimeout(f, wait); };
  }

  function apply() {
    var t0 = performance.now();
    var q = input.value.trim().toLowerCase();
    if (q && !hay) {
      // Built on the first search, not at load: a page nobody filters pays nothing.
      hay = rows.map(function (r) {
        var parts = [r[0]];
        for (var i = 2; i < r.length; i++) if (r[i]) parts.push(r[i][1], r[i][2]);
        return parts.join("\n").toLowerCase();
      });
    }
    var need = (boxes.disagree.checked ? 1 : 0) | (boxes.scorer.checked ? 2 : 0) | (boxes.failed.checked ? 4 : 0);
    shown = [];
    for (var i = 0; i < rows.length; i++) {
      if ((rows[i][1] & need) !== need) continue;
      if (q && hay[i].indexOf(q) < 0) continue;
      shown.push(i);
    }
    spacer.style.height = (shown.length * ROW_H) + "px";
    vp.scrollTop = 0;
    drawn = [-1, -1];
    paint();
    shownEl.textContent = int(shown.length) + " of " + int(rows.length) + " ids";
    document.documentElement.dataset.filterMs = String(Math.round(performance.now() - t0));
  }

  function paint() {
    var headH = head.offsetHeight;
    var top = Math.max(0, vp.scrollTop - headH);
    var first = Math.max(0, Math.floor(top / ROW_H) - 3);
    var last = Math.min(shown.length, Math.ceil((top + vp.clientHeight) / ROW_H) + 3);
    if (first === drawn[0] && last === drawn[1]) return;
    drawn = [first, last];
    nodes.forEach(function (n) { n.remove(); });
    nodes = [];
    var frag = document.createDocumentFragment();
    for (var k = first; k < last; k++) {
      var n = rowNode(shown[k]);
      n.style.top = (headH + k * ROW_H) + "px";
      nodes.push(n);
      frag.appendChild(n);
    }
    vp.appendChild(frag);
  }

  function rowNode(i) {
    var r = rows[i];
    var div = el("div", "sbs-row");
    div.style.gridTemplateColumns = template;
    div.style.height = ROW_H + "px";
    div.dataset.id = r[0];
    var idCell = el("div", "id", r[0]);
    if (r[1] & 1) idCell.appendChild(el("span", "flag", "differ"));
    if (r[1] & 2) idCell.appendChild(el("span", "flag", "scorer"));
    div.appendChild(idCell);
    for (var c = 0; c < cols.length; c++) {
      var cell = r[c + 2];
      if (!cell) { div.appendChild(el("div", "missing", "—")); continue; }
      var d = el("div", cell[0] ? "answer" : "failed");
      d.appendChild(el("div", "text", cell[1]));
      if (cell[2]) d.appendChild(el("div", "extra", cell[2]));
      div.appendChild(d);
    }
    div.addEventListener("click", function () { detail(i); });
    return div;
  }

  function detail(i) {
    var r = rows[i], box = document.getElementById("detail");
    box.textContent = "";
    box.hidden = false;
    box.appendChild(el("h3", null, r[0]));
    cols.forEach(function (c, k) {
      var cell = r[k + 2];
      box.appendChild(el("strong", null, c + (cell ? (cell[0] ? "" : " (failed)") : " (no row)")));
      if (cell) {
        box.appendChild(el("pre", null, cell[1]));
        if (cell[2]) box.appendChild(el("div", "note", cell[2]));
      }
    });
  }

  // Each part draws on its own: one that throws must not blank the others,
  // and the error still reaches the console (the browser test checks it).
  [glance, settings, models, latencyChart,
   function () { timeChart("Rows completed over time, per model (running total)", "chart-completed", "completed"); },
   function () { timeChart("Rows failed over time, per model (running total)", "chart-failed", "failed"); },
   function () { timeChart("Throttled attempts over time, per model (running total, counted at their row's end)", "chart-throttled", "throttled"); },
   costChart, failures, sideBySide].forEach(function (part) {
    try { part(); } catch (e) { console.error("report: " + (part.name || "part") + ": " + e); }
  });
  document.documentElement.dataset.rendered = String(Math.round(performance.now()));
})();
