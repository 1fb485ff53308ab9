"use strict";
// trackhooks media panels: images, figures, histograms, confusion matrices, curves and tables of
// one key, for one run or several side by side, with a step slider. Shared by the HTML report
// (inlined) and `trackhooks ui` (served). No dependencies; user strings reach the page only
// through textContent, attribute values set by property, and canvas fillText.
(function () {
  var FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
  var KIND_LABEL = { image: "images", figure: "figures", histogram: "histograms", table: "table",
                     confusion_matrix: "confusion matrix", curve: "curve" };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "—";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }
  function niceTicks(lo, hi, n) {
    var span = hi - lo;
    if (!(span > 0)) return { ticks: [lo], step: 1 };
    var raw = span / n, step = Math.pow(10, Math.floor(Math.log10(raw))), err = raw / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var ticks = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9 && ticks.length < 30; t += step)
      ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return { ticks: ticks, step: step };
  }
  function fmtTick(v, step) {
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(1);
    return v.toFixed(Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9))));
  }
  // sequential blues, t in [0, 1]
  function blue(t) {
    t = Math.max(0, Math.min(1, t));
    var a = [247, 251, 255], b = [8, 48, 107];
    return "rgb(" + Math.round(a[0] + (b[0] - a[0]) * t) + "," + Math.round(a[1] + (b[1] - a[1]) * t) + "," +
      Math.round(a[2] + (b[2] - a[2]) * t) + ")";
  }
  function segmented(options, current, onPick) {
    var box = el("span", "media-seg");
    var buttons = options.map(function (o) {
      var b = el("button", o[0] === current ? "on" : "", o[1]);
      b.type = "button";
      b.setAttribute("data-mode", o[0]);
      b.addEventListener("click", function () {
        buttons.forEach(function (x) { x.className = x === b ? "on" : ""; });
        onPick(o[0]);
      });
      box.appendChild(b);
      return b;
    });
    return box;
  }

  // A canvas with axes over [x0, x1] × [y0, y1]; returns the scale functions.
  function axes(canvas, b, xLabel, yLabel, noY) {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 360, h = canvas.clientHeight || 220;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    var yt = niceTicks(b.y0, b.y1, 4), xt = niceTicks(b.x0, b.x1, Math.max(3, Math.floor(w / 90)));
    if (noY) yt.ticks = [];  // a y axis of steps: the caller labels it
    var ylab = yt.ticks.map(function (t) { return fmtTick(t, yt.step); });
    var lw = 0;
    ylab.forEach(function (t) { lw = Math.max(lw, ctx.measureText(t).width); });
    var P = { l: Math.max(noY ? 52 : 34, Math.ceil(lw) + 12), r: 10, t: yLabel ? 18 : 8, b: xLabel ? 34 : 22 };
    var pw = w - P.l - P.r, ph = h - P.t - P.b;
    var sx = function (x) { return P.l + (x - b.x0) / ((b.x1 - b.x0) || 1) * pw; };
    var sy = function (y) { return P.t + (1 - (y - b.y0) / ((b.y1 - b.y0) || 1)) * ph; };
    ctx.strokeStyle = "#eaeef2"; ctx.lineWidth = 1; ctx.fillStyle = "#656d76";
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    yt.ticks.forEach(function (t, i) {
      var y = Math.round(sy(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(P.l, y); ctx.lineTo(w - P.r, y); ctx.stroke();
      ctx.fillText(ylab[i], P.l - 5, y);
    });
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    xt.ticks.forEach(function (t) {
      var x = Math.round(sx(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, P.t); ctx.lineTo(x, h - P.b); ctx.stroke();
      ctx.fillText(fmtTick(t, xt.step), x, h - P.b + 4);
    });
    ctx.strokeStyle = "#afb8c1";
    ctx.beginPath(); ctx.moveTo(P.l + 0.5, P.t); ctx.lineTo(P.l + 0.5, h - P.b + 0.5); ctx.lineTo(w - P.r, h - P.b + 0.5); ctx.stroke();
    if (xLabel) { ctx.textAlign = "right"; ctx.fillText(xLabel, w - P.r, h - 13); }
    if (yLabel) { ctx.textAlign = "left"; ctx.textBaseline = "top"; ctx.fillText(yLabel, 2, 2); }
    return { ctx: ctx, sx: sx, sy: sy, P: P, w: w, h: h, pw: pw, ph: ph };
  }

  // ---- one panel ------------------------------------------------------------------------------
  // spec: {key, kind, series: [{run, n, shown, records: [{step, epoch, ...}]}]}
  // ctx: {label(series) -> string, color(series) -> css colour}; parent: where the panel goes (it is
  // attached before its first drawing so that canvases know their width)
  function Panel(spec, ctx, parent) {
    this.ctx = ctx || {};
    this.mode = spec.kind === "histogram" ? "bars" : spec.kind === "confusion_matrix" ? "counts" : null;
    this.root = el("div", "media-panel");
    this.root.setAttribute("data-key", spec.key);
    this.root.setAttribute("data-kind", spec.kind);
    this.build(spec);
    if (parent) parent.appendChild(this.root);
    this.update(spec);
  }

  Panel.prototype.build = function (spec) {
    var self = this;
    var head = el("div", "media-head");
    head.appendChild(el("div", "media-title", spec.key));
    head.appendChild(el("div", "media-kind", KIND_LABEL[spec.kind] || spec.kind));
    this.root.appendChild(head);
    var controls = el("div", "media-controls");
    this.slider = el("input", "media-slider");
    this.slider.type = "range";
    this.slider.min = "0";
    this.slider.step = "1";
    this.slider.setAttribute("aria-label", "step of " + spec.key);
    this.slider.addEventListener("input", function () { self.follow = +self.slider.value === self.steps.length - 1; self.show(); });
    this.stepLabel = el("span", "media-step");
    controls.appendChild(this.slider);
    controls.appendChild(this.stepLabel);
    if (spec.kind === "histogram") {
      controls.appendChild(segmented([["bars", "this step"], ["ridge", "ridge"], ["heat", "heat map"]], this.mode,
        function (m) { self.mode = m; self.show(); }));
    } else if (spec.kind === "confusion_matrix") {
      controls.appendChild(segmented([["counts", "counts"], ["normalized", "normalized by true label"]], this.mode,
        function (m) { self.mode = m; self.show(); }));
    }
    this.root.appendChild(controls);
    this.notes = el("div", "media-notes");
    this.root.appendChild(this.notes);
    this.cells = el("div", "media-cells");
    this.root.appendChild(this.cells);
    this.cellBy = {};
    this.follow = true;  // at the last step: stay there when new records arrive
  };

  function byStep(records) {
    // sorted by step, logging order kept among equal steps (the later one wins at that step)
    return records.map(function (r, i) { return [r, i]; })
      .sort(function (a, b) { return (a[0].step - b[0].step) || (a[1] - b[1]); })
      .map(function (p) { return p[0]; });
  }

  Panel.prototype.update = function (spec) {
    var self = this;
    var prevStep = this.steps && this.steps.length ? this.steps[+this.slider.value] : null;
    this.spec = spec;
    var seen = {};
    spec.series.forEach(function (s) {
      s._sorted = byStep(s.records);
      s.records.forEach(function (r) { seen[r.step] = true; });
    });
    this.steps = Object.keys(seen).map(Number).sort(function (a, b) { return a - b; });
    var n = this.steps.length;
    this.slider.max = String(Math.max(0, n - 1));
    this.slider.hidden = n <= 1;
    var idx = n - 1;
    if (!this.follow && prevStep !== null) {
      var j = this.steps.indexOf(prevStep);
      if (j >= 0) idx = j;
    }
    this.slider.value = String(Math.max(0, idx));
    var notes = [];
    spec.series.forEach(function (s) {
      var who = spec.series.length > 1 ? self.label(s) + ": " : "";
      if (s.shown < s.n) notes.push(who + s.shown + " of " + s.n + " records shown (evenly spaced, the last included); the store has all");
      if (s.other_kinds) notes.push(who + s.other_kinds + " records of another kind under this key not shown");
      // (a record with a ref has its image still on the way: the report attaches them once parsed)
      var missing = s.records.filter(function (r) {
        return (spec.kind === "image" || spec.kind === "figure") && !r.src && (r.ref === undefined || r.ref === null);
      }).length;
      if (missing) notes.push(who + missing + " images not embedded (size cap); the store has them");
    });
    (spec.notes || []).forEach(function (t) { notes.push(t); });
    this.notes.textContent = notes.join(" · ");
    this.root.setAttribute("data-steps", String(n));
    this.root.setAttribute("data-records", String(spec.series.reduce(function (a, s) { return a + s.records.length; }, 0)));
    this.root.classList.toggle("multi", spec.series.length > 1);
    // a confusion matrix of many classes needs the room of two grid columns
    var many = spec.kind === "confusion_matrix" && spec.series.some(function (s) {
      return s.records.some(function (r) { return (r.labels || []).length > 6; });
    });
    this.root.classList.toggle("wide", many);
    // one cell per series, kept across updates so that images do not flicker
    var keep = {};
    spec.series.forEach(function (s) {
      var id = String(s.run);
      keep[id] = true;
      if (!self.cellBy[id]) {
        var cell = el("div", "media-cell");
        cell.setAttribute("data-run", id);
        var who = el("div", "media-run");
        var sw = el("span", "swatch");
        sw.style.background = self.color(s);
        who.appendChild(sw);
        who.appendChild(document.createTextNode(self.label(s)));
        cell.appendChild(who);
        var body = el("div", "media-body");
        cell.appendChild(body);
        var cap = el("div", "media-cap");
        cell.appendChild(cap);
        self.cellBy[id] = { root: cell, body: body, cap: cap, who: who };
        self.cells.appendChild(cell);
      }
      self.cellBy[id].series = s;
    });
    Object.keys(this.cellBy).forEach(function (id) {
      if (!keep[id]) { self.cells.removeChild(self.cellBy[id].root); delete self.cellBy[id]; }
    });
    this.show();
  };

  Panel.prototype.label = function (s) { return this.ctx.label ? this.ctx.label(s) : String(s.run); };
  Panel.prototype.color = function (s) { return this.ctx.color ? this.ctx.color(s) : "#656d76"; };

  // the record of a series shown at this step: the latest at or before it
  function at(s, step) {
    var arr = s._sorted, lo = 0, hi = arr.length - 1, best = null;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (arr[mid].step <= step) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (best === null) return null;
    while (best + 1 < arr.length && arr[best + 1].step === arr[best].step) best++;
    return arr[best];
  }

  Panel.prototype.show = function () {
    var self = this;
    var i = +this.slider.value, step = this.steps[i];
    var epochs = this.spec.series.map(function (s) { var r = at(s, step); return r && r.step === step ? r.epoch : null; })
      .filter(function (e) { return e !== null && e !== undefined; });
    this.stepLabel.textContent = step === undefined ? "no records" : "step " + step +
      (epochs.length ? " · epoch " + epochs[0] : "") + (this.steps.length > 1 ? "  (" + (i + 1) + " of " + this.steps.length + ")" : "");
    this.root.setAttribute("data-step", step === undefined ? "" : String(step));
    Object.keys(this.cellBy).forEach(function (id) {
      var c = self.cellBy[id], r = step === undefined ? null : at(c.series, step);
      c.root.setAttribute("data-record-step", r ? String(r.step) : "");
      if (!r) {
        c.body.textContent = "";
        c.body.appendChild(el("div", "media-empty", "nothing logged at or before step " + step));
        c.cap.textContent = "";
        c.kind = null;
        return;
      }
      var draw = RENDER[self.spec.kind];
      if (draw) draw.call(self, c, r, step);
    });
  };

  function ensure(c, kind, make) {
    if (c.kind !== kind) {
      c.body.textContent = "";
      c.view = make();
      c.kind = kind;
    }
    return c.view;
  }

  var RENDER = {};
  RENDER.image = RENDER.figure = function (c, r) {
    var img = ensure(c, "image", function () {
      var im = el("img", "media-img");
      c.body.appendChild(im);
      return im;
    });
    if (!r.src) {
      img.removeAttribute("src");
      img.hidden = true;
    } else {
      img.hidden = false;
      if (img.getAttribute("src") !== r.src) img.src = r.src;
    }
    img.alt = this.spec.key + " at step " + r.step;
    img.setAttribute("data-step", String(r.step));
    // small images (MNIST digits, thumbnails) are enlarged with crisp pixels
    var scale = r.w && r.w < 96 ? Math.max(1, Math.floor(192 / r.w)) : 1;
    img.classList.toggle("pixelated", scale > 1);
    if (r.w) img.style.width = (r.w * scale) + "px"; else img.style.width = "";
    c.cap.textContent = (r.caption ? r.caption + "  " : "") + (r.w ? "(" + r.w + "×" + r.h + ", step " + r.step + ")" : "step " + r.step);
  };

  RENDER.histogram = function (c, r) {
    var canvas = ensure(c, "histogram", function () { var cv = el("canvas", "media-canvas"); c.body.appendChild(cv); return cv; });
    if (this.mode === "heat") heat(canvas, c.series, r);
    else if (this.mode === "ridge") ridge(canvas, c.series, r);
    else bars(canvas, r);
    canvas.setAttribute("data-mode", this.mode);
    var extra = "";
    if (r.nonfinite) {
      var parts = [];
      Object.keys(r.nonfinite).forEach(function (k) { if (r.nonfinite[k]) parts.push(r.nonfinite[k] + " " + k); });
      if (parts.length) extra = " · not binned: " + parts.join(", ");
    }
    c.cap.textContent = "n " + fmt(r.count) + " · min " + fmt(r.min) + " · max " + fmt(r.max) + " · step " + r.step + extra;
  };

  function bars(canvas, r) {
    var e = r.edges, k = r.counts;
    if (!e || e.length < 2 || !k || !k.length) { canvas.setAttribute("data-bins", "0"); return; }
    var top = 0;
    k.forEach(function (v) { if (v > top) top = v; });
    var A = axes(canvas, { x0: e[0], x1: e[e.length - 1], y0: 0, y1: top * 1.08 || 1 }, "value", "count");
    var ctx = A.ctx;
    ctx.fillStyle = "rgba(78, 121, 167, 0.85)";
    for (var i = 0; i < k.length; i++) {
      if (!k[i] || e[i] === null || e[i + 1] === null) continue;
      var x0 = A.sx(e[i]), x1 = A.sx(e[i + 1]), y = A.sy(k[i]);
      ctx.fillRect(x0, y, Math.max(1, x1 - x0 - (x1 - x0 > 3 ? 1 : 0)), A.sy(0) - y);
    }
    canvas.setAttribute("data-bins", String(k.length));
  }

  function histRange(rows) {
    var lo = Infinity, hi = -Infinity;
    rows.forEach(function (r) {
      var a = r.edges[0], b = r.edges[r.edges.length - 1];
      if (a !== null && a < lo) lo = a;
      if (b !== null && b > hi) hi = b;
    });
    return hi > lo ? [lo, hi] : [lo, lo + 1];
  }
  // TensorBoard's offset view: one outline per step, oldest at the back (top), at most 40 steps
  // (evenly spaced, the selected one always drawn, in red), each scaled to its own largest bin
  function ridge(canvas, s, cur) {
    var all = s._sorted.filter(function (r) { return r.edges && r.edges.length > 1; });
    if (!all.length) return;
    var pick = {}, n = all.length, m = Math.min(40, n);
    for (var k = 0; k < m; k++) pick[m > 1 ? Math.round(k * (n - 1) / (m - 1)) : n - 1] = true;
    var rows = all.filter(function (r, i) { return pick[i] || r === cur; });
    var range = histRange(rows);
    var A = axes(canvas, { x0: range[0], x1: range[1], y0: 0, y1: 1 }, "value", "step", true);
    var ctx = A.ctx;
    var gap = A.ph / (rows.length + 3), amp = gap * 4;
    rows.forEach(function (r, ri) {
      var base = A.P.t + amp + ri * gap, top = 0;
      r.counts.forEach(function (v) { if (v > top) top = v; });
      ctx.beginPath();
      ctx.moveTo(A.sx(r.edges[0]), base);
      for (var i = 0; i < r.counts.length; i++) {
        var mid = (r.edges[i] + r.edges[i + 1]) / 2;
        ctx.lineTo(A.sx(mid), base - (top ? (r.counts[i] || 0) / top : 0) * amp);
      }
      ctx.lineTo(A.sx(r.edges[r.edges.length - 1]), base);
      ctx.closePath();
      ctx.fillStyle = "rgba(255, 255, 255, 0.92)";
      ctx.fill();
      ctx.strokeStyle = r === cur ? "#e15759" : blue(0.35 + 0.6 * ri / Math.max(1, rows.length - 1));
      ctx.lineWidth = r === cur ? 2 : 1;
      ctx.stroke();
    });
    ctx.fillStyle = "#656d76"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ctx.fillText(String(rows[0].step), A.P.l - 4, A.P.t + amp);
    if (rows.length > 1) ctx.fillText(String(rows[rows.length - 1].step), A.P.l - 4, A.P.t + amp + (rows.length - 1) * gap);
    canvas.setAttribute("data-rows", String(rows.length));
  }

  // every shown step a row (oldest at the top), values on a common axis, colour = count / the row's
  // largest count (so the shape of each step shows whatever its scale); the current step is marked
  function heat(canvas, s, cur) {
    var rows = s._sorted.filter(function (r) { return r.edges && r.edges.length > 1; });
    if (!rows.length) return;
    var range = histRange(rows), lo = range[0], hi = range[1];
    var A = axes(canvas, { x0: lo, x1: hi, y0: 0, y1: 1 }, "value", "step", true);
    var ctx = A.ctx, cols = Math.max(16, Math.min(160, Math.floor(A.pw / 3)));
    var rh = A.ph / rows.length, width = (hi - lo) / cols;
    rows.forEach(function (r, ri) {
      var grid = new Float64Array(cols), e = r.edges;
      for (var i = 0; i < r.counts.length; i++) {
        var a = e[i], b = e[i + 1], v = r.counts[i];
        if (!v || a === null || b === null) continue;
        // spread the bin's count over the grid columns it overlaps, by overlap
        var c0 = Math.max(0, Math.floor((a - lo) / width)), c1 = Math.min(cols - 1, Math.floor((b - lo) / width));
        var span = b - a || 1;
        for (var cix = c0; cix <= c1; cix++) {
          var x0 = lo + cix * width, x1 = x0 + width;
          var ov = b > a ? (Math.min(b, x1) - Math.max(a, x0)) / span : 1;
          if (ov > 0) grid[cix] += v * ov;
        }
      }
      var top = 0;
      for (var g = 0; g < cols; g++) if (grid[g] > top) top = grid[g];
      for (var g2 = 0; g2 < cols; g2++) {
        if (!grid[g2]) continue;
        ctx.fillStyle = blue(0.15 + 0.85 * grid[g2] / top);
        ctx.fillRect(A.P.l + g2 * A.pw / cols, A.P.t + ri * rh, A.pw / cols + 0.5, rh + 0.5);
      }
      if (r === cur) {
        ctx.strokeStyle = "#e15759"; ctx.lineWidth = 2;
        ctx.strokeRect(A.P.l + 1, A.P.t + ri * rh + 1, A.pw - 2, Math.max(2, rh - 2));
      }
    });
    ctx.fillStyle = "#656d76"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    var first = rows[0].step, last = rows[rows.length - 1].step;
    ctx.fillText(String(first), A.P.l - 4, A.P.t + rh / 2);
    if (rows.length > 1) ctx.fillText(String(last), A.P.l - 4, A.P.t + A.ph - rh / 2);
    canvas.setAttribute("data-rows", String(rows.length));
  }

  RENDER.confusion_matrix = function (c, r) {
    var t = ensure(c, "cm", function () { var tb = el("table", "media-cm"); c.body.appendChild(tb); return tb; });
    t.textContent = "";
    var labels = r.labels || [], m = r.matrix || [];
    var norm = this.mode === "normalized";
    var head = el("tr");
    var corner = el("th", "cm-corner", "true ↓ pred →");
    corner.title = "rows: true label; columns: predicted label";
    head.appendChild(corner);
    labels.forEach(function (l) { var th = el("th", "cm-pred", l); th.title = String(l); head.appendChild(th); });
    var thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
    var tbody = el("tbody");
    var top = 0, total = 0, diag = 0;
    m.forEach(function (row, i) { row.forEach(function (v, j) { if (v > top) top = v; total += v || 0; if (i === j) diag += v || 0; }); });
    m.forEach(function (row, i) {
      var tr = el("tr");
      var rh = el("th", "cm-true", labels[i]);
      rh.title = String(labels[i]);
      tr.appendChild(rh);
      var sum = 0;
      row.forEach(function (v) { sum += v || 0; });
      row.forEach(function (v, j) {
        var val = norm ? (sum ? (v || 0) / sum : 0) : v;
        var shade = norm ? val : (top ? (v || 0) / top : 0);
        var td = el("td", "cm-cell" + (i === j ? " diag" : ""), norm ? val.toFixed(2) : fmt(v));
        td.style.background = blue(shade * 0.9);
        td.style.color = shade > 0.5 ? "#ffffff" : "#1f2328";
        td.title = "true " + labels[i] + ", predicted " + labels[j] + ": " + fmt(v) + (sum ? " (" + (100 * (v || 0) / sum).toFixed(1) + "% of true " + labels[i] + ")" : "");
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    t.appendChild(tbody);
    t.setAttribute("data-mode", this.mode);
    c.cap.textContent = "accuracy " + (total ? (diag / total).toFixed(4) : "—") + " · " + fmt(total) + " samples · step " + r.step +
      (norm ? " · each row divided by its true-label count" : "");
  };

  var LINES = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
               "#9c755f", "#bab0ac", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];
  // one curve (r.x, r.y), or a family of them overlaid (r.lines, see group()), with a legend
  RENDER.curve = function (c, r) {
    var v = ensure(c, "curve", function () {
      var cv = el("canvas", "media-canvas"), lg = el("div", "media-legend");
      c.body.appendChild(cv); c.body.appendChild(lg);
      return { canvas: cv, legend: lg };
    });
    var canvas = v.canvas, self = this;
    var lines = r.lines || [{ name: null, x: r.x, y: r.y, auc: r.auc, curve: r.curve }];
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    lines.forEach(function (l) {
      var x = l.x || [], y = l.y || [];
      for (var i = 0; i < x.length; i++) {
        if (x[i] === null || y[i] === null) continue;
        if (x[i] < x0) x0 = x[i]; if (x[i] > x1) x1 = x[i];
        if (y[i] < y0) y0 = y[i]; if (y[i] > y1) y1 = y[i];
      }
    });
    v.legend.textContent = "";
    if (!(x1 >= x0)) { canvas.setAttribute("data-points", "0"); c.cap.textContent = "no points"; return; }
    var kind = lines.every(function (l) { return l.curve === lines[0].curve; }) ? lines[0].curve : null;
    if (kind) { x0 = Math.min(0, x0); x1 = Math.max(1, x1); y0 = Math.min(0, y0); y1 = Math.max(1, y1); }
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    var py = (y1 - y0) * 0.04;
    var A = axes(canvas, { x0: x0, x1: x1, y0: y0 - py, y1: y1 + py }, r.x_label, r.y_label);
    var ctx = A.ctx;
    if (kind === "roc") {
      ctx.setLineDash([4, 4]); ctx.strokeStyle = "#afb8c1"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(A.sx(0), A.sy(0)); ctx.lineTo(A.sx(1), A.sy(1)); ctx.stroke();
      ctx.setLineDash([]);
    }
    var n = 0, aucs = [];
    lines.forEach(function (l, li) {
      var x = l.x || [], y = l.y || [];
      var color = r.lines ? LINES[li % LINES.length] : self.color(c.series);
      ctx.strokeStyle = color; ctx.lineWidth = r.lines ? 1.4 : 1.8; ctx.lineJoin = "round";
      ctx.beginPath();
      var pen = false;
      for (var j = 0; j < x.length; j++) {
        if (x[j] === null || y[j] === null) { pen = false; continue; }
        if (pen) ctx.lineTo(A.sx(x[j]), A.sy(y[j])); else ctx.moveTo(A.sx(x[j]), A.sy(y[j]));
        pen = true; n++;
      }
      ctx.stroke();
      if (l.auc !== null && l.auc !== undefined) aucs.push(l.auc);
      if (r.lines) {
        var item = el("span", "media-legend-item");
        item.setAttribute("data-line", String(l.name));
        var sw = el("span", "swatch");
        sw.style.background = color;
        item.appendChild(sw);
        item.appendChild(document.createTextNode(String(l.name) + (l.auc !== null && l.auc !== undefined ? " · AUC " + l.auc.toFixed(3) : "")));
        v.legend.appendChild(item);
      }
    });
    canvas.setAttribute("data-points", String(n));
    canvas.setAttribute("data-lines", String(lines.length));
    canvas.setAttribute("data-auc", aucs.length === 1 && !r.lines ? aucs[0].toFixed(6) : "");
    var name = kind === "roc" ? "ROC AUC " : kind === "pr" ? "PR AUC " : "AUC ";
    var text;
    if (!r.lines) text = (aucs.length ? name + aucs[0].toFixed(4) + " (trapezoid) · " : "") + n + " points";
    else {
      var mean = aucs.length ? aucs.reduce(function (a, b) { return a + b; }, 0) / aucs.length : null;
      text = lines.length + " curves" + (mean !== null ? " · mean " + name + mean.toFixed(4) + " (trapezoid, unweighted)" : "");
    }
    c.cap.textContent = text + " · step " + r.step;
  };

  // numbers in their order, then text ("2" before "10", both before "cat")
  function natural(a, b) {
    var na = Number(a), nb = Number(b), fa = a !== "" && isFinite(na), fb = b !== "" && isFinite(nb);
    if (fa && fb) return na - nb;
    if (fa !== fb) return fa ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function latest(records, step) {
    var best = null;
    records.forEach(function (r) { if (r.step <= step && (best === null || r.step >= best.step)) best = r; });
    return best;
  }
  // Curves logged as a family, "<base>/<member>" (sklearn's one-vs-rest "roc_curve/<class>"), are
  // one panel "<base>/*" with the members overlaid: at each step of the union, every member's
  // latest curve at or before it. Everything else stays one panel per key.
  function group(specs) {
    var bases = {};
    specs.forEach(function (sp) {
      var i = sp.key.lastIndexOf("/");
      if (sp.kind !== "curve" || i <= 0 || i === sp.key.length - 1) return;
      var base = sp.key.slice(0, i);
      (bases[base] = bases[base] || []).push(sp);
    });
    var out = [], done = {};
    specs.forEach(function (sp) {
      var i = sp.key.lastIndexOf("/"), base = i > 0 ? sp.key.slice(0, i) : null;
      if (sp.kind !== "curve" || base === null || !bases[base] || bases[base].length < 2) { out.push(sp); return; }
      if (done[base]) return;
      done[base] = true;
      out.push(mergeCurves(base, bases[base]));
    });
    return out;
  }
  function mergeCurves(base, members) {
    var name = function (sp) { return sp.key.slice(base.length + 1); };
    members = members.slice().sort(function (a, b) { return natural(name(a), name(b)); });
    var byRun = {}, order = [];
    members.forEach(function (sp) {
      sp.series.forEach(function (s) {
        if (!byRun[s.run]) { byRun[s.run] = []; order.push(s.run); }
        byRun[s.run].push({ name: name(sp), s: s });
      });
    });
    var series = order.map(function (run) {
      var parts = byRun[run], steps = {}, n = 0, shown = 0;
      parts.forEach(function (p) { n += p.s.n; shown += p.s.shown; p.s.records.forEach(function (r) { steps[r.step] = true; }); });
      var records = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; }).map(function (st) {
        var rec = { step: st, epoch: null, lines: [], x_label: null, y_label: null };
        parts.forEach(function (p) {
          var r = latest(p.s.records, st);
          if (!r) return;
          rec.lines.push({ name: p.name, x: r.x, y: r.y, auc: r.auc, curve: r.curve });
          if (rec.x_label === null) { rec.x_label = r.x_label; rec.y_label = r.y_label; }
          if (r.step === st && r.epoch !== null && r.epoch !== undefined) rec.epoch = r.epoch;
        });
        return rec;
      });
      return { run: run, n: n, shown: shown, other_kinds: 0, records: records };
    });
    return { key: base + "/*", kind: "curve", members: members.map(function (m) { return m.key; }), series: series };
  }

  RENDER.table = function (c, r) {
    var box = ensure(c, "table", function () { var d = el("div", "media-table-box"); c.body.appendChild(d); return d; });
    if (box._rec === r) return;  // same record: keep the order the user sorted it in
    box._rec = r;
    box.textContent = "";
    var t = el("table", "media-table");
    var cols = r.columns || [], rows = (r.rows || []).slice();
    var sort = { col: -1, asc: true };
    var hr = el("tr"), ths = [];
    cols.forEach(function (name, ci) {
      var th = el("th", "", name);
      th.setAttribute("data-col", String(ci));
      th.title = "sort by " + name;
      th.addEventListener("click", function () {
        sort.asc = sort.col === ci ? !sort.asc : true;
        sort.col = ci;
        ths.forEach(function (h) { h.className = ""; });
        th.className = "sorted" + (sort.asc ? " asc" : "");
        rows.sort(function (a, b) { return compare(a[ci], b[ci], sort.asc); });
        fill();
      });
      ths.push(th);
      hr.appendChild(th);
    });
    var thead = el("thead"); thead.appendChild(hr); t.appendChild(thead);
    var tbody = el("tbody");
    t.appendChild(tbody);
    function fill() {
      tbody.textContent = "";
      rows.forEach(function (row) {
        var tr = el("tr");
        row.forEach(function (v) {
          var td = el("td", typeof v === "number" ? "num" : "", v === null ? "" : fmtCell(v));
          if (typeof v === "string" && v.length > 40) td.title = v;
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
      });
    }
    fill();
    box.appendChild(t);
    c.cap.textContent = (r.n_rows > rows.length ? "first " + rows.length + " of " + r.n_rows + " rows" : r.n_rows + (r.n_rows === 1 ? " row" : " rows")) +
      " · click a column to sort · step " + r.step;
  };
  function fmtCell(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
    return String(v);
  }
  // numbers before text, empty cells last in either order
  function compare(a, b, asc) {
    var ea = a === null || a === undefined || a === "", eb = b === null || b === undefined || b === "";
    if (ea || eb) return ea === eb ? 0 : ea ? 1 : -1;
    var na = typeof a === "number", nb = typeof b === "number", c;
    if (na && nb) c = a - b;
    else if (na !== nb) c = na ? -1 : 1;
    else c = String(a).localeCompare(String(b), undefined, { numeric: true });
    return asc ? c : -c;
  }

  Panel.prototype.redraw = function () { if (this.spec.kind === "histogram" || this.spec.kind === "curve") this.show(); };

  window.TrackhooksMedia = { Panel: Panel, group: group };
})();
