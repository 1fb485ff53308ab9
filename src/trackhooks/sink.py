"""The Sink protocol: where the writer thread delivers batches.

A sink is called only from the writer thread, one batch at a time. Optional parts have no-op
defaults (in the spirit of Lightning's Logger), so a mirror implements ``write`` and nothing else.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any
else:
    # The records below are declared like dataclasses (and type-check as such), but built by the
    # small maker below: importing ``dataclasses`` (inspect, ast, dis, tokenize...) and processing
    # ten classes with it was the largest single cost of the first start_run of a process.
    class _Factory:
        __slots__ = ("factory",)

        def __init__(self, factory):
            self.factory = factory


    def field(*, default_factory):
        return _Factory(default_factory)

    def dataclass(cls):
        """__init__, __repr__ and __eq__ from the annotations, like @dataclass (no other features)."""
        names = [n for n in cls.__dict__.get("__annotations__", {}) if not n.startswith("__")]
        defaults: dict[str, Any] = {}  # name -> a value, or a _Factory called per instance
        for n in names:
            if n in cls.__dict__:
                defaults[n] = cls.__dict__[n]
                delattr(cls, n)
        required = [n for n in names if n not in defaults]
        n_names = len(names)

        # a plain function rather than generated code (dataclasses exec()s its __init__): nothing
        # here is ever compiled at run time
        def init(self, *args, **kwargs):
            if len(args) > n_names:
                raise TypeError(f"{cls.__name__}() takes {n_names} arguments, {len(args)} given")
            for n, v in zip(names, args):
                setattr(self, n, v)
            for n in names[len(args):]:
                if n in kwargs:
                    setattr(self, n, kwargs.pop(n))
                elif n in defaults:
                    d = defaults[n]
                    setattr(self, n, d.factory() if isinstance(d, _Factory) else d)
                else:
                    raise TypeError(f"{cls.__name__}() missing argument {n!r} (needs {', '.join(required)})")
            if kwargs:
                raise TypeError(f"{cls.__name__}() got unexpected arguments {', '.join(sorted(kwargs))}")

        init.__qualname__ = f"{cls.__qualname__}.__init__"
        fields = tuple(names)

        def __repr__(self):
            return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in fields)})"

        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in fields)

        cls.__init__, cls.__repr__, cls.__eq__, cls.__hash__ = init, __repr__, __eq__, None
        cls.__match_args__ = fields
        return cls


@dataclass
class RunStart:
    run_id: str
    experiment: str
    name: str
    parent_id: str | None
    start_time: float
    pid: int
    host: str
    pid_start: int | None
    resumed: bool = False


@dataclass
class MetricColumns:
    """All points of one key of one run in one batch, in logging order."""

    steps: list[int] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)


@dataclass
class CheckpointEvent:
    run_id: str
    path: str
    step: int | None
    epoch: int | None
    metrics: dict[str, float]
    monitor: str | None
    mode: str | None
    best: bool
    size: int | None
    sha256: str | None
    time: float


@dataclass
class CheckpointUpdate:
    """A later fact about a checkpoint already logged: deleted by pruning, or no longer best."""

    run_id: str
    path: str
    deleted: bool | None = None
    best: bool | None = None
    time: float = 0.0


@dataclass
class ArtifactEvent:
    run_id: str
    name: str
    source: str | None  # the file to copy (None when ``data`` holds the content)
    sha256: str
    size: int
    time: float
    data: bytes | None = None


@dataclass
class DatasetEvent:
    run_id: str
    name: str
    context: str
    digest: str
    schema: dict[str, Any]
    n_rows: int | None
    source: str | None
    sampled: bool
    time: float


@dataclass
class ConsoleChunk:
    """A piece of a run's console output. ``seq`` numbers the pieces from 0; a chunk with the seq
    of an earlier one replaces it (the unfinished last line is rewritten until it ends)."""

    run_id: str
    seq: int
    data: bytes


@dataclass
class MediaEvent:
    """One rich record (image, figure, histogram, table, confusion matrix, curve), ready to store.

    Built on the writer thread from what the caller handed over: ``data`` is JSON-able (see
    DESIGN.md "Rich records" for its shape per kind); images and figures carry their encoded file in
    ``file`` (PNG, or a JPEG file kept as it was, ``ext`` says which) with its ``sha256``, stored
    content-addressed like artifacts (identical images once).
    """

    run_id: str
    key: str
    kind: str  # image | figure | histogram | table | confusion_matrix | curve
    step: int
    epoch: int | None
    time: float
    data: dict[str, Any]
    file: bytes | None = None
    sha256: str | None = None
    ext: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class StatusEvent:
    run_id: str
    status: str
    end_time: float | None


@dataclass
class Batch:
    """Everything drained from the buffer in one writer cycle for the runs of one store.

    Sections are applied in field order: run starts, params, tags, system info, metrics, console
    chunks, checkpoints, artifacts, datasets, media, notes, heartbeats, then status changes. At a
    run's finish the whole console output also arrives as the artifact ``console.log``; a sink that
    keeps artifacts may ignore ``console``.
    """

    runs: list[RunStart] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    system: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, MetricColumns]] = field(default_factory=dict)  # run_id -> key -> cols
    console: list[ConsoleChunk] = field(default_factory=list)
    checkpoints: list[CheckpointEvent] = field(default_factory=list)
    checkpoint_updates: list[CheckpointUpdate] = field(default_factory=list)
    artifacts: list[ArtifactEvent] = field(default_factory=list)
    datasets: list[DatasetEvent] = field(default_factory=list)
    media: list[MediaEvent] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # run_id -> the run's note (Markdown), replacing the last
    heartbeats: dict[str, float] = field(default_factory=dict)
    status: list[StatusEvent] = field(default_factory=list)
    #: the local store directory these records were written to first (set by the writer), so that a
    #: mirror shared by several stores can replay from the right one
    store: str | None = None

    def n_points(self) -> int:
        return sum(len(c.values) for per_run in self.metrics.values() for c in per_run.values())

    def is_empty(self) -> bool:
        return not (self.runs or self.params or self.tags or self.system or self.metrics or self.console
                    or self.checkpoints or self.checkpoint_updates or self.artifacts or self.datasets or self.media
                    or self.notes or self.heartbeats
                    or self.status)


class Sink:
    """Base class of sinks. Only ``write`` is required.

    ``write`` may raise: the writer then keeps the batch for that sink, retries it with backoff, and
    warns once; the other sinks and the training are not affected.
    """

    #: a short name for warnings ("local store /path", "mlflow+http://...")
    name: str = "sink"

    def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make everything written so far durable or delivered. Called by flush()/finish()."""

    def close(self) -> None:
        """Release resources. Called once at interpreter exit or when the writer stops."""

    def give_up(self, batches: list[Batch]) -> None:
        """Called at exit with batches that could never be delivered, so they can be recorded
        for a later ``trackhooks sync``. The local store always holds them anyway."""
