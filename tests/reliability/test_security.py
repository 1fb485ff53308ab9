"""Security: nothing written outside the store, secrets stay out of it, user strings are inert."""

from __future__ import annotations

import ast
import glob
import os
import subprocess
import sys

import pytest

import trackhooks
from trackhooks import TrackhooksError

from ._util import ROOT, child_env, run_child

EVIL_NAMES = ["../escape.txt", "../../escape.txt", "/tmp/escape.txt", "a/../../escape.txt", "..", ".",
              "a//b", "./x", "C:\\escape.txt", "\\\\server\\share\\x", "..\\..\\escape.txt", "a\x00b"]


def _tree(root: str) -> set[str]:
    out = set()
    for base, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(base, n), root))
    return out


def test_artifact_and_checkpoint_names_cannot_write_outside_the_store(tmp_path):
    work = tmp_path / "work"
    store = work / "store"
    work.mkdir()
    src = work / "model.bin"
    src.write_bytes(b"weights")
    before = _tree(str(tmp_path))
    with trackhooks.start_run(store=str(store)) as run:
        rejected = 0
        for name in EVIL_NAMES:
            try:
                run.log_artifact(str(src), name=name)
            except TrackhooksError:
                rejected += 1
            try:
                run.log_text(name, "payload")
            except TrackhooksError:
                rejected += 1
        run.log_checkpoint(str(src), step=1)  # recorded where it is: never copied, never moved
        run.log_artifact(str(src), name="ok/model.bin")
    after = _tree(str(tmp_path))
    created = {p for p in after - before if not p.startswith(os.path.join("work", "store"))}
    assert created == set(), created
    assert rejected >= 2 * (len(EVIL_NAMES) - 1)  # only the backslash UNC-like name may be a plain name
    assert os.path.isfile(src) and src.read_bytes() == b"weights"
    rec = trackhooks.open_store(str(store)).run(run.id)
    for a in rec.artifacts():  # every stored copy lies inside the store, whatever its name
        assert os.path.realpath(a.path).startswith(os.path.realpath(str(store)) + os.sep)
    assert [c.path for c in rec.checkpoints()] == [str(src)]


SECRETS_SCRIPT = """
import sys, trackhooks
run = trackhooks.start_run(name="secret-test")
run.log_metric("m", 1.0)
run.finish()
print(run.id)
"""

SECRET_VALUES = ["hunter2-pw", "tok-abc123", "sk-live-xyz", "urlpass99", "aws-secret-777", "env-token-555"]


def _store_bytes(store: str) -> bytes:
    data = b""
    for f in glob.glob(os.path.join(store, "**", "*"), recursive=True):
        if os.path.isfile(f):
            with open(f, "rb") as fh:
                data += fh.read()
    return data


def test_command_line_secrets_are_redacted_and_env_is_not_captured(store_path):
    argv = ["--password", "hunter2-pw", "--token=tok-abc123", "--api-key", "sk-live-xyz", "--lr", "0.1",
            "postgresql://user:urlpass99@db:5432/x", "--aws-secret-access-key=aws-secret-777"]
    env = child_env(store_path, MY_SERVICE_TOKEN="env-token-555", AWS_SECRET_ACCESS_KEY="aws-secret-777",
                    HARMLESS_SETTING="visible-value")
    env.pop("TRACKHOOKS_CAPTURE_ENV", None)
    out = run_child(SECRETS_SCRIPT, store_path, *argv, env=env)
    assert out.returncode == 0, out.stderr
    rec = trackhooks.open_store(store_path).run(out.stdout.strip())
    stored_argv = rec.system["argv"]
    assert "--lr" in stored_argv and "0.1" in stored_argv  # ordinary arguments are kept
    assert "env" not in rec.system
    raw = _store_bytes(store_path)
    for secret in SECRET_VALUES + ["visible-value"]:
        assert secret.encode() not in raw, secret  # not in any table, WAL or artifact

    env["TRACKHOOKS_CAPTURE_ENV"] = "HARMLESS_SETTING, NOT_SET_ANYWHERE"
    out = run_child(SECRETS_SCRIPT, store_path, env=env)
    rec = trackhooks.open_store(store_path).run(out.stdout.strip())
    assert rec.system["env"] == {"HARMLESS_SETTING": "visible-value"}
    raw = _store_bytes(store_path)
    assert b"env-token-555" not in raw and b"aws-secret-777" not in raw


_UNSAFE_CALLS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("torch", "load"),
                 ("joblib", "load"), ("cloudpickle", "load"), ("cloudpickle", "loads"), ("dill", "load"),
                 ("dill", "loads"), ("marshal", "loads"), ("yaml", "load"), ("yaml", "unsafe_load"),
                 ("shelve", "open"), ("numpy", "load"), ("np", "load")}


def test_nothing_unpickles_or_evaluates_store_data():
    """No module of the core or an integration calls an unpickler or eval/exec (a static check).

    Loading a model from a checkpoint stays the user's explicit call to their framework.
    """
    sources = glob.glob(os.path.join(ROOT, "src", "trackhooks", "**", "*.py"), recursive=True)
    sources += glob.glob(os.path.join(ROOT, "integrations", "*", "src", "**", "*.py"), recursive=True)
    assert len(sources) > 10
    found = []
    for path in sources:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in ("eval", "exec"):
                found.append(f"{path}:{node.lineno} {fn.id}")
            elif isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and \
                    (fn.value.id, fn.attr) in _UNSAFE_CALLS:
                found.append(f"{path}:{node.lineno} {fn.value.id}.{fn.attr}")
    assert found == [], found


PAYLOAD = "<script>alert('x')</script>"
TERMINAL = "\x1b]0;pwned\x07\x1b[2J"


@pytest.fixture
def hostile_store(store_path):
    with trackhooks.start_run(experiment="exp" + PAYLOAD, name="run" + PAYLOAD + TERMINAL,
                              params={"p" + PAYLOAD: "v" + PAYLOAD + TERMINAL},
                              tags={"t" + PAYLOAD: PAYLOAD + TERMINAL}) as run:
        for i in range(3):
            run.log_metric("loss" + PAYLOAD + TERMINAL, 1.0 / (i + 1))
        run.log_dataset([1, 2, 3], name="data" + PAYLOAD)
    with trackhooks.start_run(experiment="exp" + PAYLOAD, name="plain") as other:
        other.log_metric("loss" + PAYLOAD + TERMINAL, 0.5)
    return store_path, run.id, other.id


def _cli(store: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trackhooks", *args, "--store", store], capture_output=True,
                          text=True, timeout=120)


def test_cli_never_prints_terminal_control_sequences_from_user_strings(hostile_store):
    store, a, b = hostile_store
    for args in (["runs"], ["show", a[:10]], ["compare", a[:10], b[:10]]):
        out = _cli(store, *args)
        assert out.returncode == 0, out.stderr
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout, args
        assert "pwned" in out.stdout or "run" in out.stdout  # the text itself is shown, made inert


def test_report_escapes_every_user_string(hostile_store, tmp_path):
    store, a, b = hostile_store
    html_path = tmp_path / "report.html"
    out = _cli(store, "report", a[:10], b[:10], "-o", str(html_path))
    assert out.returncode == 0, out.stderr
    html = html_path.read_text()
    assert PAYLOAD not in html and "<script>alert" not in html
    assert "</script>alert" not in html.replace(" ", "")
    # the report's own scripts are the only <script> tags: compare with a report of harmless names
    clean = tmp_path / "clean"
    with trackhooks.start_run(store=str(clean), experiment="exp", name="run") as run:
        run.log_metric("loss", 1.0)
    clean_html = tmp_path / "clean.html"
    assert _cli(str(clean), "report", "-o", str(clean_html)).returncode == 0
    assert html.lower().count("<script") == clean_html.read_text().lower().count("<script")
