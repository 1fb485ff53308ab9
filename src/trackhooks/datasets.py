"""Dataset fingerprints: a stable content digest, a schema and a row count for the data a run saw.

Everything here is duck-typed: this module never imports numpy, pandas, polars, torch or xgboost.
It reads arrays through the buffer protocol, ``.numpy()``, ``to_numpy()`` and ``tobytes()``.

The digest is the SHA-256 (hardware-accelerated on current x86 and ARM CPUs, ~1.4 GB/s on one core
here) of a *canonical byte stream* that depends only on the data's content, never on the process,
the machine's byte order or the memory layout. The stream is specified in docs/datasets.md; in short::

    "trackhooks-dataset-v1\\n" + ("full\\n" | "sampled\\n") + canonical(data)
    array     "A" + json{dtype, shape} + "\\n" + values in C order, little-endian
    table     "T" + json{columns, n_rows} + "\\n" + canonical(column) for each column
    sequence  "L" + json{n} + "\\n" + item(x) for each element (arrays inside: canonical(array))
    mapping   "M" + json{n} + "\\n" + item(key) + canonical(value) for each key, sorted
    file      "F" + json{size} + "\\n" + the file's bytes
    directory "R" + json{n_files} + "\\n" + ("f" + json{path, size} + "\\n" + bytes) per file, sorted

Data whose cost (bytes, or 1024 per Python object) exceeds ``full_hash_bytes`` is digested from a
deterministic sample (evenly spaced 64 KiB chunks / 16-item blocks, ``sample_bytes`` in all) and
flagged ``sampled=True``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
import json
import math
import os
import stat
import struct
import sys
import time
import uuid
from collections.abc import Mapping
from operator import itemgetter as _itemgetter
from pathlib import PurePath
from typing import Any, Callable, Iterator, Union

from .errors import InvalidValueError, short_repr
from .store.records import DatasetRecord
from .sink import DatasetEvent
from .values import check_key, check_source

MAGIC = b"trackhooks-dataset-v1\n"

#: environment variables (read at each call) and their defaults
ENV_FULL_HASH_BYTES = "TRACKHOOKS_DATASET_FULL_HASH_BYTES"
ENV_SAMPLE_BYTES = "TRACKHOOKS_DATASET_SAMPLE_BYTES"
ENV_SYNC_BYTES = "TRACKHOOKS_DATASET_SYNC_BYTES"
ENV_MAX_ITEMS = "TRACKHOOKS_DATASET_MAX_ITEMS"
DEFAULT_FULL_HASH_BYTES = 1 << 30  # above this, a sampled digest (~0.8 s of hashing on one core here)
DEFAULT_SAMPLE_BYTES = 64 << 20  # how much a sampled digest reads
DEFAULT_SYNC_BYTES = 1 << 20  # in-memory data this small is hashed in the call (< 1 ms)
DEFAULT_MAX_ITEMS = 1024  # items read from a generic map-style dataset (dataset[i] may do I/O)

CHUNK = 64 << 10  # bytes per sampled chunk
ITEM_BLOCK = 16  # items per sampled block of Python objects
ITEM_COST = 1024  # bytes a Python object counts for in the cost model (~1 M objects/s vs ~1 GB/s)
FEED_BLOCK = 4 << 20  # bytes fed to the hash at once from a non-contiguous array or a file
MAX_LISTED_FILES = 10_000  # files listed in a directory's schema (all of them are hashed)
_EXPAND_MAX = 64  # a top-level list/tuple of at most this many arrays/tables is hashed array by array


class Fingerprint(tuple):
    """``(digest, schema, n_rows, source, sampled)``, with those names as attributes.

    A tuple subclass written out rather than a typing.NamedTuple, which costs ~0.2 ms to define (it
    compiles its ``__new__``) in every integration's set-up (``prepare_runs`` imports this module)."""

    __slots__ = ()
    _fields = ("digest", "schema", "n_rows", "source", "sampled")

    def __new__(cls, digest: str, schema: dict, n_rows: int | None, source: str | None,
                sampled: bool) -> "Fingerprint":
        return tuple.__new__(cls, (digest, schema, n_rows, source, sampled))

    def __getnewargs__(self) -> tuple:
        return tuple(self)

    def __repr__(self) -> str:
        return "Fingerprint(" + ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self)) + ")"

    digest = property(_itemgetter(0))
    schema = property(_itemgetter(1))
    n_rows = property(_itemgetter(2))
    source = property(_itemgetter(3))
    sampled = property(_itemgetter(4))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise InvalidValueError(f"${name} must be a number of bytes/items, got {raw!r}") from None
    return max(value, 1)


def _j(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def _type_name(obj: Any) -> str:
    t = type(obj)
    mod = t.__module__
    return t.__qualname__ if mod == "builtins" else f"{mod}.{t.__qualname__}"


# ---------------------------------------------------------------------------------------------
# segments: runs of the canonical stream that can be read in full or sampled


class _Bytes:
    """Canonical bytes of known length: a C-contiguous buffer, a non-contiguous array or a file."""

    __slots__ = ("nbytes", "itemsize", "_mv", "_arr", "_path")

    def __init__(self, nbytes: int, itemsize: int, mv: memoryview | None = None, arr: Any = None,
                 path: str | None = None):
        self.nbytes, self.itemsize, self._mv, self._arr, self._path = nbytes, max(itemsize, 1), mv, arr, path

    @property
    def cost(self) -> int:
        return self.nbytes

    def feed(self, h: Any) -> None:
        if self._mv is not None:
            h.update(self._mv)
        elif self._arr is not None:
            a = self._arr
            if not a.shape:
                h.update(a.tobytes())
                return
            rows = a.shape[0]
            row_bytes = max(1, self.nbytes // max(rows, 1))
            step = max(1, FEED_BLOCK // row_bytes)
            for i in range(0, rows, step):
                h.update(a[i:i + step].tobytes())  # C order whatever the layout
        else:
            with open(self._path, "rb") as f:
                for chunk in iter(lambda: f.read(FEED_BLOCK), b""):
                    h.update(chunk)

    def read(self, start: int, count: int) -> bytes:
        """``count`` items from item ``start`` (items are ``itemsize`` bytes)."""
        isz = self.itemsize
        if self._mv is not None:
            return self._mv[start * isz:(start + count) * isz].tobytes()
        if self._arr is not None:
            a = self._arr
            return a.tobytes() if not a.shape else a.flat[start:start + count].tobytes()
        with open(self._path, "rb") as f:
            f.seek(start * isz)
            return f.read(count * isz)

    def feed_sampled(self, h: Any, share: int) -> None:
        n_items = self.nbytes // self.itemsize
        per = max(1, CHUNK // self.itemsize)
        if self.nbytes <= share or n_items <= per:
            h.update(b"=")
            self.feed(h)
            return
        k = max(1, min(share // (per * self.itemsize), n_items // per))
        h.update(b"S" + struct.pack("<qq", k, per))
        for i in range(k):
            start = 0 if k == 1 else i * (n_items - per) // (k - 1)
            h.update(self.read(start, per))


class _Items:
    """A run of Python objects, each encoded with ``_feed_item``; read in blocks."""

    __slots__ = ("n", "_block", "max_items")

    def __init__(self, n: int, block: Callable[[int, int], Any], max_items: int | None = None):
        self.n, self._block, self.max_items = n, block, max_items

    @property
    def cost(self) -> int:
        return self.n * ITEM_COST

    @property
    def forced(self) -> bool:
        return self.max_items is not None and self.n > self.max_items

    def feed(self, h: Any) -> None:
        for i in range(0, self.n, 4096):
            _feed_block(h, self._block(i, min(self.n, i + 4096)))

    def feed_sampled(self, h: Any, share: int) -> None:
        budget = max(1, share // ITEM_COST)
        if self.max_items is not None:
            budget = min(budget, self.max_items)
        if self.n <= budget:
            h.update(b"=")
            self.feed(h)
            return
        per = min(ITEM_BLOCK, budget)
        k = max(1, budget // per)
        h.update(b"S" + struct.pack("<qq", k, per))
        for i in range(k):
            start = 0 if k == 1 else i * (self.n - per) // (k - 1)
            _feed_block(h, self._block(start, start + per))


Token = Union[bytes, _Bytes, _Items]


# ---------------------------------------------------------------------------------------------
# arrays (numpy, torch, buffers) without importing any of them


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "numel")


def _torch_numpy(t: Any) -> tuple[Any, str | None]:
    """(numpy array holding the tensor's bytes, dtype name override or None)."""
    t = t.detach()
    if getattr(t, "is_sparse", False):
        t = t.to_dense()
    if t.device.type != "cpu":
        t = t.cpu()
    for fix in ("resolve_conj", "resolve_neg"):
        if hasattr(t, fix):
            t = getattr(t, fix)()
    try:
        return t.numpy(), None
    except (TypeError, RuntimeError):
        # dtypes numpy lacks (bfloat16, float8...): hash the raw little-endian bytes under torch's name
        torch = sys.modules[type(t).__module__.split(".")[0]]
        name = str(t.dtype).replace("torch.", "")
        raw = t.contiguous().view(torch.uint8) if t.dim() else t.reshape(1).view(torch.uint8)
        return raw.numpy(), name


def _canonical_array(a: Any, name: str | None = None, shape: list[int] | None = None) -> list[Token]:
    """Tokens of a numpy (or numpy-like) array: header + its values in C order, little-endian."""
    shape = [int(s) for s in a.shape] if shape is None else shape
    dtype = a.dtype
    kind = dtype.kind
    if kind in "OUSV" and name is None:
        if kind == "V" and getattr(dtype, "names", None):
            header = {"dtype": "struct", "fields": list(dtype.names), "shape": shape}
        else:
            header = {"dtype": "object", "shape": shape}
        flat = a.reshape(-1)
        return [b"A" + _j(header), _Items(int(flat.shape[0]), lambda i, j: flat[i:j].tolist())]
    if name is None:
        name = dtype.name
        if kind in "mM":
            a = a.view("int64")
    order = getattr(dtype, "byteorder", "=")
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    header = b"A" + _j({"dtype": name, "shape": shape})
    nbytes = int(a.nbytes)
    itemsize = int(a.dtype.itemsize)
    flags = getattr(a, "flags", None)
    if flags is not None and flags["C_CONTIGUOUS"]:
        try:
            return [header, _Bytes(nbytes, itemsize, mv=memoryview(a).cast("B"))]
        except (TypeError, ValueError):
            pass
    return [header, _Bytes(nbytes, itemsize, arr=a)]


_FORMAT_KIND = {"b": "int", "h": "int", "i": "int", "l": "int", "q": "int", "n": "int",
                "B": "uint", "H": "uint", "I": "uint", "L": "uint", "Q": "uint", "N": "uint",
                "e": "float", "f": "float", "d": "float", "?": "bool", "c": "uint"}


def _buffer_dtype(mv: memoryview) -> str:
    fmt = mv.format.lstrip("@=<!")
    kind = _FORMAT_KIND.get(fmt)
    if kind is None or mv.format[:1] in (">", "!"):
        raise InvalidValueError(f"log_dataset: unsupported buffer format {mv.format!r}")
    return "bool" if kind == "bool" else f"{kind}{mv.itemsize * 8}"


def _buffer_tokens(mv: memoryview) -> list[Token]:
    name = _buffer_dtype(mv)
    shape = list(mv.shape or ())
    if not mv.c_contiguous:
        mv = memoryview(mv.tobytes())
    if sys.byteorder == "big" and mv.itemsize > 1:
        raise InvalidValueError("log_dataset: multi-byte buffers on big-endian machines need numpy arrays")
    return [b"A" + _j({"dtype": name, "shape": shape}), _Bytes(mv.nbytes, mv.itemsize, mv=mv.cast("B"))]


def _is_arraylike(x: Any) -> bool:
    return hasattr(x, "dtype") and hasattr(x, "shape") and (hasattr(x, "tobytes") or
                                                               hasattr(x, "__array_interface__"))


def _is_series(x: Any) -> bool:
    mod = type(x).__module__
    return (hasattr(x, "to_numpy") and not hasattr(x, "columns") and
            (getattr(x, "ndim", None) == 1 or mod.startswith("polars")))


def _is_table(x: Any) -> bool:
    # iloc/get_columns first: ``columns`` of a polars LazyFrame resolves its whole query plan
    return (hasattr(x, "iloc") or hasattr(x, "get_columns")) and hasattr(x, "columns")


def _table_columns(df: Any) -> tuple[list[str], list[Any]]:
    if hasattr(df, "get_columns"):  # polars
        cols = list(df.get_columns())
        return [str(c.name) for c in cols], cols
    names = [str(c) for c in df.columns]
    return names, [df.iloc[:, i] for i in range(len(names))]


def _array_tokens(x: Any) -> list[Token] | None:
    """Tokens of anything array-like (numpy, torch, Series, buffer, ``__array__``); None otherwise."""
    if _is_torch_tensor(x):
        a, name = _torch_numpy(x)
        return _canonical_array(a, name, [int(s) for s in x.shape] if name else None)
    if _is_series(x):
        return _canonical_array(x.to_numpy())
    if _is_arraylike(x):
        return _canonical_array(x)
    if isinstance(x, (bytes, bytearray, memoryview)) or _has_buffer(x):
        return _buffer_tokens(memoryview(x))
    if hasattr(x, "__array__") and not isinstance(x, (str, Mapping)) and not _is_table(x):
        return _canonical_array(x.__array__())
    return None


def _has_buffer(x: Any) -> bool:
    if isinstance(x, (str, list, tuple, dict)) or x is None:
        return False
    try:
        memoryview(x).release()
        return True
    except TypeError:
        return False


# ---------------------------------------------------------------------------------------------
# Python objects (items of sequences, object columns, dataset items)


def _is_missing(x: Any) -> bool:
    return x is None or (type(x).__name__ in ("NAType", "NaTType"))


def _feed_item(h: Any, x: Any) -> None:
    t = type(x)
    if t is float:
        h.update(b"N" if x != x else b"f" + struct.pack("<d", x))
    elif t is str:
        b = x.encode("utf-8", "surrogatepass")
        h.update(b"s%d:" % len(b) + b)
    elif t is int:
        h.update(b"i%d;" % x)
    elif t is bool:
        h.update(b"?1" if x else b"?0")
    elif _is_missing(x):
        h.update(b"N")
    elif isinstance(x, (list, tuple)):
        h.update(b"L" + _j({"n": len(x)}))
        for e in x:
            _feed_item(h, e)
    elif isinstance(x, Mapping):
        h.update(b"M" + _j({"n": len(x)}))
        for kb, v in sorted(((_item_bytes(k), v) for k, v in x.items()), key=lambda kv: kv[0]):
            h.update(kb)
            _feed_tokens(h, _tokens_of_value(v))
    elif isinstance(x, bool):
        h.update(b"?1" if x else b"?0")
    elif isinstance(x, int):
        h.update(b"i%d;" % int(x))
    elif isinstance(x, float):
        h.update(b"N" if x != x else b"f" + struct.pack("<d", float(x)))
    elif isinstance(x, str):
        _feed_item(h, str(x))
    elif isinstance(x, (bytes, bytearray)):
        h.update(b"b%d:" % len(x) + bytes(x))
    elif getattr(x, "shape", None) == () or (_is_torch_tensor(x) and x.dim() == 0):
        _feed_item(h, x.item())  # numpy scalars and 0-d arrays/tensors are their Python value
    elif isinstance(x, (_dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID, PurePath, complex)):
        if isinstance(x, _dt.datetime) and x != x:  # NaT-like
            h.update(b"N")
            return
        _feed_item_text(h, x)
    else:
        tokens = _table_tokens(x) if _is_table(x) else _array_tokens(x)
        if tokens is None:
            raise InvalidValueError(f"log_dataset: cannot fingerprint an element of type {_type_name(x)} "
                                    f"({short_repr(x)}); pass arrays, numbers, strings or a name only")
        _feed_tokens(h, tokens)


_pack_double = struct.Struct("<d").pack


def _feed_block(h: Any, items: Any) -> None:
    """``_feed_item`` for each item, with the common scalar types inlined and one hash update."""
    out: list[bytes] = []
    app = out.append
    for x in items:
        t = type(x)
        if t is float:
            app(b"N" if x != x else b"f" + _pack_double(x))
        elif t is str:
            b = x.encode("utf-8", "surrogatepass")
            app(b"s%d:" % len(b))
            app(b)
        elif t is int:
            app(b"i%d;" % x)
        elif x is None:
            app(b"N")
        else:
            c = _Collect()
            _feed_item(c, x)
            out.extend(c.parts)
    h.update(b"".join(out))


def _feed_item_text(h: Any, x: Any) -> None:
    b = f"{type(x).__name__}:{x.isoformat() if hasattr(x, 'isoformat') else x}".encode()
    h.update(b"r%d:" % len(b) + b)


class _Collect:
    """A hash-like sink that keeps the bytes (to sort mapping keys by their encoding)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def update(self, b: Any) -> None:
        self.parts.append(bytes(b))


def _item_bytes(x: Any) -> bytes:
    c = _Collect()
    _feed_item(c, x)
    return b"".join(c.parts)


def _feed_tokens(h: Any, tokens: list[Token]) -> None:
    for tok in tokens:
        if isinstance(tok, bytes):
            h.update(tok)
        else:
            tok.feed(h)


# ---------------------------------------------------------------------------------------------
# containers


def _table_tokens(df: Any) -> list[Token]:
    names, cols = _table_columns(df)
    n = int(df.shape[0])
    tokens: list[Token] = [b"T" + _j({"columns": names, "n_rows": n})]
    for c in cols:
        tokens += _canonical_array(c.to_numpy())
    return tokens


def _sequence_tokens(seq: Any) -> list[Token]:
    n = len(seq)
    header = b"L" + _j({"n": n})
    if 0 < n <= _EXPAND_MAX and all(_is_structured(x) for x in seq):
        tokens: list[Token] = [header]
        for x in seq:
            tokens += _tokens_of_value(x)
        return tokens
    return [header, _Items(n, lambda i, j: seq[i:j])]


def _is_structured(x: Any) -> bool:
    return (_is_torch_tensor(x) and x.dim() > 0) or _is_table(x) or _is_series(x) or \
        (_is_arraylike(x) and getattr(x, "shape", ()) != ())


def _mapping_tokens(m: Mapping) -> list[Token]:
    tokens: list[Token] = [b"M" + _j({"n": len(m)})]
    for kb, v in sorted(((_item_bytes(k), v) for k, v in m.items()), key=lambda kv: kv[0]):
        tokens.append(kb)
        tokens += _tokens_of_value(v)
    return tokens


def _tokens_of_value(x: Any) -> list[Token]:
    """Tokens of a nested value: arrays and tables stream, anything else is one Python item.

    Must produce exactly the bytes ``_feed_item(x)`` produces, so that expanded and itemwise
    sequences hash equal.
    """
    if _is_table(x):
        return _table_tokens(x)
    if _is_structured(x):
        return _array_tokens(x) or []
    if isinstance(x, (list, tuple)):
        return _sequence_tokens(x)
    if isinstance(x, Mapping):
        return _mapping_tokens(x)
    return [_item_bytes(x)]


def _sparse_tokens(m: Any) -> list[Token]:
    tokens: list[Token] = [b"P" + _j({"format": str(m.format), "shape": [int(s) for s in m.shape]})]
    tokens += _canonical_array(m.data)
    tokens += _canonical_array(m.indices.astype("int64"))
    tokens += _canonical_array(m.indptr.astype("int64"))
    return tokens


# ---------------------------------------------------------------------------------------------
# files


def _walk(path: str) -> Iterator[tuple[str, str, int]]:
    """(relative posix path, absolute path, size) of every regular file under ``path``, sorted."""
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for n in sorted(names):
            full = os.path.join(root, n)
            try:
                st = os.stat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield os.path.relpath(full, path).replace(os.sep, "/"), full, st.st_size


def _path_plan(path: str) -> tuple[Callable[[], list[Token]], Callable[[], dict], int | None, int | None]:
    """(tokens(), schema(), n_rows or None when unknown yet, cheap cost or None)."""
    if os.path.isdir(path):
        files: list[tuple[str, str, int]] = []

        def listing() -> list[tuple[str, str, int]]:
            if not files:
                files.extend(_walk(path))
            return files

        def tokens() -> list[Token]:
            fs = listing()
            out: list[Token] = [b"R" + _j({"n_files": len(fs)})]
            for rel, full, size in fs:
                out.append(b"f" + _j({"path": rel, "size": size}))
                out.append(_Bytes(size, 1, path=full))
            return out

        def schema() -> dict:
            fs = listing()
            s = {"kind": "directory", "n_files": len(fs), "total_size": sum(f[2] for f in fs),
                 "files": [{"path": r, "size": n} for r, _, n in fs[:MAX_LISTED_FILES]]}
            if len(fs) > MAX_LISTED_FILES:
                s["files_truncated"] = True
            return s

        return tokens, schema, None, None
    size = os.path.getsize(path)
    return (lambda: [b"F" + _j({"size": size}), _Bytes(size, 1, path=path)],
            lambda: {"kind": "file", "size": size, "files": [{"path": os.path.basename(path), "size": size}]},
            None, size)


# ---------------------------------------------------------------------------------------------
# classification (caller's thread: cheap metadata only) and hashing


class _Plan:
    """What to hash and how to describe it. ``tokens()`` may convert data (writer thread)."""

    def __init__(self, kind: str, tokens: Callable[[], list[Token]], schema: Callable[[], dict] | dict,
                 n_rows: int | None, name: str, cost: int | None, source: str | None = None,
                 fallback_n: int | None = None):
        self.kind, self.tokens, self._schema, self.n_rows = kind, tokens, schema, n_rows
        self.name, self.cost, self.source, self.fallback_n = name, cost, source, fallback_n
        self.basis = "content"

    def schema(self) -> dict:
        return self._schema() if callable(self._schema) else dict(self._schema)


def _shape_of(x: Any) -> list[int]:
    return [int(s) for s in x.shape]


def _array_meta(x: Any) -> tuple[dict, int | None]:
    """(schema, cost estimate) from attributes only: no conversion, no device sync."""
    shape = _shape_of(x)
    dtype = x.dtype
    size = math.prod(shape)
    if _is_torch_tensor(x):
        name = str(dtype).replace("torch.", "")
        est = None if x.device.type != "cpu" else size * int(x.element_size())
    else:
        name = str(dtype)
        itemsize = getattr(dtype, "itemsize", 8)
        est = size * (ITEM_COST if getattr(dtype, "kind", "") in "OUSV" else int(itemsize or 8))
    return {"kind": "array", "type": _type_name(x), "shape": shape, "dtype": name}, est


def _classify(data: Any) -> _Plan:
    tname = _type_name(data)
    short = type(data).__name__
    if isinstance(data, (str, os.PathLike)):
        path = check_source(data, "dataset", allow_dir=True)
        st = os.stat(path)
        tokens, schema, n_rows, cost = _path_plan(path)
        return _Plan("directory" if stat.S_ISDIR(st.st_mode) else "file", tokens, schema, n_rows,
                     os.path.basename(path.rstrip(os.sep)) or path, cost, source=path)
    if short.endswith("DataLoader") and hasattr(data, "dataset"):
        plan = _classify(data.dataset)
        inner = plan._schema

        def schema() -> dict:
            s = inner() if callable(inner) else dict(inner)
            s["loader"] = tname
            return s

        plan._schema = schema
        return plan
    if short in ("DMatrix", "QuantileDMatrix", "DeviceQuantileDMatrix") and hasattr(data, "num_row"):
        return _dmatrix_plan(data, tname)
    if all(hasattr(data, a) for a in ("indptr", "indices", "data", "shape")) and \
            getattr(data, "format", None) in ("csr", "csc"):
        shape = _shape_of(data)
        return _Plan("sparse", lambda: _sparse_tokens(data),
                     {"kind": "sparse", "type": tname, "format": data.format, "shape": shape,
                      "dtype": str(data.dtype), "nnz": int(data.nnz)},
                     shape[0], short, int(data.nnz) * 16)
    if _is_table(data):
        names = [str(c) for c in data.columns]
        shape = _shape_of(data)
        dtypes = [str(d) for d in (data.dtypes if not callable(data.dtypes) else data.dtypes())]
        est = shape[0] * max(len(names), 1) * (8 if all(d[:3] in ("int", "flo", "uin", "boo", "Int", "Flo", "UIn",
                                                                   "Boo") for d in dtypes) else ITEM_COST)
        return _Plan("table", lambda: _table_tokens(data),
                     {"kind": "table", "type": tname, "shape": shape, "columns": names, "dtypes": dtypes},
                     shape[0], short, est)
    if _is_torch_tensor(data):
        schema, est = _array_meta(data)
        return _Plan("array", lambda: _array_tokens(data) or [], schema, schema["shape"][0] if schema["shape"]
                     else None, short, est)
    if _is_series(data):
        n = len(data)
        dtype = str(data.dtype)
        est = n * (8 if dtype[:3].lower() in ("int", "flo", "uin", "boo") else ITEM_COST)
        schema = {"kind": "array", "type": tname, "shape": [n], "dtype": dtype}
        if getattr(data, "name", None) is not None:
            schema["series_name"] = str(data.name)
        return _Plan("array", lambda: _canonical_array(data.to_numpy()), schema, n, short, est)
    if _is_arraylike(data):
        schema, est = _array_meta(data)
        return _Plan("array", lambda: _canonical_array(data), schema,
                     schema["shape"][0] if schema["shape"] else None, short, est)
    if isinstance(data, (bytes, bytearray, memoryview)) or _has_buffer(data):
        mv = memoryview(data)
        name = _buffer_dtype(mv)
        shape = list(mv.shape or ())
        return _Plan("array", lambda: _buffer_tokens(mv),
                     {"kind": "array", "type": tname, "shape": shape, "dtype": name},
                     shape[0] if shape else None, short, mv.nbytes)
    tensors = getattr(data, "tensors", None)
    if isinstance(tensors, tuple) and tensors and all(_is_torch_tensor(t) or _is_arraylike(t) for t in tensors):
        metas = [_array_meta(t) for t in tensors]
        costs = [m[1] for m in metas]
        return _Plan("dataset", lambda: _sequence_tokens(tuple(tensors)),
                     {"kind": "dataset", "type": tname, "length": len(data),
                      "tensors": [{"shape": m[0]["shape"], "dtype": m[0]["dtype"]} for m in metas]},
                     len(data), short, None if None in costs else sum(c for c in costs if c is not None))
    if isinstance(data, Mapping):
        _check_encodable(list(data.keys()) + list(data.values()), "mapping")
        keys = [str(k) for k in data.keys()]
        return _Plan("mapping", lambda: _mapping_tokens(data), {"kind": "mapping", "type": tname, "keys": keys},
                     _common_len(data.values()), short, None)
    if isinstance(data, (list, tuple, range)):
        n = len(data)
        snapshot = data if isinstance(data, (tuple, range)) else list(data)  # later appends do not count
        structured = 0 < n <= _EXPAND_MAX and all(_is_structured(x) for x in snapshot)
        if not structured:
            _check_encodable(snapshot[:100], type(data).__name__)
        schema: dict = {"kind": "sequence", "type": tname, "length": n}
        if structured:
            schema["items"] = [_value_meta(x) for x in snapshot]
        else:
            schema["item_types"] = sorted({_type_name(x) for x in snapshot[:100]})
        rows = _common_len(snapshot) if structured else n
        return _Plan("sequence", lambda: _sequence_tokens(snapshot), schema, rows, short,
                     None if structured else n * ITEM_COST)
    if hasattr(data, "__array__") and not isinstance(data, (set, frozenset)):
        return _Plan("array", lambda: _canonical_array(data.__array__()), {"kind": "array", "type": tname},
                     None, short, None)
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (set, frozenset)):
        try:
            n = len(data)
        except Exception as exc:
            raise InvalidValueError(f"log_dataset: len() of {tname} failed: {exc}") from None
        max_items = _env_int(ENV_MAX_ITEMS, DEFAULT_MAX_ITEMS)
        plan = _Plan("dataset", lambda: [b"L" + _j({"n": n}),
                                         _Items(n, lambda i, j: [data[k] for k in range(i, j)], max_items)],
                     {"kind": "dataset", "type": tname, "length": n}, n, short, None, fallback_n=n)
        return plan
    hint = ""
    if hasattr(data, "__iter__") or hasattr(data, "__next__"):
        hint = " (iterators and iterable datasets have no length and would be consumed; pass a list, an " \
               "array or the underlying map-style dataset)"
    if short == "LazyFrame":
        hint = " (call .collect() first)"
    raise InvalidValueError(
        f"log_dataset does not support {tname}{hint}; supported: numpy arrays, torch tensors and datasets, "
        "pandas/polars DataFrames and Series, xgboost DMatrix, scipy sparse matrices, buffers, lists, tuples, "
        "dicts of arrays, and file or directory paths")


_SCALARS = (int, float, str, bytes, bytearray, bool, type(None), _dt.date, _dt.time, _dt.timedelta,
            decimal.Decimal, uuid.UUID, PurePath, complex)


def _unencodable(x: Any, depth: int = 0) -> str | None:
    """The type name of the first thing in ``x`` that ``_feed_item`` cannot encode (a cheap look at
    the first few elements, no hashing), or None. Lets the caller's thread reject what the writer
    thread could only warn about."""
    if isinstance(x, _SCALARS) or _is_missing(x) or depth > 3:
        return None
    if isinstance(x, (list, tuple)):
        items: Any = x[:10]
    elif isinstance(x, Mapping):
        items = [v for _, v in zip(range(10), x.values())]
    elif _is_table(x) or _is_series(x) or _is_arraylike(x) or _is_torch_tensor(x) or _has_buffer(x) or \
            getattr(x, "shape", None) == () or hasattr(x, "__array__"):
        return None
    else:
        return _type_name(x)
    for item in items:
        bad = _unencodable(item, depth + 1)
        if bad is not None:
            return bad
    return None


def _check_encodable(values: Any, what: str) -> None:
    for v in values:
        bad = _unencodable(v)
        if bad is not None:
            raise InvalidValueError(f"log_dataset: cannot fingerprint an element of type {bad} in this {what}; "
                                    "pass arrays, numbers, strings or a name only")


def _value_meta(x: Any) -> dict:
    if _is_table(x):
        return {"kind": "table", "shape": _shape_of(x), "columns": [str(c) for c in x.columns]}
    if _is_series(x):
        return {"kind": "array", "shape": [len(x)], "dtype": str(x.dtype)}
    return {k: v for k, v in _array_meta(x)[0].items() if k != "type"}


def _common_len(values: Any) -> int | None:
    lens = set()
    for v in values:
        try:
            shape = getattr(v, "shape", None)
            lens.add(int(shape[0]) if shape else len(v))
        except Exception:
            return None
    return lens.pop() if len(lens) == 1 else None


def _dmatrix_plan(dm: Any, tname: str) -> _Plan:
    rows, cols = int(dm.num_row()), int(dm.num_col())
    names = list(dm.feature_names) if dm.feature_names is not None else None
    types = list(dm.feature_types) if dm.feature_types is not None else None
    quantile = "Quantile" in type(dm).__name__
    schema = {"kind": "dmatrix", "type": tname, "shape": [rows, cols], "feature_names": names,
              "feature_types": types}
    plan = _Plan("dmatrix", lambda: [], schema, rows, type(dm).__name__, None)

    def tokens() -> list[Token]:
        out: list[Token] = [b"X" + _j({"shape": [rows, cols], "feature_names": names, "feature_types": types})]
        try:
            out += _sparse_tokens(dm.get_data())
            out.append(b"q" if quantile else b"d")
            plan.basis = "quantized" if quantile else "content"
        except Exception:
            out.append(b"-")  # data not reachable (e.g. external memory): shape and labels only
            plan.basis = "shape+labels"
        for getter in ("get_label", "get_weight", "get_base_margin"):
            try:
                out += _canonical_array(getattr(dm, getter)())
            except Exception:
                out.append(b"-")
        return out

    plan.tokens = tokens
    return plan


def _hash(tokens: list[Token], full_limit: int, sample_bytes: int) -> tuple[str, bool]:
    segments = [t for t in tokens if not isinstance(t, bytes)]
    total = sum(s.cost for s in segments)
    sampled = total > full_limit or any(isinstance(s, _Items) and s.forced for s in segments)
    h = hashlib.sha256(MAGIC + (b"sampled\n" if sampled else b"full\n"))
    for t in tokens:
        if isinstance(t, bytes):
            h.update(t)
        elif not sampled:
            t.feed(h)
        else:
            share = sample_bytes * t.cost // total if total else sample_bytes
            t.feed_sampled(h, max(share, 1))
    return h.hexdigest(), sampled


def _metadata_digest(plan: _Plan, tname: str) -> str:
    return hashlib.sha256(MAGIC + b"metadata\n" + _j({"type": tname, "n": plan.fallback_n})).hexdigest()


def fingerprint(data: Any, *, full_hash_bytes: int | None = None, sample_bytes: int | None = None) -> Fingerprint:
    """Digest, schema, row count, source path and sampled flag of ``data``, computed now.

    Raises InvalidValueError (a TypeError) naming the type when ``data`` is not supported.
    """
    plan = _classify(data)
    return _run_plan(plan, _type_name(data), full_hash_bytes, sample_bytes)


def _run_plan(plan: _Plan, tname: str, full_hash_bytes: int | None, sample_bytes: int | None) -> Fingerprint:
    full = full_hash_bytes if full_hash_bytes is not None else _env_int(ENV_FULL_HASH_BYTES, DEFAULT_FULL_HASH_BYTES)
    sample = sample_bytes if sample_bytes is not None else _env_int(ENV_SAMPLE_BYTES, DEFAULT_SAMPLE_BYTES)
    try:
        digest, sampled = _hash(plan.tokens(), full, sample)
    except Exception:
        if plan.fallback_n is None:
            raise
        # a dataset whose items we cannot encode (images, custom objects): name, type and length only
        digest, sampled = _metadata_digest(plan, tname), True
        plan.basis = "metadata"
    schema = plan.schema()
    if plan.basis != "content":
        sampled = True
    schema["digest_basis"] = "sample" if (sampled and plan.basis == "content") else plan.basis
    n_rows = plan.n_rows
    if n_rows is None and schema.get("kind") == "directory":
        n_rows = schema["n_files"]
    return Fingerprint(digest, schema, n_rows, plan.source, sampled)


def prepare_dataset(run_id: str, data: Any, *, name: str | None,
                    context: str) -> tuple[Callable[[], DatasetEvent], DatasetRecord]:
    """Classify ``data`` on the caller's thread; hash it now when cheap, else in the returned job.

    The job runs on the writer thread and fills the returned record's ``digest``, ``schema``,
    ``n_rows`` and ``sampled`` in place (like a checkpoint's sha256): they are final after ``flush()``.
    """
    context = check_key(context, "dataset context")
    if name is not None:
        name = check_key(name, "dataset name")
    tname = _type_name(data)
    plan = _classify(data)
    name = name or plan.name
    now = time.time()
    sync_limit = _env_int(ENV_SYNC_BYTES, DEFAULT_SYNC_BYTES)
    record = DatasetRecord(name, context, None, plan.schema() if not callable(plan._schema) else {}, plan.n_rows,
                           plan.source, False, now)  # type: ignore[arg-type]
    if plan.cost is not None and plan.cost <= sync_limit:
        fp = _run_plan(plan, tname, None, None)
        _fill(record, fp)
        ev = DatasetEvent(run_id, name, context, fp.digest, fp.schema, fp.n_rows, fp.source, fp.sampled, now)
        return (lambda: ev), record
    full = _env_int(ENV_FULL_HASH_BYTES, DEFAULT_FULL_HASH_BYTES)
    sample = _env_int(ENV_SAMPLE_BYTES, DEFAULT_SAMPLE_BYTES)

    def job() -> DatasetEvent:
        try:
            fp = _run_plan(plan, tname, full, sample)
        except Exception as exc:
            from .writer import warn_once

            warn_once(("dataset", run_id, name, context),
                      f"dataset {name!r} ({tname}) of run {run_id[:8]} could not be hashed "
                      f"({type(exc).__name__}: {exc}); recorded by type and size only")
            plan.fallback_n = plan.n_rows
            fp = Fingerprint(_metadata_digest(plan, tname), {**record.schema, "digest_basis": "metadata"},
                             plan.n_rows, plan.source, True)
        _fill(record, fp)
        return DatasetEvent(run_id, name, context, fp.digest, fp.schema, fp.n_rows, fp.source, fp.sampled, now)

    return job, record


def _fill(record: DatasetRecord, fp: Fingerprint) -> None:
    record.schema, record.n_rows, record.sampled = fp.schema, fp.n_rows, fp.sampled
    record.digest = fp.digest  # last: a reader that sees the digest sees the rest
