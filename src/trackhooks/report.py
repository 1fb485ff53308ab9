"""The self-contained HTML report: one file, no network, interactive charts.

Tables are rendered here with every user string HTML-escaped. Chart data travels as JSON inside
``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as ``\\u003c`` etc., so no
run name, param value or metric key can close the script element. The chart code
(``static/report.js``, written for this report, no third-party library) and the stylesheet are
inlined, and a Content-Security-Policy that allows exactly those two inline blocks (by hash) and no
network access makes an injection that slipped through inert anyway.

Long series are downsampled for display: above ``MAX_POINTS`` points a series is cut into
``BUCKETS`` index buckets and each bucket keeps its minimum and maximum point (so spikes stay
visible); the chart says so. A chart overlaying many runs shares a budget of ``CHART_BUDGET``
points, so each of its series keeps fewer (never under ``MIN_POINTS``). Values are written with 7
significant digits (the page shows 4).

Rich records (images, figures, histograms, tables, confusion matrices, curves) get one panel per
key with a step slider (see ``mediaview``). Images and figures are embedded as base64 data: URIs,
so the file stays self-contained. To keep it openable, a key's sequence is thinned to
``MEDIA_STEPS[kind]`` records per run, evenly spaced with the first and last kept; if the images
kept still weigh more than ``MAX_IMAGE_BYTES`` (raw bytes, before base64's 4/3), the image limit is
halved until they fit, down to the last image of each key; images that do not fit even then are
left out, and each panel says what it left out.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import time
from importlib import resources
from typing import Any, Sequence

from . import markdown
from . import mediaview as mv
from . import summaries as sm

MAX_POINTS = 5000
BUCKETS = 2000
CHART_BUDGET = 200_000  # points one chart draws at most, over all its runs
MIN_POINTS = 500  # however many runs a chart overlays, a long series keeps this many points
#: records per run and key a report keeps at most (evenly spaced, first and last kept)
MEDIA_STEPS = {"image": 50, "figure": 50, "histogram": 200, "confusion_matrix": 100, "curve": 50, "table": 20}
MAX_IMAGE_BYTES = 32 * 2**20  # image bytes one report embeds at most (base64 makes the file 4/3 of it)
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf")


def _static(name: str) -> str:
    return resources.files("trackhooks").joinpath("static", name).read_text(encoding="utf-8")


def esc(value: Any) -> str:
    return html.escape(sm.clean(value) if not isinstance(value, str) else value, quote=True)


def json_for_script(data: Any) -> str:
    """JSON that is safe inside a <script> element (cannot close it or open a comment)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def epoch_positions(epochs: Sequence[int | None]) -> list[float | None] | None:
    """x positions for the epoch axis: a point logged once per epoch sits on its epoch; the points
    of an epoch logged per step are spread evenly over [epoch, epoch + 1). None if no epochs."""
    if all(e is None for e in epochs):
        return None
    out: list[float | None] = [None] * len(epochs)
    i = 0
    n = len(epochs)
    while i < n:
        e = epochs[i]
        j = i
        while j < n and epochs[j] == e:
            j += 1
        if e is not None:
            m = j - i
            for k in range(i, j):
                out[k] = e + (k - i) / m if m > 1 else float(e)
        i = j
    return out


def downsample_indices(values: Sequence[float], max_points: int = MAX_POINTS, buckets: int = BUCKETS) -> list[int]:
    """Indices to draw: all if few, else per bucket the min and max point, in order (first and
    last always kept)."""
    n = len(values)
    if n <= max_points:
        return list(range(n))
    keep = {0, n - 1}
    size = n / buckets
    for b in range(buckets):
        lo, hi = int(b * size), min(n, int((b + 1) * size))
        if lo >= hi:
            continue
        best_lo = best_hi = None
        for i in range(lo, hi):
            v = values[i]
            if v != v:
                continue
            if best_lo is None or v < values[best_lo]:
                best_lo = i
            if best_hi is None or v > values[best_hi]:
                best_hi = i
        if best_lo is None:
            keep.add(lo)  # an all-NaN bucket: keep one point so the gap shows
        else:
            keep.add(best_lo)
            keep.add(best_hi)  # type: ignore[arg-type]
    return sorted(keep)


def _short(v: float | None, digits: int) -> float | None:
    # the page shows 4 significant digits: 7 keep the file small and the curves exact to the pixel
    return None if v is None else float(f"{v:.{digits}g}")


def _series(run_index: int, s: Any, max_points: int = MAX_POINTS, with_time: bool = False) -> dict[str, Any]:
    values = s.values
    steps = s.steps
    epochs = s.epochs
    ex = epoch_positions(epochs)
    idx = downsample_indices(values, max_points, max(1, max_points * 2 // 5))
    full = len(idx) == len(values)
    extra: dict[str, Any] = {}
    if with_time:  # system metrics: wall time (epoch seconds) and seconds since the first sample
        ts = s.timestamps
        t0 = ts[0] if ts else 0.0
        extra = {"time": [round(ts[i], 3) for i in idx], "since": [round(ts[i] - t0, 3) for i in idx]}
    return {
        **extra,
        "run": run_index,
        "n": len(values),
        "shown": len(idx),
        "step": steps if full else [steps[i] for i in idx],
        "epoch": None if ex is None else [None if ex[i] is None else round(ex[i], 5) for i in idx],
        "y": [_short(_num(values[i]), 7) for i in idx],
        "nonfinite": sum(1 for v in values if not math.isfinite(v)),
    }


def series_limit(n_series: int) -> int:
    """Points each series of a chart overlaying ``n_series`` runs may keep."""
    return max(MIN_POINTS, min(MAX_POINTS, CHART_BUDGET // max(1, n_series)))


def _run_row(i: int, r: Any, short: dict[str, str]) -> dict[str, Any]:
    return {"id": r.id, "short": short[r.id], "name": r.name, "experiment": r.experiment, "status": r.status,
            "framework": r.tags.get("framework", ""), "color": PALETTE[i % len(PALETTE)],
            "parent": r.parent_id}


def build_data(recs: Sequence[Any], *, media: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON the page's charts read."""
    short = sm.short_ids(r.id for r in recs)
    runs = [_run_row(i, r, short) for i, r in enumerate(recs)]
    owners: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        for k in r.metric_keys():
            owners.setdefault(k, []).append(i)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for k, runs_with_k in owners.items():
        limit = series_limit(len(runs_with_k))
        by_key[k] = [_series(i, recs[i].metric(k), limit, with_time=is_system_key(k)) for i in runs_with_k]
    # a metric logged once per run (test scores, feature importances) is a value, not a curve:
    # it goes to the "single values" table instead of a chart of dots
    by_key = {k: v for k, v in by_key.items() if any(s["n"] > 1 for s in v)}
    ckpts: dict[str, list[dict[str, Any]]] = {}
    for i, r in enumerate(recs):
        for c in r.checkpoints():
            for k, v in c.metrics.items():
                if k in by_key and isinstance(v, (int, float)) and math.isfinite(v):
                    ckpts.setdefault(k, []).append({"run": i, "step": c.step, "epoch": c.epoch, "y": v,
                                                    "best": c.best, "deleted": c.deleted,
                                                    "path": os.path.basename(c.path)})
    charts = [{"key": k, "direction": sm.metric_direction(k), "series": by_key[k], "checkpoints": ckpts.get(k, [])}
              for k in sorted(by_key, key=_chart_order) if not is_system_key(k)]
    # system/* samples (CPU, memory, GPU) get their own section, on a wall-time axis by default
    system = [{"key": k, "direction": None, "series": by_key[k], "checkpoints": []}
              for k in sorted(k for k in by_key if is_system_key(k))]
    studies = [{"run": i, "id": r.id, "name": r.name, **sm.jsonable(sm.study_view(r, curves=True))}
               for i, r in enumerate(recs) if sm.is_study(r)]
    return {"runs": runs, "charts": charts, "system_charts": system, "max_points": MAX_POINTS, "studies": studies,
            "media": media or []}


def is_system_key(key: str) -> bool:
    return key.startswith("system/")


def _file_size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def build_media(recs: Sequence[Any], *, steps: dict[str, int] | None = None,
                max_image_bytes: int = MAX_IMAGE_BYTES) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(panels, info): one panel per (key, kind) over every run that has it, thinned and
    size-capped as the module docstring says."""
    steps = {**MEDIA_STEPS, **(steps or {})}
    groups: dict[tuple[str, str], list[tuple[int, list[Any]]]] = {}
    for i, r in enumerate(recs):
        for key in mv.keys_of(r):
            records = r.media(key)
            if not records:
                continue
            kind = records[-1].kind
            groups.setdefault((key, kind), []).append((i, [m for m in records if m.kind == kind]))
    # which records each (group, run) keeps; images share one byte budget over the whole report
    keep: dict[tuple[tuple[str, str], int], list[int]] = {}
    for gk, members in groups.items():
        for i, records in members:
            keep[(gk, i)] = mv.thin_indices(len(records), steps.get(gk[1], 50))
    image_groups = [gk for gk in groups if gk[1] in mv.IMAGE_KINDS]
    sizes = {(gk, i): [_file_size(m.path) for m in records] for gk in image_groups for i, records in groups[gk]}

    def image_bytes() -> int:
        return sum(sizes[k][j] for k in sizes for j in keep[k])

    limit = max((steps.get(k, 50) for k in mv.IMAGE_KINDS), default=50)
    while image_bytes() > max_image_bytes and limit > 1:
        limit = max(1, limit // 2)
        for k in sizes:
            n = len(sizes[k])
            keep[k] = mv.thin_indices(n, min(limit, steps.get(k[0][1], 50)))
    embed: set[tuple[Any, int]] = set()
    used = 0
    # fill the budget latest records first, so that a key that must lose images keeps its last ones
    for k in sizes:
        for j in reversed(keep[k]):
            if used + sizes[k][j] <= max_image_bytes:
                embed.add((k, j))
                used += sizes[k][j]
    panels = []
    n_embedded = n_left_out = 0
    thinned = []
    for gk in sorted(groups, key=lambda g: (mv.KIND_ORDER.get(g[1], 9), g[0])):
        key, kind = gk
        series = []
        for i, records in groups[gk]:
            idx = keep[(gk, i)]
            if kind in mv.IMAGE_KINDS:
                allowed = {id(records[j]) for j in idx if ((gk, i), j) in embed}
                n_embedded += len(allowed)
                n_left_out += len(idx) - len(allowed)

                def src(m: Any, allowed: set[int] = allowed) -> str | None:
                    return mv.data_uri(m.path) if id(m) in allowed else None
            else:
                src = None  # type: ignore[assignment]
            s = mv.series_json(i, records, limit=0, src=src, keep=idx)
            if s["shown"] < s["n"] and key not in thinned:
                thinned.append(key)
            series.append(s)
        panels.append({"key": key, "kind": kind, "series": series})
    info = {"keys": len(panels), "images_embedded": n_embedded, "images_left_out": n_left_out,
            "image_bytes": used, "thinned": thinned}
    return panels, info


def _chart_order(key: str) -> tuple[int, str]:
    low = key.lower()
    if low.startswith(("train", "loss")) or low in ("acc", "accuracy"):
        rank = 0
    elif low.startswith("val"):
        rank = 1
    elif low.startswith("test"):
        rank = 2
    elif sm.metric_direction(key) is None or key in ("epoch_duration_s", "samples_per_s", "fit_time_s"):
        rank = 4
    else:
        rank = 3
    return rank, key


# ---- HTML ------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", *, raw_head: bool = False) -> str:
    """rows (and head when raw_head) hold already-escaped HTML cells."""
    th = "".join(f"<th>{h if raw_head else esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _swatch(i: int) -> str:
    return f'<span class="swatch" data-run="{i}"></span>'


def _run_head(recs: Sequence[Any], short: dict[str, str], first: str) -> list[str]:
    """Header cells of a run-per-column table: swatch and id, the name below."""
    return [esc(first)] + [f'{_swatch(i)}<code>{esc(short[r.id])}</code><br><span class="colname">{esc(r.name)}</span>'
                           for i, r in enumerate(recs)]


def _run_label(i: int, r: Any, short: dict[str, str]) -> str:
    return f'{_swatch(i)}<code>{esc(short[r.id])}</code> {esc(r.name)}'


def _runs_section(recs: Sequence[Any], short: dict[str, str]) -> str:
    rows = []
    for i, r in enumerate(recs):
        head = "  ".join(f"{k}={sm.fmt_num(sm.last_value(r, k))}" for k in sm.headline_keys(r.metric_keys()))
        parent = f'<span class="muted">↳ {esc(short.get(r.parent_id, (r.parent_id or "")[:8]))}</span> ' \
            if r.parent_id else ""
        rows.append([
            f'<label class="toggle"><input type="checkbox" checked data-run="{i}">{_swatch(i)}</label>',
            f"<code>{esc(short[r.id])}</code>", esc(r.experiment), parent + esc(r.name),
            f'<span class="status status-{esc(r.status)}">{esc(r.status)}</span>',
            esc(sm.fmt_time(r.start_time)), esc(sm.fmt_duration(r.duration)),
            esc(r.tags.get("framework", "")), f'<span class="metrics">{esc(head)}</span>'])
    return _table(["", "id", "experiment", "name", "status", "start", "duration", "framework", "metrics"], rows,
                  "runs")


def _notes_section(recs: Sequence[Any], short: dict[str, str]) -> str:
    """The runs' notes, rendered by ``markdown.render`` (escaped by construction, no raw HTML)."""
    out = [f'<article class="note" data-run="{i}"><h3>{_run_label(i, r, short)}</h3>'
           f'<div class="note-body">{markdown.render(r.note)}</div></article>'
           for i, r in enumerate(recs) if r.note]
    if not out:
        return ""
    return f'<section id="notes"><h2>Notes</h2>{"".join(out)}</section>'


def _params_section(recs: Sequence[Any], short: dict[str, str]) -> str:
    keys = sorted({k for r in recs for k in r.params})
    if not keys:
        return '<p class="muted">No params recorded.</p>'
    missing = object()

    def differs(k: str) -> bool:
        vals = [r.params.get(k, missing) for r in recs]
        return any(v is missing for v in vals) or \
            len({json.dumps(v, sort_keys=True, default=str) for v in vals}) > 1

    diff = [k for k in keys if differs(k)] if len(recs) > 1 else keys
    same = [k for k in keys if k not in diff]
    # params one run alone has (typical across frameworks) are folded away per run
    lone = {k for k in diff if len(recs) > 2 and sum(k in r.params for r in recs) == 1}
    diff = [k for k in diff if k not in lone]
    head = _run_head(recs, short, "param")

    def rows(ks: list[str]) -> list[list[str]]:
        return [[f"<code>{esc(k)}</code>"] + [esc(sm.fmt_value(r.params[k])) if k in r.params
                                              else '<span class="muted">—</span>' for r in recs] for k in ks]

    out = []
    if diff:
        title = "Params that differ" if len(recs) > 1 else "Params"
        out.append(f"<h3>{title} ({len(diff)})</h3>" + _table(head, rows(diff), "params wide", raw_head=True))
    elif not lone:
        out.append(f'<p class="muted">All {len(keys)} params are equal across these runs.</p>')
    for i, r in enumerate(recs):
        own = sorted(k for k in lone if k in r.params)
        if own:
            out.append(f"<details><summary>Params only {_run_label(i, r, short)} has ({len(own)})</summary>"
                       + _table(["param", "value"], [[f"<code>{esc(k)}</code>", esc(sm.fmt_value(r.params[k]))]
                                                      for k in own], "params") + "</details>")
    if same:
        out.append(f"<details><summary>Params shared by every run ({len(same)})</summary>"
                   + _table(["param", "value"], [[f"<code>{esc(k)}</code>", esc(sm.fmt_value(recs[0].params[k]))]
                                                  for k in same], "params") + "</details>")
    return "".join(out)


def single_value_keys(recs: Sequence[Any]) -> list[str]:
    """Metrics that every run logged at most once (shown as a table, not as charts)."""
    counts: dict[str, int] = {}
    for r in recs:
        for k in r.metric_keys():
            counts[k] = max(counts.get(k, 0), len(r.metric(k)))
    return sorted((k for k, n in counts.items() if n <= 1), key=lambda k: (sm.headline_rank(k), k))


def _values_section(recs: Sequence[Any], short: dict[str, str]) -> str:
    keys = single_value_keys(recs)
    if not keys:
        return ""
    values = {k: [sm.last_value(r, k) if k in r.metric_keys() else None for r in recs] for k in keys}
    shared = [k for k in keys if sum(v is not None for v in values[k]) > 1]
    main = shared if len(shared) >= 1 and len(keys) > 20 else keys
    rest = [k for k in keys if k not in main]
    head = _run_head(recs, short, "metric")

    def rows(ks: list[str]) -> list[list[str]]:
        out = []
        for k in ks:
            vals = values[k]
            best = sm.best_index(vals, sm.metric_direction(k)) if sum(v is not None for v in vals) > 1 else None
            cells = [f"<code>{esc(k)}</code>"]
            for i, v in enumerate(vals):
                if v is None:
                    cells.append('<span class="muted">—</span>')
                elif i == best:
                    cells.append(f'<span class="best">{esc(sm.fmt_num(v))} ★</span>')
                else:
                    cells.append(esc(sm.fmt_num(v)))
            out.append(cells)
        return out

    html_ = '<p class="muted small">Metrics logged once per run; ★ marks the best run (see docs/cli.md for the rule).</p>'
    if main:
        html_ += _table(head, rows(main), "values wide", raw_head=True)
    if rest:
        html_ += (f"<details><summary>{len(rest)} more single values (one run each)</summary>"
                  + _table(head, rows(rest), "values wide", raw_head=True) + "</details>")
    return f'<section id="values"><h2>Single values</h2>{html_}</section>'


def _datasets_section(recs: Sequence[Any], short: dict[str, str]) -> str:
    rows = []
    for i, r in enumerate(recs):
        for d in r.datasets():
            rows.append([_run_label(i, r, short), esc(d.context), esc(d.name),
                         f"<code>{esc(d.digest[:16])}</code>" + (" (sampled)" if d.sampled else ""),
                         esc(sm.fmt_num(d.n_rows)), esc(sm.schema_text(d.schema, d.n_rows))])
    if not rows:
        return '<p class="muted">No datasets recorded.</p>'
    return _table(["run", "context", "name", "digest", "rows", "schema"], rows, "datasets")


def _checkpoints_section(recs: Sequence[Any], short: dict[str, str]) -> str:
    rows = []
    for i, r in enumerate(recs):
        for c in r.checkpoints():
            flags = []
            if c.best:
                flags.append('<span class="best">★ best</span>')
            if c.deleted:
                flags.append('<span class="deleted">deleted</span>')
            metrics = "  ".join(f"{k}={sm.fmt_num(v)}" for k, v in c.metrics.items())
            path_cls = ' class="struck"' if c.deleted else ""
            rows.append([_run_label(i, r, short), " ".join(flags), f"<code{path_cls}>{esc(c.path)}</code>",
                         esc(sm.fmt_num(c.step)), esc(sm.fmt_num(c.epoch)), esc(metrics), esc(sm.fmt_size(c.size))])
    if not rows:
        return '<p class="muted">No checkpoints recorded.</p>'
    return _table(["run", "", "path", "step", "epoch", "metrics at save", "size"], rows, "checkpoints")


def _studies_section(data: dict[str, Any], short: dict[str, str]) -> str:
    """One block per study run: the charts (study.js) and its trials best first (works without JS)."""
    out = []
    for k, st in enumerate(data.get("studies", [])):
        multi = len(st["directions"]) > 1
        best = set(st["best"])
        rows = []
        for t in st["trials"][:200]:
            if multi:
                value = ", ".join(sm.fmt_num(v) for v in t["values"]) if t["values"] else ""
            else:
                value = sm.fmt_num(t["value"]) if t["value"] is not None else ""
            params = "  ".join(f"{p}={sm.fmt_value(v)}" for p, v in t["params"].items())
            state = t["state"].lower()
            rows.append([('<span class="best">★</span>' if t["number"] in best else ""), esc(t["number"]),
                         f"<code>{esc(short.get(t['id'], t['id'][:8]))}</code>",
                         f'<span class="trial-{esc(state)}">{esc(state)}</span>', esc(value), esc(params),
                         esc(sm.fmt_duration(t["duration"]))])
        more = len(st["trials"]) - len(rows)
        table = _table(["", "#", "id", "state", "values" if multi else "value", "params", "duration"], rows,
                       "trials") + (f'<p class="muted small">… and {more} more trials</p>' if more > 0 else "")
        out.append(f'<h3>{esc(st["name"])} <span class="muted small">{esc(", ".join(st["directions"]))} · '
                   f'{len(st["trials"])} trials</span></h3>'
                   f'<div class="study" data-study="{k}"></div>'
                   f"<details open><summary>Trials, best first</summary>{table}</details>")
    if not out:
        return ""
    return f'<section id="studies"><h2>Studies</h2>{"".join(out)}</section>'


_STUDY_INIT = """
(function () {
  var DATA = JSON.parse(document.getElementById("trackhooks-data").textContent);
  var nodes = document.querySelectorAll("[data-study]");
  for (var i = 0; i < nodes.length; i++) {
    window.TrackhooksStudy.render(nodes[i], DATA.studies[Number(nodes[i].getAttribute("data-study"))]);
  }
})();
"""


def _system_section(data: dict[str, Any]) -> str:
    n = len(data["system_charts"])
    if not n:
        return ""
    return f"""<section id="system"><h2>System</h2>
<div class="toolbar">
<span class="seg" role="group" aria-label="x axis of the system charts"><span class="muted">x axis</span>
<button type="button" data-sysx="time" class="on">wall time</button><button type="button" data-sysx="since">since start</button><button type="button" data-sysx="step">sample</button></span>
<span class="muted small">CPU, memory, I/O and GPU of the training process, sampled off the training thread</span>
</div>
<div id="system-grid" class="grid" data-charts="{n}"></div>
</section>"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _detach_images(panels: list[dict[str, Any]]) -> list[str]:
    """Move each embedded image's data: URI to a list; its record keeps the index as ``ref``."""
    images: list[str] = []
    for p in panels:
        for series in p["series"]:
            for r in series["records"]:
                if r.get("src"):
                    r["ref"] = len(images)
                    images.append(r["src"])
                    r["src"] = None
    return images


def _media_section(panels: list[dict[str, Any]]) -> str:
    if not panels:
        return ""
    return (f'<section id="media"><h2>Media</h2><div class="toolbar">'
            '<input type="search" id="media-filter" placeholder="filter media" aria-label="filter media">'
            '<span class="muted small">drag a slider (or focus it and use the arrow keys) to step through a sequence'
            '</span></div>'
            f'<div id="media-grid" class="media-grid" data-panels="{len(panels)}"></div></section>')


def build_report(recs: Sequence[Any], *, store_path: str | None = None, title: str | None = None,
                 media_steps: dict[str, int] | None = None,
                 max_image_bytes: int = MAX_IMAGE_BYTES) -> tuple[str, dict[str, Any]]:
    """(html, info) for these runs; info holds counts and warnings."""
    recs = list(recs)
    short = sm.short_ids(r.id for r in recs)
    panels, media_info = build_media(recs, steps=media_steps, max_image_bytes=max_image_bytes)
    # the image bytes go last in the file, after the script: the page draws its tables, charts and
    # panels before the browser has parsed megabytes of base64, and the images follow
    images = _detach_images(panels)
    images_html = (f'<script type="application/json" id="trackhooks-images">{json_for_script(images)}</script>'
                   if images else "")
    data = build_data(recs, media=panels)
    warnings = []
    w = sm.training_data_warning(recs) if len(recs) > 1 else None
    if w:
        warnings.append(w)
    title = title or ("trackhooks report: " + ", ".join(sorted({r.experiment for r in recs}))[:120])
    script = _static("media.js") + "\n" + _static("report.js")
    if data["studies"]:  # the study charts are shared with the UI: one file, inlined here
        script += "\n" + resources.files("trackhooks").joinpath("ui", "static", "study.js").read_text(
            encoding="utf-8") + _STUDY_INIT
    style = _static("report.css") + "\n" + _static("media.css")
    csp = (f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    n_points = sum(len(r.metric(k)) for r in recs for k in r.metric_keys())
    n_keys = len({k for r in recs for k in r.metric_keys()})
    media_note = f"{len(panels)} media keys · " if panels else ""
    sub = (f"{len(recs)} run{'s' if len(recs) != 1 else ''} · {n_keys} metrics · "
           f"{n_points:,} points · {media_note}generated {sm.fmt_time(time.time())}")
    warn_html = "".join(f'<div class="warning">⚠ {esc(x)}</div>' for x in warnings)
    store_html = f'<div class="muted small">store <code>{esc(store_path)}</code></div>' if store_path else ""
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="trackhooks">
<title>{esc(title)}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{esc(title)}</h1>
<div class="sub">{esc(sub)}</div>
{store_html}
</header>
<main>
{warn_html}
<section id="runs"><h2>Runs</h2>{_runs_section(recs, short)}</section>
{_notes_section(recs, short)}
{_studies_section(data, short)}
<section id="charts"><h2>Metrics</h2>
<div class="toolbar">
<span class="seg" role="group" aria-label="x axis"><span class="muted">x axis</span>
<button type="button" data-x="step" class="on">step</button><button type="button" data-x="epoch">epoch</button></span>
<input type="search" id="filter" placeholder="filter metrics" aria-label="filter metrics">
<span class="muted small">drag on a chart to zoom, double-click to reset; click a legend entry to hide a run</span>
</div>
<div id="chart-grid" class="grid" data-charts="{len(data['charts'])}"></div>
<noscript><p class="warning">The charts need JavaScript; the tables work without it.</p></noscript>
</section>
{_media_section(panels)}
{_values_section(recs, short)}
{_system_section(data)}
<section id="params"><h2>Params</h2>{_params_section(recs, short)}</section>
<section id="datasets"><h2>Data</h2>{_datasets_section(recs, short)}</section>
<section id="checkpoints"><h2>Checkpoints</h2>{_checkpoints_section(recs, short)}</section>
</main>
<footer class="muted small">Written by trackhooks. Works offline: everything this page needs is inside this file.</footer>
<script type="application/json" id="trackhooks-data">{json_for_script(data)}</script>
<script>{script}</script>
{images_html}
</body>
</html>
"""
    info = {"runs": len(recs), "charts": len(data["charts"]), "studies": len(data["studies"]),
            "points": n_points, "warnings": warnings,
            "downsampled": [c["key"] for c in data["charts"] if any(s["shown"] < s["n"] for s in c["series"])],
            "media": media_info}
    return page, info


def write_report(recs: Sequence[Any], path: str | os.PathLike, *, store_path: str | None = None,
                 title: str | None = None, **media: Any) -> dict[str, Any]:
    """Write the report for these runs to ``path``; returns counts and warnings (``media``:
    ``media_steps``, ``max_image_bytes`` as for ``build_report``)."""
    page, info = build_report(recs, store_path=store_path, title=title, **media)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return info
