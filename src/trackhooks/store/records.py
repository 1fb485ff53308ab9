"""What the read API returns, the same for every store engine.

Records hold plain values; anything costly (series, checkpoints, files) is read through the store
that made them when first asked for, so listing many runs stays cheap.
"""

from __future__ import annotations

import os
import sys
import time
from array import array

from ..errors import TrackhooksError
from .status import effective_status

TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterator

    from .api import Store

NO_EPOCH = -(2**63)  # sentinel in the packed epoch column for "no epoch given"
_LITTLE = sys.byteorder == "little"
NO_EPOCH_BYTES = NO_EPOCH.to_bytes(8, "little", signed=True)


def pack(code: str, values: list) -> bytes:
    """Metric columns as stored by every engine: little-endian int64 ("q") or float64 ("d")."""
    arr = array(code, values)
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def unpack(code: str, blobs: list[bytes]) -> array:
    arr = array(code)
    for b in blobs:
        arr.frombytes(b)
    if not _LITTLE:
        arr.byteswap()
    return arr


class Series:
    """All points of one metric of one run, in logging order.

    Columns are unpacked from the stored blocks when first asked for. ``.steps``, ``.epochs``,
    ``.values`` and ``.timestamps`` are lists; ``.arrays()`` gives the packed ``array.array`` columns
    themselves (``numpy.frombuffer`` can wrap them without a copy; epochs use -2**63 for "none").
    """

    __slots__ = ("key", "_blocks", "_cols")

    _CODES = ("q", "q", "d", "d")

    def __init__(self, key: str, blocks: list[tuple[bytes, bytes, bytes, bytes]]):
        self.key = key
        self._blocks = blocks
        self._cols: list[array | None] = [None, None, None, None]

    def _col(self, i: int) -> array:
        col = self._cols[i]
        if col is None:
            col = self._cols[i] = unpack(self._CODES[i], [bytes(b[i]) for b in self._blocks])
        return col

    def arrays(self) -> tuple[array, array, array, array]:
        """(steps, epochs, values, timestamps) as array.array (int64, int64, float64, float64)."""
        return self._col(0), self._col(1), self._col(2), self._col(3)

    @property
    def steps(self) -> list[int]:
        return self._col(0).tolist()

    @property
    def epochs(self) -> list[int | None]:
        col = self._col(1)
        missing = col.count(NO_EPOCH)
        if missing == 0:
            return col.tolist()
        if missing == len(col):
            return [None] * missing
        return [None if e == NO_EPOCH else e for e in col.tolist()]

    @property
    def values(self) -> list[float]:
        return self._col(2).tolist()

    @property
    def timestamps(self) -> list[float]:
        return self._col(3).tolist()

    def __len__(self) -> int:
        return sum(len(b[2]) for b in self._blocks) // 8

    def __iter__(self) -> Iterator[tuple[int, int | None, float, float]]:
        return iter(zip(self.steps, self.epochs, self.values, self.timestamps))

    @property
    def last(self) -> float | None:
        values = self._col(2)
        return values[-1] if len(values) else None

    def __repr__(self) -> str:
        return f"Series({self.key!r}, {len(self)} points)"


class CheckpointRecord:
    """A checkpoint file as the framework wrote it (``path`` is where it was written)."""

    def __init__(self, path: str, step: int | None = None, epoch: int | None = None,
                 metrics: dict[str, float] | None = None, best: bool = False, sha256: str | None = None,
                 size: int | None = None, monitor: str | None = None, mode: str | None = None,
                 deleted: bool = False, time: float | None = None):
        self.path = path
        self.step = step
        self.epoch = epoch
        self.metrics = dict(metrics or {})
        self.best = best
        self.sha256 = sha256
        self.size = size
        self.monitor = monitor
        self.mode = mode
        self.deleted = deleted
        self.time = time

    @property
    def exists(self) -> bool:
        return os.path.exists(self.path)

    def __repr__(self) -> str:
        flags = "".join([" best" if self.best else "", " deleted" if self.deleted else ""])
        return f"CheckpointRecord({self.path!r}, step={self.step}, epoch={self.epoch}{flags})"


class _StoredFile:
    """``.path`` of a file kept by the store: a local file (on a team store a cached copy fetched on
    first access)."""

    _store: "Store | None"
    sha256: str | None

    @property
    def path(self) -> str | None:
        if self._path is None and self.sha256 and self._store is not None:
            self._path = self._store._artifact_file(self.sha256)
        return self._path


class ArtifactRecord(_StoredFile):
    """A file copied into the store (``path`` is the stored copy)."""

    def __init__(self, name: str, path: str | None, sha256: str, size: int, time: float,
                 store: "Store | None" = None):
        self.name, self._path, self.sha256, self.size, self.time = name, path, sha256, size, time
        self._store = store

    def __repr__(self) -> str:
        return f"ArtifactRecord({self.name!r}, {self.size} bytes)"


class DatasetRecord:
    def __init__(self, name: str, context: str, digest: str, schema: dict, n_rows: int | None,
                 source: str | None, sampled: bool, time: float):
        self.name, self.context, self.digest, self.schema = name, context, digest, schema
        self.n_rows, self.source, self.sampled, self.time = n_rows, source, sampled, time

    def __repr__(self) -> str:
        return f"DatasetRecord({self.name!r}, context={self.context!r}, digest={(self.digest or 'pending')[:12]}...)"


class MediaRecord(_StoredFile):
    """One rich record: an image, figure, histogram, table, confusion matrix or curve.

    ``path`` is the stored image file (images and figures; None otherwise); ``data`` holds the rest
    (see DESIGN.md "Rich records" for its shape per kind).
    """

    def __init__(self, key: str, kind: str, step: int, epoch: int | None, timestamp: float, data: dict,
                 sha256: str | None = None, ext: str | None = None, width: int | None = None,
                 height: int | None = None, store: "Store | None" = None):
        self.key, self.kind, self.step, self.epoch, self.timestamp = key, kind, step, epoch, timestamp
        self.data, self.sha256, self.ext, self.width, self.height = data, sha256, ext, width, height
        self._store = store
        self._path: str | None = None

    def __repr__(self) -> str:
        return f"MediaRecord({self.key!r}, {self.kind}, step={self.step})"


class MetricNotFoundError(TrackhooksError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunRecord:
    """A run as stored. Params, tags and system info come with the record; metrics, checkpoints,
    artifacts, media and children are read from the store when asked for."""

    def __init__(self, store: "Store", row: tuple, params: dict[str, Any], tags: dict[str, str]):
        (self.id, self.experiment, self.name, raw_status, self.parent_id, self.start_time, self.end_time,
         pid, host, pid_start, heartbeat, self._system, self.note, archived) = row
        self._store = store
        self.stored_status = raw_status
        self.status = effective_status(raw_status, host, pid, pid_start, heartbeat)
        self.pid, self.host, self.heartbeat = pid, host, heartbeat
        self.archived = bool(archived)
        self.params = params
        self.tags = tags

    @property
    def system(self) -> dict[str, Any]:
        """System info (decoded from the stored JSON on first access: listings of many runs rarely
        need it, and it is the biggest part of a run's row)."""
        raw = self._system
        if isinstance(raw, (str, bytes)):
            import json

            raw = self._system = json.loads(raw) if raw else {}
        elif raw is None:
            raw = self._system = {}
        return raw

    @system.setter
    def system(self, value: dict[str, Any]) -> None:
        self._system = value

    @property
    def duration(self) -> float | None:
        end = self.end_time
        if end is None:
            end = self.heartbeat if self.status != "running" else time.time()
        return None if end is None else max(0.0, end - self.start_time)

    def metric_keys(self) -> list[str]:
        return self._store._metric_keys(self.id)

    def metric_summaries(self) -> dict[str, dict[str, Any]]:
        """Per key: count, last step, last/min/max value (NaN points ignored), without reading series."""
        return self._store._metric_summaries(self.id)

    def metric(self, key: str) -> Series:
        blocks = self._store._series_blocks(self.id, key)
        if blocks is None:
            raise MetricNotFoundError(f"run {self.id} has no metric {key!r} (it has: {', '.join(self.metric_keys())})")
        return Series(key, blocks)

    def checkpoints(self) -> list[CheckpointRecord]:
        return self._store._checkpoints(self.id)

    def artifacts(self) -> list[ArtifactRecord]:
        return self._store._artifacts(self.id)

    def artifact(self, name: str) -> ArtifactRecord:
        """The artifact stored under ``name`` (KeyError if there is none)."""
        for a in self._store._artifacts(self.id, name):
            return a
        raise KeyError(f"run {self.id[:8]} has no artifact {name!r}")

    def datasets(self) -> list[DatasetRecord]:
        return self._store._datasets(self.id)

    def console(self) -> bytes:
        """What the run printed (stdout and stderr as captured, see ``capture_output``), also while
        it is being written and after it was killed; empty without capture."""
        return self._store._console(self.id)

    def media_keys(self) -> list[str]:
        """Sorted keys that have rich records."""
        return self._store._media_keys(self.id)

    def media(self, key: str) -> list[MediaRecord]:
        """The rich records of one key, in logging order (empty if the key has none)."""
        return self._store._media(self.id, key)

    def children(self) -> list["RunRecord"]:
        return self._store._select("WHERE parent_id=?", (self.id,))

    def metrics_frame(self, keys: "str | list[str] | None" = None) -> Any:
        """Every point of this run's metrics (or of ``keys``) as a pandas DataFrame: one row per
        point, logging order per key; columns key, step, epoch, value, timestamp."""
        return self._store._metrics_frame([self.id], keys, with_run_id=False)

    def plot(self, keys: "str | list[str] | None" = None, *, x: str = "step", ax: Any = None) -> Any:
        """Draw metrics (default: all but system/*) against step, epoch or time with matplotlib."""
        from .notebook import plot

        return plot(self, keys, x=x, ax=ax)

    def _repr_html_(self) -> str:
        from .notebook import run_html

        return run_html(self)

    def __repr__(self) -> str:
        return f"RunRecord({self.id[:8]}, experiment={self.experiment!r}, name={self.name!r}, status={self.status!r})"
