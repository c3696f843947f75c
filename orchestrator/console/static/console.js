// orch console: small progressive enhancement over server-rendered pages.
// Live updates come as server-sent events; charts are drawn by libraries the daemon
// serves (Plotly from the plotly package, Chart.js vendored). No request leaves the page's origin.
(function () {
  "use strict";

  // A refused form's page, shown again in answer to its POST: the address bar goes back
  // to the page the form was on (the POST's address is no page to reload).
  var address = document.body.dataset.address;
  if (address) {
    history.replaceState(history.state, "", address);
  }

  var loading = {};
  var assetVersion = document.documentElement.dataset.assets || "";
  function loadScript(src) {
    src += "?v=" + assetVersion;
    if (!loading[src]) {
      loading[src] = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = src;
        s.onload = resolve;
        s.onerror = reject;
        document.head.appendChild(s);
      });
    }
    return loading[src];
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function jsonOf(el) {
    var script = el.querySelector('script[type="application/json"]');
    return script ? JSON.parse(script.textContent) : null;
  }

  function drawPlotly(el) {
    var fig = jsonOf(el) || {};
    var layout = Object.assign({}, fig.layout || {});
    layout.paper_bgcolor = "rgba(0,0,0,0)";
    layout.plot_bgcolor = "rgba(0,0,0,0)";
    layout.font = Object.assign({ color: cssVar("--fg") }, layout.font || {});
    layout.margin = layout.margin || { t: 40, r: 16, b: 40, l: 56 };
    ["xaxis", "yaxis"].forEach(function (axis) {
      layout[axis] = Object.assign({ gridcolor: cssVar("--line"), zerolinecolor: cssVar("--line") }, layout[axis] || {});
    });
    // No mode bar: Plotly's shows its buttons only on hover, yet each is a tab stop, a dozen
    // per chart that a keyboard user walks through unseen (and a chart is role=img). Hover,
    // drag to zoom and double-click to reset still work.
    var config = {
      responsive: true, displaylogo: false, displayModeBar: false,
      topojsonURL: "/static/vendor/plotly/topojson/"
    };
    window.Plotly.newPlot(el, fig.data || [], layout, config).then(function () {
      el.dataset.drawn = "true";
    });
  }

  function drawChartjs(el) {
    var config = jsonOf(el) || {};
    var canvas = el.querySelector("canvas");
    var scale = window.Chart.defaults.scale;
    window.Chart.defaults.color = cssVar("--fg");
    // Grid lines take the theme's line colour through the scales' own defaults: changing
    // Chart.defaults.borderColor would switch off Chart.js's palette (its Colors plugin),
    // and a chart whose model gives no colours would be drawn all in grey.
    scale.grid.color = cssVar("--line");
    scale.border.color = cssVar("--line");
    // The chart fills its box (.chart sets the height): at Chart.js's default aspect ratio
    // a narrow box would get a short chart over a blank band.
    config.options = Object.assign({}, config.options, { responsive: true, maintainAspectRatio: false });
    new window.Chart(canvas, config);
    el.dataset.drawn = "true";
  }

  function drawCharts(root) {
    var plots = root.querySelectorAll("[data-plotly]:not([data-drawn])");
    if (plots.length) {
      loadScript("/static/vendor/plotly/plotly.min.js").then(function () {
        plots.forEach(function (el) { if (!el.closest("[hidden]")) drawPlotly(el); });
      });
    }
    var charts = root.querySelectorAll("[data-chartjs]:not([data-drawn])");
    if (charts.length) {
      loadScript("/static/vendor/chartjs/chart.umd.min.js").then(function () {
        charts.forEach(function (el) { if (!el.closest("[hidden]")) drawChartjs(el); });
      });
    }
  }

  // Tabs (WAI-ARIA pattern): click or arrow keys; a hidden chart is drawn when shown.
  function selectTab(tab) {
    var list = tab.closest("[role=tablist]");
    list.querySelectorAll("[role=tab]").forEach(function (t) {
      var on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      var panel = document.getElementById(t.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
    drawCharts(document.getElementById(tab.getAttribute("aria-controls")) || document);
  }

  document.addEventListener("click", function (e) {
    var tab = e.target.closest("[role=tab]");
    if (tab) selectTab(tab);
  });
  document.addEventListener("keydown", function (e) {
    var tab = e.target.closest("[role=tab]");
    if (!tab || (e.key !== "ArrowRight" && e.key !== "ArrowLeft")) return;
    var tabs = Array.prototype.slice.call(tab.closest("[role=tablist]").querySelectorAll("[role=tab]"));
    var next = tabs[(tabs.indexOf(tab) + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    selectTab(next);
    e.preventDefault();
  });

  function markLive(on) {
    var dot = document.querySelector("[data-live-indicator]");
    if (dot) dot.classList.toggle("off", !on);
  }

  // A stream the browser gave up on (EventSource CLOSED: the daemon restarted and forgot
  // the session, so the reconnect got 401) sends nothing more: the page says so, and its
  // "live" claims go. While the browser still retries (CONNECTING), the grey dot is enough.
  var leaving = false;
  window.addEventListener("pagehide", function () { leaving = true; });
  function liveStopped(source) {
    if (leaving || source.readyState !== EventSource.CLOSED) return;
    markLive(false);
    document.querySelectorAll("[data-live-claim]").forEach(function (el) { el.hidden = true; });
    if (document.querySelector("[data-live-stopped]")) return;
    var notice = document.createElement("p");
    notice.className = "error";
    notice.setAttribute("role", "alert");
    notice.dataset.liveStopped = "";
    notice.append("Live updates stopped: the daemon restarted or your session ended. ");
    var reload = document.createElement("a");
    reload.href = window.location.href;
    reload.textContent = "Reload the page";
    notice.append(reload, ".");
    var main = document.querySelector("main");
    main.insertBefore(notice, main.firstChild);
  }

  // The runs table: rows arrive from /runs/stream as they change; "No runs match." shows
  // whenever the table has no row left.
  function liveRuns(table) {
    var source = new EventSource(table.dataset.liveRuns);
    var first = table.dataset.firstPage === "true";
    var body = table.tBodies[0];
    var empty = document.querySelector("[data-empty]");
    function showEmpty() { if (empty) empty.hidden = body.rows.length > 0; }
    source.onopen = function () { markLive(true); };
    source.onerror = function () { markLive(false); liveStopped(source); };
    source.addEventListener("run", function (e) {
      var data = JSON.parse(e.data);
      var holder = document.createElement("tbody");
      holder.innerHTML = data.html;
      var row = holder.firstElementChild;
      var old = document.getElementById("run-" + data.id);
      if (old) {
        old.replaceWith(row);
      } else if (first) {
        body.insertBefore(row, body.firstChild);
        showEmpty();
      } else {
        return;
      }
      row.classList.add("flash");
    });
    source.addEventListener("gone", function (e) {
      var old = document.getElementById("run-" + JSON.parse(e.data).id);
      if (old) old.remove();
      showEmpty();
    });
    source.addEventListener("stale", function () { source.close(); window.location.reload(); });
  }

  // A byte count as the server's size filter writes it: 512 B, 1.5 KiB, 19.1 MiB.
  function sizeText(bytes) {
    var units = ["B", "KiB", "MiB", "GiB"], n = bytes, i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i ? n.toFixed(1) + " " + units[i] : n + " B";
  }

  // One run: panels re-rendered at each status change, the log appended as it grows.
  // The log keeps only its last data-log-cap characters, as a freshly opened page does
  // (a model writing megabytes would otherwise freeze the tab); the hint above it says how
  // much comes before. A stream that fell far behind sends the tail alone (reset).
  function liveRun(root) {
    var source = new EventSource(root.dataset.liveRun);
    var log = document.getElementById("log");  // none on an ensemble run: its children log
    var download = document.querySelector("[data-log-download]");
    var cap = log ? Number(log.dataset.logCap) || Infinity : Infinity;
    var hint = document.querySelector("[data-log-hint]");
    var skipped = hint ? Number(hint.dataset.skipped) || 0 : 0;
    var shown = log ? log.textContent.length : 0;
    function trim() {
      if (shown <= cap) return;
      var text = log.textContent;
      var from = text.length - cap;
      var line = text.indexOf("\n", from);
      var cut = line >= 0 && line < text.length - 1 ? line + 1 : from;  // at a whole line
      skipped += new TextEncoder().encode(text.slice(0, cut)).length;
      log.textContent = text.slice(cut);
      shown = text.length - cut;
    }
    function showSkipped() {
      if (!hint || skipped <= 0) return;
      hint.querySelector("[data-log-skipped]").textContent = sizeText(skipped);
      hint.hidden = false;
    }
    source.addEventListener("run", function (e) {
      var data = JSON.parse(e.data);
      var panels = document.getElementById("run-panels");
      panels.innerHTML = data.html;
      if (window.htmx) window.htmx.process(panels);
      drawCharts(panels);
      if (download && data.has_log) download.hidden = false;  // the run has a log now
    });
    source.addEventListener("log", function (e) {
      if (!log) return;
      var data = JSON.parse(e.data);
      if (download) download.hidden = false;
      var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      if (data.reset) {
        log.textContent = data.text;
        shown = data.text.length;
        skipped = data.skipped;
      } else {
        log.append(document.createTextNode(data.text));
        shown += data.text.length;
      }
      trim();
      showSkipped();
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    function finish() {
      source.close();
      var state = document.querySelector("[data-log-state]");
      if (state) state.textContent = "";
      root.dataset.ended = "true";
    }
    source.addEventListener("end", finish);
    source.addEventListener("gone", finish);
    source.onerror = function () { liveStopped(source); };
  }

  // The new-run form: an instance whose input is a folder takes one archive, and a box to
  // paste into would only invite JSON the run refuses.
  function followInstance(select) {
    select.addEventListener("change", function () {
      var option = select.options[select.selectedIndex];
      var folder = Boolean(option) && option.dataset.folder === "true";
      document.querySelectorAll("[data-paste]").forEach(function (el) { el.hidden = folder; });
      document.querySelectorAll("[data-folder-hint]").forEach(function (el) { el.hidden = !folder; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    var instance = document.querySelector("#run-instance");
    if (instance) followInstance(instance);
  });

  // Streams open once the page has loaded: an open event stream must not hold the load up.
  window.addEventListener("load", function () {
    var table = document.querySelector("[data-live-runs]");
    if (table) liveRuns(table);
    var run = document.querySelector("[data-live-run]");
    if (run && !run.querySelector("[data-run-status=succeeded],[data-run-status=failed],[data-run-status=canceled]")) {
      liveRun(run);
    } else if (run) {
      run.dataset.ended = "true";
    }
  });
})();

// ---- compare runs (begin): the runs list of one app ----
// Tick 2 to 20 runs, then Compare opens them side by side (the form is a GET: the page's
// link). The ticks are kept by run ID, so a row the live stream replaces keeps its tick.
(function () {
  "use strict";
  var form = document.querySelector("[data-compare]");
  if (!form) return;
  var MIN = 2, MAX = 20;
  var button = form.querySelector("[data-compare-button]");
  var hint = form.querySelector("[data-compare-hint]");
  var ticked = new Set();
  function boxes() { return document.querySelectorAll("[data-compare-pick]"); }
  function update() {
    var n = ticked.size;
    button.disabled = n < MIN || n > MAX;
    boxes().forEach(function (box) {
      box.checked = ticked.has(box.value);
      box.disabled = !box.checked && n >= MAX;  // at most MAX: the rest wait
    });
    hint.textContent = n === 0 ? "Tick 2 to 20 runs to see them side by side."
      : n < MIN ? "1 run ticked: tick one more."
      : n >= MAX ? n + " runs ticked: the most one comparison takes."
      : n + " runs ticked.";
  }
  document.addEventListener("change", function (e) {
    var box = e.target.closest ? e.target.closest("[data-compare-pick]") : null;
    if (!box) return;
    if (box.checked) { ticked.add(box.value); } else { ticked.delete(box.value); }
    update();
  });
  var body = document.querySelector("table.runs tbody");
  if (body) new MutationObserver(update).observe(body, { childList: true });
  boxes().forEach(function (box) { if (box.checked) ticked.add(box.value); });  // after "Back"
  update();
})();
// ---- compare runs (end) ----
