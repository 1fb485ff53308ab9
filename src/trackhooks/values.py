"""Validation and coercion of keys, metric values and params.

Everything here runs on the caller's thread, so the common case (a str key already seen, a float or
int value) must cost almost nothing; anything unusual goes through the slow checks below, which raise
at the call with the key and value named.
"""

from __future__ import annotations

import math
import operator
import os
import stat
from collections.abc import Mapping
TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from typing import Any

from .errors import (
    InvalidKeyError,
    InvalidKeyTypeError,
    InvalidShapeError,
    InvalidValueError,
    OutOfRangeError,
    UnsafePathError,
    short_repr,
)

MAX_KEY_LENGTH = 1000
INT64_MIN = -(2**63) + 1  # -2**63 is the stored sentinel for "no epoch"
INT64_MAX = 2**63 - 1


def check_key(key: object, what: str = "key") -> str:
    if type(key) is not str:
        if isinstance(key, str):
            key = str(key)
        else:
            raise InvalidKeyTypeError(f"{what} must be a str, got {type(key).__name__}: {short_repr(key)}")
    if not key or key.isspace():
        raise InvalidKeyError(f"{what} must not be empty or whitespace: {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"{what} is {len(key)} characters long (at most {MAX_KEY_LENGTH}): {key[:40]!r}...")
    if "\x00" in key:
        raise InvalidKeyError(f"{what} contains a NUL character: {short_repr(key)}")
    return key


# dtypes already found to be real numbers: a tensor logged every step pays for the dtype checks
# (str(dtype) among them) once per process, not once per call
_REAL_DTYPES: set = set()


def check_metric_value(key: str, value: Any) -> None:
    """Raise unless ``value`` is something convert_metric_value() can turn into a float.

    Accepted: int, float, bool (recorded as 0/1), numpy scalars, and any array-like or tensor with
    exactly one element of a real numeric dtype (duck-typed through ``shape``/``dtype``; never
    converted here, so a GPU tensor causes no device sync on the caller's thread).
    """
    t = type(value)
    if t is float or t is int or t is bool:
        return
    if value is None or isinstance(value, (str, bytes, bytearray, complex)):
        raise InvalidValueError(
            f"metric {key!r}: value must be a real number, got {type(value).__name__}: {short_repr(value)}"
        )
    shape = getattr(value, "shape", None)
    if shape is not None and not callable(shape):
        if not isinstance(shape, tuple) or shape:  # 0-d tensors, numpy scalars: nothing to multiply
            try:
                size = 1
                for dim in shape:
                    size *= int(dim)
            except Exception:
                size = -1
            if size != 1:
                raise InvalidShapeError(
                    f"metric {key!r}: value must be a scalar, got {type(value).__name__} of shape "
                    f"{tuple(shape) if size >= 0 else short_repr(shape)}"
                )
        dtype = getattr(value, "dtype", None)
        try:
            if dtype is None or dtype in _REAL_DTYPES:
                return
            hashable = True
        except TypeError:
            hashable = False
        if dtype is not None:
            kind = getattr(dtype, "kind", None)  # numpy and numpy-like dtypes
            if isinstance(kind, str):
                if kind not in "biuf":
                    raise InvalidValueError(f"metric {key!r}: dtype {dtype} is not a real number type")
            elif getattr(dtype, "is_complex", False) or "complex" in str(dtype):
                raise InvalidValueError(f"metric {key!r}: dtype {dtype} is not a real number type")
            if hashable:
                _REAL_DTYPES.add(dtype)
        return
    if isinstance(value, (int, float)) or hasattr(t, "__float__") or hasattr(t, "__index__"):
        return
    raise InvalidValueError(
        f"metric {key!r}: value must be a real number, got {type(value).__name__}: {short_repr(value)}"
    )


def convert_metric_value(value: Any) -> float:
    """Turn an accepted value into a float. Runs on the writer thread (may sync a GPU tensor)."""
    t = type(value)
    if t is float:
        return value
    if t is int or t is bool:
        try:
            return float(value)
        except OverflowError:  # ints beyond float range: documented coercion to +-inf
            return math.inf if value > 0 else -math.inf
    if getattr(value, "shape", None) is not None:
        detach = getattr(value, "detach", None)
        if callable(detach):
            value = detach()
        item = getattr(value, "item", None)
        if callable(item):
            value = item()
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def check_index(value: Any, what: str) -> int | None:
    """Validate a step or epoch: None or an int (numpy ints accepted, bools rejected)."""
    if value is None or type(value) is int:
        if value is not None and not (INT64_MIN <= value <= INT64_MAX):
            raise OutOfRangeError(f"{what} {value} is outside the 64-bit integer range")
        return value
    if isinstance(value, bool):
        raise InvalidValueError(f"{what} must be an int or None, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise InvalidValueError(
            f"{what} must be an int or None, got {type(value).__name__}: {short_repr(value)}"
        ) from None
    return check_index(int(value), what)


# -- params -----------------------------------------------------------------------------------

MAX_PARAM_DEPTH = 200


def param_value(value: Any) -> Any:
    """Coerce a param value to something JSON can hold.

    str/int/float/bool/None stay as they are; lists and tuples of those become lists; anything else
    is recorded as its repr() (documented: params are for reading and comparing, not for unpickling).
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        if type(value) not in (str, bool, int, float, type(None)):
            # numpy scalar subclasses of float, str enums, ...: store the plain builtin
            for base in (bool, int, float, str):
                if isinstance(value, base):
                    return base(value)
        return value
    if isinstance(value, (list, tuple)) and len(value) <= 1000:
        if all(v is None or type(v) in (str, bool, int, float) for v in value):
            return list(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        try:
            return param_value(item())
        except Exception:
            pass
    return short_repr(value, limit=10_000)


def flatten_params(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings with "." ("optimizer.lr"). Self-references become a marker string."""
    if not isinstance(mapping, Mapping):
        raise InvalidValueError(f"params must be a mapping, got {type(mapping).__name__}: {short_repr(mapping)}")
    out: dict[str, Any] = {}
    _flatten(mapping, prefix, out, set(), 0)
    return out


_NOT_MAPPINGS = frozenset({str, int, float, bool, type(None), list, tuple, bytes})


def _flatten(mapping: Mapping, prefix: str, out: dict, on_path: set, depth: int) -> None:
    if depth > MAX_PARAM_DEPTH:
        raise InvalidValueError(f"params nested deeper than {MAX_PARAM_DEPTH} levels at {prefix[:80]!r}")
    on_path.add(id(mapping))
    try:
        for key, value in mapping.items():
            if not isinstance(key, str):
                if isinstance(key, (int, float, bool)) or key is None:
                    key = str(key)  # documented coercion: {1: ...} -> "1"
            check_key(key, "param key")
            full = f"{prefix}.{key}" if prefix else key
            check_key(full, "param key")
            # the builtin scalars first: a first isinstance(value, Mapping) of each type adds ~50
            # weak references to the negative caches of Mapping's ABC subclasses (objects that stay,
            # and push a fresh process toward a full collection inside the fit being recorded)
            if type(value) is dict or (type(value) not in _NOT_MAPPINGS and isinstance(value, Mapping)):
                if id(value) in on_path:
                    out[full] = "<recursive reference>"
                elif not value:
                    out[full] = "{}"
                else:
                    _flatten(value, full, out, on_path, depth + 1)
            else:
                out[full] = param_value(value)
    finally:
        on_path.discard(id(mapping))


def same_param(a: Any, b: Any) -> bool:
    if a == b:
        return type(a) is type(b) or not (isinstance(a, bool) or isinstance(b, bool))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return False


def tag_value(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return str(value)
    return short_repr(value, limit=10_000)


def check_source(path: Any, what: str, allow_dir: bool) -> str:
    """The absolute path of an existing regular file (or directory), else UnsafePathError naming it.

    FIFOs, devices and sockets are refused: reading one could block or never end.
    """
    try:
        path = os.path.abspath(os.fspath(path))
    except TypeError:
        raise InvalidValueError(f"{what} path must be a str or os.PathLike, got {short_repr(path)}") from None
    if "\x00" in path:
        raise UnsafePathError(f"{what} path contains a NUL character: {short_repr(path)}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UnsafePathError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UnsafePathError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        return path
    if allow_dir and stat.S_ISDIR(st.st_mode):
        return path
    kind = "directory" if stat.S_ISDIR(st.st_mode) else "special file (FIFO, device or socket)"
    raise UnsafePathError(f"{what} {path} is a {kind}, not a regular file")
