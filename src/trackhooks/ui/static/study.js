"use strict";
// trackhooks study view: optimisation history, parallel coordinates and intermediate values of a
// hyperparameter study (the JSON of trackhooks.summaries.study_view). Shared by the HTML report
// (inlined) and the local UI (served). Plain canvas, no dependencies; user strings reach the page
// only through textContent or canvas fillText.
(function (root) {
  var FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
  var C = { complete: "#4e79a7", pruned: "#f28e2b", fail: "#e15759", best: "#1a7f37", grid: "#e6e9ed",
            axis: "#656d76", text: "#1f2328" };
  var PAD = { l: 58, r: 14, t: 12, b: 30 };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined || typeof v !== "number") return v === null || v === undefined ? "—" : String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }

  function extent(vals) {
    var lo = Infinity, hi = -Infinity;
    vals.forEach(function (v) { if (typeof v === "number" && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } });
    if (lo === Infinity) return null;
    if (lo === hi) { var d = Math.abs(lo) * 0.05 || 1; lo -= d; hi += d; }
    return [lo, hi];
  }

  function ticks(lo, hi, n) {
    var raw = (hi - lo) / n, step = Math.pow(10, Math.floor(Math.log10(raw))), err = raw / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9 && out.length < 40; t += step) out.push(t);
    return out;
  }

  // a canvas card: title, canvas sized for the device pixel ratio, a read-out line
  function card(parent, title, note) {
    var c = el("div", "chart study-chart");
    var head = el("div", "chart-head");
    head.appendChild(el("div", "chart-title", title));
    if (note) head.appendChild(el("div", "chart-dir", note));
    c.appendChild(head);
    var canvas = el("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", title);
    c.appendChild(canvas);
    var readout = el("div", "legend study-readout", "\u00a0");
    c.appendChild(readout);
    parent.appendChild(c);
    return { card: c, canvas: canvas, readout: readout };
  }

  function ctx2d(canvas) {
    var dpr = root.devicePixelRatio || 1;
    var w = canvas.clientWidth || 480, h = canvas.clientHeight || 240;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.font = FONT;
    return { g: g, w: w, h: h };
  }

  function axes(g, w, h, xr, yr, xlabel, ylabel) {
    var x0 = PAD.l, x1 = w - PAD.r, y0 = h - PAD.b, y1 = PAD.t;
    var sx = function (x) { return x0 + (x - xr[0]) / (xr[1] - xr[0]) * (x1 - x0); };
    var sy = function (y) { return y0 - (y - yr[0]) / (yr[1] - yr[0]) * (y0 - y1); };
    g.strokeStyle = C.grid; g.fillStyle = C.axis; g.lineWidth = 1;
    g.textAlign = "right"; g.textBaseline = "middle";
    ticks(yr[0], yr[1], 5).forEach(function (t) {
      g.beginPath(); g.moveTo(x0, sy(t)); g.lineTo(x1, sy(t)); g.stroke();
      g.fillText(fmt(t), x0 - 6, sy(t));
    });
    g.textAlign = "center"; g.textBaseline = "top";
    ticks(xr[0], xr[1], 6).forEach(function (t) { g.fillText(fmt(t), sx(t), y0 + 6); });
    g.fillText(xlabel, (x0 + x1) / 2, h - 13);
    g.save(); g.translate(11, (y0 + y1) / 2); g.rotate(-Math.PI / 2); g.fillText(ylabel, 0, 0); g.restore();
    return { sx: sx, sy: sy, x0: x0, x1: x1, y0: y0, y1: y1 };
  }

  function nearest(points, mx, my) {
    var best = null, bd = 144;
    points.forEach(function (p) {
      var d = (p.x - mx) * (p.x - mx) + (p.y - my) * (p.y - my);
      if (d < bd) { bd = d; best = p; }
    });
    return best;
  }

  function hover(canvas, readout, points, text) {
    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect();
      var p = nearest(points(), ev.clientX - r.left, ev.clientY - r.top);
      readout.textContent = p ? text(p) : "\u00a0";
    });
    canvas.addEventListener("mouseleave", function () { readout.textContent = "\u00a0"; });
  }

  function trialText(t, extra) {
    var parts = ["trial " + t.number, t.state.toLowerCase()];
    if (t.values && t.values.length > 1) parts.push("values " + t.values.map(fmt).join(", "));
    else if (t.value !== null && t.value !== undefined) parts.push("value " + fmt(t.value));
    Object.keys(t.params || {}).forEach(function (k) { parts.push(k + "=" + fmt(t.params[k])); });
    if (extra) parts.push(extra);
    return parts.join("  ");
  }

  // ---- optimisation history: value by trial number, best so far -----------------------------
  function history(parent, study) {
    var maximize = study.directions[0] === "maximize";
    var multi = study.directions.length > 1;
    var k = card(parent, multi ? "history (objective 0)" : "optimisation history",
      (maximize ? "↑" : "↓") + " best so far" + (multi ? "; objective 0 of " + study.directions.length : ""));
    var trials = study.trials.filter(function (t) { return t.value !== null && t.value !== undefined; })
      .slice().sort(function (a, b) { return a.number - b.number; });
    var pts = [];
    function draw() {
      var c = ctx2d(k.canvas), g = c.g;
      var xr = extent(study.trials.map(function (t) { return t.number; })) || [0, 1];
      var yr = extent(trials.map(function (t) { return t.value; }));
      pts = [];
      if (!yr) { g.fillStyle = C.axis; g.fillText("no trial has a value yet", 20, 30); return; }
      var a = axes(g, c.w, c.h, xr, yr, "trial", "value");
      if (!multi) {  // best so far: a step line over the complete trials
        var best = null;
        g.strokeStyle = C.best; g.lineWidth = 1.6; g.beginPath();
        var started = false;
        trials.forEach(function (t) {
          if (t.state !== "COMPLETE") return;
          if (best === null || (maximize ? t.value > best : t.value < best)) {
            if (started) g.lineTo(a.sx(t.number), a.sy(best));
            best = t.value;
          }
          var x = a.sx(t.number), y = a.sy(best);
          if (!started) { g.moveTo(x, y); started = true; } else g.lineTo(x, y);
        });
        if (started) { g.lineTo(a.x1, a.sy(best)); g.stroke(); }
      }
      trials.forEach(function (t) {
        var x = a.sx(t.number), y = a.sy(t.value);
        g.fillStyle = t.state === "COMPLETE" ? C.complete : C.pruned;
        g.beginPath(); g.arc(x, y, t.state === "COMPLETE" ? 3.2 : 2.4, 0, 2 * Math.PI); g.fill();
        pts.push({ x: x, y: y, t: t });
      });
    }
    draw();
    hover(k.canvas, k.readout, function () { return pts; }, function (p) { return trialText(p.t); });
    k.redraw = draw;
    return k;
  }

  // ---- parallel coordinates: one axis per param, the value last ------------------------------
  function parallel(parent, study) {
    var names = study.param_names || [];
    var k = card(parent, "parallel coordinates", "params against the value; pruned and failed trials grey");
    var pts = [];
    function axisOf(name, vals, kind) {
      var cats = null, lo, hi;
      if (kind === "categorical" || vals.some(function (v) { return typeof v !== "number"; })) {
        cats = [];
        vals.forEach(function (v) { var s = String(v); if (cats.indexOf(s) < 0) cats.push(s); });
        cats.sort();
        return { name: name, cats: cats, pos: function (v) { return cats.length < 2 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1); } };
      }
      var log = kind === "log" && vals.every(function (v) { return v > 0; });
      var tv = vals.map(function (v) { return log ? Math.log10(v) : v; });
      var e = extent(tv) || [0, 1];
      lo = e[0]; hi = e[1];
      return { name: name, lo: lo, hi: hi, log: log,
               pos: function (v) { var x = log ? Math.log10(v) : v; return (x - lo) / (hi - lo); } };
    }
    function draw() {
      var c = ctx2d(k.canvas), g = c.g;
      var trials = study.trials.filter(function (t) { return Object.keys(t.params || {}).length; });
      if (!names.length || !trials.length) { g.fillStyle = C.axis; g.fillText("no sampled params recorded", 20, 30); return; }
      var axesList = names.map(function (n) {
        return axisOf(n, trials.map(function (t) { return t.params[n]; }).filter(function (v) { return v !== undefined && v !== null; }),
          (study.param_kinds || {})[n]);
      });
      var withValue = trials.filter(function (t) { return t.state === "COMPLETE" && typeof t.value === "number"; });
      var ve = extent(withValue.map(function (t) { return t.value; })) || [0, 1];
      axesList.push({ name: "value", lo: ve[0], hi: ve[1], pos: function (v) { return (v - ve[0]) / (ve[1] - ve[0]); } });
      var n = axesList.length, x0 = 40, x1 = c.w - 40, top = 22, bottom = c.h - 26;
      var ax = function (i) { return n === 1 ? (x0 + x1) / 2 : x0 + i * (x1 - x0) / (n - 1); };
      var ay = function (p) { return bottom - p * (bottom - top); };
      var maximize = study.directions[0] === "maximize";
      pts = [];
      function line(t, color, width) {
        g.strokeStyle = color; g.lineWidth = width; g.beginPath();
        var on = false;
        axesList.forEach(function (a, i) {
          var v = a.name === "value" ? t.value : t.params[a.name];
          if (v === undefined || v === null || (a.name === "value" && t.state !== "COMPLETE")) { on = false; return; }
          var x = ax(i), y = ay(a.pos(v));
          if (!on) { g.moveTo(x, y); on = true; } else g.lineTo(x, y);
          pts.push({ x: x, y: y, t: t });
        });
        g.stroke();
      }
      trials.forEach(function (t) { if (t.state !== "COMPLETE") line(t, "rgba(140,140,140,0.35)", 1); });
      // complete trials coloured by value: best (dark green) to worst (light red), best drawn last
      withValue.slice().sort(function (a, b) { return maximize ? a.value - b.value : b.value - a.value; })
        .forEach(function (t) {
          var q = (t.value - ve[0]) / (ve[1] - ve[0]);
          if (!maximize) q = 1 - q;
          var r = Math.round(225 - 200 * q), gr = Math.round(90 + 37 * q), b = Math.round(89 - 34 * q);
          line(t, "rgba(" + r + "," + gr + "," + b + ",0.85)", 1.4);
        });
      g.fillStyle = C.text; g.strokeStyle = C.axis; g.lineWidth = 1; g.textAlign = "center";
      axesList.forEach(function (a, i) {
        var x = ax(i);
        g.beginPath(); g.moveTo(x, top); g.lineTo(x, bottom); g.stroke();
        g.textBaseline = "bottom"; g.fillStyle = C.text;
        g.fillText(a.name + (a.log ? " (log)" : ""), x, top - 6);
        g.fillStyle = C.axis; g.textBaseline = "top";
        if (a.cats) {
          g.textAlign = "left";
          a.cats.forEach(function (s) { g.fillText(s.slice(0, 14), x + 3, ay(a.pos(s)) - 6); });
          g.textAlign = "center";
        } else {
          var lo = a.log ? Math.pow(10, a.lo) : a.lo, hi = a.log ? Math.pow(10, a.hi) : a.hi;
          g.fillText(fmt(lo), x, bottom + 4);
          g.textBaseline = "bottom"; g.fillText(fmt(hi), x, top + 12);
        }
      });
    }
    draw();
    hover(k.canvas, k.readout, function () { return pts; }, function (p) { return trialText(p.t); });
    k.redraw = draw;
    return k;
  }

  // ---- intermediate values: every trial's objective curve, pruned ones dashed and marked ----------
  function curves(parent, study) {
    var k = card(parent, "intermediate values (objective)", "solid: complete · dashed + ✕: pruned · red: failed");
    var trials = study.trials.filter(function (t) { return t.objective && t.objective.steps.length; });
    var pts = [];
    function draw() {
      var c = ctx2d(k.canvas), g = c.g;
      pts = [];
      if (!trials.length) { g.fillStyle = C.axis; g.fillText("no trial reported intermediate values (trial.report)", 20, 30); return; }
      var xs = [], ys = [];
      trials.forEach(function (t) { xs = xs.concat(t.objective.steps); ys = ys.concat(t.objective.values); });
      var a = axes(g, c.w, c.h, extent(xs) || [0, 1], extent(ys) || [0, 1], "step", "objective");
      trials.forEach(function (t) {
        var s = t.objective, pruned = t.state === "PRUNED";
        g.strokeStyle = pruned ? "rgba(242,142,43,0.75)" : t.state === "FAIL" ? "rgba(225,87,89,0.75)" : "rgba(78,121,167,0.7)";
        g.lineWidth = 1.2;
        g.setLineDash(pruned ? [4, 3] : []);
        g.beginPath();
        var last = null;
        s.steps.forEach(function (st, i) {
          var v = s.values[i];
          if (typeof v !== "number" || !isFinite(v)) return;
          var x = a.sx(st), y = a.sy(v);
          if (last === null) g.moveTo(x, y); else g.lineTo(x, y);
          last = [x, y];
          pts.push({ x: x, y: y, t: t, step: st, v: v });
        });
        g.stroke();
        g.setLineDash([]);
        if (pruned && last) {  // where the pruner stopped it
          g.beginPath(); g.moveTo(last[0] - 3, last[1] - 3); g.lineTo(last[0] + 3, last[1] + 3);
          g.moveTo(last[0] + 3, last[1] - 3); g.lineTo(last[0] - 3, last[1] + 3); g.stroke();
        }
      });
    }
    draw();
    hover(k.canvas, k.readout, function () { return pts; },
      function (p) { return trialText(p.t, "step " + p.step + ": " + fmt(p.v)); });
    k.redraw = draw;
    return k;
  }

  function render(container, study) {
    var grid = el("div", "grid study-grid");
    container.appendChild(grid);
    var cards = [history(grid, study), parallel(grid, study), curves(grid, study)];
    var pending = null;
    root.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () { cards.forEach(function (k) { k.redraw(); }); }, 120);
    });
    return cards;
  }

  root.TrackhooksStudy = { render: render };
})(window);
