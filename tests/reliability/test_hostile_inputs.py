"""Hostile and odd input, table-driven: each case is a clear error or a documented coercion.

Every case runs in its own run between two sentinel points; afterwards the run must still finish,
the sentinels must both be stored (no other data lost) and the case's own expectation must hold.
A case that hangs fails through the per-test timeout.
"""

from __future__ import annotations

import decimal
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
import torch

import trackhooks
from trackhooks import (
    InvalidKeyError,
    InvalidShapeError,
    InvalidValueError,
    ParamConflictError,
    TrackhooksError,
    UnsafePathError,
)
from trackhooks.errors import InvalidKeyTypeError


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr boom")

    __str__ = __repr__


class BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("float boom")


def _deep(n: int) -> dict:
    root: dict = {}
    cur = root
    for _ in range(n):
        cur["a"] = {}
        cur = cur["a"]
    cur["leaf"] = 1
    return root


def _selfref() -> dict:
    d: dict = {"x": 1}
    d["me"] = d
    return d


def _selfref_list() -> list:
    x: list = [1]
    x.append(x)
    return x


@dataclass
class Raises:
    exc: type[BaseException]
    match: str | None = None


@dataclass
class Metric:
    """The metric was accepted and reads back as ``values`` (NaN equals NaN, -0.0 keeps its sign)."""

    key: str
    values: list[float]
    steps: list[int] | None = None


@dataclass
class Param:
    key: str
    value: Any


@dataclass
class Check:
    fn: Callable[[Any, Any], None]  # (record, files dir)


def metric(value: Any) -> Callable:
    return lambda run, d: run.log_metric("v", value, step=0)


def key(k: Any) -> Callable:
    return lambda run, d: run.log_metric(k, 1.0, step=0)


def step(s: Any) -> Callable:
    return lambda run, d: run.log_metric("s", 1.0, step=s)


def artifact(path: str, name: str | None = None) -> Callable:
    return lambda run, d: run.log_artifact(os.path.join(d, path) if not path.startswith("/") else path, name=name)


def checkpoint(path: str) -> Callable:
    return lambda run, d: run.log_checkpoint(os.path.join(d, path) if not path.startswith("/") else path)


def _log_steps(run, d) -> None:
    for s, v in ((5, 0.5), (-1, -0.1), (3, 0.3), (3, 0.31), (0, 0.0)):
        run.log_metric("s", v, step=s)
    run.log_metric("s", 9.0)  # step=None: one more than the last step logged (0) -> 1


def _symlink_copied(rec, d) -> None:
    (a,) = [a for a in rec.artifacts() if a.name == "outside"]
    assert not os.path.islink(a.path) and open(a.path).read() == "outside the store"
    assert os.path.realpath(a.path).startswith(os.path.realpath(rec._store.path))


def _nested_name(rec, d) -> None:
    # (a dirty git checkout as the working directory adds its git.diff)
    assert [a.name for a in rec.artifacts() if a.name != "git.diff"] == ["sub/dir/model.txt"]


def _tag(key: str, check: Callable[[str], bool]) -> Check:
    def fn(rec, d) -> None:
        assert check(rec.tags[key]), rec.tags[key]
    return Check(fn)


def _param(key: str, check: Callable[[Any], bool]) -> Check:
    def fn(rec, d) -> None:
        assert check(rec.params[key]), rec.params[key]
    return Check(fn)


HUGE_TAG = "x" * 1_000_000

CASES: list[tuple[str, Callable, Any]] = [
    # metric values
    ("nan", metric(float("nan")), Metric("v", [math.nan])),
    ("+inf", metric(math.inf), Metric("v", [math.inf])),
    ("-inf", metric(-math.inf), Metric("v", [-math.inf])),
    ("huge float", metric(1.7976931348623157e308), Metric("v", [1.7976931348623157e308])),
    ("tiny denormal", metric(5e-324), Metric("v", [5e-324])),
    ("negative zero", metric(-0.0), Metric("v", [-0.0])),
    ("int beyond 2**53 rounds", metric(2**53 + 1), Metric("v", [float(2**53)])),
    ("int beyond float range", metric(10**400), Metric("v", [math.inf])),
    ("negative int beyond float range", metric(-(10**400)), Metric("v", [-math.inf])),
    ("bool", metric(True), Metric("v", [1.0])),
    ("None", metric(None), Raises(InvalidValueError, "NoneType")),
    ("numeric string", metric("1.0"), Raises(InvalidValueError, "str")),
    ("bytes", metric(b"1"), Raises(InvalidValueError, "bytes")),
    ("list", metric([1.0]), Raises(InvalidValueError, "list")),
    ("dict", metric({"a": 1}), Raises(InvalidValueError, "dict")),
    ("complex", metric(1 + 2j), Raises(InvalidValueError, "complex")),
    ("Decimal", metric(decimal.Decimal("1.5")), Metric("v", [1.5])),
    ("numpy float32", metric(np.float32(1.5)), Metric("v", [1.5])),
    ("numpy int64 max", metric(np.int64(2**63 - 1)), Metric("v", [float(2**63 - 1)])),
    ("numpy 0-d", metric(np.array(3.0)), Metric("v", [3.0])),
    ("numpy size-1 2-d", metric(np.array([[4.0]])), Metric("v", [4.0])),
    ("numpy vector", metric(np.array([1.0, 2.0])), Raises(InvalidShapeError, r"shape \(2,\)")),
    ("numpy empty", metric(np.array([])), Raises(InvalidShapeError, r"shape \(0,\)")),
    ("numpy string 0-d", metric(np.array("x")), Raises(InvalidValueError, "not a real number")),
    ("numpy complex", metric(np.complex128(1 + 1j)), Raises(InvalidValueError)),
    ("tensor 0-d", metric(torch.tensor(2.5)), Metric("v", [2.5])),
    ("tensor requires_grad", metric(torch.tensor(1.5, requires_grad=True) * 2), Metric("v", [3.0])),
    ("tensor non-contiguous size 1", metric(torch.arange(8.0).reshape(2, 4)[1:, ::4]), Metric("v", [4.0])),
    ("tensor bfloat16", metric(torch.tensor(1.5, dtype=torch.bfloat16)), Metric("v", [1.5])),
    ("tensor bool", metric(torch.tensor(True)), Metric("v", [1.0])),
    ("tensor vector", metric(torch.tensor([1.0, 2.0])), Raises(InvalidShapeError, r"shape \(2,\)")),
    ("tensor complex", metric(torch.tensor(1 + 2j)), Raises(InvalidValueError, "complex")),
    ("failing __repr__", metric(BadRepr()), Raises(InvalidValueError, "failing repr")),
    ("failing __float__ -> NaN + one warning", metric(BadFloat()), Metric("v", [math.nan])),
    # keys
    ("empty key", key(""), Raises(InvalidKeyError, "empty")),
    ("whitespace key", key("   "), Raises(InvalidKeyError, "whitespace")),
    ("tab/newline key", key("\t\n"), Raises(InvalidKeyError)),
    ("10 kB key", key("k" * 10_000), Raises(InvalidKeyError, "10000 characters")),
    ("1000-char key (the limit)", key("k" * 1000), Metric("k" * 1000, [1.0])),
    ("slash key", key("train/loss"), Metric("train/loss", [1.0])),
    ("dot key", key("."), Metric(".", [1.0])),
    ("dotdot key", key(".."), Metric("..", [1.0])),
    ("NUL key", key("a\x00b"), Raises(InvalidKeyError, "NUL")),
    ("unicode key", key("ünïcödé"), Metric("ünïcödé", [1.0])),
    ("emoji key", key("🚀 loss"), Metric("🚀 loss", [1.0])),
    ("html key", key("<script>alert(1)</script>"), Metric("<script>alert(1)</script>", [1.0])),
    ("int key", key(5), Raises(InvalidKeyTypeError, "int")),
    ("None key", key(None), Raises(InvalidKeyTypeError, "NoneType")),
    # steps
    ("negative/out-of-order/duplicate steps", _log_steps,
     Metric("s", [0.5, -0.1, 0.3, 0.31, 0.0, 9.0], steps=[5, -1, 3, 3, 0, 1])),
    ("bool step", step(True), Raises(InvalidValueError, "bool")),
    ("float step", step(1.5), Raises(InvalidValueError, "float")),
    ("step beyond int64", step(2**63), Raises(ValueError, "64-bit")),
    ("string step", step("3"), Raises(InvalidValueError, "str")),
    ("numpy int step", step(np.int64(3)), Metric("s", [1.0], steps=[3])),
    # params and tags
    ("params nested 100 deep", lambda run, d: run.log_params({"deep": _deep(100)}),
     Param("deep." + "a." * 100 + "leaf", 1)),
    ("self-referencing dict param", lambda run, d: run.log_params({"s": _selfref()}),
     Param("s.me", "<recursive reference>")),
    ("self-referencing list param", lambda run, d: run.log_params({"l": _selfref_list()}), Param("l", "[1, [...]]")),
    ("param with failing __repr__", lambda run, d: run.log_params({"bad": BadRepr()}),
     _param("bad", lambda v: "failing repr" in v)),
    ("bytes param -> repr", lambda run, d: run.log_params({"b": b"\x00\xff"}), Param("b", "b'\\x00\\xff'")),
    ("None param", lambda run, d: run.log_params({"n": None}), Param("n", None)),
    ("params not a mapping", lambda run, d: run.log_params([1, 2]), Raises(InvalidValueError, "mapping")),
    ("param conflict", lambda run, d: (run.log_params({"lr": 0.1}), run.log_params({"lr": 0.2})),
     Raises(ParamConflictError, "lr")),
    ("tag with failing __str__", lambda run, d: run.set_tags({"bad": BadRepr()}), _tag("bad", lambda v: "failing" in v)),
    ("1 MB tag", lambda run, d: run.set_tags({"big": HUGE_TAG}), _tag("big", lambda v: v == HUGE_TAG)),
    # artifacts, checkpoints, datasets
    ("artifact name ../", artifact("real.txt", "../evil.txt"), Raises(UnsafePathError, "escape")),
    ("artifact name absolute", artifact("real.txt", "/etc/passwd"), Raises(UnsafePathError, "absolute")),
    ("artifact name a/../../b", artifact("real.txt", "a/../../b"), Raises(UnsafePathError, "escape")),
    ("artifact name drive letter", artifact("real.txt", "C:\\x"), Raises(UnsafePathError, "absolute")),
    ("artifact name NUL", artifact("real.txt", "a\x00b"), Raises(InvalidKeyError, "NUL")),
    ("artifact nested relative name", artifact("real.txt", "sub/dir/model.txt"), Check(_nested_name)),
    ("artifact FIFO", artifact("fifo"), Raises(UnsafePathError, "FIFO")),
    ("artifact /dev/zero", artifact("/dev/zero"), Raises(UnsafePathError, "special file")),
    ("artifact directory", artifact("."), Raises(UnsafePathError, "directory")),
    ("artifact dangling symlink", artifact("dangling"), Raises(UnsafePathError, "does not exist")),
    ("artifact symlink out of the store", artifact("link-out", "outside"), Check(_symlink_copied)),
    ("checkpoint FIFO", checkpoint("fifo"), Raises(UnsafePathError, "FIFO")),
    ("checkpoint /dev/zero", checkpoint("/dev/zero"), Raises(UnsafePathError, "special file")),
    ("checkpoint NUL in path", checkpoint("a\x00b"), Raises(UnsafePathError, "NUL")),
    ("log_text of an int", lambda run, d: run.log_text("x.txt", 5), Raises(InvalidValueError, "int")),
    ("dataset FIFO", lambda run, d: run.log_dataset(os.path.join(d, "fifo")), Raises(UnsafePathError)),
    ("dataset of an unknown object", lambda run, d: run.log_dataset(BadRepr()), Raises(InvalidValueError, "BadRepr")),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile-files")
    (d / "real.txt").write_text("hello")
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("outside the store")
    os.symlink(outside, d / "link-out")
    os.symlink(d / "missing", d / "dangling")
    os.mkfifo(d / "fifo")
    return str(d)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hostile") / "store")


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case, action, expect", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(store, files, case, action, expect, recwarn):
    with trackhooks.start_run(store=store, experiment="hostile", name=case) as run:
        run.log_metric("sentinel", 0.0, step=0)
        if isinstance(expect, Raises):
            with pytest.raises(expect.exc, match=expect.match) as info:
                action(run, files)
            assert isinstance(info.value, TrackhooksError)  # also the builtin given in the table
            assert len(str(info.value)) < 400  # names the culprit without flooding the log
        else:
            action(run, files)
        run.log_metric("sentinel", 1.0, step=1)
    rec = trackhooks.open_store(store).run(run.id)
    assert rec.status == "finished"
    assert rec.metric("sentinel").values == [0.0, 1.0]  # nothing else was lost
    if isinstance(expect, Metric):
        s = rec.metric(expect.key)
        assert len(s) == len(expect.values) and all(_same(a, b) for a, b in zip(s.values, expect.values)), s.values
        if expect.steps is not None:
            assert s.steps == expect.steps
    elif isinstance(expect, Param):
        assert rec.params[expect.key] == expect.value
    elif isinstance(expect, Check):
        expect.fn(rec, files)
    trackhooks_warnings = [w for w in recwarn if "trackhooks" in str(w.message)]
    assert len(trackhooks_warnings) <= 1  # at most one warning per problem


def test_table_has_at_least_40_cases():
    assert len(CASES) >= 40
