"""`trackhooks ui`: a read-only local web app over a store (Starlette + uPlot, no CDN).

The server only ever reads. Series are downsampled on the server (min and max per bucket, so
spikes survive) and live views ask only for the points after the ones they already have, so a
browser never receives a whole long series twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import markdown
from .. import summaries as sm
from ..report import downsample_indices
from ..errors import AmbiguousRunError, QueryError, RunNotFoundError
from ..store import RunRecord, Store, open_store
from .media import media_routes

MAX_POINTS = 2000  # points per series sent for display; above this: min/max per bucket
PAGE_SIZE = 50
CONSOLE_TAIL_BYTES = 1 << 20  # the first view of a long console log starts this far from its end
RUN_COLUMNS = ("id", "name", "experiment", "status", "start_time", "duration", "framework")
STATIC_DIR = str(resources.files("trackhooks").joinpath("ui", "static"))


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str)
    return Response(body, status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def downsample(n: int, values: list[float], max_points: int = MAX_POINTS) -> list[int] | None:
    """Indices to keep (the report's rule: min and max per bucket, first and last), or None if all."""
    if n <= max_points:
        return None
    return downsample_indices(values, max_points=max_points, buckets=max(1, max_points // 2))


class UIStore:
    """Queries the UI needs, in bulk (10 k runs list in tens of milliseconds)."""

    def __init__(self, store: "str | Store | None"):
        self.store: Store = store if isinstance(store, Store) else open_store(store)

    def rows(self) -> list[dict[str, Any]]:
        # the runs view polls every few seconds: reuse the list while nothing was committed and no
        # run is running (whose status and duration change with time alone)
        version = self.store.change_token()
        cached = getattr(self, "_rows_cache", None)
        if cached is not None and version is not None and cached[0] == version and not cached[2]:
            return [dict(r) for r in cached[1]]
        out = self._rows()
        self._rows_cache = (version, out, any(r["status"] == "running" for r in out))
        return [dict(r) for r in out]

    def _rows(self) -> list[dict[str, Any]]:
        framework = self.store.tag_values("framework")
        out = self.store.listing()
        for r in out:
            r["framework"] = framework.get(r["id"])
        return out

    def list_runs(self, *, experiment: str | None, status: str | None, q: str | None, sort: str, order: str,
                  offset: int, limit: int, top_level: bool, metrics: list[str] | None,
                  params: list[str] | None, where: str | None = None, archived: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        rows = self.rows()
        experiments = sorted({r["experiment"] for r in rows})
        n_archived = sum(1 for r in rows if r["archived"])
        if not archived:
            rows = [r for r in rows if not r["archived"]]
        if where:
            # the where language is compiled to SQL by the store (a QueryError becomes a 400 with
            # the caret message); the listing keeps its own sorting and paging
            try:
                matching = set(self.store.run_ids(where=where, archived=True))
            except QueryError as exc:
                raise HTTPException(400, str(exc)) from None
            rows = [r for r in rows if r["id"] in matching]
        if top_level:
            rows = [r for r in rows if r["parent_id"] is None]
        if experiment:
            rows = [r for r in rows if r["experiment"] == experiment]
        if status:
            rows = [r for r in rows if r["status"] == status]
        if q:
            needle = q.lower()
            rows = [r for r in rows if needle in r["name"].lower() or needle in r["id"]
                    or needle in r["experiment"].lower() or needle in (r["framework"] or "").lower()]
        store = self.store
        ids = {r["id"] for r in rows}
        if metrics is None:
            counts = store.metric_run_counts()
            metrics = sm.headline_keys(sorted(counts, key=lambda k: -counts[k]), limit=4)
        sort_values: dict[str, Any] = {}
        if sort.startswith("metric:"):
            sort_values = store.metric_last_values(sort[7:])
        elif sort.startswith("param:"):
            sort_values = store.param_values(sort[6:])

        def sort_key(r: dict[str, Any]) -> tuple:
            if sort.startswith(("metric:", "param:")):
                v = sort_values.get(r["id"])
            else:
                v = r.get(sort if sort in RUN_COLUMNS else "start_time")
            missing = v is None or (isinstance(v, float) and v != v)
            # missing values last in either order; numbers before strings
            return (missing, 0 if isinstance(v, (int, float)) else 1, v if isinstance(v, (int, float)) else str(v))

        keyed = [(sort_key(r), r) for r in rows]
        present = [kr for kr in keyed if not kr[0][0]]
        absent = [kr[1] for kr in keyed if kr[0][0]]
        present.sort(key=lambda kr: kr[0], reverse=(order == "desc"))
        rows = [kr[1] for kr in present] + absent
        total = len(rows)
        page = rows[offset: offset + limit]
        page_ids = [r["id"] for r in page]
        if page_ids:
            metric_vals: dict[tuple[str, str], Any] = {}
            for rid, per_key in store.metric_summaries_of(page_ids).items():
                for key, s in per_key.items():
                    metric_vals[(rid, key)] = s["last"]
            param_vals = store.params_of(page_ids)
            if params is None:
                # the params that differ between the runs shown, at most 4
                # params most of the shown runs have come first (a cross-framework page would
                # otherwise show params only one run has)
                have: dict[str, int] = {}
                for p in param_vals.values():
                    for k in p:
                        have[k] = have.get(k, 0) + 1
                keys = sorted(have, key=lambda k: (-have[k], k))
                params = [k for k in keys if have[k] > 1 and len({json.dumps(param_vals.get(i, {}).get(k), default=str)
                                                                 for i in page_ids}) > 1][:4]
            for r in page:
                r["metrics"] = {k: _num(metric_vals.get((r["id"], k))) for k in metrics}
                r["params"] = {k: sm.jsonable(param_vals.get(r["id"], {}).get(k)) for k in params}
        return {"total": total, "offset": offset, "limit": limit, "runs": page, "experiments": experiments,
                "archived_hidden": 0 if archived else n_archived,
                "metric_columns": metrics, "param_columns": params or [], "query_ms": (time.perf_counter() - t0) * 1000,
                "n_all": len(ids)}

    def record(self, run_id: str) -> RunRecord:
        try:
            return self.store.run(run_id)
        except (RunNotFoundError, AmbiguousRunError) as exc:
            raise HTTPException(404, str(exc)) from None

    def run_detail(self, run_id: str) -> dict[str, Any]:
        rec = self.record(run_id)
        summaries = rec.metric_summaries()
        children = []
        for c in rec.children():
            cs = c.metric_summaries()
            children.append({"id": c.id, "name": c.name, "status": c.status, "params": sm.jsonable(c.params),
                             "metrics": {k: _num(v["last"]) for k, v in cs.items()}})
        return {
            "id": rec.id, "name": rec.name, "experiment": rec.experiment, "status": rec.status,
            "parent_id": rec.parent_id, "start_time": rec.start_time, "end_time": rec.end_time,
            "duration": rec.duration, "params": sm.jsonable(rec.params), "tags": rec.tags,
            "system": sm.jsonable(rec.system),
            # the note as written and rendered here (trackhooks.markdown: escaped by construction,
            # only a fixed set of tags, href only to http/https/mailto); the page inserts note_html
            "note": rec.note, "note_html": markdown.render(rec.note) if rec.note else None,
            # direction: the CLI's rule for which run is best ("min", "max", or None = not ranked)
            "metrics": {k: {**{kk: _num(vv) for kk, vv in v.items()}, "direction": sm.metric_direction(k)}
                        for k, v in summaries.items()},
            "checkpoints": [{"path": c.path, "step": c.step, "epoch": c.epoch, "metrics": sm.jsonable(c.metrics),
                             "monitor": c.monitor, "mode": c.mode, "best": c.best, "deleted": c.deleted,
                             "exists": c.exists, "size": c.size, "sha256": c.sha256} for c in rec.checkpoints()],
            "artifacts": [{"name": a.name, "size": a.size, "sha256": a.sha256} for a in rec.artifacts()],
            "datasets": [{"name": d.name, "context": d.context, "digest": d.digest, "n_rows": d.n_rows,
                          "schema": sm.jsonable(d.schema), "sampled": d.sampled} for d in rec.datasets()],
            "children": children,
            # a hyperparameter study: its trials from the children, best first (summaries.study_view)
            "study": sm.jsonable(sm.study_view(rec, curves=True)) if sm.is_study(rec) else None,
        }

    def series(self, run_id: str, key: str, since: int | None, max_points: int) -> dict[str, Any]:
        rec = self.record(run_id)
        try:
            s = rec.metric(key)
        except KeyError:
            raise HTTPException(404, f"run {rec.id[:8]} has no metric {key!r}") from None
        steps, epochs, values, times = s.steps, s.epochs, s.values, s.timestamps
        n = len(values)
        start = 0 if since is None else max(0, min(since, n))
        idx = None
        if since is None:
            idx = downsample(n, values, max_points)
        if idx is not None:
            steps = [steps[i] for i in idx]
            epochs = [epochs[i] for i in idx]
            values = [values[i] for i in idx]
            times = [times[i] for i in idx]
        elif start:
            steps, epochs, values, times = steps[start:], epochs[start:], values[start:], times[start:]
        return {"key": key, "run": rec.id, "n": n, "from": start, "downsampled": idx is not None,
                "shown": len(values), "steps": steps, "epochs": epochs, "values": [_num(v) for v in values],
                "timestamps": times}

    def live(self, ids: list[str]) -> dict[str, Any]:
        return self.store.live(ids[:100])

    def console(self, run_id: str, offset: int) -> dict[str, Any]:
        """The run's console output from byte ``offset`` on, for a live tail.

        Complete lines never change once stored, the unfinished last line may (a progress bar): it
        comes apart as ``partial`` and the client asks again from ``next``. The first request of a
        long log gets only its last ``CONSOLE_TAIL_BYTES`` (``skipped`` says how much is left out).
        """
        rec = self.record(run_id)
        data = rec.console()
        end = data.rfind(b"\n") + 1
        start = max(0, min(offset, end))
        skipped = 0
        if offset == 0 and end > CONSOLE_TAIL_BYTES:
            start = data.find(b"\n", end - CONSOLE_TAIL_BYTES) + 1
            skipped = start
        return {"run": rec.id, "status": rec.status, "offset": start, "next": end, "skipped": skipped,
                "size": len(data), "text": data[start:end].decode("utf-8", "replace"),
                "partial": data[end:].decode("utf-8", "replace")}

    def artifact_file(self, run_id: str, name: str) -> str:
        rec = self.record(run_id)
        try:
            art = rec.artifact(name)
        except KeyError:
            raise HTTPException(404, f"run {rec.id[:8]} has no artifact {name!r}") from None
        # the file is addressed by its hash from the database, never by a user-supplied path
        sha = art.sha256
        if not (len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise HTTPException(404, "bad artifact record")
        path = art.path
        if not os.path.isfile(path):
            raise HTTPException(404, f"artifact {name!r} is missing from the store")
        return path


def create_app(store: "str | os.PathLike | Store | None" = None, token: str | None = None) -> Starlette:
    """The Starlette app for a store (a path, a URI or a Store; read-only); with ``token``, every
    request must carry it (see ``auth.TokenGate``)."""
    ui = UIStore(store if store is None or isinstance(store, Store) else os.fspath(store))

    def _int(request: Request, name: str, default: int, lo: int = 0, hi: int = 10**9) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return max(lo, min(hi, int(raw)))
        except ValueError:
            raise HTTPException(400, f"{name} must be an integer, got {raw!r}") from None

    def _list(request: Request, name: str) -> list[str] | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        return [x for x in raw.split(",") if x]

    async def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"),
                            headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                     "style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'",
                                     "Cache-Control": "no-store"})

    async def api_runs(request: Request) -> Response:
        qp = request.query_params
        return _json(ui.list_runs(
            experiment=qp.get("experiment") or None, status=qp.get("status") or None, q=qp.get("q") or None,
            sort=qp.get("sort") or "start_time", order="asc" if qp.get("order") == "asc" else "desc",
            offset=_int(request, "offset", 0), limit=_int(request, "limit", PAGE_SIZE, 1, 1000),
            top_level=qp.get("all") != "1", metrics=_list(request, "metrics"), params=_list(request, "params"),
            where=qp.get("where") or None, archived=qp.get("archived") == "1"))

    async def api_run(request: Request) -> Response:
        return _json(ui.run_detail(request.path_params["run_id"]))

    async def api_series(request: Request) -> Response:
        since = request.query_params.get("since")
        return _json(ui.series(request.path_params["run_id"], request.path_params["key"],
                               None if since in (None, "") else _int(request, "since", 0),
                               _int(request, "max_points", MAX_POINTS, 10, 100_000)))

    async def api_console(request: Request) -> Response:
        return _json(ui.console(request.path_params["run_id"], _int(request, "offset", 0)))

    async def api_live(request: Request) -> Response:
        return _json(ui.live(_list(request, "ids") or []))

    async def api_artifact(request: Request) -> Response:
        name = request.path_params["name"]
        path = ui.artifact_file(request.path_params["run_id"], name)
        return FileResponse(path, filename=os.path.basename(name),
                            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/runs/{run_id}/metrics/{key:path}", api_series),
        Route("/api/runs/{run_id}/artifacts/{name:path}", api_artifact),
        Route("/api/runs/{run_id}/console", api_console),
        Route("/api/live", api_live),
        *media_routes(ui.record, _json, ui.live),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    if token:
        from .auth import TokenGate

        app.add_middleware(TokenGate, token=token)
    return app


def serve(store: "str | Store | None" = None, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None) -> None:
    """Run the UI with uvicorn until interrupted. Listening on anything but loopback needs a token
    (``token`` or ``$TRACKHOOKS_UI_TOKEN``); without one it refuses to start (TokenRequiredError)."""
    import sys

    import uvicorn

    from .auth import TokenRequiredError, is_loopback

    token = token or os.environ.get("TRACKHOOKS_UI_TOKEN") or None
    if not is_loopback(host) and not token:
        raise TokenRequiredError(
            f"refusing to listen on {host}: anyone who can reach it could read every run; give a token "
            "(--token TOKEN or $TRACKHOOKS_UI_TOKEN, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            " or listen on 127.0.0.1")
    app = create_app(store, token=token)
    if isinstance(store, Store):
        store = store.uri
    print(f"trackhooks ui: serving {store or 'the default store'} "
          f"read-only on http://{host}:{port}/ (Ctrl+C to stop)" + ("; open it once with ?token=<token>" if token else ""),
          file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")
