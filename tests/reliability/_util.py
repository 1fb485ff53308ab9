"""Helpers shared by the reliability suite: child processes and raw store checks."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env(store: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TRACKHOOKS_URI": store, "PYTHONUNBUFFERED": "1"}
    env.pop("TRACKHOOKS_MIRRORS", None)
    env.update(extra)
    return env


def spawn(code: str, store: str, *args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env or child_env(store),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run_child(code: str, store: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
              **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env or child_env(store),
                          capture_output=True, text=True, timeout=timeout, **kw)


def integrity(store: str) -> str:
    conn = sqlite3.connect(os.path.join(store, "trackhooks.db"))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
