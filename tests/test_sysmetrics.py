"""System metrics over time (system/* keys), the git diff and untracked files of a dirty work tree."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import trackhooks
from trackhooks import sysmetrics, writer as _writer
from trackhooks.builtin import sysinfo
from trackhooks.sysmetrics import SystemSampler, _Figures, parse_interval

PY = sys.executable
PROCESS_KEYS = {"system/cpu_percent", "system/memory_rss_mb", "system/memory_percent", "system/io_read_mb",
                "system/io_write_mb"}


def gpu_visible() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        return False


@pytest.fixture(autouse=True)
def fresh_warnings():
    _writer.warn_once.__defaults__[0].clear()


def check_samples(rec, min_samples: int = 2) -> int:
    keys = [k for k in rec.metric_keys() if k.startswith("system/")]
    assert PROCESS_KEYS <= set(keys)
    n = len(rec.metric("system/memory_rss_mb"))
    assert n >= min_samples
    for k in keys:
        s = rec.metric(k)
        assert s.steps == list(range(len(s)))  # step = sample number from 0
        assert s.epochs == [None] * len(s)
        assert s.timestamps == sorted(s.timestamps)
        assert all(math.isfinite(v) and v >= 0 for v in s.values), k
    assert all(0 < v < 1e7 for v in rec.metric("system/memory_rss_mb").values)
    assert all(0 <= v <= 100 for v in rec.metric("system/memory_percent").values)
    if gpu_visible():  # a lent GPU machine: every visible GPU is sampled
        assert "system/gpu0/memory_used_mb" in keys and "system/gpu0/utilization_percent" in keys
    else:  # the no-GPU path: no GPU keys and no warning about it
        assert not any(k.startswith("system/gpu") for k in keys)
    facts = rec.system["system_metrics"]
    assert facts["node"] == socket.gethostname()
    return n


def test_bad_intervals_name_the_option(monkeypatch):
    for bad in (-1, -0.5, float("nan"), float("inf")):
        with pytest.raises(trackhooks.TrackhooksError, match="system_metrics") as e:
            parse_interval(bad)
        assert isinstance(e.value, ValueError)
    for bad in ("10", "often", [1], object()):
        with pytest.raises(trackhooks.TrackhooksError, match="system_metrics"):
            parse_interval(bad)
    with pytest.raises(trackhooks.TrackhooksError, match="system_metrics"):
        trackhooks.start_run(system_metrics=-3)
    assert trackhooks.active_run() is None  # nothing was started
    monkeypatch.setenv("TRACKHOOKS_SYSTEM_METRICS", "fast")
    with pytest.raises(ValueError, match="TRACKHOOKS_SYSTEM_METRICS"):
        parse_interval(None)
    monkeypatch.setenv("TRACKHOOKS_SYSTEM_METRICS", "-2")
    with pytest.raises(ValueError, match="TRACKHOOKS_SYSTEM_METRICS"):
        parse_interval(None)


def test_interval_coercions(monkeypatch):
    np = pytest.importorskip("numpy")
    assert parse_interval(True) == 10.0 and parse_interval(False) is None and parse_interval(0) is None
    assert parse_interval(2.5) == 2.5 and parse_interval(3) == 3.0 and parse_interval(np.float32(0.5)) == 0.5
    for raw, expected in (("0", None), ("off", None), ("false", None), ("on", 10.0), ("true", 10.0),
                          ("1", 1.0), ("30", 30.0), (" 0.2 ", 0.2)):
        monkeypatch.setenv("TRACKHOOKS_SYSTEM_METRICS", raw)
        assert parse_interval(None) == expected, raw
    monkeypatch.delenv("TRACKHOOKS_SYSTEM_METRICS")
    assert parse_interval(None) == sysmetrics.DEFAULT_INTERVAL_S == 10.0


class _State:
    def __init__(self, run_id):
        self.run_id = run_id


def test_one_sampler_per_interval_with_its_own_steps_per_run():
    sampler = SystemSampler()
    a, b = _State("a"), _State("b")
    sampler.add(a, 1.0)
    got = sampler.due(100.0)  # the first sample is due at once
    assert [(s.run_id, step) for s, _, step, _ in got] == [("a", 0)]
    assert PROCESS_KEYS <= set(got[0][1])
    sampler.add(b, 0.5)
    assert [(s.run_id, step) for s, _, step, _ in sampler.due(100.2)] == [("b", 0)]
    assert sampler.due(100.5) == []
    assert [(s.run_id, step) for s, _, step, _ in sampler.due(100.75)] == [("b", 1)]
    both = sampler.due(101.3)
    assert sorted((s.run_id, step) for s, _, step, _ in both) == [("a", 1), ("b", 2)]
    assert both[0][1] is both[1][1]  # one sample, given to both runs
    assert [step for _, _, step, _ in sampler.finish(a)] == [2]  # one more at the finish
    assert sampler.finish(a) == []
    c = _State("c")
    sampler.add(c, 5.0)
    assert [step for _, _, step, _ in sampler.finish(c)] == [0, 1]  # ended before its first tick
    assert sampler.next_due() == pytest.approx(101.3 + 0.5, abs=0.3)


def test_a_failing_figure_warns_once_and_the_others_go_on():
    fig = _Figures()

    def broken(out):
        raise RuntimeError("GPU fell off the bus")

    fig._collectors.append(("gpu0.utilization", broken))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        first = fig.sample()
        second = fig.sample()
    assert [str(x.message) for x in w if "gpu0.utilization" in str(x.message)] == [
        "trackhooks: system metrics: gpu0.utilization failed (RuntimeError: GPU fell off the bus); "
        "it is no longer sampled"]
    assert PROCESS_KEYS <= set(first) and PROCESS_KEYS <= set(second)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc figures are Linux-only")
def test_linux_reads_proc_without_psutil_and_agrees_with_psutil(monkeypatch):
    import psutil

    proc = psutil.Process()
    with monkeypatch.context() as m, warnings.catch_warnings(record=True) as w:
        m.setitem(sys.modules, "psutil", None)  # the /proc path must not need it
        warnings.simplefilter("always")
        wall0, cpu0 = time.monotonic(), sum(os.times()[:2])
        fig = _Figures()
        ballast = bytearray(64 * 1024 * 1024)  # RSS grows by 64 MB between the samples
        ballast[::4096] = b"x" * len(ballast[::4096])
        t = time.thread_time()
        while time.thread_time() - t < 0.3:  # one core busy for 0.3 s
            pass
        values = fig.sample()
        expected = 100 * (sum(os.times()[:2]) - cpu0) / (time.monotonic() - wall0)
    assert not [x for x in w if "psutil" in str(x.message)]
    assert PROCESS_KEYS <= set(values)
    rss = proc.memory_info().rss / 2**20
    assert abs(values["system/memory_rss_mb"] - rss) < 0.1 * rss, (values, rss)
    assert abs(values["system/memory_percent"] - psutil.virtual_memory().percent) < 5
    io = proc.io_counters()
    assert values["system/io_read_mb"] <= io.read_bytes / 2**20 + 1e-9
    assert values["system/io_write_mb"] <= io.write_bytes / 2**20 + 1e-9
    # the process' CPU time over wall time (however loaded the machine), as psutil's cpu_percent
    assert values["system/cpu_percent"] > 0 and abs(values["system/cpu_percent"] - expected) < 0.2 * expected + 5
    del ballast


def test_no_nvidia_driver_means_no_pynvml_import():
    """Without a driver (no /dev/nvidiactl, no /proc/driver/nvidia on Linux) the sampler does not
    import pynvml nor call nvmlInit: 5-10 ms of the writer's start-up on every such machine."""
    code = textwrap.dedent("""
        import sys
        from trackhooks import sysmetrics
        fig = sysmetrics._Figures()
        print(sysmetrics.nvidia_driver_present(), "pynvml" in sys.modules, fig.facts.get("gpu_source"))
    """)
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.split()
    present = os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")
    if sys.platform.startswith("linux") and not present:
        assert out == ["False", "False", "None"], out
    else:  # a machine with a driver (a lent GPU): NVML is asked as before
        assert out[0] == "True", out


def test_without_psutil_or_proc_one_warning_and_no_process_figures(monkeypatch):
    monkeypatch.setattr(sysmetrics, "_proc_readable", lambda: False)  # not Linux, or no /proc
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fig = _Figures()
        values = fig.sample()
    assert not PROCESS_KEYS & set(values)
    assert len([x for x in w if "psutil" in str(x.message)]) == 1


def test_cuda_visible_devices_selects_and_orders_gpus(monkeypatch):
    class FakeNvml:  # only the index/UUID lookup is exercised; no GPU needed
        def nvmlDeviceGetHandleByIndex(self, i):
            return ("idx", i)

        def nvmlDeviceGetHandleByUUID(self, u):
            return ("uuid", u)

    nv = FakeNvml()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert sysmetrics._visible_handles(nv, 3) == [("idx", 0), ("idx", 1), ("idx", 2)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert sysmetrics._visible_handles(nv, 3) == [("idx", 2), ("idx", 0)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,7,0")  # CUDA stops at the first invalid entry
    assert sysmetrics._visible_handles(nv, 3) == [("idx", 1)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sysmetrics._visible_handles(nv, 3) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    assert sysmetrics._visible_handles(nv, 3) == [("uuid", "GPU-abc")]


def test_sampling_in_a_run_start_interval_finish(store_path):
    with trackhooks.start_run(system_metrics=0.2) as run:
        run.log_metric("loss", 1.0)
        run.flush()
    rec = trackhooks.open_store(store_path).run(run.id)
    check_samples(rec, 2)
    assert rec.system["system_metrics"]["interval_s"] == 0.2
    assert rec.metric("loss").values == [1.0]


def test_off_means_no_system_keys(store_path):
    with trackhooks.start_run(system_metrics=False) as run:
        run.log_metric("loss", 1.0)
    rec = trackhooks.open_store(store_path).run(run.id)
    assert rec.metric_keys() == ["loss"] and "system_metrics" not in rec.system


def test_default_is_every_10_s_and_never_imports_torch(tmp_path):
    code = textwrap.dedent("""
        import sys, trackhooks
        with trackhooks.start_run(store=sys.argv[1]) as run:
            pass
        rec = trackhooks.open_store(sys.argv[1]).run(run.id)
        assert rec.system["system_metrics"]["interval_s"] == 10.0, rec.system
        assert len(rec.metric("system/cpu_percent")) == 2  # the start and the finish
        assert "torch" not in sys.modules
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRACKHOOKS_SYSTEM_METRICS"}
    p = subprocess.run([PY, "-c", code, str(tmp_path / "s")], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr


def test_lightning_fit_sampled_every_0_2_s(store_path):
    torch = pytest.importorskip("torch")
    L = pytest.importorskip("lightning.pytorch")
    from trackhooks_lightning import TrackhooksCallback

    class M(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32)
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[TrackhooksCallback(system_metrics=0.2)])
    trainer.fit(M(), data)
    (rec,) = trackhooks.open_store(store_path).runs()
    check_samples(rec, 2)
    assert rec.system["system_metrics"]["interval_s"] == 0.2


def test_keras_fit_sampled_every_0_2_s(store_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    np = pytest.importorskip("numpy")
    from trackhooks_keras import TrackhooksCallback

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x.sum(1) > 0).astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[TrackhooksCallback(system_metrics=0.2)])
    (rec,) = trackhooks.open_store(store_path).runs()
    check_samples(rec, 2)
    assert rec.system["system_metrics"]["interval_s"] == 0.2


# ---- git: the uncommitted diff and the untracked files ----------------------------------------


def git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", ".")
    (r / "train.py").write_text("lr = 0.1\n")
    (r / "weights.bin").write_bytes(bytes(range(256)))
    (r / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    git(r, "add", ".")
    git(r, "commit", "-qm", "init")
    return r


RUN_IN_REPO = textwrap.dedent("""
    import sys, trackhooks
    with trackhooks.start_run(store=sys.argv[1]) as run:
        pass
    print(run.id)
""")


def run_in(repo, store, diff: str | None = None) -> "trackhooks.RunRecord":
    env = {k: v for k, v in os.environ.items() if k != "TRACKHOOKS_GIT_DIFF"}
    if diff is not None:
        env["TRACKHOOKS_GIT_DIFF"] = diff
    p = subprocess.run([PY, "-c", RUN_IN_REPO, str(store)], cwd=repo, capture_output=True, text=True, timeout=120,
                       env=env)
    assert p.returncode == 0, p.stderr
    return trackhooks.open_store(str(store)).run(p.stdout.strip())


SLOW_GIT = textwrap.dedent("""\
    #!/bin/sh
    # a work tree whose git takes a while (a large repository): the real git, {delay} s late
    echo "$*" >> "{calls}"
    sleep {delay}
    exec "{git}" "$@"
""")

SHORT_RUNS = textwrap.dedent("""
    import json, sys, time, trackhooks
    ids, finishes = [], []
    for i in range(4):  # a loop of short fits
        run = trackhooks.start_run(store=sys.argv[1])
        run.log_metric("loss", 1.0 / (i + 1))
        t = time.perf_counter()
        run.finish()
        finishes.append(time.perf_counter() - t)
        ids.append(run.id)
        rec = trackhooks.open_store(sys.argv[1]).run(run.id)
        assert rec.status == "finished" and rec.metric("loss").values == [1.0 / (i + 1)], rec
    print(json.dumps({"ids": ids, "finishes": finishes, "exit_from": time.time()}))
""")


def test_finish_does_not_wait_for_git_and_runs_in_a_loop_share_one_probe(repo, tmp_path):
    # finish() of a short run returns without waiting for git status / git diff; a run that starts
    # while the probe runs takes its answer (one git process at a time, not one per fit); exit waits
    # for the answer, so every run has it once the process is gone
    import json
    import shutil

    (repo / "train.py").write_text("lr = 0.01  # tuned\n")
    (repo / "notes.txt").write_text("x")
    bin_dir, calls = tmp_path / "bin", tmp_path / "git-calls.txt"
    bin_dir.mkdir()
    slow = bin_dir / "git"
    slow.write_text(SLOW_GIT.format(delay=1.0, calls=calls, git=shutil.which("git")))
    slow.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TRACKHOOKS_GIT_DIFF": "1",
           "TRACKHOOKS_SYSTEM_METRICS": "0"}
    store = tmp_path / "store"
    started = time.time()
    p = subprocess.run([PY, "-c", SHORT_RUNS, str(store)], cwd=repo, capture_output=True, text=True, timeout=120,
                       env=env)
    exited = time.time()
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert max(out["finishes"]) < 0.9, out["finishes"]  # git answers after 1 s (and the diff 1 s later)
    assert exited - out["exit_from"] >= 1.0  # exit waited for it: status 1 s, diff 1 s
    git_runs = calls.read_text().splitlines()
    # one status and one diff for 4 runs, each run in the work tree's root
    assert [c.split()[:3] for c in git_runs] == [["-C", str(repo), "status"], ["-C", str(repo), "-c"]], git_runs
    for run_id in out["ids"]:
        rec = trackhooks.open_store(str(store)).run(run_id)
        assert rec.system["git.dirty"] is True and rec.system["git.untracked"] == ["notes.txt"], rec.system
        (diff,) = [a for a in rec.artifacts() if a.name == "git.diff"]
        assert b"tuned" in open(diff.path, "rb").read()
    assert exited - started < 30


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_git_diff_off_keeps_dirty_flag_and_untracked_names(repo, tmp_path, value):
    (repo / "train.py").write_text("lr = 0.01  # tuned\n")
    (repo / "notes.txt").write_text("x")
    rec = run_in(repo, tmp_path / "store", diff=value)
    assert rec.system["git.dirty"] is True and rec.system["git.untracked"] == ["notes.txt"]
    assert "git.diff_bytes" not in rec.system
    assert [a.name for a in rec.artifacts()] == []


def test_dirty_tree_diff_and_untracked_names(repo, tmp_path):
    (repo / "train.py").write_text("lr = 0.01  # tuned\n")
    (repo / "weights.bin").write_bytes(bytes(range(255, -1, -1)))
    (repo / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (repo / "notes.txt").write_text("secret contents never stored")
    (repo / "data").mkdir()
    (repo / "data" / "a.csv").write_text("x\n")
    rec = run_in(repo, tmp_path / "store")
    assert rec.system["git.dirty"] is True
    assert sorted(rec.system["git.untracked"]) == ["data/", "notes.txt"]
    assert rec.system["git.untracked_count"] == 2
    (diff,) = [a for a in rec.artifacts() if a.name == "git.diff"]
    with open(diff.path, "rb") as f:
        data = f.read()
    assert b"-lr = 0.1\n+lr = 0.01  # tuned\n" in data
    assert b"GIT binary patch" in data  # binary-safe: applicable with git apply
    assert "caf\xe9 cr\xe8me".encode("latin-1") in data  # bytes as they are, whatever the encoding
    assert b"secret contents" not in data
    # the diff applies back onto HEAD: it is the exact uncommitted change
    git(repo, "stash", "-q")
    subprocess.run(["git", "apply", "--check", diff.path], cwd=repo, check=True)


def test_clean_tree_has_no_diff(repo, tmp_path):
    rec = run_in(repo, tmp_path / "store")
    assert rec.system["git.dirty"] is False and rec.system["git.untracked_count"] == 0
    assert "git.untracked" not in rec.system
    assert [a.name for a in rec.artifacts() if a.name == "git.diff"] == []


@pytest.mark.parametrize("spawn", ["posix_spawnp", "subprocess"])
def test_a_git_that_hangs_is_killed_at_the_time_box_and_a_missing_git_is_no_answer(repo, tmp_path, monkeypatch, spawn):
    import shutil

    script = SLOW_GIT
    if spawn == "subprocess":
        monkeypatch.delattr(os, "posix_spawnp")  # as on Windows
        # the fallback reads to the end of git's output, as the code before posix_spawnp did: a
        # child that git left holding the pipe (the script's sleep) would keep it waiting
        script = script.replace("sleep {delay}", "exec sleep {delay}")

    (repo / "train.py").write_text("lr = 0.01  # tuned\n")
    assert sysinfo.git_status(str(repo)) == (True, []) and sysinfo.git_dirty(str(repo)) is True
    bin_dir, calls = tmp_path / "bin", tmp_path / "git-calls.txt"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(script.format(delay=30, calls=calls, git=shutil.which("git")))
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sysinfo, "GIT_TIMEOUT_S", 0.3)
    t = time.perf_counter()
    assert sysinfo.git_status(str(repo)) is None and sysinfo.git_diff(str(repo)) is None
    assert time.perf_counter() - t < 10  # 0.3 s, then 0.9 s: not the 30 s the script sleeps
    assert len(calls.read_text().splitlines()) == 2
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert sysinfo.git_status(str(repo)) is None and sysinfo.git_dirty(str(repo)) is None
    assert sysinfo.git_diff(str(repo)) is None


def test_git_inherits_no_descriptor_but_its_pipe_and_dev_null(repo):
    fd = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(fd, True)  # as a C library's descriptor without O_CLOEXEC would be
    try:
        rc, out, cut = sysinfo._git(str(repo), ["-c", "alias.fds=!ls /proc/$$/fd", "fds"], 10)
    finally:
        os.close(fd)
    assert (rc, cut) == (0, False) and fd > 2
    assert out.split() == [b"0", b"1", b"2"], out  # the alias's shell: what git was given


@pytest.mark.parametrize("spawn", ["posix_spawnp", "subprocess"])
def test_diff_is_capped_with_a_marker(repo, monkeypatch, spawn):
    if spawn == "subprocess":
        monkeypatch.delattr(os, "posix_spawnp")  # as on Windows
    (repo / "train.py").write_text("".join(f"line {i}\n" for i in range(5000)))
    full = sysinfo.git_diff(str(repo))
    cut = sysinfo.git_diff(str(repo), limit=1000)
    assert len(full) > 1000 and cut.endswith(sysinfo.DIFF_MARKER)
    body = cut[: -len(sysinfo.DIFF_MARKER)]
    assert len(body) <= 1000 and full.startswith(body) and body.endswith(b"\n")
    assert sysinfo.DIFF_LIMIT_BYTES == 1 << 20
