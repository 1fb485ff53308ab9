"""`trackhooks ui`: the local web app. Needs the `ui` extra (starlette, uvicorn); loaded only when started."""

from __future__ import annotations


def create_app(store=None):
    from .server import create_app as _create

    return _create(store)


def serve(store=None, host: str = "127.0.0.1", port: int = 8765) -> None:
    from .server import serve as _serve

    _serve(store, host, port)
