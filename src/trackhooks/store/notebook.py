"""Jupyter display: ``_repr_html_`` of RunRecord, of the list ``runs()`` returns, and of Store, and
``rec.plot(keys)`` with matplotlib. Every piece of stored text is HTML-escaped (run names, params
and tags are user text). Headline metrics are the last values of up to ``HEADLINE`` keys."""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Sequence

HEADLINE = 6  # metric columns shown per run in a listing
MAX_ROWS = 200  # a listing of more runs shows the first ones and says how many were left out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        text = f"{value:.6g}"
    else:
        text = str(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return html.escape(text)


def html_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> str:
    out = ['<table class="trackhooks">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _when(t: float | None) -> str:
    if t is None:
        return ""
    import datetime as dt

    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def run_html(rec: Any) -> str:
    head = [("id", rec.id), ("name", rec.name), ("experiment", rec.experiment), ("status", rec.status),
            ("started", _when(rec.start_time)), ("duration", _dur(rec.duration))]
    if rec.parent_id:
        head.append(("parent", rec.parent_id))
    if getattr(rec, "archived", False):
        head.append(("archived", "yes"))
    parts = [html_table(["field", "value"], head, caption=f"run {rec.name}")]
    note = getattr(rec, "note", None)
    if note:
        parts.append(f"<pre>{html.escape(note)}</pre>")
    if rec.params:
        parts.append(html_table(["param", "value"], sorted(rec.params.items()), caption="params"))
    if rec.tags:
        parts.append(html_table(["tag", "value"], sorted(rec.tags.items()), caption="tags"))
    summaries = rec.metric_summaries()
    if summaries:
        parts.append(html_table(["metric", "last", "min", "max", "count", "last step"],
                                [(k, s["last"], s["min"], s["max"], s["count"], s["last_step"])
                                 for k, s in summaries.items()], caption="metrics"))
    return "<div>" + "".join(parts) + "</div>"


def runs_html(recs: Sequence[Any]) -> str:
    if not recs:
        return "<p>no runs</p>"
    shown = list(recs[:MAX_ROWS])
    param_keys = sorted({k for r in shown for k in r.params})[:12]
    summaries = {r.id: r.metric_summaries() for r in shown}
    counts: dict[str, int] = {}
    for s in summaries.values():
        for k in s:
            counts[k] = counts.get(k, 0) + 1
    metric_keys = sorted(counts, key=lambda k: (-counts[k], k.startswith("system/"), k))[:HEADLINE]
    metric_keys.sort()
    columns = ["id", "name", "experiment", "status", "started", "duration"] + \
        [f"params.{k}" for k in param_keys] + [f"metrics.{k}" for k in metric_keys]
    rows = []
    for r in shown:
        s = summaries[r.id]
        rows.append([r.id[:8], r.name, r.experiment, r.status, _when(r.start_time), _dur(r.duration)]
                    + [r.params.get(k) for k in param_keys]
                    + [s[k]["last"] if k in s else None for k in metric_keys])
    out = html_table(columns, rows)
    if len(recs) > len(shown):
        out += f"<p>{len(shown)} of {len(recs)} runs shown</p>"
    return out


def store_html(store: Any) -> str:
    rows = store._rows("SELECT experiment, COUNT(*), MAX(start_time) FROM runs GROUP BY experiment ORDER BY experiment")
    body = html_table(["experiment", "runs", "last started"], [(e, n, _when(t)) for e, n, t in rows],
                      caption=f"trackhooks store {store.path}")
    return body


def plot(rec: Any, keys: str | Sequence[str] | None = None, *, x: str = "step", ax: Any = None) -> Any:
    """Draw metrics of a run against ``x`` ("step", "epoch" or "time"); returns the Axes."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("rec.plot() needs matplotlib: pip install matplotlib") from exc
    from ..errors import InvalidValueError

    if x not in ("step", "epoch", "time"):
        raise InvalidValueError(f"x must be 'step', 'epoch' or 'time', not {x!r}")
    if keys is None:
        keys = [k for k in rec.metric_keys() if not k.startswith("system/")]
    elif isinstance(keys, str):
        keys = [keys]
    if ax is None:
        _, ax = plt.subplots()
    for key in keys:
        s = rec.metric(key)
        if x == "step":
            xs = s.steps
        elif x == "time":
            xs = [t - rec.start_time for t in s.timestamps]
        else:
            xs = s.epochs
        pts = [(a, b) for a, b in zip(xs, s.values) if a is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key)
    ax.set_xlabel("seconds" if x == "time" else x)
    ax.set_title(rec.name)
    if keys:
        ax.legend()
    return ax


class RunList(list):
    """The list ``store.runs()`` returns: a list of RunRecord (all list behaviour kept; a slice is a
    RunList too) that renders as a table in Jupyter."""

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return RunList(item) if isinstance(index, slice) else item

    def _repr_html_(self) -> str:
        return runs_html(self)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self]
