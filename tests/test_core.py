"""Round trips of the public API through the local store (DESIGN.md: Public API, Local store); tests
taking ``any_store`` run on both engines (a local store, a team store on PostgreSQL)."""

import math
import os
import threading

import pytest

import trackhooks
from trackhooks.plugin import start_child_run
from trackhooks import (
    InvalidKeyError,
    InvalidShapeError,
    InvalidValueError,
    ParamConflictError,
    RunFinishedError,
    StoreError,
    TrackhooksError,
    UnsafePathError,
)


def read(run):
    # the run's store as given (for a team store: the PostgreSQL store, not the local spool)
    return trackhooks.open_store(run.store_uri).run(run.id)


def test_start_run_defaults_and_record(store_path):
    run = trackhooks.start_run()
    assert run.experiment == "default" and run.name and len(run.id) == 32
    assert trackhooks.active_run() is run
    run.finish()
    assert trackhooks.active_run() is None
    rec = read(run)
    assert (rec.id, rec.name, rec.experiment, rec.status) == (run.id, run.name, "default", "finished")
    assert rec.parent_id is None and rec.start_time <= rec.end_time
    assert rec.system["python"] and rec.system["pid"] == os.getpid()
    assert os.path.isdir(os.path.join(store_path, "artifacts"))


def test_uri_env_is_read_at_each_call(tmp_path, monkeypatch):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    monkeypatch.setenv("TRACKHOOKS_URI", a)
    r1 = trackhooks.start_run(experiment="e1")
    r1.finish()
    monkeypatch.setenv("TRACKHOOKS_URI", b)
    r2 = trackhooks.start_run(experiment="e2")
    r2.finish()
    assert [r.id for r in trackhooks.open_store(a).runs()] == [r1.id]
    assert [r.id for r in trackhooks.open_store().runs()] == [r2.id]


def test_params_flattened_and_conflicts(any_store):
    with trackhooks.start_run(params={"optimizer": {"lr": 0.1, "betas": (0.9, 0.99)}, "layers": 3}) as run:
        run.log_params({"optimizer": {"lr": 0.1}})  # same value again is fine
        with pytest.raises(ParamConflictError) as err:
            run.log_params({"optimizer.lr": 0.2})
        assert "optimizer.lr" in str(err.value) and "0.1" in str(err.value) and "0.2" in str(err.value)
        assert isinstance(err.value, ValueError)
        run.log_params({"name": None, "obj": object, "flag": True})
    rec = read(run)
    assert rec.params["optimizer.lr"] == 0.1
    assert rec.params["optimizer.betas"] == [0.9, 0.99]
    assert rec.params["layers"] == 3 and rec.params["flag"] is True and rec.params["name"] is None
    assert "object" in rec.params["obj"]


def test_self_referencing_params_do_not_hang(any_store):
    d = {"a": 1}
    d["self"] = d
    with trackhooks.start_run() as run:
        run.log_params(d)
    assert read(run).params == {"a": 1, "self": "<recursive reference>"}


def test_metrics_steps_epochs_values_timestamps(any_store):
    with trackhooks.start_run() as run:
        run.log_metrics({"loss": 1.0, "acc": 0})
        run.log_metrics({"loss": 0.5}, epoch=1)
        run.log_metric("loss", 0.25, step=10, epoch=2)
        run.log_metric("loss", 0.2)  # one more than the last step of this key
        run.log_metric("acc", True)
    rec = read(run)
    assert rec.metric_keys() == ["acc", "loss"]
    loss = rec.metric("loss")
    assert loss.steps == [0, 1, 10, 11]
    assert loss.epochs == [None, 1, 2, None]
    assert loss.values == [1.0, 0.5, 0.25, 0.2]
    assert len(loss.timestamps) == 4 and all(t > 1e9 for t in loss.timestamps)
    assert loss.timestamps == sorted(loss.timestamps)
    assert rec.metric("acc").values == [0.0, 1.0] and rec.metric("acc").steps == [0, 1]


def test_negative_out_of_order_and_repeated_steps_stored_as_logged(any_store):
    with trackhooks.start_run() as run:
        for s in (5, -3, 5, 2):
            run.log_metric("m", float(s), step=s)
    assert read(run).metric("m").steps == [5, -3, 5, 2]


def test_nan_and_inf_read_back_exactly(any_store):
    with trackhooks.start_run() as run:
        run.log_metrics({"x": math.nan, "y": math.inf, "z": -math.inf, "w": 1e-320, "v": 2**80})
    rec = read(run)
    assert math.isnan(rec.metric("x").values[0])
    assert rec.metric("y").values == [math.inf] and rec.metric("z").values == [-math.inf]
    assert rec.metric("w").values == [1e-320] and rec.metric("v").values == [float(2**80)]




def test_numpy_values(store_path):
    np = pytest.importorskip("numpy")
    with trackhooks.start_run() as run:
        run.log_metrics({"a": np.float32(0.5), "b": np.int64(3), "c": np.array(2.5), "d": np.bool_(True)})
        with pytest.raises(InvalidShapeError) as err:
            run.log_metric("arr", np.zeros(3))
        assert "arr" in str(err.value) and "(3,)" in str(err.value)
    rec = read(run)
    assert [rec.metric(k).values[0] for k in "abcd"] == [0.5, 3.0, 2.5, 1.0]


def test_torch_tensors(store_path):
    torch = pytest.importorskip("torch")
    t = torch.tensor(1.5, requires_grad=True) * 2
    with trackhooks.start_run() as run:
        run.log_metrics({"loss": t, "grad_free": torch.tensor(4)})
        with pytest.raises(InvalidShapeError):
            run.log_metric("vec", torch.ones(2))
        with pytest.raises(InvalidValueError):
            run.log_metric("cplx", torch.tensor(1 + 2j))
    rec = read(run)
    assert rec.metric("loss").values == [3.0] and rec.metric("grad_free").values == [4.0]


def test_many_tensors_in_one_batch_convert_exactly(store_path):
    # the writer converts a key's tensors of one batch in bulk; every value must read back as float(x)
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    logged: dict[str, list] = {"f32": [], "f16": [], "i64": [], "bool": [], "one": [], "mixed": [], "grad": []}
    w = torch.tensor(0.5, requires_grad=True)
    with trackhooks.start_run() as run:
        for i in range(60):
            row = {"f32": torch.tensor(i / 7), "f16": torch.tensor(i / 3, dtype=torch.float16),
                   "i64": torch.tensor(2**40 + i), "bool": torch.tensor(i % 2 == 0), "one": torch.tensor([i + 0.25]),
                   "mixed": (i, torch.tensor(i * 1.5), np.float32(i / 4), float("nan") if i == 5 else i / 9)[i % 4],
                   "grad": w * i}
            for k, v in row.items():
                logged[k].append(v)
            run.log_metrics(row, step=i)
        run.log_metric("mixed", torch.tensor(float("inf")), step=60)
        logged["mixed"].append(torch.tensor(float("inf")))
    rec = read(run)
    for k, values in logged.items():
        expect = [float(v.detach()) if hasattr(v, "detach") else float(v) for v in values]
        got = rec.metric(k).values
        assert len(got) == len(expect), k
        assert all(g == e or (math.isnan(g) and math.isnan(e)) for g, e in zip(got, expect)), (k, got, expect)
    assert w.grad is None  # converting did not touch the graph


def test_conversion_happens_on_writer_thread(store_path):
    threads = []

    class Lazy:
        shape = ()
        dtype = None

        def item(self):
            threads.append(threading.current_thread().name)
            return 7.0

    with trackhooks.start_run() as run:
        run.log_metric("lazy", Lazy())
        assert threads == []  # nothing converted on the caller's thread
    assert threads == ["trackhooks-writer"]
    assert read(run).metric("lazy").values == [7.0]


@pytest.mark.parametrize("key,value,exc", [
    ("", 1.0, InvalidKeyError),
    ("   ", 1.0, InvalidKeyError),
    ("a\x00b", 1.0, InvalidKeyError),
    ("k" * 5000, 1.0, InvalidKeyError),
    (3, 1.0, TypeError),
    ("s", "1.0", InvalidValueError),
    ("n", None, InvalidValueError),
    ("b", b"1", InvalidValueError),
    ("l", [1.0], InvalidValueError),
    ("c", 1j, InvalidValueError),
])
def test_bad_metric_input_raises_at_the_call_naming_the_key(store_path, key, value, exc):
    with trackhooks.start_run() as run:
        run.log_metric("good", 1.0)
        with pytest.raises(exc) as err:
            run.log_metric(key, value)
        assert isinstance(err.value, TrackhooksError)
        assert isinstance(err.value, (TypeError, ValueError))
        with pytest.raises(exc):
            run.log_metrics({"good": 2.0, key: value})
    rec = read(run)
    assert rec.metric("good").values == [1.0]  # the rejected mapping logged nothing


def test_bad_step_and_epoch(store_path):
    with trackhooks.start_run() as run:
        with pytest.raises(InvalidValueError):
            run.log_metric("m", 1.0, step=1.5)
        with pytest.raises(InvalidValueError):
            run.log_metric("m", 1.0, epoch="1")
        with pytest.raises(trackhooks.OutOfRangeError, match="64-bit"):
            run.log_metric("m", 1.0, step=2**70)


def test_tags(any_store):
    with trackhooks.start_run(tags={"team": "vision"}) as run:
        run.set_tags({"stage": 1})
        run.set_tags({"team": "nlp"})
    assert read(run).tags == {"stage": "1", "team": "nlp"}


def test_context_manager_failed_and_killed(any_store):
    with pytest.raises(RuntimeError, match="boom"):
        with trackhooks.start_run() as run:
            raise RuntimeError("boom")
    assert read(run).status == "failed"
    with pytest.raises(KeyboardInterrupt):
        with trackhooks.start_run() as run2:
            raise KeyboardInterrupt
    assert read(run2).status == "killed"
    with pytest.raises(RunFinishedError):
        run2.log_metric("m", 1.0)
    run2.finish()  # a second finish is a no-op


def test_finish_status_validated(any_store):
    run = trackhooks.start_run()
    with pytest.raises(InvalidValueError):
        run.finish("done")
    run.finish("killed")
    assert read(run).status == "killed"


def test_parent_and_children(any_store):
    with trackhooks.start_run(name="search") as parent:
        kids = [trackhooks.start_run(name=f"c{i}", parent=parent) for i in range(3)]
        assert trackhooks.active_run() is kids[-1]
        for k in kids:
            k.finish()
        assert trackhooks.active_run() is parent
    rec = read(parent)
    assert [c.name for c in rec.children()] == ["c0", "c1", "c2"]
    assert all(c.parent_id == parent.id for c in rec.children())
    solo = trackhooks.start_run(parent=parent.id)
    solo.finish()
    assert read(solo).parent_id == parent.id


def test_resume_continues_steps_params_and_status(any_store):
    run = trackhooks.start_run(name="long", params={"lr": 0.1})
    run.log_metric("loss", 1.0)
    run.log_metric("loss", 0.9)
    run.finish("killed")
    again = trackhooks.start_run(resume=run.id, params={"lr": 0.1})
    assert (again.id, again.name) == (run.id, "long")
    again.flush()  # what a team store holds is up to date once flushed (it replicates the local spool)
    assert read(again).status == "running"
    again.log_metric("loss", 0.8)
    with pytest.raises(ParamConflictError):
        again.log_params({"lr": 0.2})
    again.finish()
    rec = read(run)
    assert rec.status == "finished"
    assert rec.metric("loss").steps == [0, 1, 2]
    assert rec.params == {"lr": 0.1}


def test_keys_first_seen_in_later_cycles_and_after_resume(store_path):
    # the local store reads a run's new keys in one query per cycle, keeps their block numbers while
    # the run is open and forgets them when it ends: every point lands once, in order, across all three
    run = trackhooks.start_run(name="keys")
    sink = run._state.channel.sinks[0]
    for step in range(3):
        run.log_metrics({f"k{i}": float(step * 10 + i) for i in range(step + 2)}, step=step)
        run.flush()
    assert sorted(sink._keys[run.id]) == ["k0", "k1", "k2", "k3"]
    run.finish()
    assert run.id not in sink._keys
    again = trackhooks.start_run(resume=run.id)
    again.log_metrics({"k0": 100.0, "k4": 104.0}, step=3)
    again.flush()
    again.log_metrics({"k0": 200.0, "k1": 201.0}, step=4)
    again.finish()
    rec = read(run)
    assert rec.metric("k0").steps == [0, 1, 2, 3, 4] and rec.metric("k0").values == [0.0, 10.0, 20.0, 100.0, 200.0]
    assert rec.metric("k1").steps == [0, 1, 2, 4] and rec.metric("k3").values == [23.0]
    assert rec.metric("k4").values == [104.0]
    summaries = rec.metric_summaries()
    assert summaries["k0"] == {"count": 5, "last_step": 4, "last": 200.0, "min": 0.0, "max": 200.0}


def test_many_runs_in_one_writer_batch(store_path):
    # a search's children arrive in one batch: their rows, params, tags, system records, keys and
    # ends are written with one statement per kind for all of them; a run that already has keys
    # (resumed, with an old key and a new one) shares the batch with fresh ones
    old = trackhooks.start_run(name="old")
    old.log_metrics({"loss": 1.0, "acc": 0.5}, step=0)
    old.finish()
    parent = trackhooks.start_run(name="parent")
    parent.flush()
    w = parent._writer
    sink = parent._state.channel.sinks[0]
    batches = []
    write = sink.write

    def counting(batch):
        batches.append(len(batch.metrics))
        return write(batch)

    sink.write = counting
    with w._write_lock:  # hold the writer off so that everything below lands in one batch
        again = trackhooks.start_run(resume=old.id)
        again.log_metrics({"loss": 2.0, "new": 7.0}, step=1)
        kids = []
        for i in range(5):
            kid = start_child_run(parent, f"kid{i}", params={"i": i}, tags={"fold": str(i)})
            kid.log_metrics({"loss": float(i), "acc": i / 10, f"only{i}": 1.0}, step=0)
            kid.log_metric("loss", float(i) + 0.5, step=1)
            kid.finish(timeout=0)
            kids.append(kid)
    again.finish()
    parent.finish()
    del sink.write
    assert max(batches) == 6  # the five children and the resumed run, in one batch
    for i, kid in enumerate(kids):
        rec = read(kid)
        assert rec.status == "finished" and rec.params["i"] == i and rec.tags["fold"] == str(i)
        assert rec.metric("loss").steps == [0, 1] and rec.metric("loss").values == [float(i), i + 0.5]
        assert rec.metric(f"only{i}").values == [1.0] and set(rec.metric_summaries()) == {"loss", "acc", f"only{i}"}
        assert rec.system.get("python") == read(parent).system.get("python") is not None
    rec = read(old)
    assert rec.metric("loss").steps == [0, 1] and rec.metric("loss").values == [1.0, 2.0]
    assert rec.metric("new").values == [7.0] and rec.metric("acc").values == [0.5]
    assert rec.metric_summaries()["loss"]["count"] == 2


def test_a_writer_cycle_leaves_late_arrivals_to_the_next(store_path):
    # entries that arrive while the writer's own cycle drains wait for its next cycle (unless they
    # reach WAKE_AT); flush() still writes everything appended before it
    from trackhooks import writer as _w

    run = trackhooks.start_run()
    run.flush()  # the writer's first drain describes the environment and starts the git probe
    from trackhooks import run as _run

    _run._await_system_info()  # its facts land in the buffer when git answers: not during the drain below
    run.flush()
    w = _w.get_writer()
    real = w._process
    late = []

    def process(entries):
        if not late:  # a caller logs while the first pass is being written
            late.append(True)
            run.log_metric("late", 1.0, step=0)
        return real(entries)

    w._process = process
    try:
        run.log_metric("early", 1.0, step=0)
        with w._write_lock:  # checked under the lock: the writer's own cycle cannot take it meanwhile
            w._drain_locked(until_empty=False)
            assert len(w.buffer) == 1  # the late entry: below WAKE_AT, left for the next cycle
        run.log_metric("early", 2.0, step=1)
        assert run.flush()  # everything appended before it, the entry left behind included
        assert read(run).metric("early").values == [1.0, 2.0] and read(run).metric("late").values == [1.0]
    finally:
        w._process = real
        run.finish()  # also when an assertion failed: a run left active would become the next tests' parent
    assert read(run).metric("late").values == [1.0]


def test_resume_unknown_run(store_path):
    trackhooks.start_run().finish()
    with pytest.raises(trackhooks.RunNotFoundError, match="nope"):
        trackhooks.start_run(resume="nope")


def test_checkpoints_hashed_off_thread_and_best(any_store, tmp_path):
    files = []
    for i in range(3):
        p = tmp_path / f"ckpt{i}.pt"
        p.write_bytes(bytes([i]) * 1000)
        files.append(p)
    with trackhooks.start_run() as run:
        r0 = run.log_checkpoint(files[0], step=10, epoch=0, metrics={"val_loss": 0.5}, best=True,
                                monitor="val_loss", mode="min")
        run.log_checkpoint(files[1], step=20, epoch=1, metrics={"val_loss": 0.4}, best=True, monitor="val_loss",
                           mode="min")
        run.log_checkpoint(files[2], step=30, epoch=2, metrics={"val_loss": 0.6}, monitor="val_loss", mode="min")
        run.update_checkpoint(files[0], deleted=True)
        run.flush()
        assert r0.sha256 is not None and r0.size == 1000
    cks = read(run).checkpoints()
    assert [c.step for c in cks] == [10, 20, 30]
    assert [c.best for c in cks] == [False, True, False]
    assert [c.deleted for c in cks] == [True, False, False]
    import hashlib

    assert cks[1].sha256 == hashlib.sha256(files[1].read_bytes()).hexdigest() and cks[1].size == 1000
    assert cks[1].metrics == {"val_loss": 0.4} and cks[1].monitor == "val_loss" and cks[1].mode == "min"
    assert cks[1].path == str(files[1]) and cks[1].exists
    os.unlink(files[2])
    assert not read(run).checkpoints()[2].exists


def test_checkpoint_directory(any_store, tmp_path):
    d = tmp_path / "ckdir"
    d.mkdir()
    (d / "a").write_text("x")
    (d / "b").write_text("yz")
    with trackhooks.start_run() as run:
        run.log_checkpoint(d, step=1)
    c = read(run).checkpoints()[0]
    assert c.size == 3 and len(c.sha256) == 64


def test_artifacts_copied_content_addressed(store_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside any git checkout: a dirty one adds a git.diff artifact
    src = tmp_path / "config.yaml"
    src.write_text("lr: 0.1\n")
    with trackhooks.start_run() as run:
        run.log_artifact(src)
        run.log_artifact(src, name="configs/copy.yaml")
        run.log_text("notes.md", "# hello")
    arts = {a.name: a for a in read(run).artifacts()}
    assert set(arts) == {"config.yaml", "configs/copy.yaml", "notes.md"}
    a = arts["config.yaml"]
    assert a.path.startswith(os.path.join(store_path, "artifacts")) and a.size == 8
    assert open(a.path).read() == "lr: 0.1\n" and a.path == arts["configs/copy.yaml"].path
    assert open(arts["notes.md"].path).read() == "# hello"


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/../../b", "a//b", "./x", "C:\\x", ""])
def test_artifact_names_cannot_escape(store_path, tmp_path, name):
    src = tmp_path / "f"
    src.write_text("x")
    with trackhooks.start_run() as run:
        with pytest.raises((UnsafePathError, InvalidKeyError)):
            run.log_artifact(src, name=name)


def test_special_files_rejected(store_path, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with trackhooks.start_run() as run:
        for bad in (fifo, "/dev/zero", tmp_path / "missing", tmp_path):
            with pytest.raises(UnsafePathError) as err:
                run.log_artifact(bad)
            assert str(bad) in str(err.value)
        with pytest.raises(UnsafePathError):
            run.log_checkpoint("/dev/zero")


def test_store_errors_name_the_path(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a dir")
    with pytest.raises(StoreError) as err:
        trackhooks.start_run(store=str(f))
    assert str(f) in str(err.value) and isinstance(err.value, OSError)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "trackhooks.db").write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError) as err:
        trackhooks.start_run(store=str(bad))
    assert str(bad) in str(err.value)
    with pytest.raises(trackhooks.StoreNotFoundError):
        trackhooks.open_store(str(tmp_path / "nowhere"))


def test_future_schema_refused(tmp_path):
    import sqlite3

    path = tmp_path / "s"
    trackhooks.start_run(store=str(path)).finish()
    conn = sqlite3.connect(path / "trackhooks.db")
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer trackhooks"):
        trackhooks.open_store(str(path))


def test_open_store_on_empty_directory_sees_later_runs(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    store = trackhooks.open_store(str(path))
    assert store.runs() == []
    run = trackhooks.start_run(store=str(path))
    run.finish()
    assert [r.id for r in store.runs()] == [run.id]


def test_runs_filters_and_prefix_lookup(any_store):
    a = trackhooks.start_run(experiment="x")
    a.finish()
    b = trackhooks.start_run(experiment="y")
    b.finish("failed")
    store = trackhooks.open_store()
    assert [r.id for r in store.runs()] == [a.id, b.id]
    assert [r.id for r in store.runs(experiment="y")] == [b.id]
    assert [r.id for r in store.runs(status="failed")] == [b.id]
    assert store.run(a.id[:10]).id == a.id
    with pytest.raises(trackhooks.RunNotFoundError):
        store.run("zzzz")
    with pytest.raises(KeyError):
        store.run(a.id).metric("nope")


def test_ambiguous_prefix(any_store):
    runs = [trackhooks.start_run() for _ in range(40)]
    for r in runs:
        r.finish()
    first = {}
    for r in runs:
        first.setdefault(r.id[0], []).append(r)
    prefix = next(k for k, v in first.items() if len(v) > 1)
    with pytest.raises(trackhooks.AmbiguousRunError):
        trackhooks.open_store().run(prefix)


def test_killed_when_owner_process_is_gone(any_store):
    import subprocess
    import sys

    code = ("import trackhooks, os; r = trackhooks.start_run(); r.log_metric('m', 1.0); r.flush(); "
            "print(r.id, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TRACKHOOKS_URI": any_store})
    run_id = out.stdout.strip()
    rec = trackhooks.open_store().run(run_id)
    assert rec.status == "killed" and rec.stored_status == "running"
    assert rec.metric("m").values == [1.0]


def test_normal_exit_without_finish_drains(store_path):
    import subprocess
    import sys

    code = ("import trackhooks; r = trackhooks.start_run()\n"
            "for i in range(5000): r.log_metric('m', float(i))\n"
            "print(r.id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TRACKHOOKS_URI": store_path, "TRACKHOOKS_FLUSH_INTERVAL": "60"})
    rec = trackhooks.open_store().run(out.stdout.strip())
    assert rec.status == "finished" and len(rec.metric("m")) == 5000


def test_uncaught_exception_marks_failed(store_path):
    import subprocess
    import sys

    code = "import trackhooks; r = trackhooks.start_run(); print(r.id, flush=True); raise SystemError('x')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TRACKHOOKS_URI": store_path})
    assert out.returncode == 1
    assert trackhooks.open_store().run(out.stdout.strip()).status == "failed"


def test_sigterm_drains_and_marks_killed(store_path):
    import signal
    import subprocess
    import sys

    code = ("import trackhooks, time; r = trackhooks.start_run(); r.log_metric('m', 1.0); print(r.id, flush=True)\n"
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TRACKHOOKS_URI": store_path, "TRACKHOOKS_FLUSH_INTERVAL": "60"})
    run_id = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == -signal.SIGTERM
    rec = trackhooks.open_store().run(run_id)
    assert rec.stored_status == "killed" and rec.metric("m").values == [1.0]


def test_threads_logging_into_one_run(store_path):
    with trackhooks.start_run() as run:
        def work(t):
            for i in range(2000):
                run.log_metric(f"t{t}", float(i), step=i)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    rec = read(run)
    for t in range(4):
        assert rec.metric(f"t{t}").values == [float(i) for i in range(2000)]


def test_flush_timeout_returns_bool(store_path):
    run = trackhooks.start_run()
    run.log_metric("m", 1.0)
    assert run.flush(timeout=30) is True
    run.finish()


def test_two_stores_in_one_process(tmp_path):
    a = trackhooks.start_run(store=str(tmp_path / "a"))
    b = trackhooks.start_run(store=str(tmp_path / "b"))
    a.log_metric("m", 1.0)
    b.log_metric("m", 2.0)
    a.finish()
    b.finish()
    assert trackhooks.open_store(str(tmp_path / "a")).run(a.id).metric("m").values == [1.0]
    assert trackhooks.open_store(str(tmp_path / "b")).run(b.id).metric("m").values == [2.0]
    with pytest.raises(trackhooks.RunNotFoundError):
        trackhooks.open_store(str(tmp_path / "a")).run(b.id)


def test_local_store_as_mirror(tmp_path):
    main, copy = str(tmp_path / "main"), str(tmp_path / "copy")
    with trackhooks.start_run(store=main, mirrors=[copy]) as run:
        run.log_metrics({"m": 1.0})
    assert trackhooks.open_store(copy).run(run.id).metric("m").values == [1.0]


def test_failing_mirror_is_isolated(store_path):
    class Broken(trackhooks.Sink):
        name = "broken"
        calls = 0

        def write(self, batch):
            Broken.calls += 1
            raise ConnectionError("down")

    class Good(trackhooks.Sink):
        name = "good"
        points = 0

        def write(self, batch):
            Good.points += batch.n_points()

    with pytest.warns(RuntimeWarning, match="broken failed"):
        with trackhooks.start_run(mirrors=[Broken(), Good()]) as run:
            for i in range(100):
                run.log_metric("m", float(i))
    assert Good.points == 100 and Broken.calls >= 1
    assert len(read(run).metric("m")) == 100


def test_unknown_mirror_scheme(store_path):
    with pytest.raises(trackhooks.UnknownPluginError, match="nosuch"):
        trackhooks.start_run(mirrors=["nosuch+http://x"])


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, trackhooks; heavy = [m for m in ('torch', 'numpy', 'keras', 'sklearn', 'xgboost', "
            "'mlflow', 'lightning', 'pandas', 'sqlite3') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names():
    for name in ("start_run", "active_run", "open_store", "autolog", "plugin_manager", "TrackhooksError"):
        assert hasattr(trackhooks, name)
    with pytest.raises(AttributeError):
        trackhooks.no_such_thing


def test_artifact_source_deleted_before_flush_only_warns(store_path, tmp_path):
    src = tmp_path / "gone.bin"
    src.write_bytes(b"x" * 100)
    with trackhooks.start_run() as run:
        run._writer.interval = 60  # keep the writer idle so the file is gone before it is read
        try:
            run.log_artifact(src)
            run.log_metric("m", 1.0)
            os.unlink(src)
            with pytest.warns(RuntimeWarning, match="gone.bin|No such file"):
                run.flush()
        finally:
            run._writer.interval = 0.2
    rec = read(run)
    assert rec.artifacts() == [] and rec.metric("m").values == [1.0] and rec.status == "finished"


def test_sink_rejecting_a_batch_does_not_block_the_others(store_path):
    class Picky(trackhooks.Sink):
        name = "picky"
        good = 0

        def write(self, batch):
            if batch.metrics:
                raise TypeError("cannot take metrics")
            Picky.good += 1

    with pytest.warns(RuntimeWarning):
        with trackhooks.start_run(mirrors=[Picky()]) as run:
            run.log_metric("m", 1.0)
            for _ in range(4):
                run.flush()
            run.set_tags({"after": "yes"})
    assert read(run).metric("m").values == [1.0] and read(run).tags == {"after": "yes"}
    assert Picky.good >= 1  # batches after the rejected one were delivered


def test_metric_summaries(any_store):
    with trackhooks.start_run() as run:
        run.log_metric("m", math.nan)
        run.log_metrics({"m": 3.0})
        run.flush()
        run.log_metric("m", -1.0)
        run.log_metric("m", 2.0, step=10)
        run.log_metric("only_nan", math.nan)
    s = read(run).metric_summaries()
    assert s["m"] == {"count": 4, "last_step": 10, "last": 2.0, "min": -1.0, "max": 3.0}
    assert s["only_nan"] == {"count": 1, "last_step": 0, "last": None, "min": None, "max": None}


def test_automatic_step_saturates_at_int64_max(any_store):
    with trackhooks.start_run() as run:
        run.log_metric("m", 1.0, step=2**63 - 1)
        run.log_metric("m", 2.0)
        run.log_metrics({"m": 3.0})
    assert read(run).metric("m").steps == [2**63 - 1] * 3


def test_series_arrays_and_lazy_columns(any_store):
    with trackhooks.start_run() as run:
        run.log_metric("m", 1.5, step=3, epoch=1)
        run.flush()
        run.log_metric("m", 2.5)
    s = read(run).metric("m")
    steps, epochs, values, times = s.arrays()
    assert (steps.typecode, values.typecode) == ("q", "d")
    assert list(steps) == [3, 4] and list(values) == [1.5, 2.5] and list(epochs) == [1, -(2**63)]
    assert s.epochs == [1, None] and len(s) == 2 and s.last == 2.5
