"""Rich records (images, figures, histograms, tables, confusion matrices, curves) made ready for
display: shared by the HTML report and `trackhooks ui`, read only through the store's read API
(``rec.media_keys()``, ``rec.media(key)``), never through SQL.

A *panel* shows one media key of one or more runs: a step slider over the union of their steps,
and for each run the record it logged at the latest step at or before the slider. The browser code
for panels is ``static/media.js`` (the report inlines it, the UI serves it).

Long sequences are thinned for display by :func:`thin_indices`: at most ``limit`` records per run
and key, evenly spaced over the logging order, the first and the last always kept. Which record was
left out is said on the panel; the store keeps every record.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Callable, Iterable, Sequence

from . import summaries as sm

KINDS = ("image", "figure", "histogram", "table", "confusion_matrix", "curve")
IMAGE_KINDS = ("image", "figure")
#: the order panels are shown in: pictures first, then plots, then tables
KIND_ORDER = {"image": 0, "figure": 1, "confusion_matrix": 2, "curve": 3, "histogram": 4, "table": 5}
#: the largest table a panel shows (rows beyond it are counted, not sent)
MAX_TABLE_ROWS = 1000

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def image_mime(path: str) -> str | None:
    """``image/png`` or ``image/jpeg`` from the file's first bytes, else None (never served)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head.startswith(_PNG):
        return "image/png"
    if head.startswith(_JPEG):
        return "image/jpeg"
    return None


def data_uri(path: str) -> str | None:
    mime = image_mime(path)
    if mime is None:
        return None
    with open(path, "rb") as f:
        return f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")


def thin_indices(n: int, limit: int) -> list[int]:
    """At most ``limit`` indices of ``range(n)``, evenly spaced, first and last included."""
    if n <= limit:
        return list(range(n))
    if limit <= 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})


def _f(v: Any) -> float | None:
    """A finite float or None (JSON has no NaN; the browser draws None as a gap)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _floats(values: Iterable[Any]) -> list[float | None]:
    return [_f(v) for v in values]


# ---- curves ----------------------------------------------------------------------------------

_ROC_X = ("fpr", "false positive rate", "false_positive_rate", "false positive")
_ROC_Y = ("tpr", "true positive rate", "true_positive_rate", "true positive", "recall", "sensitivity")
_PR_X = ("recall",)
_PR_Y = ("precision",)


def curve_type(key: str, x_label: str, y_label: str) -> str | None:
    """``"roc"``, ``"pr"`` or None: the curves whose area under the curve means something. Told
    from the axis labels (fpr/tpr, recall/precision, as sklearn names them), else from the key
    (``roc``, ``pr_curve``, ``precision_recall``)."""
    xl, yl = x_label.strip().lower(), y_label.strip().lower()
    if xl in _ROC_X and yl in _ROC_Y:
        return "roc"
    if xl in _PR_X and yl in _PR_Y:
        return "pr"
    words = sm._words(key)
    low = key.lower()
    if "roc" in words:
        return "roc"
    if "precision_recall" in low or "pr_curve" in low or ("pr" in words and "curve" in words):
        return "pr"
    return None


def trapezoid_auc(x: Sequence[float | None], y: Sequence[float | None]) -> float | None:
    """Area under y(x) by the trapezoid rule, for x monotonic (either direction, as ROC and PR
    curves come); None when x is not monotonic, a value is missing or there are fewer than 2
    points. This is sklearn's ``auc``; for a PR curve it is not average precision."""
    if len(x) != len(y) or len(x) < 2 or any(v is None for v in x) or any(v is None for v in y):
        return None
    d = [b - a for a, b in zip(x, x[1:])]  # type: ignore[operator]
    if not (all(v >= 0 for v in d) or all(v <= 0 for v in d)):
        return None
    area = sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2 for i in range(len(x) - 1))  # type: ignore[operator]
    return abs(area)


# ---- one record as JSON ----------------------------------------------------------------------


def record_json(m: Any, src: Callable[[Any], str | None] | None = None) -> dict[str, Any]:
    """The display form of one MediaRecord. ``src(m)`` gives an image's URL (a data: URI in the
    report, a same-origin URL in the UI)."""
    d = m.data or {}
    out: dict[str, Any] = {"step": m.step, "epoch": m.epoch, "t": _f(m.timestamp)}
    kind = m.kind
    if kind in IMAGE_KINDS:
        out.update(src=src(m) if src is not None and m.path else None, w=m.width, h=m.height,
                   caption=None if d.get("caption") is None else str(d.get("caption")))
    elif kind == "histogram":
        out.update(edges=_floats(d.get("edges", ())), counts=_floats(d.get("counts", ())),
                   min=_f(d.get("min")), max=_f(d.get("max")), count=d.get("count"))
        # values that were not binned (NaN, inf), counted apart by the writer where it says so
        extra = {k: d[k] for k in ("nan", "pos_inf", "neg_inf") if isinstance(d.get(k), int)}
        if extra:
            out["nonfinite"] = extra
    elif kind == "confusion_matrix":
        out.update(labels=[sm.jsonable(v) if isinstance(v, (int, float, str)) else str(v)
                           for v in d.get("labels", ())],
                   matrix=[_floats(row) for row in d.get("matrix", ())])
    elif kind == "curve":
        x, y = _floats(d.get("x", ())), _floats(d.get("y", ()))
        xl, yl = str(d.get("x_label", "x")), str(d.get("y_label", "y"))
        ct = curve_type(m.key, xl, yl)
        out.update(x=x, y=y, x_label=xl, y_label=yl, curve=ct, auc=trapezoid_auc(x, y) if ct else None)
    elif kind == "table":
        cols = [str(c) for c in d.get("columns", ())]
        rows = d.get("rows", ())
        out.update(columns=cols, rows=[[_cell(v) for v in row] for row in rows[:MAX_TABLE_ROWS]],
                   n_rows=len(rows))
    return out


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else sm.jsonable(v)
    return sm.fmt_value(v)


# ---- panels ----------------------------------------------------------------------------------


def keys_of(rec: Any) -> list[str]:
    """The run's media keys; none from a store engine that has no rich records."""
    fn = getattr(rec, "media_keys", None)
    return list(fn()) if fn is not None else []


def media_index(rec: Any) -> list[dict[str, Any]]:
    """One entry per media key of a run: key, kind, number of records, last step and last time
    (what a live view polls to see that something new arrived)."""
    out = []
    for key in keys_of(rec):
        records = rec.media(key)
        if not records:
            continue
        last = records[-1]
        out.append({"key": key, "kind": last.kind, "count": len(records), "last_step": last.step,
                    "last_time": _f(last.timestamp)})
    return out


def series_json(run: Any, records: Sequence[Any], *, limit: int, src: Callable[[Any], str | None] | None = None,
                keep: Sequence[int] | None = None) -> dict[str, Any]:
    """The records of one run for one key, thinned to ``limit`` (or exactly ``keep``)."""
    kind = records[-1].kind if records else None
    same = [m for m in records if m.kind == kind]
    idx = list(keep) if keep is not None else thin_indices(len(same), limit)
    return {"run": run, "kind": kind, "n": len(same), "shown": len(idx), "other_kinds": len(records) - len(same),
            "records": [record_json(same[i], src) for i in idx]}
