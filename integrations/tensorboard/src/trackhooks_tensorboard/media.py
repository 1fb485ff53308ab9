"""Rich records in TensorBoard: images and figures as image summaries, histograms as histogram
summaries (what ``EventAccumulator.Images()`` / ``.Histograms()`` read), tables and confusion
matrices as Markdown text summaries. Curves have no TensorBoard form and are not mirrored.

Replayed from the store's read API (``RunView.media_counts()``, then ``rec.media(key)`` for the keys
that grew); the run's cursor
holds how many records of each key are written (``state["media"]``), so a replay after a crash or a
second ``trackhooks sync`` writes nothing twice.
"""

from __future__ import annotations

import json
from typing import Any

#: PNG colour type -> TensorBoard colorspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)
_PNG_COLORSPACE = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def colorspace(data: bytes) -> int:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25:
        return _PNG_COLORSPACE.get(data[25], 3)
    return 3  # JPEG


def histogram_proto(d: dict[str, Any]):
    """A HistogramProto from a stored histogram. TensorBoard wants sum and sum of squares too: they
    are estimated from the bin centres (the raw values are not kept)."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto

    edges, counts = d.get("edges") or [], d.get("counts") or []
    if not counts:
        return HistogramProto(min=0.0, max=0.0, num=0, sum=0.0, sum_squares=0.0)
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    total = sum(c * x for c, x in zip(counts, centres))
    squares = sum(c * x * x for c, x in zip(counts, centres))
    lo = d["min"] if d.get("min") is not None else edges[0]
    hi = d["max"] if d.get("max") is not None else edges[-1]
    return HistogramProto(min=float(lo), max=float(hi), num=float(sum(counts)), sum=total, sum_squares=squares,
                          bucket_limit=[float(e) for e in edges[1:]], bucket=[float(c) for c in counts])


def _cell(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str, allow_nan=True)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: list[Any], rows: list[list[Any]], limit: int = 1000) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n({len(rows) - limit} more rows in the trackhooks store)")
    return "\n".join(lines)


def _confusion_markdown(d: dict[str, Any]) -> str:
    labels = d.get("labels") or []
    rows = [[f"**{lab}**", *counts] for lab, counts in zip(labels, d.get("matrix") or [])]
    return markdown_table(["true \\ predicted", *labels], rows)


def replay_media(w: Any, view: Any, state: dict[str, Any], text: Any) -> int:
    """Write the media records the cursor lacks into the event writer ``w``; returns how many.
    ``text(tag, markdown, step, wall_time)`` writes a text summary. The caller flushes and commits."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    done: dict[str, int] = state.setdefault("media", {})
    n = 0
    rec = view.rec
    for key, count in sorted(view.media_counts().items()):
        start = done.get(key, 0)
        if count <= start:
            continue
        records = rec.media(key)
        for m in records[start:]:
            if m.kind in ("image", "figure"):
                path = m.path
                if path is not None:
                    with open(path, "rb") as f:
                        data = f.read()
                    img = Summary.Image(height=m.height or 0, width=m.width or 0, colorspace=colorspace(data),
                                        encoded_image_string=data)
                    w.add_event(Event(wall_time=m.timestamp, step=m.step,
                                      summary=Summary(value=[Summary.Value(tag=key, image=img)])))
            elif m.kind == "histogram":
                w.add_event(Event(wall_time=m.timestamp, step=m.step,
                                  summary=Summary(value=[Summary.Value(tag=key, histo=histogram_proto(m.data))])))
            elif m.kind == "table":
                text(key, markdown_table(m.data.get("columns") or [], m.data.get("rows") or []), m.step, m.timestamp)
            elif m.kind == "confusion_matrix":
                text(key, _confusion_markdown(m.data), m.step, m.timestamp)
            n += 1
        done[key] = len(records)
    return n
