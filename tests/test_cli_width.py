"""Every table the CLI prints keeps ids, names and statuses whole: in an 80-column terminal (a real
pseudo-terminal) and in a pipe whatever $COLUMNS says (issue 21, item 5)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

import trackhooks
from trackhooks import summaries as sm

PY = sys.executable
NAMES = ["a-rather-long-run-name-for-an-80-column-terminal", "dapper-lynx-469", "resnet18-lr3e-4-batch256-seed7"]
CHILD = "trial-0-of-search"  # a typical name length: this run alone fits 80 columns
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cli-width") / "store")
    ids = []
    for i, name in enumerate(NAMES):
        with trackhooks.start_run(store=path, name=name, experiment="width-experiment",
                                  tags={"framework": "sklearn"},
                                  params={"model.class": "LogisticRegression", "C": 0.1 * (i + 1),
                                          "a.fairly.long.parameter.key.name": "value " * 12}) as run:
            run.log_metrics({"train_accuracy": 0.97, "train_balanced_accuracy": 0.96, "train_f1_macro": 0.95,
                             "validation_loss_with_a_long_key": 0.1234})
            ids.append(run.id)
            if i == 0:
                with trackhooks.start_run(store=path, name=CHILD, parent=run) as child:
                    child.log_metric("x", 1.0)
                    ids.append(child.id)
    return path, ids


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TRACKHOOKS_DEBUG")}
    env.pop("NO_COLOR", None)
    return env


def in_terminal(cols: int, *args: str) -> str:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    proc = subprocess.Popen([PY, "-m", "trackhooks", *args], stdin=slave, stdout=slave, stderr=slave, env=_env(),
                            close_fds=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, out.decode(errors="replace")
    return ANSI.sub("", out.decode()).replace("\r", "")


def in_pipe(*args: str) -> str:
    env = dict(_env(), COLUMNS="80")  # what a captured subprocess inherits from an 80-column shell
    p = subprocess.run([PY, "-m", "trackhooks", *args], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _whole(out: str, words: list[str]) -> None:
    assert "…" not in out
    for word in words:
        assert any(word in line for line in out.splitlines()), (word, out)


def _commands(store_path, ids):
    short = sm.short_ids(ids)
    yield ["runs", "--store", store_path], [short[i] for i in ids] + NAMES + [CHILD, "finished"]
    yield ["show", ids[0], "--store", store_path], [ids[0], NAMES[0], short[ids[1]], CHILD, "finished",
                                                    "a.fairly.long.parameter.key.name",
                                                    "validation_loss_with_a_long_key"]
    yield (["compare", ids[0], ids[2], ids[3], "--store", store_path],
           [short[ids[0]], short[ids[2]], short[ids[3]], NAMES[0], NAMES[1], NAMES[2], "finished",
            "validation_loss_with_a_long_key"])


@pytest.mark.parametrize("cols", [80, 60])
def test_every_table_keeps_ids_names_and_statuses_whole_in_a_terminal(store, cols):
    path, ids = store
    for args, words in _commands(path, ids):
        _whole(in_terminal(cols, *args), words)


def test_runs_fits_80_columns_when_the_names_do(store):
    path, ids = store
    out = in_terminal(80, "runs", "--store", path, "--status", "finished", "--experiment", "default")
    lines = [line for line in out.splitlines() if line.strip()]
    assert CHILD in out and max(len(line.rstrip()) for line in lines) <= 80, out


def test_a_pipe_gets_full_width_rows_whatever_columns_says(store):
    path, ids = store
    short = sm.short_ids(ids)
    out = in_pipe("runs", "--store", path)
    for run_id, name in zip([ids[0], ids[2], ids[3]], NAMES):
        row = next(line for line in out.splitlines() if line.startswith(short[run_id]))
        # one line per run, every metric on it, nothing folded
        assert name in row and "finished" in row and "validation_loss_with_a_long_key=0.1234" in row, out
    for args, words in _commands(path, ids):
        out = in_pipe(*args)
        _whole(out, words)
        assert not any(line != line.rstrip() for line in out.splitlines())
