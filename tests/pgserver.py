"""PostgreSQL for the tests: the server of ``$TRACKHOOKS_TEST_PG`` and private throwaway clusters.

- ``pg_db`` (session): a fresh database on ``$TRACKHOOKS_TEST_PG`` (default
  ``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end of the session.
- ``pg_uri`` (test): a team store URI of its own (a fresh schema of that database, chosen with
  ``options=-csearch_path=...``), with ``$TRACKHOOKS_SPOOL`` in the test's tmp dir.
- ``private_pg`` (session): a cluster of our own made with initdb on a free port, password
  authentication on TCP, that tests may stop and restart (``.stop()``, ``.start()``).

Without a reachable server the tests skip and say how to get one; under CI (``$CI``) they fail
instead, since .ci/run starts a server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import quote

import pytest

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
HOW = ("start one (Debian: apt-get install postgresql && pg_ctlcluster 15 main start) or point "
       "$TRACKHOOKS_TEST_PG at one, e.g. postgresql://postgres@127.0.0.1:5432/postgres")


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run under CI: {why}")
    pytest.skip(f"{why}; {HOW}")


def admin_url() -> str:
    return os.environ.get("TRACKHOOKS_TEST_PG") or DEFAULT_PG


def with_db(url: str, dbname: str) -> str:
    """The same server and user, another database, as a URI without password (see pg_server)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    host = params.get("host", "127.0.0.1")
    user = params.get("user", "postgres")
    return f"postgresql://{quote(user)}@{host}:{params.get('port', 5432)}/{dbname}"


def psql(url: str, *statements: str, autocommit: bool = True) -> list:
    import psycopg

    out = []
    with psycopg.connect(url, autocommit=autocommit, connect_timeout=5) as conn:
        for s in statements:
            cur = conn.execute(s)
            out.append(cur.fetchall() if cur.description else None)
    return out


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e integrations/postgres)")
    from psycopg.conninfo import conninfo_to_dict

    url = admin_url()
    try:
        psql(url, "SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"no PostgreSQL server at {url} ({str(exc).strip().splitlines()[0]})")
    # a password in $TRACKHOOKS_TEST_PG (CI) travels as PGPASSWORD, as users are told to do: store URIs
    # the tests build, and the redacted ones runs keep (run.store_uri), then work as they are
    params = conninfo_to_dict(url)
    if params.get("password"):
        os.environ["PGPASSWORD"] = params["password"]
    return with_db(url, params.get("dbname") or "postgres")


@pytest.fixture(scope="session")
def pg_db(pg_server):
    name = f"trackhooks_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    psql(pg_server, f'CREATE DATABASE "{name}"')
    try:
        yield with_db(pg_server, name)
    finally:
        psql(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_uri(db_url: str, schema: str) -> str:
    return f"{db_url}?options=" + quote(f"-csearch_path={schema}", safe="")


@pytest.fixture
def pg_uri(pg_db, tmp_path, monkeypatch):
    """A fresh, empty team store (its own schema) and a spool of the test's own."""
    schema = "t_" + uuid.uuid4().hex[:10]
    psql(pg_db, f"CREATE SCHEMA {schema}")
    monkeypatch.setenv("TRACKHOOKS_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("TRACKHOOKS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACKHOOKS_MIRRORS", raising=False)
    return schema_uri(pg_db, schema)


# ---- private clusters ----------------------------------------------------------------------------


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """A throwaway PostgreSQL cluster (initdb) on a free port; superuser ``postgres`` with
    ``password`` over TCP (scram-sha-256), trust on its Unix socket."""

    password = "pw-Secret-4711"

    def __init__(self, root: str):
        self.root = root
        self.data = os.path.join(root, "data")
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        self.initdb = pg_bin("initdb")
        self.pg_ctl = pg_bin("pg_ctl")

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        if self.as_postgres:
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def create(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
            os.chmod(self.root, 0o700)
        self._run(self.initdb, "-D", self.data, "-U", "postgres", "--pwfile", pwfile, "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        self._run(self.pg_ctl, "-D", self.data, "-l", os.path.join(self.root, "log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres", password: str | None = None, user: str = "postgres") -> str:
        pw = self.password if password is None else password
        return f"postgresql://{user}:{quote(pw, safe='')}@127.0.0.1:{self.port}/{dbname}"


@pytest.fixture(scope="session")
def private_pg():
    if pg_bin("initdb") is None or pg_bin("pg_ctl") is None:
        _unavailable("initdb/pg_ctl not found (install Debian's postgresql)")
    root = tempfile.mkdtemp(prefix="trackhooks-pg-")
    cluster = PrivateCluster(root)
    try:
        cluster.create()
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        detail = getattr(exc, "stderr", "") or str(exc)
        _unavailable(f"cannot start a private PostgreSQL cluster ({detail.strip()[:300]})")
    try:
        yield cluster
    finally:
        cluster.destroy()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05):
    """Poll until predicate() is truthy (for state owned by other processes); fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


__all__ = ["PrivateCluster", "admin_url", "psql", "schema_uri", "sys", "wait_for", "with_db"]
