"use strict";
// trackhooks ui: runs list, run view, compare view; live updates by polling for new points only.
// Every user string reaches the page through textContent (never innerHTML), except the run note's
// server-rendered, sanitised HTML (noteBlock).
(function () {
  var app = document.getElementById("app");
  var PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#ca8a04", "#db2777",
                 "#4b5563", "#65a30d"];
  var state = { sort: "start_time", order: "desc", offset: 0, q: "", where: "", archived: false, experiment: "", status: "",
                selected: {}, x: "step", log: false, smooth: 0, sysx: "wall" };
  // system/* metrics (CPU, memory, GPU samples) have their own section and x axis (wall time by default)
  function isSystem(k) { return k.slice(0, 7) === "system/"; }
  var timers = [];
  var charts = [];
  var panels = [];

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k] === null || attrs[k] === undefined ? "" : String(attrs[k]);
      else if (k === "class") e.className = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function clear() {
    timers.forEach(clearInterval); timers = [];
    charts.forEach(function (c) { c.plot && c.plot.destroy(); }); charts = [];
    panels = [];
    app.textContent = "";
  }
  function api(path) {
    return fetch(path, { cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || r.statusText);
        return body;
      });
    });
  }
  function fmt(v) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      var a = Math.abs(v);
      return (a !== 0 && (a >= 1e6 || a < 1e-4)) ? v.toExponential(3) : String(Number(v.toPrecision(5)));
    }
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function fmtTime(t) { return t ? new Date(t * 1000).toLocaleString() : "—"; }
  function fmtDur(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }
  function statusBadge(s) { return el("span", { class: "status " + s, text: s }); }
  function num(v) { return v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : v; }
  function showError(err) { app.appendChild(el("p", { class: "error", text: String(err.message || err) })); }

  // ---- runs view ------------------------------------------------------------------------------
  function runsView() {
    clear();
    app.appendChild(el("h1", { text: "Runs" }));
    var tb = el("div", { class: "toolbar" });
    var q = el("input", { type: "search", placeholder: "filter by name, id, experiment, framework", id: "filter" });
    q.value = state.q;
    var exp = el("select", { id: "experiment" }, [el("option", { value: "", text: "all experiments" })]);
    var st = el("select", { id: "status" }, ["", "running", "finished", "failed", "killed"].map(function (s) {
      return el("option", { value: s, text: s || "any status" });
    }));
    st.value = state.status;
    // the where language of the API and CLI (docs/api.md), applied on Enter; errors show the caret
    var wh = el("input", { type: "search", id: "where", size: 48, spellcheck: "false",
      placeholder: "where: params.lr < 1e-3 and min(metrics.val_loss) < 0.3" });
    wh.value = state.where;
    var arch = el("input", { type: "checkbox", id: "archived" });
    arch.checked = state.archived;
    var archLabel = el("label", { class: "muted", text: " archived" });
    archLabel.insertBefore(arch, archLabel.firstChild);
    var cmp = el("button", { class: "primary", id: "compare", text: "Compare selected" });
    tb.appendChild(q); tb.appendChild(wh); tb.appendChild(exp); tb.appendChild(st); tb.appendChild(archLabel);
    tb.appendChild(cmp);
    var info = el("span", { class: "muted", id: "runs-info" });
    tb.appendChild(info);
    app.appendChild(tb);
    var whereError = el("pre", { class: "error", id: "where-error" });
    whereError.hidden = true;
    app.appendChild(whereError);
    var table = el("table", { id: "runs" });
    app.appendChild(table);
    var pager = el("div", { class: "pager" });
    app.appendChild(pager);
    var typing;
    q.addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(function () { state.q = q.value; state.offset = 0; load(); }, 200); });
    wh.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { state.where = wh.value.trim(); state.offset = 0; load(); }
    });
    // emptying the box drops the filter at once, whether by its clear button or the keyboard
    function whereCleared() { if (!wh.value && state.where) { state.where = ""; state.offset = 0; load(); } }
    wh.addEventListener("search", whereCleared);
    wh.addEventListener("input", whereCleared);
    arch.addEventListener("change", function () { state.archived = arch.checked; state.offset = 0; load(); });
    exp.addEventListener("change", function () { state.experiment = exp.value; state.offset = 0; load(); });
    st.addEventListener("change", function () { state.status = st.value; state.offset = 0; load(); });
    cmp.addEventListener("click", function () {
      var ids = Object.keys(state.selected);
      if (ids.length) location.hash = "#/compare/" + ids.join(",");
    });
    function updateCompare() {
      var n = Object.keys(state.selected).length;
      cmp.disabled = n < 1;
      cmp.textContent = n ? "Compare selected (" + n + ")" : "Compare selected";
    }
    // only the answer to the latest request is shown: the 3 s poll may have asked with the old
    // filter just before a new one, and its answer can come back last
    var latest = 0;
    function load() {
      var mine = ++latest;
      table.setAttribute("aria-busy", "true");
      var p = new URLSearchParams({ sort: state.sort, order: state.order, offset: state.offset, limit: 50 });
      if (state.q) p.set("q", state.q);
      if (state.experiment) p.set("experiment", state.experiment);
      if (state.status) p.set("status", state.status);
      if (state.where) p.set("where", state.where);
      if (state.archived) p.set("archived", "1");
      return api("/api/runs?" + p).then(function (data) {
        if (mine !== latest) return;
        table.removeAttribute("aria-busy");
        whereError.hidden = true;
        render(data);
      }, function (err) {
        if (mine !== latest) return;
        table.removeAttribute("aria-busy");
        if (!state.where) return showError(err);
        whereError.textContent = String(err.message || err);  // the expression with a caret
        whereError.hidden = false;
      });
    }
    function header(label, key) {
      var th = el("th", { text: label, "data-sort": key });
      if (state.sort === key) th.className = "sorted" + (state.order === "asc" ? " asc" : "");
      th.addEventListener("click", function () {
        if (state.sort === key) state.order = state.order === "asc" ? "desc" : "asc";
        else { state.sort = key; state.order = key === "name" || key === "experiment" ? "asc" : "desc"; }
        load();
      });
      return th;
    }
    function render(data) {
      if (exp.options.length !== data.experiments.length + 1) {
        exp.textContent = "";
        exp.appendChild(el("option", { value: "", text: "all experiments" }));
        data.experiments.forEach(function (e) { exp.appendChild(el("option", { value: e, text: e })); });
      }
      exp.value = state.experiment;
      info.textContent = data.total + " run" + (data.total === 1 ? "" : "s") + " (" + data.query_ms.toFixed(0) + " ms)" +
        (data.archived_hidden ? ", " + data.archived_hidden + " archived hidden" : "");
      table.textContent = "";
      var head = el("tr", null, [el("th", { text: "" }), header("id", "id"), header("name", "name"),
        header("experiment", "experiment"), header("status", "status"), header("start", "start_time"),
        header("duration", "duration"), header("framework", "framework")]);
      data.param_columns.forEach(function (k) { head.appendChild(header(k, "param:" + k)); });
      data.metric_columns.forEach(function (k) { head.appendChild(header(k, "metric:" + k)); });
      table.appendChild(el("thead", null, [head]));
      var body = el("tbody");
      data.runs.forEach(function (r) {
        var box = el("input", { type: "checkbox", "data-run": r.id });
        box.checked = !!state.selected[r.id];
        box.addEventListener("change", function () {
          if (box.checked) state.selected[r.id] = true; else delete state.selected[r.id];
          updateCompare();
        });
        var link = el("a", { href: "#/run/" + r.id, text: r.name, class: "run-link" });
        var tr = el("tr", { "data-run": r.id }, [el("td", null, [box]), el("td", { text: r.id.slice(0, 8) }),
          el("td", null, [link]), el("td", { text: r.experiment }), el("td", null, [statusBadge(r.status)]),
          el("td", { text: fmtTime(r.start_time) }), el("td", { text: fmtDur(r.duration) }),
          el("td", { text: r.framework || "" })]);
        data.param_columns.forEach(function (k) { tr.appendChild(el("td", { text: fmt(r.params[k]) })); });
        data.metric_columns.forEach(function (k) { tr.appendChild(el("td", { class: "num", text: fmt(r.metrics[k]) })); });
        body.appendChild(tr);
      });
      table.appendChild(body);
      pager.textContent = "";
      var prev = el("button", { text: "‹ previous" }), next = el("button", { text: "next ›" });
      prev.disabled = data.offset === 0;
      next.disabled = data.offset + data.limit >= data.total;
      prev.addEventListener("click", function () { state.offset = Math.max(0, state.offset - 50); load(); });
      next.addEventListener("click", function () { state.offset += 50; load(); });
      pager.appendChild(prev);
      pager.appendChild(el("span", { class: "muted", text: (data.total ? data.offset + 1 : 0) + "–" + Math.min(data.total, data.offset + data.limit) + " of " + data.total }));
      pager.appendChild(next);
      updateCompare();
    }
    load();
    timers.push(setInterval(load, 3000));  // statuses and headline metrics stay live
  }

  // ---- charts ---------------------------------------------------------------------------------
  function ema(values, alpha) {
    if (!alpha) return values;
    var out = new Array(values.length), acc = null;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null || !isFinite(v)) { out[i] = v; continue; }
      acc = acc === null ? v : acc * alpha + v * (1 - alpha);
      out[i] = acc;
    }
    return out;
  }
  // A metric logged once per epoch sits on its epoch; per-step points of one epoch are spread
  // evenly over [epoch, epoch + 1) so they do not collapse onto one x value.
  function epochX(s) {
    if (s._epochN === s.epochs.length) return s._epochX;
    var count = {}, seen = {};
    s.epochs.forEach(function (e) { if (e !== null) count[e] = (count[e] || 0) + 1; });
    s._epochX = s.epochs.map(function (e) {
      if (e === null) return null;
      var k = seen[e] || 0;
      seen[e] = k + 1;
      return count[e] > 1 ? e + k / count[e] : e;
    });
    s._epochN = s.epochs.length;
    return s._epochX;
  }
  function xOf(s, i, mode) {
    if (mode === "epoch") return epochX(s)[i];
    if (mode === "time") return s.timestamps[i] - s.t0;
    if (mode === "wall") return s.timestamps[i];
    return s.steps[i];
  }
  // Build one uPlot data table from several series with different x values (union of x).
  function tableOf(list, mode) {
    var xs = {}, maps = list.map(function (s) {
      var m = new Map();
      var ys = ema(s.values.map(num), state.smooth);
      for (var i = 0; i < s.values.length; i++) {
        var x = xOf(s, i, mode);
        if (x === null || x === undefined) continue;
        var y = ys[i];
        if (state.log && !(y > 0)) y = null;
        if (y !== null && !isFinite(y)) y = null;
        m.set(x, y);
        xs[x] = true;
      }
      return m;
    });
    var xv = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
    return [xv].concat(maps.map(function (m) { return xv.map(function (x) { return m.has(x) ? m.get(x) : null; }); }));
  }
  function Chart(container, key, runs) {
    this.key = key;
    this.system = isSystem(key);
    this.runs = runs;  // [{id, label, color}]
    this.series = runs.map(function () { return null; });
    this.card = el("div", { class: "card chart", "data-key": key });
    this.card.appendChild(el("h3", { text: key }));
    this.note = el("div", { class: "note" });
    this.card.appendChild(this.note);
    this.box = el("div");
    this.card.appendChild(this.box);
    container.appendChild(this.card);
    this.plot = null;
  }
  Chart.prototype.load = function () {
    var self = this;
    return Promise.all(this.runs.map(function (r, i) {
      if (r.keys && !r.keys[self.key]) { self.series[i] = null; return null; }  // this run has no such metric
      return api("/api/runs/" + encodeURIComponent(r.id) + "/metrics/" + encodeURIComponent(self.key))
        .then(function (s) { s.t0 = s.timestamps.length ? s.timestamps[0] : 0; self.series[i] = s; })
        .catch(function () { self.series[i] = null; });
    })).then(function () { self.draw(); });
  };
  Chart.prototype.append = function (runIndex, since) {
    var self = this, s = this.series[runIndex];
    if (!s || s.downsampled) return this.load();  // a downsampled view is re-sampled, not appended
    return api("/api/runs/" + encodeURIComponent(this.runs[runIndex].id) + "/metrics/" + encodeURIComponent(this.key) + "?since=" + s.n)
      .then(function (d) {
        ["steps", "epochs", "values", "timestamps"].forEach(function (f) { s[f] = s[f].concat(d[f]); });
        s.n = d.n;
        self.draw();
      });
  };
  Chart.prototype.count = function (runIndex) { var s = this.series[runIndex]; return s ? s.n : 0; };
  Chart.prototype.mode = function () { return this.system ? state.sysx : state.x; };
  Chart.prototype.draw = function () {
    var present = [], runs = [];
    this.series.forEach(function (s, i) { if (s) { present.push(s); runs.push(this.runs[i]); } }, this);
    var notes = [];
    if (present.some(function (s) { return s.downsampled; }))
      notes.push("downsampled for display: " + present.map(function (s) { return s.shown + " of " + s.n; }).join(", ") + " points (min and max of each bucket kept)");
    var mode = this.mode();
    if (mode === "epoch" && present.every(function (s) { return s.epochs.every(function (e) { return e === null; }); }))
      notes.push("no epochs were logged for this metric");
    this.note.textContent = notes.join(" · ");
    var data = tableOf(present, mode);
    var width = Math.max(300, this.card.clientWidth - 24);
    var few = present.every(function (s) { return s.values.length <= 60; });
    var opts = {
      width: width, height: 240,
      scales: { x: { time: mode === "wall", range: mode === "wall" ? undefined : padRange }, y: { distr: state.log ? 3 : 1, range: state.log ? undefined : padRange } },
      axes: [{ label: mode === "time" ? "seconds since start" : mode === "wall" ? "wall time" : mode === "step" && this.system ? "sample" : mode }, {}],
      series: [{ label: mode === "wall" ? "time" : mode }].concat(runs.map(function (r) {
        return { label: r.label, stroke: r.color, width: 1.5, spanGaps: true, points: { show: few, size: 5, fill: r.color } };
      })),
      legend: { live: true },
    };
    if (this.plot) this.plot.destroy();
    this.box.textContent = "";
    this.plot = new uPlot(opts, data, this.box);
    // for people and tests alike: how much is drawn
    this.card.setAttribute("data-series", String(present.length));
    this.card.setAttribute("data-points", String(present.reduce(function (a, s) { return a + s.values.length; }, 0)));
  };
  // constant series and single points still get a visible range
  function padRange(u, lo, hi) {
    if (lo === null || hi === null) return [0, 1];
    if (lo === hi) { var d = Math.abs(lo) * 0.1 || 1; return [lo - d, hi + d]; }
    var p = (hi - lo) * 0.05;
    return [lo - p, hi + p];
  }
  function chartGrid(runs, keys, id) {
    var grid = el("div", { class: "grid", id: id || "charts" });
    app.appendChild(grid);
    keys.forEach(function (k) {
      var c = new Chart(grid, k, runs);
      charts.push(c);
      c.load();
    });
  }
  function chartControls() {
    var tb = el("div", { class: "toolbar" });
    var x = el("select", { id: "xaxis" }, ["step", "epoch", "time"].map(function (v) { return el("option", { value: v, text: "x: " + (v === "time" ? "wall time" : v) }); }));
    x.value = state.x;
    var log = el("label", null, [el("input", { type: "checkbox", id: "logscale" }), " log scale"]);
    var sm = el("label", null, ["smoothing ", el("input", { type: "range", min: "0", max: "0.98", step: "0.02", id: "smoothing" })]);
    tb.appendChild(x); tb.appendChild(log); tb.appendChild(sm);
    x.addEventListener("change", function () { state.x = x.value; redraw(); });
    log.firstChild.checked = state.log;
    log.firstChild.addEventListener("change", function (e) { state.log = e.target.checked; redraw(); });
    sm.lastChild.value = state.smooth;
    sm.lastChild.addEventListener("input", function (e) { state.smooth = Number(e.target.value); redraw(); });
    return tb;
  }
  function redraw() { charts.forEach(function (c) { c.draw(); }); }
  function systemControls() {
    var tb = el("div", { class: "toolbar" });
    var x = el("select", { id: "system-xaxis" }, [["wall", "wall time"], ["time", "time since start"], ["step", "sample"]].map(function (v) {
      return el("option", { value: v[0], text: "x: " + v[1] });
    }));
    x.value = state.sysx;
    x.addEventListener("change", function () { state.sysx = x.value; redraw(); });
    tb.appendChild(x);
    tb.appendChild(el("span", { class: "muted", text: "CPU, memory, I/O and GPU of the training process, sampled off the training thread" }));
    return tb;
  }
  // Live tail of the run's console output: complete lines are appended, the unfinished last line
  // (a progress bar) is replaced on each poll.
  function consoleView(runId) {
    var box = el("div", { class: "console-box" });
    var info = el("div", { class: "muted", id: "console-info" });
    var pre = el("pre", { class: "console", id: "console" });
    var body = document.createTextNode(""), partial = el("span", { class: "partial" });
    pre.appendChild(body); pre.appendChild(partial);
    box.appendChild(info); box.appendChild(pre);
    var next = 0, done = false, MAX_CHARS = 2000000;
    function poll() {
      if (done) return;
      api("/api/runs/" + encodeURIComponent(runId) + "/console?offset=" + next).then(function (c) {
        var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        if (c.offset !== next && next !== 0) body.data = "";  // the log was replaced: start over
        body.data += c.text;
        if (body.data.length > MAX_CHARS) body.data = body.data.slice(body.data.length - MAX_CHARS);
        partial.textContent = c.partial;
        next = c.next;
        info.textContent = c.size ? (c.size + " bytes" + (c.skipped ? " · the first " + c.skipped + " bytes are not shown (trackhooks show RUN --console has all)" : "") + (c.status === "running" ? " · live" : "")) : "nothing was captured";
        pre.setAttribute("data-bytes", String(c.size));
        if (atBottom) pre.scrollTop = pre.scrollHeight;
        if (c.status !== "running") done = true;
      }).catch(function () {});
    }
    poll();
    timers.push(setInterval(poll, 1500));
    return box;
  }
  // Poll counts; fetch only new points of series that grew.
  function watch(runs, onStatus) {
    timers.push(setInterval(function () {
      api("/api/live?ids=" + runs.map(function (r) { return r.id; }).join(",")).then(function (live) {
        runs.forEach(function (r, i) {
          var info = live[r.id];
          if (!info) return;
          onStatus(r, info.status);
          charts.forEach(function (c) {
            var n = info.counts[c.key] || 0;
            if (n > 0 && r.keys) r.keys[c.key] = true;
            if (n > c.count(i)) c.append(i);
          });
          var known = {};
          charts.forEach(function (c) { known[c.key] = true; });
          Object.keys(info.counts).forEach(function (k) {
            if (!known[k] && info.counts[k] > 0 && r.onNewKey) r.onNewKey(k);
          });
        });
      }).catch(function () {});
    }, 1500));
  }

  // ---- media (images, figures, histograms, confusion matrices, curves, tables) ----------------
  // One panel per key, the runs side by side at the same step (media.js). Every 2 s /api/live
  // gives each run's record count per media key; a key whose counts changed is refetched and its
  // panel updated in place (a slider at the last step follows new records, one moved back stays).
  var KIND_ORDER = { image: 0, figure: 1, confusion_matrix: 2, curve: 3, histogram: 4, table: 5 };
  function mediaSection(runs) {
    var byId = {};
    runs.forEach(function (r) { byId[r.id] = r; });
    app.appendChild(el("h2", { text: "Media", id: "media-head" }));
    var empty = el("p", { class: "muted", id: "media-empty", text: "No images, figures, histograms, confusion matrices, curves or tables logged yet." });
    var grid = el("div", { class: "media-grid", id: "media" });
    app.appendChild(empty);
    app.appendChild(grid);
    var known = {};   // media key -> {kind, series, stamp, pending}
    var shown = {};   // panel key -> Panel (a curve family shares one panel, see media.js group())
    var wanted = {};
    var ctx = { label: function (s) { return byId[s.run] ? byId[s.run].label : String(s.run); },
                color: function (s) { return byId[s.run] ? byId[s.run].color : "#6b7280"; } };
    var mine = panels;  // this view's panels (a route change replaces the list)
    function rank(kind) { return kind in KIND_ORDER ? KIND_ORDER[kind] : 9; }
    // the panels the loaded keys make, created, updated or removed to match, in kind-then-key order
    function reconcile() {
      var specs = Object.keys(known).filter(function (k) { return known[k].series; }).map(function (k) {
        return { key: k, kind: known[k].kind, series: known[k].series };
      });
      specs = window.TrackhooksMedia.group(specs).sort(function (a, b) {
        return (rank(a.kind) - rank(b.kind)) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
      });
      var keep = {};
      specs.forEach(function (spec) {
        keep[spec.key] = true;
        var p = shown[spec.key];
        if (p && p.spec.kind === spec.kind) p.update(spec);
        else {
          if (p) grid.removeChild(p.root);
          shown[spec.key] = new window.TrackhooksMedia.Panel(spec, ctx, grid);
        }
      });
      Object.keys(shown).forEach(function (k) {
        if (!keep[k]) { grid.removeChild(shown[k].root); delete shown[k]; }
      });
      // reorder only when the order changed: moving a node would take the focus off its slider
      var roots = specs.map(function (spec) { return shown[spec.key].root; });
      var same = roots.length === grid.children.length && roots.every(function (r, i) { return grid.children[i] === r; });
      if (!same) roots.forEach(function (r) { grid.appendChild(r); });
      panels.length = 0;
      Object.keys(shown).forEach(function (k) { panels.push(shown[k]); });
      settle();
    }
    function settle() {
      var keys = Object.keys(wanted);
      var done = keys.every(function (k) { return known[k] && known[k].series && !known[k].pending; });
      grid.setAttribute("data-keys", String(keys.length));
      grid.setAttribute("data-settled", done ? "1" : "0");
    }
    function load(key, entry, stamp, ids) {
      entry.pending = true;
      return Promise.all(ids.map(function (id) {
        return api("/api/runs/" + encodeURIComponent(id) + "/media/" + encodeURIComponent(key)).catch(function () { return null; });
      })).then(function (list) {
        entry.pending = false;
        if (mine !== panels) return;  // the page moved on
        list = list.filter(function (s) { return s && s.kind; });
        if (!list.length) return;
        // a key means one kind; a run that logged another kind under it is left out of the panel
        entry.kind = entry.kind || list[0].kind;
        entry.series = list.filter(function (s) { return s.kind === entry.kind; });
        entry.stamp = stamp;
        reconcile();
      }, function () { entry.pending = false; });
    }
    function poll() {
      return api("/api/live?ids=" + runs.map(function (r) { return encodeURIComponent(r.id); }).join(",")).then(function (live) {
        if (mine !== panels) return;
        var want = {};
        runs.forEach(function (r) {
          var media = (live[r.id] && live[r.id].media) || {};
          Object.keys(media).forEach(function (k) {
            var w = want[k] || (want[k] = { stamp: {}, ids: [] });
            w.stamp[r.id] = media[k];
            w.ids.push(r.id);
          });
        });
        wanted = want;
        Object.keys(want).forEach(function (key) {
          var w = want[key], stamp = JSON.stringify(w.stamp);
          var entry = known[key] || (known[key] = {});
          if (entry.pending || entry.stamp === stamp) return;
          load(key, entry, stamp, w.ids);
        });
        empty.hidden = Object.keys(want).length > 0;
        settle();
      }).catch(function () {});
    }
    poll();
    timers.push(setInterval(poll, 2000));
  }

  function kvBlock(obj) {
    var box = el("div", { class: "kv" });
    var keys = Object.keys(obj || {}).sort();
    if (!keys.length) box.appendChild(el("div", { class: "muted", text: "none" }));
    keys.forEach(function (k) { box.appendChild(el("div", { text: k })); box.appendChild(el("div", { text: fmt(obj[k]) })); });
    return box;
  }
  function simpleTable(id, headers, rows) {
    var t = el("table", { id: id });
    t.appendChild(el("thead", null, [el("tr", null, headers.map(function (h) { return el("th", { text: h }); }))]));
    var b = el("tbody");
    rows.forEach(function (r) { b.appendChild(el("tr", null, r.map(function (c) { return c instanceof Node ? el("td", null, [c]) : el("td", { text: c }); }))); });
    t.appendChild(b);
    if (!rows.length) b.appendChild(el("tr", null, [el("td", { class: "muted", text: "none", colspan: String(headers.length) })]));
    sortable(t);
    return t;
  }
  function sortable(t) {
    var ths = t.querySelectorAll("th");
    ths.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var asc = th.classList.contains("sorted") && !th.classList.contains("asc");
        ths.forEach(function (h) { h.className = ""; });
        th.className = "sorted" + (asc ? " asc" : "");
        rows.sort(function (a, b) {
          var x = a.cells[col] ? a.cells[col].textContent : "", y = b.cells[col] ? b.cells[col].textContent : "";
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  // ---- run view -------------------------------------------------------------------------------
  // a hyperparameter study (trackhooks-optuna): history, parallel coordinates, intermediate values
  // (study.js, shared with the HTML report) and its trials best first
  function studyBlock(study) {
    app.appendChild(el("h2", { text: "Study (" + study.directions.join(", ") + ", " + study.trials.length + " trials)" }));
    var box = el("div", { id: "study" });
    app.appendChild(box);
    window.TrackhooksStudy.render(box, study);
    var best = {};
    study.best.forEach(function (n) { best[n] = true; });
    var multi = study.directions.length > 1;
    app.appendChild(simpleTable("trials", ["", "#", "trial", "state", multi ? "values" : "value"].concat(study.param_names, ["duration"]),
      study.trials.map(function (t) {
        return [best[t.number] ? "★" : "", String(t.number), el("a", { href: "#/run/" + t.id, text: t.name }), t.state.toLowerCase(),
          multi ? (t.values || []).map(fmt).join(", ") : fmt(t.value)].concat(
          study.param_names.map(function (k) { return fmt(t.params[k]); }), [fmtDur(t.duration)]);
      })));
  }

  // The run's note: HTML the server rendered from Markdown (trackhooks.markdown escapes everything
  // and writes only the tags below). It is the one place HTML from the server reaches the page; it
  // is parsed in an inert <template> and, as a second line of defence, anything outside that small
  // set of tags, and any attribute but an http(s)/mailto href, is dropped before it is inserted.
  var NOTE_TAGS = { P: 1, H1: 1, H2: 1, H3: 1, H4: 1, H5: 1, H6: 1, EM: 1, STRONG: 1, CODE: 1, PRE: 1, UL: 1, OL: 1,
                    LI: 1, BLOCKQUOTE: 1, HR: 1, BR: 1, A: 1 };
  function noteBlock(noteHtml) {
    var tpl = document.createElement("template");
    tpl.innerHTML = noteHtml;
    var all = tpl.content.querySelectorAll("*");
    for (var i = all.length - 1; i >= 0; i--) {
      var node = all[i];
      if (!NOTE_TAGS[node.tagName]) { node.replaceWith(document.createTextNode(node.textContent)); continue; }
      Array.prototype.slice.call(node.attributes).forEach(function (a) {
        if (!(node.tagName === "A" && (a.name === "href" && /^(https?:\/\/|mailto:)/i.test(a.value) || a.name === "rel"))) node.removeAttribute(a.name);
      });
      if (node.tagName === "A") node.setAttribute("rel", "noopener noreferrer nofollow");
    }
    var box = el("div", { class: "note", id: "note" });
    box.appendChild(tpl.content);
    app.appendChild(el("h2", { text: "Note", id: "note-head" }));
    app.appendChild(box);
  }

  function runView(id) {
    clear();
    api("/api/runs/" + encodeURIComponent(id)).then(function (r) {
      var badge = statusBadge(r.status);
      badge.id = "run-status";
      app.appendChild(el("h1", null, [document.createTextNode(r.name + " "), badge]));
      app.appendChild(el("p", { class: "muted", text: r.id + " · " + r.experiment + " · started " + fmtTime(r.start_time) + " · " + fmtDur(r.duration) + (r.tags.framework ? " · " + r.tags.framework : "") }));
      if (r.note_html) noteBlock(r.note_html);
      if (r.study && window.TrackhooksStudy) studyBlock(r.study);
      var cols = el("div", { class: "cols" });
      cols.appendChild(el("div", null, [el("h2", { text: "Params" }), kvBlock(r.params)]));
      cols.appendChild(el("div", null, [el("h2", { text: "Tags" }), kvBlock(r.tags), el("h2", { text: "System" }), kvBlock(r.system)]));
      app.appendChild(cols);
      app.appendChild(el("h2", { text: "Metrics" }));
      app.appendChild(chartControls());
      var runs = [{ id: r.id, label: r.name, color: PALETTE[0] }];
      var keys = Object.keys(r.metrics).sort();
      chartGrid(runs, keys.filter(function (k) { return !isSystem(k); }));
      state.sysx = "wall";
      app.appendChild(el("h2", { text: "System", id: "system" }));
      app.appendChild(systemControls());
      var sm = r.system && r.system.system_metrics;
      app.appendChild(el("p", { class: "muted", id: "system-note", text: sm ? "a sample every " + sm.interval_s + " s" + (sm.node ? " on " + sm.node : "") + (sm.gpus ? " · GPUs: " + sm.gpus.join(", ") : "") : "system metrics were off for this run" }));
      chartGrid(runs, keys.filter(isSystem), "system-charts");
      runs[0].onNewKey = function (k) {
        var c = new Chart(document.getElementById(isSystem(k) ? "system-charts" : "charts"), k, runs);
        charts.push(c);
        c.load();
      };
      app.appendChild(el("h2", { text: "Console" }));
      app.appendChild(consoleView(r.id));
      mediaSection(runs);
      app.appendChild(el("h2", { text: "Datasets" }));
      app.appendChild(simpleTable("datasets", ["name", "context", "digest", "rows", "schema"], r.datasets.map(function (d) {
        return [d.name, d.context, d.digest.slice(0, 16) + (d.sampled ? " (sampled)" : ""), fmt(d.n_rows), fmt(d.schema)];
      })));
      app.appendChild(el("h2", { text: "Checkpoints" }));
      app.appendChild(simpleTable("checkpoints", ["path", "step", "epoch", "monitor", "metrics", "flags"], r.checkpoints.map(function (c) {
        var flags = el("span");
        if (c.best) flags.appendChild(el("span", { class: "tag best", text: "best" }));
        if (c.deleted) flags.appendChild(el("span", { class: "tag", text: "deleted" }));
        else if (!c.exists) flags.appendChild(el("span", { class: "tag", text: "missing" }));
        return [c.path, fmt(c.step), fmt(c.epoch), c.monitor || "", fmt(c.metrics), flags];
      })));
      app.appendChild(el("h2", { text: "Artifacts" }));
      app.appendChild(simpleTable("artifacts", ["name", "size", "sha256"], r.artifacts.map(function (a) {
        var link = el("a", { href: "/api/runs/" + encodeURIComponent(r.id) + "/artifacts/" + a.name.split("/").map(encodeURIComponent).join("/"), text: a.name, download: "" });
        return [link, fmt(a.size), a.sha256.slice(0, 16)];
      })));
      if (r.children.length) {
        app.appendChild(el("h2", { text: "Children (" + r.children.length + ")" }));
        var pk = {}, mk = {};
        r.children.forEach(function (c) { Object.keys(c.params).forEach(function (k) { pk[k] = true; }); Object.keys(c.metrics).forEach(function (k) { mk[k] = true; }); });
        var pkeys = Object.keys(pk).filter(function (k) {
          var vals = {}; r.children.forEach(function (c) { vals[JSON.stringify(c.params[k])] = true; });
          return Object.keys(vals).length > 1;
        }).sort(), mkeys = Object.keys(mk).sort();
        app.appendChild(simpleTable("children", ["name", "status"].concat(pkeys, mkeys), r.children.map(function (c) {
          return [el("a", { href: "#/run/" + c.id, text: c.name }), c.status].concat(
            pkeys.map(function (k) { return fmt(c.params[k]); }), mkeys.map(function (k) { return fmt(c.metrics[k]); }));
        })));
      }
      watch(runs, function (run, status) { badge.textContent = status; badge.className = "status " + status; });
    }).catch(showError);
  }

  // ---- compare view ---------------------------------------------------------------------------
  function compareView(ids) {
    clear();
    Promise.all(ids.map(function (id) { return api("/api/runs/" + encodeURIComponent(id)); })).then(function (recs) {
      app.appendChild(el("h1", { text: "Compare " + recs.length + " runs" }));
      var runs = recs.map(function (r, i) {
        var keys = {};
        Object.keys(r.metrics).forEach(function (k) { keys[k] = true; });
        return { id: r.id, label: r.name + " (" + r.id.slice(0, 6) + ")", color: PALETTE[i % PALETTE.length], keys: keys };
      });
      var legend = el("div", { class: "toolbar" });
      recs.forEach(function (r, i) {
        var b = statusBadge(r.status);
        b.setAttribute("data-run", r.id);
        legend.appendChild(el("span", null, [el("span", { text: "■ ", style: "color:" + PALETTE[i % PALETTE.length] }),
          el("a", { href: "#/run/" + r.id, text: r.name }), document.createTextNode(" " + (r.tags.framework || "") + " "), b]));
      });
      app.appendChild(legend);
      // params: all keys, rows that differ highlighted and listed first
      var keys = {};
      recs.forEach(function (r) { Object.keys(r.params).forEach(function (k) { keys[k] = true; }); });
      var rows = Object.keys(keys).sort().map(function (k) {
        var vals = recs.map(function (r) { return k in r.params ? fmt(r.params[k]) : "—"; });
        var differs = vals.some(function (v) { return v !== vals[0]; });
        return { k: k, vals: vals, differs: differs };
      });
      rows.forEach(function (r) { r.shared = r.vals.filter(function (v) { return v !== "—"; }).length === recs.length; });
      rows.sort(function (a, b) { return (b.differs - a.differs) || a.k.localeCompare(b.k); });
      // params every run has come first (those that differ highlighted); params only some runs have
      // (typical across frameworks) are folded so they do not bury the rest
      function paramTable(id, list) {
        var t = el("table", { id: id });
        t.appendChild(el("thead", null, [el("tr", null, [el("th", { text: "param" })].concat(recs.map(function (r) { return el("th", { text: r.name }); })))]));
        var tb = el("tbody");
        list.forEach(function (r) { tb.appendChild(el("tr", { class: r.differs ? "diff" : "" }, [el("td", { text: r.k })].concat(r.vals.map(function (v) { return el("td", { text: v }); })))); });
        t.appendChild(tb);
        return t;
      }
      var shared = rows.filter(function (r) { return r.shared; }), partial = rows.filter(function (r) { return !r.shared; });
      app.appendChild(el("h2", { text: "Params (" + shared.filter(function (r) { return r.differs; }).length + " of " + shared.length + " shared params differ)" }));
      app.appendChild(paramTable("params-diff", shared));
      if (partial.length) {
        var det = el("details", null, [el("summary", { text: partial.length + " params only some of the runs have" })]);
        det.appendChild(paramTable("params-partial", partial));
        app.appendChild(det);
      }
      // metrics: last/min/max with the best run marked
      var mkeys = {};
      recs.forEach(function (r) { Object.keys(r.metrics).forEach(function (k) { mkeys[k] = (mkeys[k] || 0) + 1; }); });
      var allKeys = Object.keys(mkeys).sort(function (a, b) { return (mkeys[b] - mkeys[a]) || a.localeCompare(b); });
      app.appendChild(el("h2", { text: "Metrics (last value; best marked)" }));
      var mt = el("table", { id: "metrics-compare" });
      mt.appendChild(el("thead", null, [el("tr", null, [el("th", { text: "metric" })].concat(recs.map(function (r) { return el("th", { text: r.name }); })))]));
      var mb = el("tbody");
      allKeys.forEach(function (k) {
        var vals = recs.map(function (r) { return r.metrics[k] ? num(r.metrics[k].last) : null; });
        var dir = null;
        recs.forEach(function (r) { if (r.metrics[k]) dir = r.metrics[k].direction; });
        var best = null;
        if (dir) vals.forEach(function (v, i) {
          if (v === null || !isFinite(v)) return;
          if (best === null || (dir === "min" ? v < vals[best] : v > vals[best])) best = i;
        });
        if (vals.filter(function (v) { return v !== null; }).length < 2) best = null;  // nothing to compare
        mb.appendChild(el("tr", null, [el("td", { text: k })].concat(vals.map(function (v, i) {
          return el("td", { class: "num" + (i === best && recs.length > 1 ? " best" : ""), text: fmt(v) + (i === best && recs.length > 1 ? " ★" : "") });
        }))));
      });
      mt.appendChild(mb);
      app.appendChild(mt);
      app.appendChild(el("h2", { text: "Charts" }));
      app.appendChild(chartControls());
      chartGrid(runs, allKeys.filter(function (k) { return !isSystem(k); }));
      if (allKeys.some(isSystem)) {
        // runs compared side by side usually ran at different times: time since each run's start
        if (state.sysx === "wall") state.sysx = "time";
        app.appendChild(el("h2", { text: "System", id: "system" }));
        app.appendChild(systemControls());
        chartGrid(runs, allKeys.filter(isSystem), "system-charts");
      }
      mediaSection(runs);
      watch(runs, function (run, status) {
        var b = legend.querySelector('span.status[data-run="' + run.id + '"]');
        if (b) { b.textContent = status; b.className = "status " + status; }
      });
    }).catch(showError);
  }

  function route() {
    var h = location.hash || "#/";
    var m;
    if ((m = h.match(/^#\/run\/([0-9a-f]+)/))) runView(m[1]);
    else if ((m = h.match(/^#\/compare\/([0-9a-f,]+)/))) compareView(m[1].split(",").filter(Boolean));
    else runsView();
  }
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", function () {
    clearTimeout(window.__th_rs);
    window.__th_rs = setTimeout(function () { redraw(); panels.forEach(function (p) { p.redraw(); }); }, 150);
  });
  route();
})();
