"""The token gate of ``trackhooks ui`` when it is shared on a network.

A pure ASGI middleware (it wraps every route, static files included): a request passes with
``Authorization: Bearer <token>`` or with the cookie set after the token was given once as
``?token=<token>`` (that request is redirected to the same URL without it, so the token does not
stay in the address bar or the history). Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import TrackhooksError

COOKIE = "trackhooks_ui_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class TokenRequiredError(TrackhooksError, ValueError):
    """``trackhooks ui`` bound to a non-loopback address without a token."""


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def _same(given: str, token: bytes) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token)


class TokenGate:
    def __init__(self, app: Any, token: str):
        if not token:
            raise TokenRequiredError("the UI token must not be empty")
        self.app = app
        self.token = token.encode("utf-8", "surrogatepass")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get(b"authorization", "")
        if auth[:7].lower() == "bearer " and _same(auth[7:].strip(), self.token):
            return await self.app(scope, receive, send)
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no token
            cookie = SimpleCookie()
        if COOKIE in cookie and _same(cookie[COOKIE].value, self.token):
            return await self.app(scope, receive, send)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if given and _same(given[-1], self.token) and scope["type"] == "http":
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope.get("root_path", "") + scope["path"] + ("?" + rest if rest else "")
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", location.encode("latin-1", "replace")),
                (b"set-cookie", f"{COOKIE}={given[-1]}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")),
                (b"cache-control", b"no-store"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (b"trackhooks ui: this server needs its token: open the URL with ?token=<token> once, "
                b"or send 'Authorization: Bearer <token>'\n")
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"www-authenticate", b"Bearer"),
            (b"cache-control", b"no-store"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
