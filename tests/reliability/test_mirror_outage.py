"""A mirror that goes down and comes back: training is not slowed, the mirror ends up with every point once.

The MLflow mirror's own outage tests (a server that never answers, a server killed mid-run) live in
tests/integrations/test_mlflow.py; this one exercises the core's retry path with a plain Sink.
"""

from __future__ import annotations

import threading

import pytest

import trackhooks


class FlakyMirror(trackhooks.Sink):
    name = "flaky mirror"

    def __init__(self) -> None:
        self.down = True
        self.points: dict[str, list[tuple[int, float]]] = {}
        self.attempts = 0
        self.lock = threading.Lock()

    def write(self, batch) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("mirror unreachable")
        with self.lock:
            for per_run in batch.metrics.values():
                for key, cols in per_run.items():
                    self.points.setdefault(key, []).extend(zip(cols.steps, cols.values))


@pytest.mark.timeout(60)
def test_mirror_outage_then_recovery_delivers_every_point_once(store_path):
    mirror = FlakyMirror()
    n = 20_000
    with pytest.warns(RuntimeWarning, match="flaky mirror failed"):
        run = trackhooks.start_run(mirrors=[mirror])
        for i in range(n // 2):
            run.log_metric("m", float(i), step=i)
        assert run.flush(timeout=30) is True  # local store durable, mirror behind: flush does not wait
        assert trackhooks.open_store(store_path).run(run.id).metric("m").steps == list(range(n // 2))
        assert mirror.attempts >= 1 and not mirror.points
        mirror.down = False  # the mirror comes back
        for i in range(n // 2, n):
            run.log_metric("m", float(i), step=i)
        run.finish()
    assert sorted(mirror.points["m"]) == [(i, float(i)) for i in range(n)]  # all of them, none twice
    assert trackhooks.open_store(store_path).run(run.id).metric("m").steps == list(range(n))
