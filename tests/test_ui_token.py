"""`trackhooks ui` shared on a network: the token gate (ui/auth.py) and the refusal to listen
without one."""

import os
import subprocess
import sys

import pytest

import trackhooks

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from trackhooks.ui.auth import COOKIE, TokenRequiredError  # noqa: E402
from trackhooks.ui.server import create_app, serve  # noqa: E402

TOKEN = "tok-3f9a_secret"


@pytest.fixture
def client(store_path):
    with trackhooks.start_run(name="alpha") as run:
        run.log_metric("m", 1.0)
    return TestClient(create_app(store_path, token=TOKEN), follow_redirects=False), run


def test_requests_without_the_token_are_refused(client):
    c, run = client
    for path in ("/", "/api/runs", f"/api/runs/{run.id}", "/static/app.js", "/api/runs?token=wrong"):
        r = c.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
        assert TOKEN not in r.text
    assert c.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/runs", cookies={COOKIE: "wrong"}).status_code == 401


def test_a_bearer_header_passes(client):
    c, run = client
    r = c.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and [x["id"] for x in r.json()["runs"]] == [run.id]


def test_the_token_once_in_the_url_then_a_strict_httponly_cookie(client):
    c, run = client
    r = c.get(f"/api/runs?token={TOKEN}&limit=5")
    assert r.status_code == 303 and r.headers["location"] == "/api/runs?limit=5"  # the token leaves the URL
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    r = c.get("/api/runs?limit=5", cookies={COOKIE: TOKEN})
    assert r.status_code == 200 and r.json()["runs"][0]["id"] == run.id
    assert c.get("/", cookies={COOKIE: TOKEN}).status_code == 200


def test_without_a_token_the_app_stays_open_on_loopback(store_path):
    trackhooks.start_run().finish()
    assert TestClient(create_app(store_path)).get("/api/runs").status_code == 200


def test_serve_refuses_a_network_address_without_a_token(store_path, monkeypatch):
    monkeypatch.delenv("TRACKHOOKS_UI_TOKEN", raising=False)
    trackhooks.start_run().finish()
    with pytest.raises(TokenRequiredError, match="0.0.0.0"):
        serve(store_path, host="0.0.0.0", port=1)
    out = subprocess.run([sys.executable, "-m", "trackhooks", "ui", "--host", "0.0.0.0", "--store", store_path],
                         capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "--token" in out.stderr
    assert "Traceback" not in out.stderr
