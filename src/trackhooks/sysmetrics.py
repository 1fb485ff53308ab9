"""System metrics over time: one sampler per process, driven by the writer thread.

The writer thread already wakes every second; it asks the sampler whether a sample is due and
appends the sample to every open run that asked for one (each run has its own interval and its
own step counter, the sample number from 0). Nothing here runs on the training thread, and
nothing here imports torch: ``torch.cuda`` counters are read only when the user's program has
imported torch and initialised CUDA itself.

Every figure is collected by its own small function; one that raises (psutil missing, NVML
failing, a GPU that went away) is reported once and dropped, and the others go on.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time

TYPE_CHECKING = False  # typing and numbers stay out of the first start_run (benchmarks/README.md)
if TYPE_CHECKING:
    from typing import Any, Callable

from .errors import InvalidOptionError, InvalidValueError, short_repr
from .store.status import HOST  # the host name, without importing socket
from .writer import warn_once

DEFAULT_INTERVAL_S = 10.0
ENV = "TRACKHOOKS_SYSTEM_METRICS"
_MB = 1024.0 * 1024.0
_OFF = ("0", "off", "false", "no", "none", "")
_ON = ("1", "on", "true", "yes")


def parse_interval(value: Any, option: str = "system_metrics") -> float | None:
    """``system_metrics=`` -> seconds between samples, or None for off (see DESIGN.md).

    None reads ``$TRACKHOOKS_SYSTEM_METRICS``; True is the default interval; False and 0 are off.
    A negative, NaN or infinite number or a string is an error naming the option.
    """
    if value is None:
        raw = os.environ.get(ENV)
        if raw is None:
            return DEFAULT_INTERVAL_S
        text = raw.strip().lower()
        if text in _OFF:
            return None
        if text in _ON:
            # "1" means one second, not "on": a number is always an interval
            return 1.0 if text == "1" else DEFAULT_INTERVAL_S
        try:
            number = float(text)
        except ValueError:
            raise InvalidOptionError(
                f"${ENV}={raw!r}: expected seconds between samples (e.g. 10), or 0/off") from None
        return parse_interval(number, f"${ENV}")
    if value is True:
        return DEFAULT_INTERVAL_S
    if value is False:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) or _is_real(value):
        number = float(value)
        if math.isnan(number) or math.isinf(number) or number < 0:
            raise InvalidOptionError(f"{option}={short_repr(value)}: expected a positive number of seconds, or 0/False")
        return number or None
    raise InvalidValueError(
        f"{option}={short_repr(value)}: expected seconds between samples (a number), True or False")


def _is_real(value: Any) -> bool:
    from numbers import Real  # numpy scalars and the like; int and float are tested before

    return isinstance(value, Real) and not isinstance(value, bool)


# ---- figures ------------------------------------------------------------------------------------


# What the machine has, asked once per process. ``probe()`` runs on the caller's thread when a run
# asks for samples: on the writer, each of these stat calls gave up the GIL and waited up to a switch
# interval (5 ms) to get it back from a training loop running pure Python (18 ms each, measured).
_PROBED: dict[str, bool] = {}


def probe() -> None:
    """Fill the per-process facts the sampler needs (a few stat calls; idempotent)."""
    if not _PROBED:
        linux = sys.platform.startswith("linux")
        _PROBED["proc"] = linux and os.path.exists("/proc/self/statm") and os.path.exists("/proc/meminfo")
        _PROBED["proc_io"] = linux and os.path.exists("/proc/self/io")
        # on Linux the driver creates /dev/nvidiactl and /proc/driver/nvidia (also in containers
        # given a GPU); elsewhere only NVML itself can tell
        _PROBED["nvidia"] = (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")) \
            if linux else True


def _proc_readable() -> bool:
    probe()
    return _PROBED["proc"]


def _init_proc(collectors: list) -> bool:
    """The process figures psutil would give, read from /proc on Linux: importing psutil cost 7-13 ms
    of the writer's start-up in every process that had not imported it (a torch or Keras script).
    Same keys and meanings: cpu_percent is the process' CPU time over wall time since the previous
    sample (100 = one core busy), memory_percent is the system's (total - available) / total."""
    if not (sys.platform.startswith("linux") and _proc_readable()):
        return False
    page_mb = os.sysconf("SC_PAGE_SIZE") / _MB
    last = [time.monotonic(), _cpu_seconds()]

    def cpu(out: dict[str, float]) -> None:
        now, used = time.monotonic(), _cpu_seconds()
        wall = now - last[0]
        out["system/cpu_percent"] = max(0.0, 100.0 * (used - last[1]) / wall) if wall > 0 else 0.0
        last[0], last[1] = now, used

    def memory(out: dict[str, float]) -> None:
        with open("/proc/self/statm", "rb") as f:
            out["system/memory_rss_mb"] = int(f.read().split()[1]) * page_mb
        total = available = None
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    total = int(line.split()[1])
                elif line.startswith(b"MemAvailable:"):
                    available = int(line.split()[1])
                    break
        if total and available is not None:
            out["system/memory_percent"] = 100.0 * (total - available) / total

    collectors += [("cpu", cpu), ("memory", memory)]
    if _PROBED.get("proc_io"):  # absent where the kernel lacks task I/O accounting
        def io(out: dict[str, float]) -> None:
            with open("/proc/self/io", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
            out["system/io_read_mb"] = int(fields[b"read_bytes"]) / _MB
            out["system/io_write_mb"] = int(fields[b"write_bytes"]) / _MB

        collectors.append(("io", io))
    return True


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def nvidia_driver_present() -> bool:
    """False when this machine certainly has no NVIDIA driver: importing pynvml and failing
    nvmlInit cost ~5-10 ms of the writer's start-up on every machine without one."""
    probe()
    return _PROBED["nvidia"]


class _Figures:
    """Collects one sample: process and system figures from psutil, GPUs from NVML or torch.cuda."""

    def __init__(self) -> None:
        self._collectors: list[tuple[str, Callable[[dict[str, float]], None]]] = []
        self.facts: dict[str, Any] = {"node": HOST}
        for env in ("NODE_RANK", "GROUP_RANK", "SLURM_NODEID"):
            if os.environ.get(env):
                self.facts["node_rank"] = os.environ[env]
                break
        self._init_psutil()
        self._init_gpus()

    def _init_psutil(self) -> None:
        if _init_proc(self._collectors):
            return
        try:
            import psutil
        except Exception as exc:
            warn_once(("sysmetrics", "psutil"), f"system metrics: psutil is not available ({exc}); "
                      "no CPU, memory or I/O figures (pip install psutil)")
            return
        proc = psutil.Process()
        proc.cpu_percent(None)  # the first call only sets the reference point

        def cpu(out: dict[str, float]) -> None:
            out["system/cpu_percent"] = float(proc.cpu_percent(None))

        def memory(out: dict[str, float]) -> None:
            out["system/memory_rss_mb"] = proc.memory_info().rss / _MB
            out["system/memory_percent"] = float(psutil.virtual_memory().percent)

        def io(out: dict[str, float]) -> None:
            c = proc.io_counters()
            out["system/io_read_mb"] = c.read_bytes / _MB
            out["system/io_write_mb"] = c.write_bytes / _MB

        self._collectors += [("cpu", cpu), ("memory", memory)]
        if hasattr(proc, "io_counters"):  # not on macOS
            self._collectors.append(("io", io))

    def _init_gpus(self) -> None:
        if self._init_nvml():
            return
        torch = sys.modules.get("torch")  # never imported here: only if the program already uses it
        try:
            if torch is None or not torch.cuda.is_initialized():
                return
            n = torch.cuda.device_count()
        except Exception:
            return
        self.facts["gpu_source"] = "torch.cuda"
        for i in range(n):
            def mem(out: dict[str, float], i: int = i) -> None:
                out[f"system/gpu{i}/memory_allocated_mb"] = torch.cuda.memory_allocated(i) / _MB
                out[f"system/gpu{i}/memory_reserved_mb"] = torch.cuda.memory_reserved(i) / _MB

            self._collectors.append((f"gpu{i}.torch", mem))

    def _init_nvml(self) -> bool:
        if not nvidia_driver_present():
            return False
        try:
            import pynvml  # nvidia-ml-py
        except Exception:
            return False
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except Exception:  # no driver / no GPU: nothing and no warning
            return False
        handles = _visible_handles(pynvml, count)
        if not handles:
            return False
        self.facts["gpu_source"] = "nvml"
        names = []
        for i, h in enumerate(handles):
            try:
                name = pynvml.nvmlDeviceGetName(h)
                names.append(name.decode() if isinstance(name, bytes) else str(name))
            except Exception:
                names.append("?")
            p = f"system/gpu{i}/"

            def util(out: dict[str, float], h: Any = h, p: str = p) -> None:
                out[p + "utilization_percent"] = float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)

            def mem(out: dict[str, float], h: Any = h, p: str = p) -> None:
                m = pynvml.nvmlDeviceGetMemoryInfo(h)
                out[p + "memory_used_mb"] = m.used / _MB
                out[p + "memory_percent"] = 100.0 * m.used / m.total if m.total else 0.0

            def temp(out: dict[str, float], h: Any = h, p: str = p) -> None:
                out[p + "temperature_c"] = float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))

            def power(out: dict[str, float], h: Any = h, p: str = p) -> None:
                out[p + "power_w"] = pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0

            self._collectors += [(f"gpu{i}.utilization", util), (f"gpu{i}.memory", mem),
                                 (f"gpu{i}.temperature", temp), (f"gpu{i}.power", power)]
        self.facts["gpus"] = names
        return True

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, collect in list(self._collectors):
            try:
                collect(out)
            except Exception as exc:
                # one warning, then the sampler goes on without that figure
                warn_once(("sysmetrics", name), f"system metrics: {name} failed ({type(exc).__name__}: {exc}); "
                          "it is no longer sampled")
                self._collectors = [c for c in self._collectors if c[0] != name]
        return out


def _visible_handles(pynvml: Any, count: int) -> list[Any]:
    """NVML handles of the GPUs this process may use, in CUDA_VISIBLE_DEVICES order."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    handles = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            break
        try:
            if item.isdigit():
                idx = int(item)
                if idx >= count:
                    break  # CUDA stops at the first invalid entry; so do we
                handles.append(pynvml.nvmlDeviceGetHandleByIndex(idx))
            else:
                handles.append(pynvml.nvmlDeviceGetHandleByUUID(item if item.startswith(("GPU-", "MIG-"))
                                                                else f"GPU-{item}"))
        except Exception:
            break
    return handles


# ---- the per-process sampler --------------------------------------------------------------------


class _Subscription:
    __slots__ = ("state", "interval", "next_due", "step")

    def __init__(self, state: Any, interval: float):
        self.state = state
        self.interval = interval
        self.next_due = 0.0  # the first sample is due at once
        self.step = 0


class SystemSampler:
    """Owned by the writer; every method runs on the writer thread (or the exit path)."""

    def __init__(self) -> None:
        self._subs: dict[str, _Subscription] = {}
        self._figures: _Figures | None = None
        self._lock = threading.Lock()

    def facts(self) -> dict[str, Any]:
        return dict(self._get_figures().facts)

    def _get_figures(self) -> _Figures:
        if self._figures is None:
            self._figures = _Figures()
        return self._figures

    def add(self, state: Any, interval: float) -> None:
        self._subs[state.run_id] = _Subscription(state, interval)

    def next_due(self) -> float | None:
        if not self._subs:
            return None
        return min(s.next_due for s in self._subs.values())

    def due(self, now: float) -> list[tuple[Any, dict[str, float], int, float]]:
        """Samples for the runs whose interval has passed: [(state, values, step, time)]."""
        subs = [s for s in self._subs.values() if s.next_due <= now]
        if not subs:
            return []
        values = self._take()
        ts = time.time()
        out = []
        for s in subs:
            out.append((s.state, values, s.step, ts))
            s.step += 1
            # a late wake-up is not made up for with a burst of samples
            s.next_due = max(s.next_due + s.interval, now + s.interval * 0.5) if s.next_due else now + s.interval
        return out

    def finish(self, state: Any) -> list[tuple[Any, dict[str, float], int, float]]:
        """The last sample of a run that is ending (and its first, if it ends before one was taken)."""
        s = self._subs.pop(state.run_id, None)
        if s is None:
            return []
        out = []
        for _ in range(2 if s.step == 0 else 1):
            out.append((state, self._take(), s.step, time.time()))
            s.step += 1
        return out

    def _take(self) -> dict[str, float]:
        with self._lock:
            try:
                return self._get_figures().sample()
            except Exception as exc:
                warn_once(("sysmetrics", "sample"), f"system metrics failed: {type(exc).__name__}: {exc}")
                return {}
