"use strict";
// trackhooks report charts: one canvas per metric, runs overlaid, x axis step or epoch,
// hover read-out, drag to zoom, legend toggles. No dependencies; user strings only ever reach
// the page through textContent or canvas fillText.
(function () {
  var DATA = JSON.parse(document.getElementById("trackhooks-data").textContent);
  var RUNS = DATA.runs;
  // system/* charts (CPU, memory, GPU samples) have their own x axis: wall time by default
  var state = { x: "step", sysx: "time", hidden: {}, filter: "" };
  var charts = [];
  var panels = [];
  var PAD0 = { l: 58, r: 14, t: 10, b: 28 };
  var FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function swatch(run) {
    var s = el("span", "swatch");
    s.style.background = RUNS[run].color;
    return s;
  }

  function label(run) {
    return RUNS[run].short + " " + RUNS[run].name;
  }

  function fmtVal(v) {
    if (v === null || v === undefined) return "—";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }

  function niceTicks(lo, hi, n) {
    var span = hi - lo;
    var raw = span / n;
    var step = Math.pow(10, Math.floor(Math.log10(raw)));
    var err = raw / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var ticks = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
      ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
      if (ticks.length > 50) break;
    }
    return { ticks: ticks, step: step };
  }

  function fmtTick(v, step) {
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(1);
    var dec = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
    return v.toFixed(dec);
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }
  function clock(t, withDate) {
    var d = new Date(t * 1000);
    var hms = pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
    return withDate ? d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " + hms : hms;
  }
  var AXIS_LABEL = { step: "step", epoch: "epoch", time: "wall time", since: "seconds since start" };

  function Chart(spec) {
    var self = this;
    this.spec = spec;
    this.pad = { l: PAD0.l, r: PAD0.r, t: PAD0.t, b: PAD0.b };
    this.zoom = null;
    this.drag = null;
    this.hover = null;
    this.card = el("div", "chart");
    this.card.setAttribute("data-key", spec.key);
    var head = el("div", "chart-head");
    head.appendChild(el("div", "chart-title", spec.key));
    var dir = spec.direction === "min" ? "↓ lower is better" : spec.direction === "max" ? "↑ higher is better" : "";
    head.appendChild(el("div", "chart-dir", dir));
    this.card.appendChild(head);
    var notes = [], down = [], bad = [];
    spec.series.forEach(function (s) {
      if (s.shown < s.n) down.push(s);
      if (s.nonfinite) bad.push(s);
    });
    var n = function (x) { return x.toLocaleString("en-US"); };
    if (down.length && down.length <= 2) {
      down.forEach(function (s) {
        notes.push(RUNS[s.run].short + ": downsampled for display, " + n(s.n) + " → " + n(s.shown) +
          " points (min and max of each bucket kept)");
      });
    } else if (down.length) {
      var tot = 0, shown = 0;
      down.forEach(function (s) { tot += s.n; shown += s.shown; });
      notes.push(down.length + " of " + spec.series.length + " runs downsampled for display, " + n(tot) + " → " +
        n(shown) + " points in all (min and max of each bucket kept)");
    }
    if (bad.length && bad.length <= 2) {
      bad.forEach(function (s) { notes.push(RUNS[s.run].short + ": " + s.nonfinite + " NaN/inf points not drawn"); });
    } else if (bad.length) {
      var nb = 0;
      bad.forEach(function (s) { nb += s.nonfinite; });
      notes.push(n(nb) + " NaN/inf points of " + bad.length + " runs not drawn");
    }
    notes.forEach(function (n) { self.card.appendChild(el("div", "chart-note", n)); });
    this.canvas = el("canvas");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "chart of " + spec.key);
    this.card.appendChild(this.canvas);
    this.legend = el("div", "legend");
    this.card.appendChild(this.legend);
    this.tip = el("div", "tip");
    this.card.appendChild(this.tip);
    var LEGEND_MAX = 24;
    spec.series.forEach(function (s, idx) {
      if (idx === LEGEND_MAX) {
        self.legend.appendChild(el("em", "muted", "… and " + (spec.series.length - LEGEND_MAX) +
          " more runs (show or hide them in the runs table)"));
      }
      if (idx >= LEGEND_MAX) return;
      var item = el("span");
      item.setAttribute("data-run", s.run);
      item.appendChild(swatch(s.run));
      item.appendChild(document.createTextNode(label(s.run)));
      item.title = s.n + " points";
      item.addEventListener("click", function () { setHidden(s.run, !state.hidden[s.run]); });
      self.legend.appendChild(item);
    });
    this.bindEvents();
  }

  Chart.prototype.xk = function () { return this.spec.system ? state.sysx : state.x; };

  Chart.prototype.visible = function () {
    var xk = this.xk();
    return this.spec.series.filter(function (s) { return !state.hidden[s.run] && s[xk]; });
  };

  Chart.prototype.bounds = function (series) {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    var zoom = this.zoom, xk = this.xk();
    series.forEach(function (s) {
      var xs = s[xk], ys = s.y;
      for (var i = 0; i < xs.length; i++) {
        var x = xs[i], y = ys[i];
        if (x === null || y === null) continue;
        if (zoom && (x < zoom[0] || x > zoom[1])) continue;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    });
    if (!(x1 >= x0) || !(y1 >= y0)) return null;
    if (zoom) { x0 = zoom[0]; x1 = zoom[1]; }
    if (x1 === x0) { x0 -= 1; x1 += 1; } else if (!zoom) {
      var xp = (x1 - x0) * 0.015;  // room for the end points and checkpoint markers
      x0 -= xp; x1 += xp;
    }
    if (y1 - y0 <= Math.max(Math.abs(y0), Math.abs(y1)) * 1e-6) {
      // constant (up to float32 rounding, e.g. a learning rate): centre it instead of
      // magnifying rounding noise into the whole plot height
      var mid = (y0 + y1) / 2, d = Math.abs(mid) * 0.1 || 1;
      y0 = mid - d; y1 = mid + d;
    }
    var pad = (y1 - y0) * 0.06;
    return { x0: x0, x1: x1, y0: y0 - pad, y1: y1 + pad };
  };

  Chart.prototype.draw = function () {
    var PAD = this.pad, xk = this.xk();
    var c = this.canvas;
    var dpr = window.devicePixelRatio || 1;
    var w = c.clientWidth || 460, h = c.clientHeight || 240;
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
    this.w = w; this.h = h;
    var base = document.createElement("canvas");
    base.width = c.width; base.height = c.height;
    var ctx = base.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.font = FONT;
    var series = this.visible();
    var b = this.bounds(series);
    this.b = b;
    this.series = series;
    var drawn = 0;
    var legendItems = this.legend.querySelectorAll("span[data-run]");
    for (var li = 0; li < legendItems.length; li++) {
      var r = +legendItems[li].getAttribute("data-run");
      legendItems[li].className = state.hidden[r] ? "off" : "";
    }
    if (!b) {
      ctx.fillStyle = "#656d76";
      ctx.textAlign = "center";
      var msg = xk === "epoch" && this.spec.series.every(function (s) { return !s.epoch; })
        ? "no epoch was recorded for this metric: switch the x axis to step"
        : "no points to show";
      ctx.fillText(msg, w / 2, h / 2);
    } else {
      var yt = niceTicks(b.y0, b.y1, 5);
      var ylabels = yt.ticks.map(function (t) { return fmtTick(t, yt.step); });
      var lw = 0;
      ylabels.forEach(function (t) { lw = Math.max(lw, ctx.measureText(t).width); });
      PAD.l = Math.max(36, Math.ceil(lw) + 14);  // room for the longest y label
      var pw = w - PAD.l - PAD.r, ph = h - PAD.t - PAD.b;
      var sx = function (x) { return PAD.l + (x - b.x0) / (b.x1 - b.x0) * pw; };
      var sy = function (y) { return PAD.t + (1 - (y - b.y0) / (b.y1 - b.y0)) * ph; };
      this.sx = sx; this.sy = sy;
      var xt = niceTicks(b.x0, b.x1, Math.max(3, Math.floor(pw / 90)));
      ctx.strokeStyle = "#eaeef2";
      ctx.lineWidth = 1;
      ctx.fillStyle = "#656d76";
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      yt.ticks.forEach(function (t, i) {
        var y = Math.round(sy(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(PAD.l, y); ctx.lineTo(w - PAD.r, y); ctx.stroke();
        ctx.fillText(ylabels[i], PAD.l - 6, y);
      });
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      xt.ticks.forEach(function (t) {
        var x = Math.round(sx(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, PAD.t); ctx.lineTo(x, h - PAD.b); ctx.stroke();
        ctx.fillText(xk === "time" ? clock(t, false) : fmtTick(t, xt.step), x, h - PAD.b + 6);
      });
      ctx.strokeStyle = "#afb8c1";
      ctx.beginPath(); ctx.moveTo(PAD.l + 0.5, PAD.t); ctx.lineTo(PAD.l + 0.5, h - PAD.b + 0.5);
      ctx.lineTo(w - PAD.r, h - PAD.b + 0.5); ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(this.spec.system && xk === "step" ? "sample" : AXIS_LABEL[xk], w - PAD.r,
                   h - PAD.b + 16 > h - 12 ? h - 12 : h - PAD.b + 16);
      ctx.save();
      ctx.beginPath(); ctx.rect(PAD.l, PAD.t - 2, pw, ph + 4); ctx.clip();
      series.forEach(function (s) {
        var xs = s[xk], ys = s.y, color = RUNS[s.run].color;
        ctx.strokeStyle = color;
        ctx.lineWidth = 1.6;
        ctx.lineJoin = "round";
        ctx.beginPath();
        var pen = false, pts = 0;
        for (var i = 0; i < xs.length; i++) {
          if (xs[i] === null || ys[i] === null) { pen = false; continue; }
          var px = sx(xs[i]), py = sy(ys[i]);
          if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
          pen = true;
          pts++;
        }
        ctx.stroke();
        drawn += pts;
        if (pts * 10 <= pw) {  // sparse series: show the points themselves
          ctx.fillStyle = color;
          for (var j = 0; j < xs.length; j++) {
            if (xs[j] === null || ys[j] === null) continue;
            ctx.beginPath(); ctx.arc(sx(xs[j]), sy(ys[j]), 2.6, 0, 2 * Math.PI); ctx.fill();
          }
        }
      });
      this.spec.checkpoints.forEach(function (k) {
        if (state.hidden[k.run]) return;
        var x = xk === "step" ? k.step : xk === "epoch" ? k.epoch : null;
        if (x === null || x === undefined) return;
        var px = sx(x), py = sy(k.y), r = k.best ? 6 : 4;
        ctx.beginPath();
        ctx.moveTo(px, py - r); ctx.lineTo(px + r, py); ctx.lineTo(px, py + r); ctx.lineTo(px - r, py); ctx.closePath();
        ctx.fillStyle = k.deleted ? "#ffffff" : RUNS[k.run].color;
        ctx.fill();
        ctx.lineWidth = k.best ? 2 : 1;
        ctx.strokeStyle = k.best ? "#1a7f37" : RUNS[k.run].color;
        ctx.stroke();
      });
      ctx.restore();
    }
    this.base = base;
    this.canvas.setAttribute("data-points", String(drawn));
    this.canvas.setAttribute("data-series", String(series.length));
    this.canvas.setAttribute("data-zoom", this.zoom ? this.zoom.map(fmtVal).join(",") : "");
    this.overlay();
  };

  Chart.prototype.nearest = function (s, xv) {
    var xs = s[this.xk()], best = -1, bd = Infinity;
    for (var i = 0; i < xs.length; i++) {
      if (xs[i] === null || s.y[i] === null) continue;
      var d = Math.abs(xs[i] - xv);
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  };

  Chart.prototype.overlay = function () {
    var PAD = this.pad;
    var c = this.canvas, ctx = c.getContext("2d");
    var dpr = c.width / (this.w || 1);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, c.width, c.height);
    if (this.base) ctx.drawImage(this.base, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    var b = this.b, self = this, xk = this.xk();
    if (this.drag && b) {
      var a = Math.min(this.drag.x0, this.drag.x1), z = Math.max(this.drag.x0, this.drag.x1);
      ctx.fillStyle = "rgba(9, 105, 218, 0.12)";
      ctx.fillRect(a, PAD.t, z - a, this.h - PAD.t - PAD.b);
    }
    if (this.hover === null || !b) { this.tip.style.display = "none"; return; }
    var mx = this.hover;
    var xv = b.x0 + (mx - PAD.l) / (this.w - PAD.l - PAD.r) * (b.x1 - b.x0);
    ctx.strokeStyle = "rgba(31, 35, 40, 0.35)";
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(Math.round(mx) + 0.5, PAD.t); ctx.lineTo(Math.round(mx) + 0.5, this.h - PAD.b); ctx.stroke();
    var tip = this.tip;
    while (tip.firstChild) tip.removeChild(tip.firstChild);
    tip.appendChild(el("div", "x", xk === "time" ? clock(xv, true) : AXIS_LABEL[xk] + " " + fmtVal(xv)));
    var shown = 0;
    this.series.forEach(function (s) {
      var i = self.nearest(s, xv);
      if (i < 0) return;
      var px = self.sx(s[xk][i]), py = self.sy(s.y[i]);
      if (Math.abs(px - mx) > 24) return;  // this run has no point near the cursor
      ctx.fillStyle = RUNS[s.run].color;
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.arc(px, py, 4, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
      var row = el("div");
      row.appendChild(swatch(s.run));
      row.appendChild(el("b", "", fmtVal(s.y[i])));
      row.appendChild(el("span", "where", (self.spec.system ? " sample " : " step ") + s.step[i] +
        (s.epoch && s.epoch[i] !== null ? " · epoch " + Math.floor(s.epoch[i]) : "")));
      row.appendChild(el("div", "who", label(s.run)));
      tip.appendChild(row);
      shown++;
    });
    if (!shown) { tip.style.display = "none"; return; }
    tip.style.display = "block";
    var left = this.canvas.offsetLeft + mx + 14;
    if (left + tip.offsetWidth > this.card.clientWidth) left = this.canvas.offsetLeft + mx - tip.offsetWidth - 14;
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = (this.canvas.offsetTop + 8) + "px";
  };

  Chart.prototype.bindEvents = function () {
    var self = this, c = this.canvas, PAD = this.pad;
    function mx(ev) {
      var r = c.getBoundingClientRect();
      return Math.max(PAD.l, Math.min(r.width - PAD.r, ev.clientX - r.left));
    }
    c.addEventListener("mousemove", function (ev) {
      self.hover = mx(ev);
      if (self.drag) self.drag.x1 = self.hover;
      self.overlay();
    });
    c.addEventListener("mouseleave", function () { self.hover = null; self.overlay(); });
    c.addEventListener("mousedown", function (ev) {
      if (ev.button !== 0) return;
      var x = mx(ev);
      self.drag = { x0: x, x1: x };
      ev.preventDefault();
    });
    window.addEventListener("mouseup", function () {
      var d = self.drag;
      if (!d) return;
      self.drag = null;
      if (Math.abs(d.x1 - d.x0) > 4 && self.b) {
        var b = self.b, pw = self.w - PAD.l - PAD.r;
        var inv = function (px) { return b.x0 + (px - PAD.l) / pw * (b.x1 - b.x0); };
        self.zoom = [inv(Math.min(d.x0, d.x1)), inv(Math.max(d.x0, d.x1))];
        self.draw();
      } else {
        self.overlay();
      }
    });
    c.addEventListener("dblclick", function () { self.zoom = null; self.draw(); });
  };

  function drawAll() {
    charts.forEach(function (ch) { if (!ch.card.classList.contains("hidden")) ch.draw(); });
  }

  function setHidden(run, hidden) {
    state.hidden[run] = hidden;
    var cells = document.querySelectorAll(".media-cell[data-run]");
    for (var c = 0; c < cells.length; c++) {
      if (+cells[c].getAttribute("data-run") === run) cells[c].hidden = hidden;
    }
    var boxes = document.querySelectorAll("input[type=checkbox][data-run]");
    for (var i = 0; i < boxes.length; i++) {
      if (+boxes[i].getAttribute("data-run") === run) boxes[i].checked = !hidden;
    }
    drawAll();
  }

  function init() {
    var swatches = document.querySelectorAll(".swatch[data-run]");
    for (var i = 0; i < swatches.length; i++) {
      var run = RUNS[+swatches[i].getAttribute("data-run")];
      if (run) swatches[i].style.background = run.color;
    }
    var grid = document.getElementById("chart-grid");
    DATA.charts.forEach(function (spec) {
      var ch = new Chart(spec);
      charts.push(ch);
      grid.appendChild(ch.card);
    });
    if (!DATA.charts.length) grid.appendChild(el("div", "empty", "These runs logged no metrics."));
    var sysGrid = document.getElementById("system-grid");
    (DATA.system_charts || []).forEach(function (spec) {
      spec.system = true;
      var ch = new Chart(spec);
      charts.push(ch);
      if (sysGrid) sysGrid.appendChild(ch.card);
    });
    var sysButtons = document.querySelectorAll("button[data-sysx]");
    for (var q = 0; q < sysButtons.length; q++) {
      sysButtons[q].addEventListener("click", function (ev) {
        state.sysx = ev.target.getAttribute("data-sysx");
        for (var m = 0; m < sysButtons.length; m++) sysButtons[m].className = sysButtons[m] === ev.target ? "on" : "";
        charts.forEach(function (ch) { if (ch.spec.system) ch.zoom = null; });
        drawAll();
      });
    }
    var mgrid = document.getElementById("media-grid");
    if (mgrid && window.TrackhooksMedia) {
      var mctx = { label: function (s) { return label(s.run); }, color: function (s) { return RUNS[s.run].color; } };
      window.TrackhooksMedia.group(DATA.media || []).forEach(function (spec) {
        panels.push(new window.TrackhooksMedia.Panel(spec, mctx, mgrid));
      });
      mgrid.setAttribute("data-settled", "1");
      var mfilter = document.getElementById("media-filter");
      mfilter.addEventListener("input", function () {
        var q = mfilter.value.toLowerCase();
        panels.forEach(function (p) { p.root.classList.toggle("hidden", p.spec.key.toLowerCase().indexOf(q) < 0); });
      });
    }
    var boxes = document.querySelectorAll("input[type=checkbox][data-run]");
    for (var j = 0; j < boxes.length; j++) {
      boxes[j].addEventListener("change", function (ev) {
        setHidden(+ev.target.getAttribute("data-run"), !ev.target.checked);
      });
    }
    var buttons = document.querySelectorAll("button[data-x]");
    for (var k = 0; k < buttons.length; k++) {
      buttons[k].addEventListener("click", function (ev) {
        state.x = ev.target.getAttribute("data-x");
        for (var m = 0; m < buttons.length; m++) buttons[m].className = buttons[m] === ev.target ? "on" : "";
        charts.forEach(function (ch) { if (!ch.spec.system) ch.zoom = null; });
        drawAll();
      });
    }
    var filter = document.getElementById("filter");
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      charts.forEach(function (ch) {
        var show = ch.spec.key.toLowerCase().indexOf(q) >= 0;
        ch.card.classList.toggle("hidden", !show);
      });
      drawAll();
    });
    var pending = null;
    window.addEventListener("resize", function () {
      if (pending) clearTimeout(pending);
      pending = setTimeout(function () { drawAll(); panels.forEach(function (p) { p.redraw(); }); }, 120);
    });
    var t0 = (window.performance && performance.now()) || 0;
    drawAll();
    var t1 = (window.performance && performance.now()) || 0;
    window.__trackhooks = { charts: charts.length, panels: panels.length, ready: true, render_ms: t1 - t0 };
    document.body.setAttribute("data-ready", "1");
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", attachImages);
    else attachImages();
  }

  // the embedded images sit in a JSON block after this script (see report.py): read once parsed
  function attachImages() {
    var node = document.getElementById("trackhooks-images");
    var blobs = node ? JSON.parse(node.textContent) : [];
    (DATA.media || []).forEach(function (spec) {
      spec.series.forEach(function (s) {
        s.records.forEach(function (r) { if (r.ref !== undefined && r.ref !== null) r.src = blobs[r.ref]; });
      });
    });
    panels.forEach(function (p) { p.update(p.spec); });
    document.body.setAttribute("data-images", "1");
  }

  init();
})();
