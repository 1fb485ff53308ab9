"""The UI's media routes (read-only GETs over ``rec.media_keys()`` / ``rec.media(key)``).

- ``/api/runs/<id>/media``: the run's media keys with kind, record count, last step and time (the
  live views poll it and refetch a key whose count or time changed);
- ``/api/runs/<id>/media/<key>?max_records=N``: the records of one key for display, thinned like
  the report (evenly spaced, first and last kept); images and figures as URLs of
- ``/api/runs/<id>/media-files/<content address>``: the stored image, found among that run's media
  records by its content-addressed file name (never a path from the request), served only if it is
  a PNG or JPEG by its own bytes, with ``nosniff``, a sandboxing CSP and an immutable cache (the
  name is the hash of the bytes);
- ``/shared/media.js`` and ``/shared/media.css``: the panel code the HTML report inlines.
"""

from __future__ import annotations

import os
import urllib.parse
from importlib import resources
from typing import Any, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from .. import mediaview as mv

#: records of one key the UI sends at most, per kind (images travel as URLs, so many are cheap)
MAX_RECORDS = {"image": 1000, "figure": 1000, "histogram": 500, "confusion_matrix": 500, "curve": 200, "table": 50}
SHARED = {"media.js": "text/javascript; charset=utf-8", "media.css": "text/css; charset=utf-8"}
_FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                 "Cache-Control": "private, max-age=31536000, immutable",
                 "Cross-Origin-Resource-Policy": "same-origin", "Content-Disposition": "inline"}


def _address(m: Any) -> str | None:
    """The content address of a record's file: its sha256 (reading it never fetches the file)."""
    sha = getattr(m, "sha256", None)
    if sha:
        return str(sha)
    return os.path.basename(m.path) if m.path else None


def _file_url(run_id: str, m: Any) -> str | None:
    name = _address(m)
    if not name:
        return None
    return f"/api/runs/{urllib.parse.quote(run_id, safe='')}/media-files/{urllib.parse.quote(name, safe='')}"


def media_keys(rec: Any) -> dict[str, Any]:
    return {"run": rec.id, "keys": mv.media_index(rec)}


def media_series(rec: Any, key: str, max_records: int | None = None) -> dict[str, Any]:
    if key not in mv.keys_of(rec):
        raise HTTPException(404, f"run {rec.id[:8]} has no media {key!r}")
    records = rec.media(key)
    kind = records[-1].kind if records else None
    limit = max_records if max_records is not None else MAX_RECORDS.get(kind or "", 200)
    out = mv.series_json(rec.id, records, limit=limit, src=lambda m: _file_url(rec.id, m))
    return {"key": key, **out}


class FileIndex:
    """Content address -> media record, per run, rebuilt only when the run's media counts change
    (so stepping through images costs one count query per image, not a read of every record)."""

    def __init__(self, counts: Callable[[str], Any]):
        self._counts = counts
        self._runs: dict[str, tuple[Any, dict[str, Any]]] = {}

    def find(self, rec: Any, name: str) -> tuple[str, str]:
        """(path, mime) of the run's image or figure with this content-addressed name."""
        sig = self._counts(rec.id)
        cached = self._runs.get(rec.id)
        if cached is None or cached[0] != sig:
            files = {}
            for key in mv.keys_of(rec):
                for m in rec.media(key):
                    if m.kind in mv.IMAGE_KINDS:
                        address = _address(m)
                        if address:
                            files[address] = m
            if len(self._runs) > 256:
                self._runs.clear()
            cached = self._runs[rec.id] = (sig, files)
        m = cached[1].get(name)
        if m is None:
            raise HTTPException(404, f"run {rec.id[:8]} has no media file {name!r}")
        mime = mv.image_mime(m.path) if m.path else None
        if mime is None:
            raise HTTPException(404, f"media file {name!r} is missing or not an image")
        return m.path, mime


def media_routes(record: Callable[[str], Any], respond: Callable[[Any], Response],
                 live: Callable[[list[str]], dict[str, Any]]) -> list[Route]:
    """Routes for the app; ``record(run_id)`` resolves a run (404 if unknown), ``respond`` makes
    the JSON response the other API routes make, ``live(ids)`` is the store's ``live`` (its media
    counts tell when a run's files changed)."""
    index = FileIndex(lambda rid: (live([rid]).get(rid) or {}).get("media"))

    async def api_media_keys(request: Request) -> Response:
        return respond(media_keys(record(request.path_params["run_id"])))

    async def api_media(request: Request) -> Response:
        raw = request.query_params.get("max_records")
        n = None
        if raw not in (None, ""):
            try:
                n = max(1, min(100_000, int(raw)))
            except ValueError:
                raise HTTPException(400, f"max_records must be an integer, got {raw!r}") from None
        return respond(media_series(record(request.path_params["run_id"]), request.path_params["key"], n))

    async def api_media_file(request: Request) -> Response:
        path, mime = index.find(record(request.path_params["run_id"]), request.path_params["name"])
        return FileResponse(path, media_type=mime, headers=_FILE_HEADERS)

    async def shared(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in SHARED:
            raise HTTPException(404, f"no shared file {name!r}")
        text = resources.files("trackhooks").joinpath("static", name).read_text(encoding="utf-8")
        return Response(text, media_type=SHARED[name], headers={"X-Content-Type-Options": "nosniff",
                                                                "Cache-Control": "no-cache"})

    return [
        Route("/api/runs/{run_id}/media", api_media_keys),
        Route("/api/runs/{run_id}/media/{key:path}", api_media),
        Route("/api/runs/{run_id}/media-files/{name}", api_media_file),
        Route("/shared/{name}", shared),
    ]
