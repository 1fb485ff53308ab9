import os

# Keras 3 runs on the torch backend here (tensorflow is never installed); must be set before keras loads.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TRACKHOOKS_FLUSH_INTERVAL", "0.2")
# system metrics are on by default (every 10 s); tests that count metric keys would see system/*
# keys appear depending on timing, so tests opt in (tests/test_sysmetrics.py) instead
os.environ.setdefault("TRACKHOOKS_SYSTEM_METRICS", "0")
# the tests run inside this repository's checkout: with uncommitted changes every run would get a
# git.diff artifact; the git tests (tests/test_sysmetrics.py) turn it back on in their own repos
os.environ.setdefault("TRACKHOOKS_GIT_DIFF", "0")

import pytest  # noqa: E402


@pytest.fixture
def store_path(tmp_path, monkeypatch):
    """A fresh local store directory; also the default store of the test ($TRACKHOOKS_URI)."""
    path = str(tmp_path / "store")
    monkeypatch.setenv("TRACKHOOKS_URI", path)
    monkeypatch.delenv("TRACKHOOKS_MIRRORS", raising=False)
    return path


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test():
    """A run a failing test left active would be every later test's parent (nesting): end it here,
    as failed, so that one failure stays one failure."""
    from trackhooks import run as _run

    before = {id(r) for r in _run._active}
    yield
    for leftover in [r for r in _run._active if id(r) not in before]:
        try:
            leftover.finish("failed", timeout=5)
        except Exception:
            pass
    # finish() does not wait for the git probe (this checkout is a work tree): its facts reach the
    # store after the run's end; they are stored before the next test, which might count entries
    # in the writer's buffer or rows of a store
    if any(t.is_alive() for t in _run._info_threads):
        _run._await_system_info()
        from trackhooks import writer

        writer.get_writer().flush(5)


# PostgreSQL fixtures (pg_server, pg_db, pg_uri, private_pg): tests/pgserver.py
from tests.pgserver import pg_db, pg_server, pg_uri, private_pg  # noqa: E402,F401


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path, monkeypatch):
    """The default store of the test ($TRACKHOOKS_URI), once a local store and once a team store on
    PostgreSQL (written through the local spool): the read API must behave the same."""
    if request.param == "sqlite":
        return request.getfixturevalue("store_path")
    uri = request.getfixturevalue("pg_uri")
    monkeypatch.setenv("TRACKHOOKS_URI", uri)
    return uri
