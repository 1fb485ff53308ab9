"""Dataset fingerprints: a stable content digest, a schema and a row count for the data a run saw.

First cut: buffers (numpy arrays and anything with the buffer protocol), bytes, files, directories
and plain Python sequences. Duck-typed: nothing here imports numpy, pandas or torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Callable

from .errors import InvalidValueError
from .localstore import DatasetRecord
from .sink import DatasetEvent
from .values import check_key


def _digest_bytes(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def fingerprint(data: Any) -> tuple[str, dict, int | None, str | None, bool]:
    """(digest, schema, n_rows, source, sampled) of ``data``; raises InvalidValueError if unsupported."""
    if isinstance(data, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(data))
        if os.path.isdir(path):
            files = []
            h = hashlib.sha256()
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for n in sorted(names):
                    full = os.path.join(root, n)
                    rel = os.path.relpath(full, path)
                    size = os.path.getsize(full)
                    files.append({"path": rel, "size": size})
                    h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
                    with open(full, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
            return h.hexdigest(), {"kind": "directory", "files": files}, len(files), path, False
        if os.path.isfile(path):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            return h.hexdigest(), {"kind": "file", "files": [{"path": os.path.basename(path),
                                                               "size": os.path.getsize(path)}]}, None, path, False
        raise InvalidValueError(f"dataset path {path} does not exist")
    shape = getattr(data, "shape", None)
    dtype = getattr(data, "dtype", None)
    if shape is not None and dtype is not None and hasattr(data, "tobytes"):
        shape = tuple(int(s) for s in shape)
        header = json.dumps({"shape": shape, "dtype": str(dtype)}).encode()
        digest = _digest_bytes([header, data.tobytes()])
        return digest, {"kind": "array", "shape": list(shape), "dtype": str(dtype)}, (shape[0] if shape else None), \
            None, False
    if isinstance(data, (bytes, bytearray, memoryview)):
        b = bytes(data)
        return hashlib.sha256(b).hexdigest(), {"kind": "bytes", "size": len(b)}, None, None, False
    if isinstance(data, (list, tuple)):
        try:
            text = json.dumps(data, sort_keys=True, default=repr).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(f"dataset of type {type(data).__name__} cannot be fingerprinted: {exc}") from None
        return hashlib.sha256(text).hexdigest(), {"kind": "sequence", "type": type(data).__name__}, len(data), None, \
            False
    raise InvalidValueError(f"log_dataset does not support {type(data).__module__}.{type(data).__name__}")


def prepare_dataset(run_id: str, data: Any, *, name: str | None, context: str) -> tuple[Callable[[], DatasetEvent], DatasetRecord]:
    context = check_key(context, "dataset context")
    if name is not None:
        name = check_key(name, "dataset name")
    digest, schema, n_rows, source, sampled = fingerprint(data)
    name = name or (os.path.basename(source) if source else f"{context}-{digest[:8]}")
    now = time.time()
    ev = DatasetEvent(run_id, name, context, digest, schema, n_rows, source, sampled, now)
    return (lambda: ev), DatasetRecord(name, context, digest, schema, n_rows, source, sampled, now)
